//! Command-line flags and the exit-code contract.
//!
//! The flags pick one of three modes: the interactive REPL (stdin and stdout are terminals and
//! no scripted flag is given), the sender (`-m`, or stdin is not a terminal) and the listener
//! (`--listen`). Exit codes are part of the interface scripts rely on, so they live here, next
//! to the `--help` text that documents them.

use clap::Parser;

/// Everything went as asked.
pub const EXIT_OK: u8 = 0;
/// At least one message was not accepted (each one reported on stderr), or an unexpected error.
pub const EXIT_FAILED: u8 = 1;
/// The command line was wrong (clap's own code for usage errors).
pub const EXIT_USAGE: u8 = 2;
/// chatd could not be reached, or it turned the connection away (`server_full`).
pub const EXIT_CANNOT_CONNECT: u8 = 3;
/// chatd refused the login: the name is taken or invalid, or the password is wrong.
pub const EXIT_LOGIN_REFUSED: u8 = 4;
/// The session ended against our will: kicked, server shutdown, or the connection dropped.
pub const EXIT_DISCONNECTED: u8 = 5;

/// The default server address when neither `--server` nor `CHATD_SERVER` is given.
pub const DEFAULT_SERVER: &str = "127.0.0.1:7878";

const AFTER_HELP: &str = "\
Modes:
  On a terminal, chatcli is an interactive chat: type to talk to everyone, /to NAME to talk
  to one person, @NAME text for a single private message, /help for the rest.
  With stdin not a terminal (or -m), each line is sent as one message and chatcli exits once
  chatd has answered every one. Empty lines are skipped. With --listen, incoming messages are
  printed one per line (from→to: body) until --count is reached, SIGINT/SIGTERM, or the
  connection ends.

Exit status:
  0  ok: every message accepted (or the listener stopped as asked)
  1  some messages were not accepted; each is reported on stderr, in line order, as
     `chatcli: line N: CODE: reason`
  2  usage error (a --server without its port, an unreadable or empty --password-file
     included)
  3  cannot reach chatd, or chatd is full
  4  login refused: the name is taken or invalid, or the password is wrong or missing
  5  kicked, chatd shut down, or the connection was lost

Environment:
  CHATD_SERVER     default for --server
  CHAT_USER        default for --user
  CHAT_PASSWORD_FILE  default for --password-file
  CHATCLI_HISTORY  history file of the interactive mode
                   (default: $XDG_STATE_HOME/chatcli/history)
  NO_COLOR         set and not empty: no colour even on a terminal";

/// The chatd client: chat on a terminal, or send and receive from shell scripts.
#[derive(Debug, Clone, Parser)]
#[command(name = "chatcli", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// chatd's address, HOST:PORT (an IPv6 address in brackets: [::1]:7878); the port is
    /// required
    #[arg(long, env = "CHATD_SERVER", default_value = DEFAULT_SERVER, value_name = "HOST:PORT",
          value_parser = parse_server)]
    pub server: String,

    /// The name to log in as; the interactive mode asks when it is missing
    #[arg(long, short = 'u', env = "CHAT_USER", value_name = "NAME")]
    pub user: Option<String>,

    /// Recipient of the messages (a user name, or * for everyone); in the interactive mode,
    /// the starting target
    #[arg(long, default_value = "*", value_name = "NAME", value_parser = parse_target)]
    pub to: String,

    /// Send this one message and exit, without reading stdin
    #[arg(
        short = 'm',
        long = "message",
        value_name = "TEXT",
        conflicts_with = "listen",
        value_parser = parse_message
    )]
    pub message: Option<String>,

    /// Count a message that reached nobody (delivered 0) as a failure
    #[arg(long)]
    pub require_delivered: bool,

    /// Print incoming messages, one per line, instead of sending
    #[arg(long)]
    pub listen: bool,

    /// With --listen: print the raw protocol events (JSON lines) instead of from→to: body
    /// (characters a terminal would obey are written as JSON escapes)
    #[arg(long, requires = "listen")]
    pub json: bool,

    /// With --listen: stop after N messages
    #[arg(long, value_name = "N", requires = "listen")]
    pub count: Option<u64>,

    /// Seconds to wait for chatd to accept the connection, and again for it to answer the
    /// login, before giving up with exit status 3
    #[arg(long, value_name = "SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,

    /// The server's line limit, in bytes: a message whose request line, once encoded as JSON
    /// (where a control character takes 6 bytes), would be longer is reported as too_large
    /// and not sent, and so is a longer stdin line, unread, so memory stays bounded whatever
    /// is piped in. The default is chatd's; match a server started with another
    /// --max-line-bytes
    #[arg(long, value_name = "BYTES", default_value_t = proto::DEFAULT_MAX_LINE_BYTES)]
    pub max_line_bytes: usize,

    /// History file of the interactive mode
    #[arg(long, env = "CHATCLI_HISTORY", value_name = "FILE")]
    pub history: Option<std::path::PathBuf>,

    /// File whose first line is the password, for a chatd started with --password-file
    #[arg(long, env = "CHAT_PASSWORD_FILE", value_name = "FILE")]
    pub password_file: Option<std::path::PathBuf>,
}

impl Cli {
    /// The password from `--password-file`, or the error naming the file. Read from a file
    /// (never a flag) so it does not show in `ps` or the shell's history.
    pub fn password(&self) -> Result<Option<String>, String> {
        let Some(path) = &self.password_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the password file {}: {e}", path.display()))?;
        match text.lines().next() {
            Some(pw) if !pw.is_empty() => Ok(Some(pw.to_owned())),
            _ => Err(format!(
                "the password file {} is empty; put the password on its first line",
                path.display()
            )),
        }
    }

    /// True when a flag asks for the scripted behaviour even on a terminal.
    pub fn scripted_by_flags(&self) -> bool {
        self.message.is_some() || self.listen
    }
}

/// `--to` takes a user name or `*`; a bad name is a usage error before anything connects.
/// A blank `-m` is refused rather than skipped like an empty input line: `-m "$(cmd)"` with a
/// command that printed nothing would otherwise report success having sent nothing.
fn parse_message(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Err("the message is empty; there is nothing to send".into());
    }
    Ok(s.to_owned())
}

/// `--server` is HOST:PORT. Without the port, connecting would fail with a resolver's error
/// (and exit 3, as if chatd were down): it is a usage error, caught before anything connects.
fn parse_server(s: &str) -> Result<String, String> {
    let example = |host: &str| {
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        format!("{host}:{}", proto::DEFAULT_PORT)
    };
    let Some((host, port)) = s.rsplit_once(':') else {
        let host = if s.is_empty() { "localhost" } else { s };
        return Err(format!(
            "no port; give HOST:PORT, e.g. --server {}",
            example(host)
        ));
    };
    if host.is_empty() {
        return Err(format!(
            "no host; give HOST:PORT, e.g. --server {}",
            example("localhost")
        ));
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err(format!(
            "an IPv6 address goes in brackets, with the port after them, e.g. --server {}",
            example(s)
        ));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(s.to_owned()),
        _ => Err(format!(
            "{port:?} is not a port (1 to 65535); give HOST:PORT, e.g. --server {}",
            example(host)
        )),
    }
}

fn parse_target(s: &str) -> Result<String, String> {
    if s == "*" {
        return Ok(s.to_owned());
    }
    proto::name::validate(s).map_err(|e| format!("{e} (use * for everyone)"))?;
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("chatcli").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_are_everyone_and_the_local_server() {
        // SAFETY of the assertion: the environment of `cargo test` does not set CHATD_SERVER.
        let cli = parse(&["--user", "bot"]).unwrap();
        assert_eq!(cli.to, "*");
        assert_eq!(cli.user.as_deref(), Some("bot"));
        assert!(!cli.scripted_by_flags());
        if std::env::var_os("CHATD_SERVER").is_none() {
            assert_eq!(cli.server, DEFAULT_SERVER);
        }
    }

    #[test]
    fn a_bad_recipient_is_a_usage_error() {
        let err = parse(&["--to", "a b"]).unwrap_err();
        assert_eq!(err.exit_code(), i32::from(EXIT_USAGE));
        assert!(err.to_string().contains("use * for everyone"), "{err}");
    }

    #[test]
    fn a_server_without_a_port_is_a_usage_error_with_an_example() {
        for ok in [
            "127.0.0.1:7878",
            "localhost:1",
            "chat.example.com:65535",
            "[::1]:7878",
        ] {
            assert_eq!(parse_server(ok).as_deref(), Ok(ok));
        }
        let err = |s: &str| parse_server(s).unwrap_err();
        assert_eq!(
            err("localhost"),
            "no port; give HOST:PORT, e.g. --server localhost:7878"
        );
        assert_eq!(
            err(""),
            "no port; give HOST:PORT, e.g. --server localhost:7878"
        );
        assert_eq!(
            err(":7878"),
            "no host; give HOST:PORT, e.g. --server localhost:7878"
        );
        assert_eq!(
            err("::1"),
            "an IPv6 address goes in brackets, with the port after them, e.g. --server [::1]:7878"
        );
        assert_eq!(
            err("host:http"),
            "\"http\" is not a port (1 to 65535); give HOST:PORT, e.g. --server host:7878"
        );
        assert!(err("host:0").starts_with("\"0\" is not a port"));
        let e = parse(&["--server", "localhost"]).unwrap_err();
        assert_eq!(e.exit_code(), i32::from(EXIT_USAGE));
        assert!(e.to_string().contains("--server <HOST:PORT>"), "{e}");
    }

    #[test]
    fn json_and_count_need_listen() {
        assert!(parse(&["--json"]).is_err());
        assert!(parse(&["--count", "3"]).is_err());
        let cli = parse(&["--listen", "--json", "--count", "3"]).unwrap();
        assert!(cli.scripted_by_flags());
        assert_eq!(cli.count, Some(3));
    }

    #[test]
    fn message_and_listen_exclude_each_other() {
        assert!(parse(&["-m", "hi", "--listen"]).is_err());
        assert!(parse(&["-m", "hi"]).unwrap().scripted_by_flags());
    }
}
