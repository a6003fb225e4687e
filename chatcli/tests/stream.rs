//! Large inputs stream: 100 000 lines go through in order with bounded memory.

mod common;

use common::{cmd, rt};
use e2e::{Client, Server};
use std::io::Write as _;
use std::process::Stdio;

/// Peak resident memory of a running process, from /proc.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc status");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_hundred_thousand_lines_arrive_in_order_in_bounded_memory() {
    const LINES: usize = 100_000;
    let d = Server::start(&["--rate", "0", "--queue-len", "100000"]);
    let rt = rt();
    let mut alice = rt.block_on(Client::login(d.addr(), "alice"));
    let mut child = cmd(&d.addr().to_string())
        .args(["--user", "bot", "--to", "alice"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut stdin = child.stdin.take().unwrap();
    // ~30 MB of input, written as chatcli reads it; the last write returns once all but a
    // pipe's worth has been read, which is when the peak is measured.
    let pad = "x".repeat(290);
    let writer = std::thread::spawn(move || {
        let mut w = std::io::BufWriter::new(&mut stdin);
        for i in 0..LINES {
            writeln!(w, "{i:06} {pad}").unwrap();
        }
        w.flush().unwrap();
        drop(w);
        let peak = peak_rss_kib(pid);
        drop(stdin);
        peak
    });
    rt.block_on(async move {
        alice
            .expect(serde_json::json!({"type":"join","user":"bot"}))
            .await;
        for i in 0..LINES {
            let m = alice.recv().await;
            let body = m["body"].as_str().unwrap_or_else(|| panic!("{m}"));
            assert_eq!(&body[..6], format!("{i:06}"), "out of order at {i}");
        }
    });
    let peak = writer.join().unwrap();
    let out = e2e::collect(child);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        peak < 24 * 1024,
        "chatcli peaked at {peak} KiB while streaming ~30 MB"
    );
}
