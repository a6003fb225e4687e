//! `--listen` against chatd served in-process, and the ends a script must be able to tell
//! apart: stopping as asked (exit 0) versus the server going away (exit 5).

mod common;

use common::{cmd, rt};
use e2e::{Client, Running, Server};
use serde_json::json;

fn listener(addr: &str, extra: &[&str]) -> Running {
    let mut c = cmd(addr);
    c.args(["--user", "bot", "--listen"]).args(extra);
    Running::start(c, "chatcli")
}

#[test]
fn messages_print_one_per_line_as_they_arrive_until_count() {
    let d = Server::start(&["--rate", "0"]);
    let rt = rt();
    let mut alice = rt.block_on(Client::login(d.addr(), "alice"));
    let bot = listener(&d.addr().to_string(), &["--count", "2"]);
    rt.block_on(async {
        alice.expect(json!({"type":"join","user":"bot"})).await;
        alice
            .send(r#"{"type":"msg","to":"*","body":"hello\nall"}"#)
            .await;
    });
    // Read before the second message exists: the first line was flushed on its own.
    assert_eq!(bot.next_line(), "alice→*: hello\\nall");
    rt.block_on(alice.send(r#"{"type":"msg","to":"BOT","body":"psst"}"#));
    assert_eq!(bot.next_line(), "alice→bot: psst");
    let out = bot.finish();
    assert_eq!(out.code, 0, "{out:?}");
    rt.block_on(async {
        alice.expect(json!({"type":"ok","delivered":1})).await;
        alice.expect(json!({"type":"ok","delivered":1})).await;
        alice
            .expect(json!({"type":"leave","user":"bot","reason":"logout"}))
            .await;
    });
}

#[test]
fn json_prints_the_raw_events() {
    let d = Server::start(&["--rate", "0"]);
    let rt = rt();
    let mut carol = rt.block_on(Client::login(d.addr(), "carol"));
    let bot = listener(&d.addr().to_string(), &["--json", "--count", "1"]);
    rt.block_on(carol.expect(json!({"type":"join","user":"bot"})));
    let _alice = rt.block_on(Client::login(d.addr(), "alice"));
    let join: serde_json::Value = serde_json::from_str(&bot.next_line()).unwrap();
    assert_eq!(join, json!({"type":"join","user":"alice"}));
    rt.block_on(carol.send(r#"{"type":"msg","to":"bot","body":"x"}"#));
    let mut m: serde_json::Value = serde_json::from_str(&bot.next_line()).unwrap();
    assert!(m["ts"].as_u64().is_some(), "{m}");
    m.as_object_mut().unwrap().remove("ts");
    assert_eq!(
        m,
        json!({"type":"msg","from":"carol","to":"bot","body":"x"})
    );
    assert_eq!(bot.finish().code, 0);
}

#[test]
fn controls_a_terminal_would_obey_are_escaped_in_both_forms() {
    let d = Server::start(&["--rate", "0"]);
    let rt = rt();
    let mut alice = rt.block_on(Client::login(d.addr(), "alice"));
    let plain = listener(&d.addr().to_string(), &["--count", "1"]);
    rt.block_on(alice.expect(json!({"type":"join","user":"bot"})));
    // U+202E reverses what follows; U+009B is an 8-bit CSI; DEL; and ESC [2J.
    let body = r#""see \u202etxt.exe \u009b31m\u007f \u001b[2J""#;
    rt.block_on(alice.send(&format!(r#"{{"type":"msg","to":"bot","body":{body}}}"#)));
    assert_eq!(
        plain.next_line(),
        "alice→bot: see \\u{202e}txt.exe \\u{9b}31m\\u{7f} \\u{1b}[2J"
    );
    assert_eq!(plain.finish().code, 0);
    rt.block_on(async {
        alice.expect(json!({"type":"ok","delivered":1})).await;
        alice
            .expect(json!({"type":"leave","user":"bot","reason":"logout"}))
            .await;
    });

    let raw = listener(&d.addr().to_string(), &["--json", "--count", "1"]);
    rt.block_on(alice.expect(json!({"type":"join","user":"bot"})));
    // Sent raw this time (JSON allows these unescaped): the listener writes them escaped.
    let body = "\"see \u{202e}txt.exe \u{9b}31m\u{7f}\"";
    rt.block_on(alice.send(&format!(r#"{{"type":"msg","to":"bot","body":{body}}}"#)));
    let line = raw.next_line();
    assert!(line.is_ascii(), "{line:?}");
    assert!(
        line.contains(r#""body":"see \u202etxt.exe \u009b31m\u007f""#),
        "{line}"
    );
    let m: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(m["body"], "see \u{202e}txt.exe \u{9b}31m\u{7f}");
    assert_eq!(raw.finish().code, 0);
}

#[test]
fn sigterm_stops_the_listener_cleanly() {
    let d = Server::start(&["--rate", "0"]);
    let rt = rt();
    let mut alice = rt.block_on(Client::login(d.addr(), "alice"));
    let bot = listener(&d.addr().to_string(), &[]);
    rt.block_on(alice.expect(json!({"type":"join","user":"bot"})));
    bot.signal("TERM");
    let out = bot.finish();
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stderr, "");
    rt.block_on(alice.expect(json!({"type":"leave","user":"bot","reason":"logout"})));
}

#[test]
fn a_server_shutdown_ends_the_listener_with_5() {
    let d = Server::start(&["--rate", "0"]);
    let rt = rt();
    let mut alice = rt.block_on(Client::login(d.addr(), "alice"));
    let bot = listener(&d.addr().to_string(), &[]);
    rt.block_on(alice.expect(json!({"type":"join","user":"bot"})));
    d.begin_stop();
    let out = bot.finish();
    assert_eq!(out.code, 5, "{out:?}");
    assert_eq!(out.stderr, "chatcli: chatd is shutting down\n");
}

#[test]
fn a_kick_ends_the_listener_with_5_and_the_administrators_reason() {
    let d = Server::start(&["--rate", "0"]);
    let rt = rt();
    let mut alice = rt.block_on(Client::login(d.addr(), "alice"));
    let bot = listener(&d.addr().to_string(), &[]);
    rt.block_on(alice.expect(json!({"type":"join","user":"bot"})));
    let kick = d.chatctl(&["kick", "BOT", "--reason", "too chatty"]);
    assert_eq!(kick.code, 0, "{kick:?}");
    let out = bot.finish();
    assert_eq!(out.code, 5, "{out:?}");
    assert_eq!(
        out.stderr,
        "chatcli: kicked by the administrator: too chatty\n"
    );
    rt.block_on(alice.expect(json!({"type":"leave","user":"bot","reason":"kicked"})));
}

#[test]
fn a_dropped_connection_ends_a_sender_with_5_and_says_what_was_sent() {
    let mut d = Server::start(&["--rate", "0"]);
    let rt = rt();
    let mut alice = rt.block_on(Client::login(d.addr(), "alice"));
    // A sender whose stdin stays open: it is logged in and waiting for lines.
    let mut c = cmd(&d.addr().to_string());
    c.args(["--user", "bot", "--to", "alice"]);
    let mut sender = Running::start(c, "chatcli");
    let mut stdin = sender.take_stdin();
    use std::io::Write as _;
    stdin.write_all(b"one\n").unwrap();
    rt.block_on(async {
        alice.expect(json!({"type":"join","user":"bot"})).await;
        alice
            .expect(json!({"type":"msg","from":"bot","to":"alice","body":"one"}))
            .await;
    });
    d.kill();
    let out = sender.finish();
    assert_eq!(out.code, 5, "{out:?}");
    assert!(
        out.stderr.starts_with(&format!(
            "chatcli: lost the connection to chatd at {}: ",
            d.addr()
        )),
        "{out:?}"
    );
    assert!(out.stderr.ends_with("; 1 message accepted\n"), "{out:?}");
    drop(stdin);
}
