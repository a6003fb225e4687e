//! chatcli: the chat client (its own issue; a placeholder until then).

fn main() {
    eprintln!("chatcli: not implemented yet");
    std::process::exit(2);
}
