//! Text from the other end, made safe to show on a terminal.
//!
//! A message body, a name in a server's list, a daemon's error message: any of them may hold
//! characters a terminal obeys instead of showing. `ESC [ 2 J` clears the screen, a carriage
//! return lets a line overwrite the one before it, and the bidirectional controls reorder what
//! follows them, so that `U+202E` makes `exe.txt` of `txt.exe` — in a chat, an administrator's
//! tool or a log viewer, that is a way to lie to the reader. [`escape`] shows every such
//! character as an escape instead; the clients (`chatcli`, `chatctl`) use it for everything
//! they print that came off the network.
//!
//! The characters: C0 (`U+0000`–`U+001F`), DEL (`U+007F`), C1 (`U+0080`–`U+009F`, which
//! some terminals take as 8-bit escape sequences), and the bidirectional formatting controls
//! `U+202A`–`U+202E`, `U+2066`–`U+2069`, `U+200E`, `U+200F` and `U+061C`.

use std::borrow::Cow;
use std::fmt::Write as _;

/// How [`escape`] shows what it escapes, and which white space it lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The text stays on one line: new line and carriage return read `\n` and `\r`, the
    /// others `\u{1b}`; a tab is kept. For a line per message, a table cell, `key=value`.
    Line,
    /// As [`Mode::Line`], but new lines are kept: for text shown as a block of lines.
    Lines,
    /// The text is JSON: each character is written as the JSON escape `\u001b`, which leaves
    /// the value unchanged for any JSON reader. JSON's white space (tab, new line, carriage
    /// return) is kept, since JSON text holds it only between tokens.
    Json,
}

/// True for a character a terminal may act on instead of showing: see the module docs.
pub fn is_control(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{61c}'
        )
}

/// `s` with every character of [`is_control`] escaped as `mode` says. Nothing else
/// changes (a backslash already in `s` stays as it is), and text with nothing to escape is
/// returned as it is, without a copy.
pub fn escape(s: &str, mode: Mode) -> Cow<'_, str> {
    let kept = |c: char| match mode {
        Mode::Line => c == '\t',
        Mode::Lines => matches!(c, '\t' | '\n'),
        Mode::Json => matches!(c, '\t' | '\n' | '\r'),
    };
    let Some(first) = s.find(|c: char| is_control(c) && !kept(c)) else {
        return Cow::Borrowed(s);
    };
    let mut out = String::with_capacity(s.len() + 16);
    out.push_str(&s[..first]);
    for c in s[first..].chars() {
        if !is_control(c) || kept(c) {
            out.push(c);
            continue;
        }
        match (mode, c) {
            (Mode::Json, c) => {
                // Every character escaped here is in the Basic Multilingual Plane.
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            (_, '\n') => out.push_str("\\n"),
            (_, '\r') => out.push_str("\\r"),
            (_, c) => out.extend(c.escape_unicode()),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_returned_without_a_copy() {
        for s in ["", "hello", "héllo wörld ✓", "tab\there"] {
            assert!(matches!(escape(s, Mode::Line), Cow::Borrowed(_)), "{s:?}");
        }
        assert!(matches!(escape("a\nb", Mode::Lines), Cow::Borrowed(_)));
    }

    #[test]
    fn terminal_commands_are_shown_not_obeyed() {
        assert_eq!(
            escape("\u{1b}[2Jgone\u{7}", Mode::Line),
            "\\u{1b}[2Jgone\\u{7}"
        );
        assert_eq!(escape("del\u{7f}", Mode::Line), "del\\u{7f}");
        // C1: U+009B is an 8-bit CSI to some terminals.
        assert_eq!(escape("\u{9b}31m", Mode::Line), "\\u{9b}31m");
        assert_eq!(escape("nul\u{0}", Mode::Line), "nul\\u{0}");
    }

    #[test]
    fn bidirectional_controls_are_escaped_like_the_others() {
        assert_eq!(
            escape("evil\u{202e}txt.exe", Mode::Line),
            "evil\\u{202e}txt.exe"
        );
        for c in [
            '\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}', '\u{202e}', '\u{2066}', '\u{2067}',
            '\u{2068}', '\u{2069}', '\u{200e}', '\u{200f}', '\u{61c}',
        ] {
            assert!(is_control(c), "U+{:04X}", u32::from(c));
            assert_eq!(
                escape(&c.to_string(), Mode::Line),
                c.escape_unicode().to_string()
            );
        }
        // Their neighbours are ordinary text.
        for c in [
            '\u{2029}', '\u{202f}', '\u{2065}', '\u{206a}', '\u{200d}', '\u{61b}', 'é',
        ] {
            assert!(!is_control(c), "U+{:04X}", u32::from(c));
        }
    }

    #[test]
    fn line_mode_keeps_one_line_and_lines_mode_keeps_new_lines() {
        let s = "one\ntwo\r\tthree";
        assert_eq!(escape(s, Mode::Line), "one\\ntwo\\r\tthree");
        assert_eq!(escape(s, Mode::Lines), "one\ntwo\\r\tthree");
    }

    #[test]
    fn json_mode_keeps_the_value() {
        let value = serde_json::json!({"body": "a\u{202e}b\u{9b}c\u{7f}", "k\u{2066}": 1});
        let text = serde_json::to_string(&value).unwrap();
        let shown = escape(&text, Mode::Json);
        assert!(shown.is_ascii(), "{shown}");
        assert_eq!(shown, r#"{"body":"a\u202eb\u009bc\u007f","k\u2066":1}"#);
        let back: serde_json::Value = serde_json::from_str(&shown).unwrap();
        assert_eq!(back, value);
        let pretty = "{\n\t\"a\": \"\\u001b\"\r\n}";
        assert_eq!(escape(pretty, Mode::Json), pretty);
    }

    #[test]
    fn backslashes_already_there_stay() {
        assert_eq!(escape("C:\\dir\u{1b}", Mode::Line), "C:\\dir\\u{1b}");
    }
}
