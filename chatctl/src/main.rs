//! chatctl: the admin CLI for a running chatd (its own issue; a placeholder until then).

fn main() {
    eprintln!("chatctl: not implemented yet");
    std::process::exit(2);
}
