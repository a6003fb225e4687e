//! `chatctl users`, `kick`, `notice` and `stats` against chatd served in-process, with live
//! TCP clients, text and `--json` output alike.

use e2e::{Client, Server};
use serde_json::{Value, json};

fn json_of(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout:?}"))
}

#[tokio::test]
async fn users_lists_every_session_in_a_table_and_in_json() {
    let d = Server::start(&[]);
    let mut alice = Client::login(d.addr(), "alice").await;
    let mut bob = Client::login(d.addr(), "Bob").await;
    let _carol = Client::login(d.addr(), "carol").await;
    alice
        .send(r#"{"type":"msg","to":"bob","body":"hi","id":1}"#)
        .await;
    // alice first sees two joins, then the reply: everything before it has been counted.
    alice.recv().await;
    alice.recv().await;
    assert_eq!(alice.recv().await["delivered"], 1);
    assert_eq!(bob.recv().await["type"], "join");
    assert_eq!(bob.recv().await["type"], "msg");

    let run = d.chatctl(&["users"]);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""));
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", run.stdout);
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        [
            "USER",
            "PEER",
            "CONNECTED",
            "IDLE",
            "SENT",
            "RECEIVED",
            "QUEUE"
        ]
    );
    let names: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(names, ["Bob", "alice", "carol"], "sorted like `users`");
    let alice_row: Vec<&str> = lines[2].split_whitespace().collect();
    assert!(alice_row[1].starts_with("127.0.0.1:"), "{}", lines[2]);
    assert_eq!(
        alice_row[4..],
        ["1", "2", "0/1024"],
        "sent, received, queue"
    );

    let run = d.chatctl(&["users", "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let users = json_of(&run.stdout);
    let users = users.as_array().expect("a JSON array");
    assert_eq!(users.len(), 3);
    let bob_json = &users[0];
    assert_eq!(bob_json["user"], "Bob");
    assert!(bob_json["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert_eq!(bob_json["sent"], 0);
    assert_eq!(bob_json["received"], 2, "carol's join and alice's message");
    assert_eq!(bob_json["queue"], 0);
    assert_eq!(bob_json["queue_max"], 1024);
    for field in ["connected_at", "connected_ms", "idle_ms"] {
        assert!(bob_json[field].is_u64(), "{field} in {bob_json}");
    }
    assert!(bob_json["connected_at"].as_u64().unwrap() > 1_700_000_000_000);
}

#[test]
fn an_empty_server_prints_a_header_and_an_empty_array() {
    let d = Server::start(&[]);
    let run = d.chatctl(&["users"]);
    assert_eq!(run.code, 0);
    assert_eq!(
        run.stdout,
        "USER  PEER  CONNECTED  IDLE  SENT  RECEIVED  QUEUE\n"
    );
    let run = d.chatctl(&["users", "--json"]);
    assert_eq!((run.code, run.stdout.as_str()), (0, "[]\n"));
}

#[tokio::test]
async fn kick_with_a_reason_ignores_case_ends_the_session_and_frees_the_name() {
    let d = Server::start(&[]);
    let mut alice = Client::login(d.addr(), "alice").await;
    let mut bob = Client::login(d.addr(), "bob").await;
    alice.expect(json!({"type":"join","user":"bob"})).await;

    let run = d.chatctl(&["kick", "BOB", "--reason", "flooding the room"]);
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (0, "kicked bob\n", "")
    );
    bob.expect(json!({"type":"bye","reason":"kicked","message":"flooding the room"}))
        .await;
    assert_eq!(bob.expect_closed().await, Vec::<Value>::new());
    alice
        .expect(json!({"type":"leave","user":"bob","reason":"kicked"}))
        .await;
    alice.expect_nothing_pending().await;

    let _again = Client::login(d.addr(), "Bob").await;
    alice.expect(json!({"type":"join","user":"Bob"})).await;
}

#[tokio::test]
async fn kick_without_a_reason_sends_a_bare_bye() {
    let d = Server::start(&[]);
    let mut bob = Client::login(d.addr(), "bob").await;
    let run = d.chatctl(&["kick", "bob"]);
    assert_eq!((run.code, run.stdout.as_str()), (0, "kicked bob\n"));
    bob.expect(json!({"type":"bye","reason":"kicked"})).await;
    bob.expect_closed().await;
    assert_eq!(d.chatctl(&["users", "--json"]).stdout, "[]\n");
}

#[tokio::test]
async fn kicking_a_name_nobody_uses_is_exit_1_on_stderr() {
    let d = Server::start(&[]);
    let mut alice = Client::login(d.addr(), "alice").await;
    for name in ["carol", "not a name"] {
        let run = d.chatctl(&["kick", name]);
        assert_eq!(
            (run.code, run.stdout.as_str(), run.stderr.as_str()),
            (
                1,
                "",
                &*format!("chatctl: nobody named {name} is logged in\n")
            )
        );
    }
    alice.expect_nothing_pending().await;
}

#[tokio::test]
async fn notice_reaches_every_session_and_is_counted() {
    let d = Server::start(&[]);
    let mut clients = Vec::new();
    for name in ["a", "b", "c"] {
        clients.push(Client::login(d.addr(), name).await);
    }
    let run = d.chatctl(&["notice", "restart", "at", "noon"]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "notice sent to 3 sessions\n")
    );
    for c in &mut clients {
        loop {
            let v = c.recv_no_ts().await;
            if v["type"] != "join" {
                assert_eq!(v, json!({"type":"notice","body":"restart at noon"}));
                break;
            }
        }
    }
    drop(clients);
    let d2 = Server::start(&[]);
    let run = d2.chatctl(&["notice", "anyone?"]);
    assert_eq!(run.stdout, "notice sent to 0 sessions\n");
}

#[tokio::test]
async fn stats_count_connections_messages_and_errors_by_code() {
    let d = Server::start(&[]);
    let mut alice = Client::login(d.addr(), "alice").await;
    let _bob = Client::login(d.addr(), "bob").await;
    alice.recv().await; // join bob
    alice
        .send(r#"{"type":"msg","to":"*","body":"hi","id":1}"#)
        .await;
    assert_eq!(alice.recv().await["delivered"], 1);
    alice.send("not json").await;
    assert_eq!(alice.recv().await["code"], "bad_request");

    let run = d.chatctl(&["stats", "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let s = json_of(&run.stdout);
    assert_eq!(s["server"], format!("chatd/{}", env!("CARGO_PKG_VERSION")));
    assert_eq!(s["pid"], d.pid());
    assert_eq!(s["connections"], 2);
    assert_eq!(s["users"], 2);
    assert_eq!(s["accepted"], 2);
    assert_eq!(s["refused"], 0);
    assert_eq!(s["messages"], 1);
    assert_eq!(s["delivered"], 1);
    assert!(s["bytes_in"].as_u64().unwrap() > 0);
    assert!(s["bytes_out"].as_u64().unwrap() > 0);
    assert!(s["uptime_ms"].is_u64());
    assert_eq!(s["errors"]["bad_request"], 1);
    assert_eq!(s["errors"]["rate_limited"], 0);
    assert_eq!(s["errors"].as_object().unwrap().len(), 12, "every code");

    let run = d.chatctl(&["stats"]);
    assert_eq!(run.code, 0);
    let text = run.stdout;
    assert!(
        text.starts_with(&format!(
            "server       chatd/{} (pid {})\n",
            env!("CARGO_PKG_VERSION"),
            d.pid()
        )),
        "{text}"
    );
    for line in [
        "connections  2 open, 2 accepted, 0 refused (server full)\n",
        "users        2 logged in\n",
        "messages     1 relayed, 1 delivered\n",
        "errors       bad_request 1\n",
    ] {
        assert!(text.contains(line), "{line:?} missing in:\n{text}");
    }
}
