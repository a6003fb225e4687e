//! chatbench: the project's load generator (its own issue; a placeholder until then).

fn main() {
    eprintln!("chatbench: not implemented yet");
    std::process::exit(2);
}
