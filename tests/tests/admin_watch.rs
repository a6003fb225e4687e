//! `chatctl watch`: connections, logins, kicks, logouts with their reason, clients that
//! leave before logging in, and error replies by code (rate limiting included) appear as they
//! happen, as text and as JSON lines; the stream ends with exit 3 when chatd stops. chatd is
//! served in-process; chatctl is the real binary.

use e2e::{Client, Server};
use serde_json::{Value, json};

/// Checks a text event line: an RFC 3339 UTC time, then `rest`.
fn assert_event(line: &str, rest: &str) {
    let (ts, tail) = line.split_once(' ').expect("TIME EVENT...");
    assert!(
        ts.len() == 24 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
        "{line}"
    );
    assert_eq!(tail, rest, "in {line:?}");
}

#[tokio::test]
async fn watch_shows_logins_errors_kicks_and_logouts_as_lines() {
    let d = Server::start(&[]);
    let w = d.watch(&[]);
    let mut alice = Client::login(d.addr(), "alice").await;
    let mut bob = Client::login(d.addr(), "bob").await;
    alice.recv().await; // join bob
    alice.send(r#"{"type":"nope","id":1}"#).await;
    assert_eq!(alice.recv().await["code"], "bad_request");
    let run = d.chatctl(&["kick", "Bob", "--reason", "bye now"]);
    assert_eq!(run.code, 0);
    bob.expect_closed().await;

    let line = w.next_line();
    let peer = line.rsplit("peer=").next().unwrap().to_owned();
    assert!(peer.starts_with("127.0.0.1:"), "{line}");
    assert_event(&line, &format!("connect peer={peer}"));
    assert_event(&w.next_line(), &format!("login   user=alice peer={peer}"));
    let line = w.next_line();
    let bob_peer = line.rsplit("peer=").next().unwrap().to_owned();
    assert_event(&line, &format!("connect peer={bob_peer}"));
    assert_event(&w.next_line(), &format!("login   user=bob peer={bob_peer}"));
    assert_event(
        &w.next_line(),
        &format!("error   code=bad_request user=alice peer={peer}"),
    );
    assert_event(
        &w.next_line(),
        r#"kick    user=bob by=uid:0 reason="bye now""#,
    );
    assert_event(
        &w.next_line(),
        &format!("logout  user=bob peer={bob_peer} reason=kicked"),
    );
}

#[tokio::test]
async fn watch_json_lines_parse_back_and_show_rate_limiting() {
    let d = Server::start(&["--rate", "1", "--rate-burst", "1"]);
    let w = d.watch(&["--json"]);
    let mut alice = Client::login(d.addr(), "alice").await;
    for id in 1..=2 {
        alice
            .send(&format!(
                r#"{{"type":"msg","to":"*","body":"secret","id":{id}}}"#
            ))
            .await;
    }
    assert_eq!(alice.recv().await["type"], "ok");
    assert_eq!(alice.recv().await["code"], "rate_limited");
    alice.send(r#"{"type":"logout"}"#).await;
    alice.expect_closed().await;

    let mut events = Vec::new();
    for _ in 0..4 {
        let line = w.next_line();
        assert!(!line.contains("secret"), "a message body leaked: {line}");
        let mut v: Value = serde_json::from_str(&line).unwrap();
        let obj = v.as_object_mut().unwrap();
        assert!(obj.remove("ts").unwrap().as_u64().unwrap() > 1_700_000_000_000);
        assert!(
            obj.remove("peer")
                .unwrap()
                .as_str()
                .unwrap()
                .starts_with("127.0.0.1:")
        );
        events.push(v);
    }
    assert_eq!(
        events,
        [
            json!({"type":"event","event":"connect"}),
            json!({"type":"event","event":"login","user":"alice"}),
            json!({"type":"event","event":"error","code":"rate_limited","user":"alice"}),
            json!({"type":"event","event":"logout","user":"alice","reason":"logout"}),
        ]
    );
}

#[tokio::test]
async fn clients_that_never_log_in_show_as_connect_then_disconnect_with_the_reason() {
    let d = Server::start(&["--login-timeout", "1s"]);
    let w = d.watch(&[]);
    // One closes at once; the other says nothing until the login timeout.
    for reason in ["disconnect", "timeout"] {
        let mut client = Client::connect(d.addr()).await;
        let line = w.next_line();
        let peer = line.rsplit("peer=").next().unwrap().to_owned();
        assert_event(&line, &format!("connect peer={peer}"));
        if reason == "disconnect" {
            client.shutdown_write().await;
        } else {
            client.expect_closed().await;
        }
        assert_event(
            &w.next_line(),
            &format!("disconnect peer={peer} reason={reason} (never logged in)"),
        );
    }
}

#[tokio::test]
async fn watch_ends_with_exit_3_when_chatd_stops() {
    let mut d = Server::start(&[]);
    let w = d.watch(&[]);
    let _alice = Client::login(d.addr(), "alice").await;
    assert!(w.next_line().contains("connect peer="));
    assert!(w.next_line().contains("login   user=alice"));
    // The stop SIGTERM starts in the binary; it fails the test unless chatd is done in time.
    d.stop();
    let run = w.finish();
    assert_eq!(run.code, 3);
    assert_eq!(
        run.stderr,
        format!(
            "chatctl: cannot reach chatd at {}: chatd closed the connection (stopped?)\n",
            d.admin_socket().display()
        )
    );
}

#[tokio::test]
async fn a_slow_consumer_shows_a_full_queue_in_users_then_its_cut_off_in_watch() {
    let d = Server::start(&[
        "--queue-len",
        "4",
        "--rate",
        "0",
        "--slow-consumer-grace",
        "3s",
    ]);
    let w = d.watch(&["--json"]);
    let mut alice = Client::login(d.addr(), "alice").await;
    // bob never reads: once the kernel's buffers and his session's output buffer are full,
    // his queue fills and alice is told `recipient_busy`.
    let _bob = Client::login(d.addr(), "bob").await;
    alice.recv().await; // join bob
    let body = "x".repeat(60_000);
    let mut sent = 0;
    // A full queue can drain again while the kernel grows bob's socket buffers, so keep
    // filling until `users` catches it full.
    let users = loop {
        let reply = loop {
            alice
                .send(&format!(r#"{{"type":"msg","to":"bob","body":"{body}"}}"#))
                .await;
            sent += 1;
            assert!(sent < 10_000, "bob's queue never filled");
            let reply = alice.recv().await;
            if reply["type"] == "error" {
                break reply;
            }
        };
        assert_eq!(reply["code"], "recipient_busy");
        let run = d.chatctl(&["users", "--json"]);
        let users: Value = serde_json::from_str(&run.stdout).unwrap();
        if users[1]["queue"] == 4 {
            break users;
        }
    };
    assert_eq!(users[1]["user"], "bob");
    assert_eq!(users[1]["queue_max"], 4);
    let table = d.chatctl(&["users"]).stdout;
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("bob ") && l.ends_with(" 4/4")),
        "{table}"
    );

    let logout = loop {
        let v: Value = serde_json::from_str(&w.next_line()).unwrap();
        if v["event"] == "logout" {
            break v;
        }
    };
    assert_eq!(logout["user"], "bob");
    assert_eq!(logout["reason"], "slow_consumer");
}
