//! How incoming messages and events look on the interactive screen.
//!
//! Every line starts with the local time (`[14:03]`). A broadcast reads `[14:03] bob: hi`; a
//! private message reads `[14:03] bob → you: hi` and is coloured differently, so the two
//! differ even without colour. Colour is used only on a terminal, never when `NO_COLOR` is set
//! (and not empty) or `TERM` is `dumb`. Everything the server sent (bodies, names, its error
//! messages) is shown with control characters escaped by `proto::text` (bidirectional
//! controls included): a message must not be able to move the cursor, recolour the screen
//! or reorder what is shown.

use proto::LeaveReason;
use proto::message::MsgEvent;
use proto::text::{Mode, escape};
use std::io::IsTerminal as _;

use anstyle::{AnsiColor, Style};

const NAME: Style = Style::new().bold();
const PRIVATE: Style = Style::new()
    .bold()
    .fg_color(Some(anstyle::Color::Ansi(AnsiColor::Magenta)));
const EVENT: Style = Style::new().fg_color(Some(anstyle::Color::Ansi(AnsiColor::BrightBlack)));
const NOTICE: Style = Style::new()
    .bold()
    .fg_color(Some(anstyle::Color::Ansi(AnsiColor::Yellow)));
const ERROR: Style = Style::new().fg_color(Some(anstyle::Color::Ansi(AnsiColor::Red)));

pub struct Render {
    colour: bool,
}

impl Render {
    pub fn new(colour: bool) -> Render {
        Render { colour }
    }

    /// Colour when stdout is a terminal and the user has not said otherwise.
    pub fn for_stdout() -> Render {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
        Render::new(std::io::stdout().is_terminal() && !no_color && !dumb)
    }

    fn paint(&self, style: Style, text: &str) -> String {
        if self.colour {
            format!("{style}{text}{style:#}")
        } else {
            text.to_owned()
        }
    }

    pub fn msg(&self, m: &MsgEvent) -> String {
        let time = clock(m.ts);
        let body = escape(&m.body, Mode::Lines);
        let from = escape(&m.from, Mode::Line);
        if m.is_broadcast() {
            format!("[{time}] {}: {body}", self.paint(NAME, &from))
        } else {
            let head = format!("{from} → you:");
            format!("[{time}] {} {body}", self.paint(PRIVATE, &head))
        }
    }

    pub fn join(&self, user: &str) -> String {
        self.event(&format!("{} joined", escape(user, Mode::Line)))
    }

    pub fn leave(&self, user: &str, reason: LeaveReason) -> String {
        let why = match reason {
            LeaveReason::Logout => "left",
            LeaveReason::Disconnect => "left (disconnected)",
            LeaveReason::Kicked => "was kicked",
            LeaveReason::Timeout => "left (timed out)",
            LeaveReason::SlowConsumer => "was dropped (not reading)",
            _ => "left",
        };
        self.event(&format!("{} {why}", escape(user, Mode::Line)))
    }

    pub fn notice(&self, body: &str, ts: u64) -> String {
        let head = self.paint(NOTICE, "notice from the administrator:");
        format!("[{}] {head} {}", clock(ts), escape(body, Mode::Lines))
    }

    /// A line of our own: help, the user list, confirmations. Whatever in `text` came from
    /// the server is escaped here, so callers need not.
    pub fn info(&self, text: &str) -> String {
        self.event(&escape(text, Mode::Lines))
    }

    /// Something the user asked for did not happen (escaped like [`Render::info`]).
    pub fn error(&self, text: &str) -> String {
        let text = escape(text, Mode::Lines);
        format!("[{}] {}", clock(now_ms()), self.paint(ERROR, &text))
    }

    fn event(&self, text: &str) -> String {
        let line = format!("[{}] -- {text}", clock(now_ms()));
        self.paint(EVENT, &line)
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `HH:MM` in the local time zone.
pub fn clock(ts_ms: u64) -> String {
    let secs = (ts_ms / 1000) as libc::time_t;
    // SAFETY: localtime_r only writes the `tm` we own; a zeroed `tm` is a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&secs, &mut tm).is_null() };
    if !ok {
        return "--:--".to_owned();
    }
    format!("{:02}:{:02}", tm.tm_hour, tm.tm_min)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(to: &str, body: &str) -> MsgEvent {
        MsgEvent {
            from: "bob".into(),
            to: to.into(),
            body: body.into(),
            ts: 1_763_856_000_123,
        }
    }

    #[test]
    fn private_and_broadcast_differ_without_colour() {
        let r = Render::new(false);
        let b = r.msg(&msg("*", "hi"));
        let p = r.msg(&msg("alice", "hi"));
        assert!(b.ends_with("] bob: hi"), "{b}");
        assert!(p.ends_with("] bob → you: hi"), "{p}");
        assert!(b.starts_with('[') && b.as_bytes()[6] == b']', "{b}");
    }

    #[test]
    fn colour_only_when_asked() {
        assert!(!Render::new(false).msg(&msg("a", "x")).contains('\u{1b}'));
        assert!(Render::new(true).msg(&msg("a", "x")).contains("\u{1b}["));
    }

    #[test]
    fn escape_sequences_in_bodies_are_shown_not_obeyed() {
        let r = Render::new(false);
        let line = r.msg(&msg("*", "\u{1b}[2Jgotcha\u{7}"));
        assert!(!line.contains('\u{1b}'));
        assert!(line.contains("\\u{1b}[2Jgotcha\\u{7}"), "{line}");
    }

    #[test]
    fn bidi_controls_from_the_server_are_shown_not_obeyed() {
        let r = Render::new(false);
        let line = r.msg(&msg("*", "see \u{202e}txt.exe"));
        assert!(line.ends_with("bob: see \\u{202e}txt.exe"), "{line}");
        let m = MsgEvent {
            from: "m\u{2066}allory".into(),
            ..msg("alice", "x")
        };
        assert!(r.msg(&m).contains("m\\u{2066}allory → you: x"));
        assert!(r.join("e\u{1b}[2Jve").ends_with("e\\u{1b}[2Jve joined"));
        assert!(r.notice("a\u{200f}b", 0).ends_with("a\\u{200f}b"));
        assert!(r.error("no\u{9b}").ends_with("no\\u{9b}"));
    }

    #[test]
    fn clock_is_hours_and_minutes() {
        let c = clock(1_763_856_000_123);
        assert_eq!(c.len(), 5);
        assert_eq!(&c[2..3], ":");
    }
}
