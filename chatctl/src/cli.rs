//! chatctl's command line: one subcommand per admin request, each with examples in its help.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Exit codes, shown in `--help` and documented in `docs/ADMIN-PROTOCOL.md`.
pub const EXIT_OK: u8 = 0;
/// The daemon answered and said no (unknown user, not allowed, bad request).
pub const EXIT_REFUSED: u8 = 1;
/// Bad command line (clap's own code for usage errors).
pub const EXIT_USAGE: u8 = 2;
/// The daemon could not be reached or did not answer.
pub const EXIT_UNREACHABLE: u8 = 3;

const AFTER_HELP: &str = "\
Examples:
  chatctl users                         who is logged in, as a table
  chatctl users --json | jq -r '.[].user'
  chatctl kick bob --reason 'flooding the room'
  chatctl notice 'restarting at 12:00 UTC'
  chatctl watch                         follow connections, logins and errors (Ctrl-C stops)
  chatctl stats --json
  chatctl status && echo up             a health check
  chatctl --socket /tmp/chatd/admin.sock users

The socket is --socket, else $CHATD_ADMIN_SOCKET, else /run/chatd/admin.sock when running as
root, when /run/chatd is writable or when that socket exists, else
$XDG_RUNTIME_DIR/chatd/admin.sock: the rule chatd itself follows.

chatctl does not trust what answers on the socket: the whole exchange, from connecting to the
end of the answer, must be over within 5 s (for watch, up to its `watching` line; the events
then come as they happen); no line from chatd may be longer than 16 MiB (watch skips such a
line and goes on); and chatd's strings are printed with control characters escaped (\u{1b},
\u{202e}; with --json as JSON escapes), so none can command the terminal.

Exit status:
  0  done
  1  chatd answered no (unknown user, not allowed to administer, bad request)
  2  bad command line, or no socket path could be determined
  3  cannot reach chatd (no such file, permission denied, connection refused, no answer
     within 5 s, an answer that is not chatd's or a line over 16 MiB, chatd closed)";

#[derive(Debug, Parser)]
#[command(
    name = "chatctl",
    version,
    about = "Administer a running chatd: list and kick users, send notices, watch, stats",
    after_help = AFTER_HELP
)]
pub struct Cli {
    /// chatd's admin socket [default: see below]
    #[arg(
        long,
        visible_alias = "admin-socket",
        value_name = "PATH",
        env = proto::admin::SOCKET_ENV,
        global = true
    )]
    pub socket: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List logged-in sessions: name, address, connected and idle time, messages, queue
    #[command(after_help = "\
Examples:
  chatctl users
  chatctl users --json | jq '.[] | select(.queue > 100) | .user'

QUEUE is the session's outgoing queue (lines waiting / bound): a slow consumer fills it
before it is cut off.")]
    Users(Json),

    /// End a user's session: it gets `bye` with reason `kicked`, everyone else `leave`
    #[command(after_help = "\
Examples:
  chatctl kick bob
  chatctl kick Bob --reason 'please stop flooding'

The name matches ignoring ASCII case. Kicking a name nobody uses exits with 1.")]
    Kick {
        /// The user to remove (any ASCII case)
        name: String,
        /// Text sent to the user in its `bye` message
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },

    /// Send every logged-in session a `notice` event; prints how many received it
    #[command(after_help = "\
Examples:
  chatctl notice 'restarting at 12:00 UTC'
  chatctl notice server restarts in 5 minutes    (the words are joined by spaces)")]
    Notice {
        /// The notice text
        #[arg(required = true, value_name = "TEXT")]
        text: Vec<String>,
    },

    /// Follow what happens on the server, one line per event, until interrupted
    #[command(after_help = "\
Examples:
  chatctl watch
  chatctl watch --json | jq -c 'select(.event == \"logout\")'

Events: connect; disconnect for a client that never logged in (reason: disconnect, timeout);
login, logout (with reason: logout, disconnect, kicked, timeout, slow_consumer), kick,
notice, and error (every error reply by code: rate_limited, server_full, ...). Message
bodies are never shown.")]
    Watch(Json),

    /// Server counters: uptime, version, connections, users, messages, bytes, errors
    #[command(after_help = "\
Examples:
  chatctl stats
  chatctl stats --json | jq .errors.rate_limited")]
    Stats(Json),

    /// Exit 0 with one line if chatd answers, non-zero otherwise (for health checks)
    #[command(after_help = "\
Examples:
  chatctl status
  chatctl status >/dev/null 2>&1 || systemctl restart chatd")]
    Status(Json),
}

#[derive(Debug, Args)]
pub struct Json {
    /// Print JSON instead of text (stable field names; see docs/ADMIN-PROTOCOL.md)
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("chatctl").chain(args.iter().copied()))
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn socket_is_global_and_has_an_alias() {
        let c = parse(&["users", "--socket", "/x"]).unwrap();
        assert_eq!(c.socket.unwrap(), PathBuf::from("/x"));
        let c = parse(&["--admin-socket", "/y", "stats", "--json"]).unwrap();
        assert_eq!(c.socket.unwrap(), PathBuf::from("/y"));
        assert!(matches!(c.command, Command::Stats(Json { json: true })));
    }

    #[test]
    fn kick_and_notice_take_their_arguments() {
        let c = parse(&["kick", "Bob", "--reason", "flood"]).unwrap();
        assert!(
            matches!(c.command, Command::Kick { ref name, reason: Some(ref r) }
            if name == "Bob" && r == "flood")
        );
        let c = parse(&["notice", "a", "b"]).unwrap();
        assert!(matches!(c.command, Command::Notice { ref text } if text.join(" ") == "a b"));
        assert!(parse(&["notice"]).is_err());
        assert!(parse(&["kick"]).is_err());
    }
}
