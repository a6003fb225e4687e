//! Relaying at scale and across listeners, passwords, and what the log says (and never says),
//! against chatd served in-process.

use e2e::{Client, Server};
use serde_json::json;
use std::collections::HashMap;

const CLIENTS: usize = 300;
const PRIVATE_EACH: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_clients_chat_at_once_and_every_message_arrives_once_in_order() {
    // All from one address: past the default login burst and connections per address.
    let d = Server::start(&["--login-rate", "0", "--max-per-ip", "0"]);
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        clients.push(Client::login(d.addr(), &format!("u{i:03}")).await);
    }
    let mut tasks = Vec::new();
    for (i, mut c) in clients.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let next = format!("u{:03}", (i + 1) % CLIENTS);
            let mut batch = String::new();
            for k in 0..PRIVATE_EACH {
                batch.push_str(&format!(
                    "{{\"type\":\"msg\",\"to\":\"{next}\",\"body\":\"{k}\",\"id\":{k}}}\n"
                ));
            }
            batch.push_str(&format!(
                "{{\"type\":\"msg\",\"to\":\"*\",\"body\":\"from u{i:03}\",\"id\":\"b\"}}\n"
            ));
            c.send_raw(batch.as_bytes()).await;
            let prev = format!("u{:03}", (i + CLIENTS - 1) % CLIENTS);
            let (mut private, mut broadcasts, mut acks) = (Vec::new(), HashMap::new(), 0);
            while private.len() < PRIVATE_EACH
                || broadcasts.len() < CLIENTS - 1
                || acks < PRIVATE_EACH + 1
            {
                let v = c.recv().await;
                match v["type"].as_str().unwrap() {
                    "ok" => {
                        acks += 1;
                        let want = if v["id"] == "b" { CLIENTS - 1 } else { 1 };
                        assert_eq!(v["delivered"], want, "{v}");
                    }
                    "msg" if v["to"] == "*" => {
                        let from = v["from"].as_str().unwrap().to_owned();
                        assert_eq!(v["body"], format!("from {from}"));
                        assert!(broadcasts.insert(from, ()).is_none(), "duplicate broadcast");
                    }
                    "msg" => {
                        assert_eq!(v["from"], prev.as_str());
                        private.push(v["body"].as_str().unwrap().parse::<usize>().unwrap());
                    }
                    "join" => {}
                    other => panic!("unexpected {other}: {v}"),
                }
            }
            assert_eq!(
                private,
                (0..PRIVATE_EACH).collect::<Vec<_>>(),
                "order from {prev}"
            );
            c
        }));
    }
    let mut done = Vec::new();
    for t in tasks {
        done.push(t.await.unwrap());
    }
    // everyone is still here, so nothing else may be pending for anyone
    for c in &mut done {
        c.expect_nothing_pending().await;
    }
}

#[tokio::test]
async fn ipv4_and_ipv6_listeners_serve_one_set_of_users() {
    let d = Server::start(&["--listen", "127.0.0.1:0", "--listen", "[::1]:0"]);
    assert!(d.addrs()[0].is_ipv4() && d.addrs()[1].is_ipv6());
    let mut four = Client::login(d.addrs()[0], "four").await;
    let mut six = Client::login(d.addrs()[1], "six").await;
    four.expect(json!({"type":"join","user":"six"})).await;
    six.send(r#"{"type":"msg","to":"four","body":"over v6","id":1}"#)
        .await;
    six.expect(json!({"type":"ok","id":1,"delivered":1})).await;
    four.expect(json!({"type":"msg","from":"six","to":"four","body":"over v6"}))
        .await;
}

#[tokio::test]
async fn a_server_with_a_password_refuses_missing_and_wrong_ones() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "s3cret\n").unwrap();
    let d = Server::start(&["--password-file", pw.to_str().unwrap()]);
    let mut c = Client::connect(d.addr()).await;
    c.send(r#"{"type":"login","from":"a","id":1}"#).await;
    c.expect(json!({"type":"error","id":1,"code":"auth_failed","message":"this server requires a password"})).await;
    c.send(r#"{"type":"login","from":"a","password":"guess","id":2}"#)
        .await;
    c.expect(json!({"type":"error","id":2,"code":"auth_failed","message":"wrong password"}))
        .await;
    c.send(r#"{"type":"login","from":"a","password":"s3cret","id":3}"#)
        .await;
    assert_eq!(c.recv().await["user"], "a");
}

#[tokio::test]
async fn the_log_has_a_line_per_event_with_peer_and_user_and_never_a_body() {
    let d = Server::start(&[]);
    let mut a = Client::login(d.addr(), "alice").await;
    let mut b = Client::login(d.addr(), "bob").await;
    a.recv().await;
    a.send(r#"{"type":"msg","to":"bob","body":"the-secret-body","id":1}"#)
        .await;
    a.recv().await;
    b.recv().await;
    a.send(r#"{"type":"msg","to":"nobody","body":"another-secret","id":2}"#)
        .await;
    a.recv().await;
    a.send(r#"{"type":"logout"}"#).await;
    a.expect_closed().await;
    drop(a);
    d.wait_log("user=alice reason=logout");
    drop(b);
    d.wait_log("user=bob reason=disconnect");
    let log = d.log().join("\n");
    for needle in [
        "connected peer=127.0.0.1:",
        "logged in peer=127.0.0.1:",
        "user=alice",
        "error reply peer=127.0.0.1:",
        "code=unknown_user",
        "logged out peer=127.0.0.1:",
        "user=alice reason=logout",
        "disconnected peer=127.0.0.1:",
    ] {
        assert!(log.contains(needle), "log lacks {needle:?}:\n{log}");
    }
    assert!(
        !log.contains("secret"),
        "a message body reached the log:\n{log}"
    );
}
