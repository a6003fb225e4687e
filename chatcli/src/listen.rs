//! The listener: prints what arrives so shell scripts can wait for and react to messages.
//!
//! Plain output is one line per message, `from→to: body`, where `to` is `*` for a broadcast;
//! a notice from the administrator prints as `#notice→*: body` (`#` is never in a name). New
//! lines and other control characters in a body or a name are escaped (`\n`, `\u{1b}`,
//! `\u{202e}`) by `proto::text`, so one message is always one line and none can command the
//! terminal; `--json` prints every event as chatd sent it instead, with only the characters a
//! terminal would obey rewritten as JSON escapes (the same JSON value). Each line is flushed at
//! once so a pipe sees it without delay. A reader that goes away (`| head -1`) ends the
//! listener quietly.

use crate::conn::Conn;
use crate::fatal::Fatal;
use proto::message::ServerMessage;
use proto::text::{Mode, escape};
use std::io::{self, Write as _};
use tokio::signal::unix::{SignalKind, signal};

pub struct Options {
    pub json: bool,
    /// Stop after this many messages.
    pub count: Option<u64>,
}

/// Why the listener stopped, when it stopped as asked.
#[derive(Debug, PartialEq, Eq)]
pub enum Stop {
    Count,
    Signal,
    /// Our stdout was closed: nobody is listening to the listener.
    ReaderGone,
}

/// SIGINT and SIGTERM, watched from before login so none is missed.
pub struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn new() -> std::io::Result<Signals> {
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
        })
    }
}

pub async fn run(conn: &mut Conn, opts: &Options, signals: Signals) -> anyhow::Result<Stop> {
    let Signals { mut int, mut term } = signals;
    let mut seen = 0u64;
    if opts.count == Some(0) {
        return Ok(Stop::Count);
    }
    loop {
        let got = tokio::select! {
            _ = int.recv() => return Ok(Stop::Signal),
            _ = term.recv() => return Ok(Stop::Signal),
            got = conn.recv() => got,
        };
        let r = match got {
            Ok(Some(r)) => r,
            Ok(None) => return Err(conn.lost(None).into()),
            Err(e) => return Err(conn.lost(Some(&e)).into()),
        };
        let Some(msg) = r.msg else { continue };
        if msg.id().is_some() {
            continue;
        }
        let line = if opts.json {
            Some(escape(&r.raw, Mode::Json).into_owned())
        } else {
            plain(&msg)
        };
        if let Some(line) = line
            && let Err(e) = emit(&line)
        {
            if e.kind() == io::ErrorKind::BrokenPipe {
                return Ok(Stop::ReaderGone);
            }
            return Err(anyhow::Error::new(e).context("cannot write to stdout"));
        }
        match msg {
            ServerMessage::Msg(_) => {
                seen += 1;
                if Some(seen) == opts.count {
                    return Ok(Stop::Count);
                }
            }
            ServerMessage::Bye { reason, message } => {
                return Err(Fatal::bye(reason, message.as_deref()).into());
            }
            _ => {}
        }
    }
}

fn emit(line: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(line.as_bytes())?;
    out.write_all(b"\n")?;
    out.flush()
}

/// The plain form of an event, or `None` for events plain output leaves out.
fn plain(msg: &ServerMessage) -> Option<String> {
    match msg {
        ServerMessage::Msg(m) => Some(format!(
            "{}→{}: {}",
            escape(&m.from, Mode::Line),
            escape(&m.to, Mode::Line),
            escape(&m.body, Mode::Line)
        )),
        ServerMessage::Notice { body, .. } => {
            Some(format!("#notice→*: {}", escape(body, Mode::Line)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::message::MsgEvent;

    #[test]
    fn messages_print_as_from_to_body() {
        let m = ServerMessage::Msg(MsgEvent {
            from: "alice".into(),
            to: "*".into(),
            body: "two\nlines \u{1b}[31m".into(),
            ts: 0,
        });
        assert_eq!(plain(&m).unwrap(), "alice→*: two\\nlines \\u{1b}[31m");
        let n = ServerMessage::Notice {
            body: "reboot".into(),
            ts: 0,
        };
        assert_eq!(plain(&n).unwrap(), "#notice→*: reboot");
        let b = ServerMessage::Msg(MsgEvent {
            from: "eve\u{202e}".into(),
            to: "*".into(),
            body: "a\u{2067}b\u{9b}".into(),
            ts: 0,
        });
        assert_eq!(plain(&b).unwrap(), "eve\\u{202e}→*: a\\u{2067}b\\u{9b}");
        assert_eq!(plain(&ServerMessage::Join { user: "x".into() }), None);
    }
}
