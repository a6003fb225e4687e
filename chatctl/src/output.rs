//! Text output: the users table, the stats block, the status line and one line per watched
//! event. Plain `format!` with computed widths; scripts use `--json` instead of parsing these.
//!
//! Every string that came from the daemon goes through `proto::text` before it is printed
//! (as [`shown`], or [`json_line`] for `--json`): a name, a peer or an error code holding an
//! escape sequence or a bidirectional control is shown as `\u{1b}`, `\u{202e}`, never obeyed
//! by the terminal.

use proto::admin::{Event, EventKind, Session, Stats, Status};
use proto::text::{Mode, escape};
use std::borrow::Cow;

/// A string from the daemon, safe to print on one line.
fn shown(s: &str) -> Cow<'_, str> {
    escape(s, Mode::Line)
}

/// JSON text for `--json`, with its line end: the characters a terminal would obey are
/// written as JSON escapes, which leaves every value as it was.
pub fn json_line(text: &str) -> String {
    format!("{}\n", escape(text.trim_end(), Mode::Json))
}

/// `1h02m`, `3m04s`, `5s`: the two largest units, enough to read at a glance.
pub fn duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

/// A table with a header; columns in `right` are right-aligned (numbers).
fn table(header: &[&str], rows: &[Vec<String>], right: &[bool]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let pad = widths[i].saturating_sub(cell.chars().count());
            if right[i] {
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The `chatctl users` table; header only when nobody is logged in.
pub fn users(sessions: &[Session]) -> String {
    let rows: Vec<Vec<String>> = sessions
        .iter()
        .map(|s| {
            vec![
                shown(&s.user).into_owned(),
                shown(&s.peer).into_owned(),
                duration(s.connected_ms),
                duration(s.idle_ms),
                s.sent.to_string(),
                s.received.to_string(),
                format!("{}/{}", s.queue, s.queue_max),
            ]
        })
        .collect();
    table(
        &[
            "USER",
            "PEER",
            "CONNECTED",
            "IDLE",
            "SENT",
            "RECEIVED",
            "QUEUE",
        ],
        &rows,
        &[false, false, true, true, true, true, true],
    )
}

pub fn stats(s: &Stats) -> String {
    let errors: Vec<String> = s
        .errors
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(code, n)| format!("{} {n}", shown(code)))
        .collect();
    let errors = if errors.is_empty() {
        "none".to_owned()
    } else {
        errors.join(", ")
    };
    format!(
        "server       {} (pid {})\n\
         uptime       {}\n\
         connections  {} open, {} accepted, {} refused (server full)\n\
         users        {} logged in\n\
         messages     {} relayed, {} delivered\n\
         bytes        {} in, {} out\n\
         errors       {errors}\n",
        shown(&s.server),
        s.pid,
        duration(s.uptime_ms),
        s.connections,
        s.accepted,
        s.refused,
        s.users,
        s.messages,
        s.delivered,
        s.bytes_in,
        s.bytes_out,
    )
}

pub fn status(s: &Status, path: &str) -> String {
    format!(
        "{} is up: pid {}, uptime {}, {} users, {} connections ({path})\n",
        shown(&s.server),
        s.pid,
        duration(s.uptime_ms),
        s.users,
        s.connections
    )
}

/// One `watch` line: `TIME EVENT key=value...`, greppable like logfmt.
pub fn event(e: &Event) -> String {
    let ts = utc(e.ts);
    let rest = match &e.kind {
        EventKind::Connect { peer } => format!("connect peer={}", shown(peer)),
        EventKind::Disconnect { peer, reason } => {
            format!(
                "disconnect peer={} reason={reason} (never logged in)",
                shown(peer)
            )
        }
        EventKind::Login { user, peer } => {
            format!("login   user={} peer={}", shown(user), shown(peer))
        }
        EventKind::Logout { user, peer, reason } => {
            format!(
                "logout  user={} peer={} reason={reason}",
                shown(user),
                shown(peer)
            )
        }
        EventKind::Kick { user, reason, by } => match reason {
            Some(r) => format!(
                "kick    user={} by=uid:{by} reason={}",
                shown(user),
                shown(&format!("{r:?}"))
            ),
            None => format!("kick    user={} by=uid:{by}", shown(user)),
        },
        EventKind::Notice { delivered, by } => {
            format!("notice  delivered={delivered} by=uid:{by}")
        }
        EventKind::Error { code, user, peer } => format!(
            "error   code={code} user={} peer={}",
            shown(user.as_deref().unwrap_or("-")),
            shown(peer)
        ),
    };
    format!("{ts} {rest}\n")
}

/// An `event` line of a kind this chatctl does not know (from a newer chatd), shown like the
/// others: `TIME KIND key=value...`, or the line itself with `--json`. `None` if `line` is
/// not an event at all.
pub fn unknown_event(line: &str, json: bool) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let obj = v.as_object()?;
    if obj.get("type")?.as_str()? != "event" {
        return None;
    }
    let kind = obj.get("event")?.as_str()?;
    if json {
        return Some(json_line(line));
    }
    let ts = obj
        .get("ts")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    let mut text = format!("{} {}", utc(ts), shown(kind));
    for (key, value) in obj {
        if matches!(key.as_str(), "type" | "ts" | "event") {
            continue;
        }
        let key = shown(key);
        match value.as_str() {
            Some(s) if !s.is_empty() && !s.contains([' ', '"', '=']) => {
                text.push_str(&format!(" {key}={}", shown(s)));
            }
            _ => text.push_str(&format!(" {key}={}", shown(&value.to_string()))),
        }
    }
    text.push('\n');
    Some(text)
}

pub fn lagged(missed: u64) -> String {
    format!("-- missed {missed} events: this watcher fell behind --\n")
}

/// Milliseconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC).
pub fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86400, secs % 86400);
    // Howard Hinnant's civil_from_days: days since 1970-01-01 to a proleptic Gregorian date.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::{ErrorCode, LeaveReason};

    #[test]
    fn durations_show_two_units() {
        assert_eq!(duration(999), "0s");
        assert_eq!(duration(59_000), "59s");
        assert_eq!(duration(62_000), "1m02s");
        assert_eq!(duration(3_723_000), "1h02m");
        assert_eq!(duration(90_000_000), "1d01h");
    }

    #[test]
    fn utc_matches_known_dates() {
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(utc(1_763_856_000_123), "2025-11-23T00:00:00.123Z");
    }

    #[test]
    fn an_empty_table_is_its_header() {
        assert_eq!(
            users(&[]),
            "USER  PEER  CONNECTED  IDLE  SENT  RECEIVED  QUEUE\n"
        );
    }

    #[test]
    fn table_columns_line_up() {
        let s = Session {
            user: "alice".into(),
            peer: "127.0.0.1:40000".into(),
            connected_at: 0,
            connected_ms: 62_000,
            idle_ms: 3_000,
            sent: 12,
            received: 7,
            queue: 0,
            queue_max: 1024,
            queue_bytes: 0,
            queue_bytes_max: 1 << 20,
        };
        assert_eq!(
            users(&[s]),
            "USER   PEER             CONNECTED  IDLE  SENT  RECEIVED   QUEUE\n\
             alice  127.0.0.1:40000      1m02s    3s    12         7  0/1024\n"
        );
    }

    #[test]
    fn an_event_kind_from_a_newer_chatd_is_shown_not_fatal() {
        let line = r#"{"type":"event","ts":1795500690918,"event":"room_open","room":"ops","by":0,"topic":"on call"}"#;
        assert_eq!(
            unknown_event(line, false).unwrap(),
            "2026-11-24T06:11:30.918Z room_open by=0 room=ops topic=\"on call\"\n"
        );
        assert_eq!(unknown_event(line, true).unwrap(), format!("{line}\n"));
        assert_eq!(unknown_event(r#"{"type":"status"}"#, false), None);
        assert_eq!(unknown_event("not json", false), None);
    }

    #[test]
    fn the_daemons_strings_are_shown_not_obeyed() {
        let s = Session {
            user: "eve\u{202e}".into(),
            peer: "\u{1b}[2J".into(),
            connected_at: 0,
            connected_ms: 0,
            idle_ms: 0,
            sent: 0,
            received: 0,
            queue: 0,
            queue_max: 1,
            queue_bytes: 0,
            queue_bytes_max: 1,
        };
        let table = users(&[s]);
        assert!(table.contains("eve\\u{202e}  \\u{1b}[2J"), "{table}");
        let e = Event {
            ts: 0,
            kind: EventKind::Kick {
                user: "a\u{9b}".into(),
                reason: Some("\u{2067}x\ny".into()),
                by: 0,
            },
        };
        assert!(
            event(&e).ends_with("kick    user=a\\u{9b} by=uid:0 reason=\"\\u{2067}x\\ny\"\n"),
            "{}",
            event(&e)
        );
        let line = "{\"type\":\"event\",\"ts\":0,\"event\":\"x\u{202e}\",\"k\\u001b\":\"\u{7f}\",\"n\":\"a b\u{2066}\"}";
        let text = unknown_event(line, false).unwrap();
        assert!(text.is_ascii(), "{text}");
        assert_eq!(
            text,
            "1970-01-01T00:00:00.000Z x\\u{202e} k\\u{1b}=\\u{7f} n=\"a b\\u{2066}\"\n"
        );
        assert!(unknown_event(line, true).unwrap().is_ascii());
        assert_eq!(json_line("{\"a\":\"\u{202e}\"}\n"), "{\"a\":\"\\u202e\"}\n");
    }

    #[test]
    fn events_are_one_greppable_line() {
        let e = Event {
            ts: 0,
            kind: EventKind::Logout {
                user: "bob".into(),
                peer: "127.0.0.1:9".into(),
                reason: LeaveReason::SlowConsumer,
            },
        };
        assert_eq!(
            event(&e),
            "1970-01-01T00:00:00.000Z logout  user=bob peer=127.0.0.1:9 reason=slow_consumer\n"
        );
        let e = Event {
            ts: 0,
            kind: EventKind::Error {
                code: ErrorCode::RateLimited,
                user: None,
                peer: "p".into(),
            },
        };
        assert!(event(&e).ends_with("error   code=rate_limited user=- peer=p\n"));
    }
}
