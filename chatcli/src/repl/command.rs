//! What a line typed at the prompt means. Pure parsing, so every rule is unit-tested here.
//!
//! A line starting with `/` is a command, one starting with `@NAME ` is a private message, and
//! anything else is said to the current target. `//text` says `/text`, for the rare message
//! that starts with a slash. Surrounding white space is not part of a message.

/// The commands, for `/help` and for completion.
pub const COMMANDS: [(&str, &str); 5] = [
    ("/to", "/to NAME      talk to NAME until /all"),
    ("/all", "/all          talk to everyone"),
    ("/users", "/users        who is logged in"),
    ("/help", "/help         this list"),
    (
        "/quit",
        "/quit         log out and leave (Ctrl-D does the same)",
    ),
];

#[derive(Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// Nothing typed.
    Empty,
    /// Text for the current target.
    Say(&'a str),
    /// One private message; the target does not change.
    Private {
        to: &'a str,
        body: &'a str,
    },
    To(&'a str),
    All,
    Users,
    Help,
    Quit,
    /// A command used the wrong way; the text says the right way.
    Wrong(String),
}

pub fn parse(line: &str) -> Command<'_> {
    let line = line.trim();
    if line.is_empty() {
        return Command::Empty;
    }
    if line.starts_with("//") {
        return Command::Say(&line[1..]);
    }
    if let Some(rest) = line.strip_prefix('@') {
        let (to, body) = split_word(rest);
        if let Err(e) = proto::name::validate(to) {
            return Command::Wrong(format!("@{to}: {e}"));
        }
        if body.is_empty() {
            return Command::Wrong(format!("@{to} needs a message: @{to} text"));
        }
        return Command::Private { to, body };
    }
    let Some(rest) = line.strip_prefix('/') else {
        return Command::Say(line);
    };
    let (cmd, arg) = split_word(rest);
    match (cmd, arg) {
        ("to", "") => Command::Wrong("/to needs a name: /to NAME".to_owned()),
        ("to", name) => match proto::name::validate(name) {
            Ok(()) => Command::To(name),
            Err(e) => Command::Wrong(format!("/to {name}: {e}")),
        },
        ("all", "") => Command::All,
        ("users", "") => Command::Users,
        ("help", "") => Command::Help,
        ("quit", "") => Command::Quit,
        ("all" | "users" | "help" | "quit", _) => {
            Command::Wrong(format!("/{cmd} takes nothing after it"))
        }
        _ => Command::Wrong(format!(
            "unknown command /{cmd}; /help lists them (start with // to send a line beginning with /)"
        )),
    }
}

/// The first word and the rest, trimmed.
fn split_word(s: &str) -> (&str, &str) {
    match s.split_once(char::is_whitespace) {
        Some((w, rest)) => (w, rest.trim()),
        None => (s, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_are_said() {
        assert_eq!(parse("  hello there "), Command::Say("hello there"));
        assert_eq!(parse("   "), Command::Empty);
        assert_eq!(parse("//etc/passwd"), Command::Say("/etc/passwd"));
    }

    #[test]
    fn at_name_is_one_private_message() {
        assert_eq!(
            parse("@bob  see you"),
            Command::Private {
                to: "bob",
                body: "see you"
            }
        );
        assert!(matches!(parse("@bob"), Command::Wrong(w) if w.contains("@bob text")));
        assert!(matches!(parse("@-x hi"), Command::Wrong(_)));
    }

    #[test]
    fn commands_parse_and_misuse_says_how() {
        assert_eq!(parse("/to carol"), Command::To("carol"));
        assert_eq!(parse("/all"), Command::All);
        assert_eq!(parse("/users"), Command::Users);
        assert_eq!(parse("/help"), Command::Help);
        assert_eq!(parse("/quit"), Command::Quit);
        assert!(matches!(parse("/to"), Command::Wrong(w) if w == "/to needs a name: /to NAME"));
        assert!(matches!(parse("/to a*b"), Command::Wrong(_)));
        assert!(matches!(parse("/quit now"), Command::Wrong(_)));
        assert!(
            matches!(parse("/frobnicate"), Command::Wrong(w) if w.starts_with("unknown command /frobnicate"))
        );
    }

    #[test]
    fn every_listed_command_parses() {
        for (cmd, help) in COMMANDS {
            assert!(help.starts_with(cmd));
            let line = if cmd == "/to" { "/to x" } else { cmd };
            assert!(!matches!(parse(line), Command::Wrong(_)), "{cmd}");
        }
    }
}
