//! The scripted sender against chatd served in-process: delivery, order, every exit code and every
//! error a script can meet, each with its exact words.

mod common;

use common::{cmd, rt, run};
use e2e::{Client, Server};
use serde_json::json;

fn msg(from: &str, to: &str, body: &str) -> serde_json::Value {
    json!({"type":"msg","from":from,"to":to,"body":body})
}

#[test]
fn each_line_is_one_message_in_order_then_a_clean_logout() {
    let d = Server::start(&["--rate", "0"]);
    let rt = rt();
    let mut alice = rt.block_on(Client::login(d.addr(), "alice"));
    let mut c = cmd(&d.addr().to_string());
    c.args(["--user", "bot", "--to", "alice"]);
    let out = run(c, b"first\nsecond line\n\n   \nthird \"quoted\"");
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stderr, "");
    rt.block_on(async {
        alice.expect(json!({"type":"join","user":"bot"})).await;
        for body in ["first", "second line", "third \"quoted\""] {
            alice.expect(msg("bot", "alice", body)).await;
        }
        alice
            .expect(json!({"type":"leave","user":"bot","reason":"logout"}))
            .await;
    });
}

#[test]
fn everyone_is_the_default_target() {
    let d = Server::start(&["--rate", "0"]);
    let rt = rt();
    let mut alice = rt.block_on(Client::login(d.addr(), "alice"));
    let mut c = cmd(&d.addr().to_string());
    c.env("CHAT_USER", "bot");
    let out = run(c, b"hello all\n");
    assert_eq!(out.code, 0, "{out:?}");
    rt.block_on(async {
        alice.expect(json!({"type":"join","user":"bot"})).await;
        alice.expect(msg("bot", "*", "hello all")).await;
    });
}

#[test]
fn dash_m_sends_one_message_without_reading_stdin() {
    let d = Server::start(&["--rate", "0"]);
    let rt = rt();
    let mut alice = rt.block_on(Client::login(d.addr(), "alice"));
    let mut c = cmd(&d.addr().to_string());
    c.args(["--user", "cron", "--to", "alice", "-m", "backup done"]);
    // stdin stays open and unread: -m must not wait for it
    let out = e2e::collect(
        c.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    assert_eq!(out.code, 0, "{out:?}");
    rt.block_on(async {
        alice.expect(json!({"type":"join","user":"cron"})).await;
        alice.expect(msg("cron", "alice", "backup done")).await;
    });
}

#[test]
fn an_absent_recipient_fails_every_line_with_its_number_and_code() {
    let d = Server::start(&["--rate", "0"]);
    let mut c = cmd(&d.addr().to_string());
    c.args(["--user", "bot", "--to", "carol"]);
    let out = run(c, b"one\n\ntwo\n");
    assert_eq!(out.code, 1, "{out:?}");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{out:?}");
    assert!(
        lines[0].starts_with("chatcli: line 1: unknown_user: "),
        "{out:?}"
    );
    assert!(
        lines[1].starts_with("chatcli: line 3: unknown_user: "),
        "{out:?}"
    );
}

#[test]
fn reports_come_in_line_order_whoever_refused_the_line() {
    // Lines 1, 4 and 6 go to chatd, which refuses them a round trip later (nobody named
    // carol); 2, 3, 5 and 7 chatcli refuses at once, before any answer can be back.
    let d = Server::start(&["--rate", "0"]);
    let mut c = cmd(&d.addr().to_string());
    c.args(["--user", "bot", "--to", "carol", "--max-line-bytes", "60"]);
    let mut input = b"one\n".to_vec();
    input.extend_from_slice(&[b'x'; 61]);
    input.extend_from_slice(b"\n\xff\nfour\n\x01\x01\x01\nsix\n\xfe\n");
    let out = run(c, &input);
    assert_eq!(out.code, 1, "{out:?}");
    let lines: Vec<u64> = out
        .stderr
        .lines()
        .map(|l| {
            let n = l
                .strip_prefix("chatcli: line ")
                .unwrap_or_else(|| panic!("{l}"));
            n[..n.find(':').unwrap()].parse().unwrap()
        })
        .collect();
    assert_eq!(lines, [1, 2, 3, 4, 5, 6, 7], "{}", out.stderr);
    assert!(
        out.stderr.starts_with("chatcli: line 1: unknown_user: "),
        "{}",
        out.stderr
    );
}

#[test]
fn require_delivered_fails_a_message_nobody_got() {
    let d = Server::start(&["--rate", "0"]);
    let addr = d.addr().to_string();
    let mut c = cmd(&addr);
    c.args(["--user", "lonely"]);
    let out = run(c, b"anyone?\n");
    assert_eq!(out.code, 0, "delivered 0 is fine by default: {out:?}");

    let mut c = cmd(&addr);
    c.args(["--user", "lonely", "--require-delivered"]);
    let out = run(c, b"anyone?\n");
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(
        out.stderr,
        "chatcli: line 1: undelivered: nobody received it (--require-delivered)\n"
    );
}

#[test]
fn a_taken_name_exits_4_and_says_so() {
    let d = Server::start(&["--rate", "0"]);
    let rt = rt();
    let _bot = rt.block_on(Client::login(d.addr(), "bot"));
    let mut c = cmd(&d.addr().to_string());
    c.args(["--user", "BOT", "-m", "hi"]);
    let out = run(c, b"");
    assert_eq!(out.code, 4, "{out:?}");
    assert!(
        out.stderr.starts_with("chatcli: cannot log in as BOT: "),
        "{out:?}"
    );
    assert!(
        out.stderr.ends_with(" — choose another name with --user\n"),
        "{out:?}"
    );
}

#[test]
fn a_password_file_logs_in_where_the_server_wants_one() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "s3cret\n").unwrap();
    let d = Server::start(&["--rate", "0", "--password-file", pw.to_str().unwrap()]);
    let server = d.addr().to_string();

    let mut c = cmd(&server);
    c.args(["--user", "bot", "-m", "hi"])
        .arg("--password-file")
        .arg(&pw);
    let out = run(c, b"");
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{out:?}");

    let mut c = cmd(&server);
    c.args(["--user", "bot", "-m", "hi"]);
    let out = run(c, b"");
    assert_eq!(out.code, 4, "{out:?}");
    assert_eq!(
        out.stderr,
        "chatcli: cannot log in as bot: this server requires a password — give the password with --password-file\n"
    );

    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "guess\n").unwrap();
    let mut c = cmd(&server);
    c.args(["--user", "bot", "-m", "hi"])
        .arg("--password-file")
        .arg(&wrong);
    let out = run(c, b"");
    assert_eq!(out.code, 4, "{out:?}");
    assert_eq!(
        out.stderr,
        "chatcli: cannot log in as bot: wrong password — give the password with --password-file\n"
    );

    let mut c = cmd(&server);
    c.args([
        "--user",
        "bot",
        "-m",
        "hi",
        "--password-file",
        "/nonexistent/pw",
    ]);
    let out = run(c, b"");
    assert_eq!(out.code, 2, "{out:?}");
    assert_eq!(
        out.stderr,
        "chatcli: cannot read the password file /nonexistent/pw: No such file or directory (os error 2)\n"
    );
}

#[test]
fn an_invalid_name_exits_4() {
    let d = Server::start(&["--rate", "0"]);
    let mut c = cmd(&d.addr().to_string());
    c.args(["--user", "no spaces", "-m", "hi"]);
    let out = run(c, b"");
    assert_eq!(out.code, 4, "{out:?}");
    assert!(
        out.stderr
            .starts_with("chatcli: cannot log in as \"no spaces\": "),
        "{out:?}"
    );
}

#[test]
fn an_unreachable_server_exits_3_with_the_fix() {
    // A port that was free a moment ago and has no listener now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut c = cmd(&addr);
    c.args(["--user", "bot", "-m", "hi"]);
    let out = run(c, b"");
    assert_eq!(out.code, 3, "{out:?}");
    assert_eq!(
        out.stderr,
        format!(
            "chatcli: cannot reach chatd at {addr}: connection refused — is chatd running? \
             (set --server or CHATD_SERVER)\n"
        )
    );
}

#[test]
fn a_server_that_accepts_but_never_answers_the_login_exits_3() {
    // Accepts (the kernel's backlog does) and never reads or writes: not chatd.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let mut c = cmd(&addr);
    c.args(["--user", "bot", "--timeout", "1", "-m", "hi"]);
    let out = run(c, b"");
    assert_eq!(out.code, 3, "{out:?}");
    assert_eq!(
        out.stderr,
        format!(
            "chatcli: chatd at {addr} accepted the connection but did not answer the login \
             within 1s — is it chatd, and is it overloaded?\n"
        )
    );
}

#[test]
fn no_user_name_in_a_pipe_is_a_usage_error() {
    let mut c = cmd("127.0.0.1:9");
    c.arg("-m").arg("hi");
    let out = run(c, b"");
    assert_eq!(out.code, 2, "{out:?}");
    assert_eq!(
        out.stderr,
        "chatcli: no user name: pass --user NAME or set CHAT_USER (only a terminal session asks \
         for one)\n"
    );
}

#[test]
fn an_invalid_recipient_is_a_usage_error_before_connecting() {
    let mut c = cmd("127.0.0.1:9");
    c.args(["--user", "bot", "--to", "a b"]);
    let out = run(c, b"x\n");
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("use * for everyone"), "{out:?}");
}

#[test]
fn over_long_and_binary_lines_are_reported_and_the_rest_sent() {
    let d = Server::start(&["--rate", "0"]);
    let rt = rt();
    let mut alice = rt.block_on(Client::login(d.addr(), "alice"));
    let mut c = cmd(&d.addr().to_string());
    // A limit of 60 takes `ok 1` (a request of 46 bytes) but not three bytes \x01, 3 bytes
    // in but 18 once escaped (a request of 62).
    c.args(["--user", "bot", "--to", "alice", "--max-line-bytes", "60"]);
    let mut input = b"ok 1\n".to_vec();
    input.extend_from_slice(&[b'x'; 61]);
    input.extend_from_slice(b"\n\xff\xfe\n\x01\x01\x01\nok 2\n");
    let out = run(c, &input);
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(
        out.stderr,
        "chatcli: line 2: too_large: longer than 60 bytes, not sent (see --max-line-bytes)\n\
         chatcli: line 3: bad_request: not valid UTF-8, not sent\n\
         chatcli: line 4: too_large: 62 bytes once encoded as a request, over the limit of 60 \
         (see --max-line-bytes); not sent\n"
    );
    rt.block_on(async {
        alice.expect(json!({"type":"join","user":"bot"})).await;
        alice.expect(msg("bot", "alice", "ok 1")).await;
        alice.expect(msg("bot", "alice", "ok 2")).await;
    });
}

#[test]
fn the_limit_applies_to_the_request_as_encoded_so_chatd_never_refuses_one() {
    let d = Server::start(&["--rate", "0"]);
    let rt = rt();
    let mut alice = rt.block_on(Client::login(d.addr(), "alice"));
    let mut c = cmd(&d.addr().to_string());
    c.args(["--user", "bot", "--to", "alice"]);
    // 20 000 bytes in, within the default 65 536; 120 000 once each is escaped as \u0001.
    let mut input = b"before\n".to_vec();
    input.extend_from_slice(&[1u8; 20_000]);
    input.extend_from_slice(b"\nafter\n");
    let out = run(c, &input);
    assert_eq!(out.code, 1, "{out:?}");
    let len = r#"{"type":"msg","to":"alice","body":"","id":3}"#.len() + 6 * 20_000;
    assert_eq!(
        out.stderr,
        format!(
            "chatcli: line 2: too_large: {len} bytes once encoded as a request, over the limit \
             of 65536 (see --max-line-bytes); not sent\n"
        )
    );
    rt.block_on(async {
        alice.expect(json!({"type":"join","user":"bot"})).await;
        alice.expect(msg("bot", "alice", "before")).await;
        alice.expect(msg("bot", "alice", "after")).await;
    });
    // Refused by chatcli, not by chatd: nothing over the limit was sent.
    let stats = d.chatctl(&["stats", "--json"]);
    let stats: serde_json::Value = serde_json::from_str(&stats.stdout).unwrap();
    assert_eq!(stats["errors"]["too_large"], 0, "{stats}");
}

#[test]
fn rate_limited_lines_wait_and_arrive_in_order() {
    // 5 in a burst, then 100 a second: 60 lines must meet rate_limited many times.
    let d = Server::start(&["--rate", "100", "--rate-burst", "5"]);
    let rt = rt();
    let mut alice = rt.block_on(Client::login(d.addr(), "alice"));
    let mut c = cmd(&d.addr().to_string());
    c.args(["--user", "bot", "--to", "alice"]);
    let input: String = (1..=60).map(|i| format!("line {i}\n")).collect();
    let started = std::time::Instant::now();
    let out = run(c, input.as_bytes());
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stderr, "", "no failure and no overtaking");
    // 55 lines beyond the burst at 100/s cannot take less than about half a second: proof that
    // the limit was met and waited out.
    assert!(started.elapsed() >= std::time::Duration::from_millis(400));
    rt.block_on(async {
        alice.expect(json!({"type":"join","user":"bot"})).await;
        for i in 1..=60 {
            alice
                .expect(msg("bot", "alice", &format!("line {i}")))
                .await;
        }
    });
}
