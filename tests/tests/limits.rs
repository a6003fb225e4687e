//! Every limit of chatd at, just under and just over its bound, against chatd served
//! in-process: line size, connections, rate, login timeout, queue length and the
//! slow-consumer cut-off. (What the output high-water mark does to chatd's memory is measured
//! on the process, in `service_memory.rs`.)

use e2e::{Client, Server};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpSocket;

/// A ping line of exactly `len` bytes (without its newline), padded with an ignored field.
fn ping_of_len(len: usize, id: u32) -> String {
    let base = format!(r#"{{"type":"ping","id":{id},"pad":""}}"#);
    assert!(len >= base.len());
    format!(
        r#"{{"type":"ping","id":{id},"pad":"{}"}}"#,
        "x".repeat(len - base.len())
    )
}

#[tokio::test]
async fn line_size_at_under_and_over_the_limit() {
    let d = Server::start(&["--max-line-bytes", "200"]);
    let mut c = Client::connect(d.addr()).await;
    for (len, id) in [(199, 1), (200, 2)] {
        let line = ping_of_len(len, id);
        assert_eq!(line.len(), len);
        c.send(&line).await;
        c.expect(json!({"type":"ok","id":id})).await;
    }
    // a CRLF terminator does not count towards the limit
    c.send_raw(format!("{}\r\n", ping_of_len(200, 3)).as_bytes())
        .await;
    c.expect(json!({"type":"ok","id":3})).await;
    c.send(&ping_of_len(201, 4)).await;
    c.expect(json!({"type":"error","code":"too_large","message":"line longer than 200 bytes; it was discarded"}))
        .await;
    // the connection stays usable, and the next line is served normally
    c.expect_nothing_pending().await;
}

#[tokio::test]
async fn a_huge_line_is_refused_once_and_the_rest_of_it_skipped() {
    let d = Server::start(&[]);
    let mut a = Client::login(d.addr(), "a").await;
    let mut b = Client::login(d.addr(), "b").await;
    a.recv().await; // join b
    // 4 MiB in one line that would otherwise be a valid message to b
    let body = "y".repeat(4 << 20);
    a.send(&format!(
        r#"{{"type":"msg","to":"b","body":"{body}","id":1}}"#
    ))
    .await;
    a.expect(json!({"type":"error","code":"too_large","message":"line longer than 65536 bytes; it was discarded"}))
        .await;
    a.send(r#"{"type":"msg","to":"b","body":"small","id":2}"#)
        .await;
    a.expect(json!({"type":"ok","id":2,"delivered":1})).await;
    b.expect(json!({"type":"msg","from":"a","to":"b","body":"small"}))
        .await;
}

async fn refused_as_full(addr: SocketAddr, max: usize) {
    let message = format!("server is full ({max} connections); try again later");
    refused(Client::connect(addr).await, &message).await;
}

/// What a connection refused at accept is told before chatd closes it: `server_full`
/// saying `message`, then `bye`.
async fn refused(mut c: Client, message: &str) {
    c.send(r#"{"type":"login","from":"late"}"#).await;
    assert_eq!(
        c.expect_closed().await,
        vec![
            json!({"type":"error","code":"server_full","message":message}),
            json!({"type":"bye","reason":"server_full"}),
        ]
    );
}

#[tokio::test]
async fn connections_at_and_over_the_limit_and_the_slot_is_freed() {
    let d = Server::start(&["--max-clients", "3"]);
    let mut clients = Vec::new();
    for i in 0..3 {
        // under and at the limit: served
        clients.push(Client::login(d.addr(), &format!("c{i}")).await);
    }
    refused_as_full(d.addr(), 3).await;
    let mut first = clients.remove(0);
    first.send(r#"{"type":"logout"}"#).await;
    first.expect_closed().await;
    drop(first);
    d.wait_log("user=c0 reason=logout");
    let mut again = Client::login(d.addr(), "c3").await;
    again.expect_nothing_pending().await;
    refused_as_full(d.addr(), 3).await;
}

#[tokio::test]
async fn rate_under_at_and_over_the_burst() {
    let d = Server::start(&["--rate", "1", "--rate-burst", "3"]);
    let mut a = Client::login(d.addr(), "fast").await;
    let mut b = Client::login(d.addr(), "b").await;
    a.recv().await;
    let mut batch = String::new();
    for i in 1..=4 {
        batch.push_str(&format!(
            "{{\"type\":\"msg\",\"to\":\"b\",\"body\":\"{i}\",\"id\":{i}}}\n"
        ));
    }
    a.send_raw(batch.as_bytes()).await;
    for i in 1..=3 {
        a.expect(json!({"type":"ok","id":i,"delivered":1})).await;
    }
    let over = a.recv().await;
    assert_eq!(
        (over["id"].as_i64(), over["code"].as_str()),
        (Some(4), Some("rate_limited"))
    );
    let message = over["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "over the limit of 1 messages per second; nothing was delivered, retry in "
        ),
        "{message}"
    );
    for i in 1..=3 {
        assert_eq!(b.recv().await["body"], i.to_string());
    }
    b.expect_nothing_pending().await;
}

#[tokio::test]
async fn login_timeout_closes_idle_connections_but_not_logged_in_ones() {
    let d = Server::start(&["--login-timeout", "300ms"]);
    let mut user = Client::login(d.addr(), "quick").await;
    let mut idle = Client::connect(d.addr()).await;
    // a ping is not a login: the clock keeps running
    idle.send(r#"{"type":"ping","id":1}"#).await;
    idle.expect(json!({"type":"ok","id":1})).await;
    assert_eq!(
        idle.expect_closed().await,
        vec![json!({"type":"bye","reason":"timeout"})]
    );
    // the timeout has passed for `quick` too, and it is still served
    user.expect_nothing_pending().await;
}

/// A client with a tiny receive buffer that does not read: the server's writes block soon.
async fn stalled_client(addr: SocketAddr, name: &str) -> Client {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let mut c = Client::from_stream(stream);
    c.send(&format!(r#"{{"type":"login","from":"{name}"}}"#))
        .await;
    assert_eq!(c.recv().await["type"], "ok");
    c
}

/// Sends `body` to `to` until a reply is not a plain success (an error, or a broadcast that
/// reached fewer than `want` queues); returns how many succeeded before, and that reply.
async fn send_until_refused(c: &mut Client, to: &str, body: &str, want: u64) -> (usize, Value) {
    for i in 0.. {
        c.send(&format!(
            r#"{{"type":"msg","to":"{to}","body":"{body}","id":{i}}}"#
        ))
        .await;
        let v = loop {
            let v = c.recv().await;
            if v.get("id").is_some() || v["type"] == "leave" {
                break v;
            }
        };
        if v["type"] != "ok" || v["delivered"] != want {
            return (i, v);
        }
        assert!(i < 100_000, "the queue never filled");
    }
    unreachable!()
}

#[tokio::test]
async fn a_full_queue_answers_recipient_busy_and_loses_nothing_accepted() {
    let d = Server::start(&[
        "--queue-len",
        "4",
        "--rate",
        "0",
        "--slow-consumer-grace",
        "1m",
    ]);
    let mut slow = stalled_client(d.addr(), "slow").await;
    let mut fast = Client::login(d.addr(), "fast").await;
    let body = "z".repeat(30_000);
    let (accepted, refusal) = send_until_refused(&mut fast, "slow", &body, 1).await;
    assert_eq!(refusal["code"], "recipient_busy");
    assert_eq!(
        refusal["message"],
        "slow is not reading fast enough; nothing was queued, try again later"
    );
    // the slow reader gets exactly what was accepted, in order, nothing refused
    assert_eq!(slow.recv().await, json!({"type":"join","user":"fast"}));
    for _ in 0..accepted {
        let v = slow.recv().await;
        assert_eq!(
            (v["type"].as_str(), v["body"].as_str().map(str::len)),
            (Some("msg"), Some(30_000))
        );
    }
    slow.expect_nothing_pending().await;
}

#[tokio::test]
async fn a_broadcast_skips_a_full_queue_and_does_not_count_it() {
    // A queue long enough that the reader, read by its own task, never fills it under load;
    // only the stalled client's does.
    let d = Server::start(&[
        "--queue-len",
        "64",
        "--rate",
        "0",
        "--slow-consumer-grace",
        "1m",
    ]);
    let _slow = stalled_client(d.addr(), "slow").await;
    let mut reader = Client::login(d.addr(), "reader").await;
    let mut sender = Client::login(d.addr(), "sender").await;
    assert_eq!(reader.recv().await, json!({"type":"join","user":"sender"}));
    // the reader keeps reading, so only the stalled queue fills
    let reading = tokio::spawn(async move {
        let mut bodies = 0;
        loop {
            let v = reader.recv().await;
            if v["body"] == "end" {
                return bodies;
            }
            assert_eq!(v["body"].as_str().map(str::len), Some(30_000));
            bodies += 1;
        }
    });
    let body = "w".repeat(30_000);
    let (accepted, partial) = send_until_refused(&mut sender, "*", &body, 2).await;
    assert_eq!(partial, json!({"type":"ok","id":accepted,"delivered":1}));
    sender
        .send(r#"{"type":"msg","to":"*","body":"end","id":"end"}"#)
        .await;
    // the stalled queue may or may not have room again by now
    let end = sender.recv().await;
    assert_eq!(
        (end["type"].as_str(), end["id"].as_str()),
        (Some("ok"), Some("end")),
        "{end}"
    );
    // the reader got every broadcast, the partial one included
    assert_eq!(reading.await.unwrap(), accepted + 1);
}

#[tokio::test]
async fn a_slow_consumer_is_cut_off_after_the_grace_and_told_why() {
    let d = Server::start(&[
        "--queue-len",
        "16",
        "--rate",
        "0",
        "--slow-consumer-grace",
        "300ms",
    ]);
    let mut slow = stalled_client(d.addr(), "slow").await;
    let mut fast = Client::login(d.addr(), "fast").await;
    let body = "s".repeat(30_000);
    // Fill the queue until it refuses, then wait up to three graces for the cut-off. The
    // kernel may still absorb some of the stalled socket's data and let the session take a
    // few lines from its queue; the clock keeps running until the queue is down to half, so
    // refilling it and waiting again converges in a round or two.
    let mut leave = None;
    for _ in 0..10 {
        let (_, refusal) = send_until_refused(&mut fast, "slow", &body, 1).await;
        if refusal["type"] == "leave" {
            leave = Some(refusal);
            break;
        }
        assert_eq!(refusal["code"], "recipient_busy", "{refusal}");
        if let Some(v) = fast.recv_within(Duration::from_millis(900)).await {
            leave = Some(v);
            break;
        }
    }
    let leave =
        leave.unwrap_or_else(|| panic!("slow was never cut off; log:\n{}", d.log().join("\n")));
    assert_eq!(
        leave,
        json!({"type":"leave","user":"slow","reason":"slow_consumer"})
    );
    let lines = slow.expect_closed().await;
    assert_eq!(
        lines.last(),
        Some(&json!({"type":"bye","reason":"slow_consumer"}))
    );
    // the name is free again
    let _again = Client::login(d.addr(), "slow").await;
}

/// A connection to `addr` from the loopback address `from` (any of 127.0.0.0/8).
async fn connect_from(from: &str, addr: SocketAddr) -> Client {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    Client::from_stream(socket.connect(addr).await.unwrap())
}

/// What a connection past `--max-per-ip` is told before chatd closes it.
async fn refused_per_address(c: Client, max: usize) {
    let message =
        format!("too many connections from your address (at most {max}); close one and retry");
    refused(c, &message).await;
}

#[tokio::test]
async fn connections_per_address_at_and_over_the_limit_and_the_place_is_freed() {
    let d = Server::start(&["--max-per-ip", "2"]);
    // Under and at the limit: served.
    let mut first = Client::login(d.addr(), "a1").await;
    let _second = Client::login(d.addr(), "a2").await;
    refused_per_address(Client::connect(d.addr()).await, 2).await;
    d.wait_log("too many connections from one address, refusing connection");
    // Another address has its own count.
    let mut other = connect_from("127.0.0.2", d.addr()).await;
    other.send(r#"{"type":"login","from":"b1"}"#).await;
    assert_eq!(other.recv().await["type"], "ok");
    // A place given back is taken again, and the limit holds after.
    first.send(r#"{"type":"logout"}"#).await;
    first.expect_closed().await;
    drop(first);
    d.wait_log("user=a1 reason=logout");
    let mut again = Client::login(d.addr(), "a3").await;
    again.expect_nothing_pending().await;
    refused_per_address(Client::connect(d.addr()).await, 2).await;
}

#[tokio::test]
async fn the_default_is_64_per_address_and_0_turns_the_limit_off() {
    let d = Server::start(&[]);
    let mut held = Vec::new();
    for _ in 0..64 {
        held.push(Client::connect(d.addr()).await);
    }
    refused_per_address(Client::connect(d.addr()).await, 64).await;
    let mut c = held.pop().unwrap();
    c.send(r#"{"type":"login","from":"the64th"}"#).await;
    assert_eq!(c.recv().await["type"], "ok");
    drop(held);

    let d = Server::start(&["--max-per-ip", "0"]);
    let mut held = Vec::new();
    for _ in 0..100 {
        held.push(Client::connect(d.addr()).await);
    }
    let mut last = held.pop().unwrap();
    last.send(r#"{"type":"login","from":"the100th"}"#).await;
    assert_eq!(last.recv().await["type"], "ok");
}
