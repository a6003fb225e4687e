//! chatd's memory, measured where it lives: the resident size of the real binary, with the
//! allocator its `main.rs` installs. In-process, the figure would be the test process's, with
//! its own clients and whatever the tests running beside it hold.

use e2e::{Chatd, Client};
use serde_json::{Value, json};

/// chatd's resident memory, from /proc.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn requests_past_the_output_high_water_mark_wait_in_order_and_memory_stays_bounded() {
    // 400 users with 30-character names: each `users` reply is about 13 KB, and one 16 KiB
    // read of pipelined `users` requests asked for 9 MB of replies at once before the
    // high-water mark applied per request (measured: +9 164 KiB; now about 150).
    let d = Chatd::start(&[
        "--rate",
        "0",
        "--login-rate",
        "0",
        "--max-per-ip",
        "0",
        "--max-line-bytes",
        "300",
    ]);
    let mut crowd = Vec::new();
    for i in 0..400 {
        crowd.push(Client::login(d.addr(), &format!("{i:0>30}")).await);
    }
    let mut asker = Client::login(d.addr(), "asker").await;
    let before = rss_kib(d.pid());
    let mut batch = String::new();
    let mut expected = Vec::new();
    for i in 0..3900 {
        if i == 2000 {
            // a line over the limit in the middle: its error keeps its place
            batch.push_str(&"x".repeat(400));
            batch.push('\n');
            expected.push(Value::Null);
        }
        batch.push_str(&format!("{{\"type\":\"users\",\"id\":{i}}}\n"));
        expected.push(json!(i));
    }
    batch.push_str("{\"type\":\"logout\",\"id\":\"bye\"}\n{\"type\":\"ping\",\"id\":\"never\"}\n");
    expected.push(json!("bye"));
    asker.send_raw(batch.as_bytes()).await;
    // The first reply is written only after chatd has served what it read so far.
    let first = asker.recv().await;
    let grown = rss_kib(d.pid()).saturating_sub(before);
    assert!(
        grown < 2 * 1024,
        "chatd grew by {grown} KiB serving pipelined requests its client does not read yet"
    );
    let mut ids = vec![first["id"].clone()];
    let mut codes = Vec::new();
    loop {
        let v = asker.recv().await;
        match v["type"].as_str() {
            Some("ok") => ids.push(v["id"].clone()),
            Some("error") => {
                codes.push(v["code"].clone());
                ids.push(Value::Null);
            }
            Some("bye") => break,
            _ => {}
        }
    }
    assert_eq!(
        ids, expected,
        "replies in request order, nothing after logout"
    );
    assert_eq!(codes, [json!("too_large")]);
}
