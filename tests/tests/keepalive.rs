//! Dead peers: a client whose packets stop arriving (as when its machine loses power) is found
//! by TCP keepalive and leaves with reason `timeout`. chatd is served in-process.
//!
//! Silencing one TCP connection on loopback takes a packet filter, so this test needs root and
//! `nft` (Debian's nftables). It is ignored by a plain `cargo test`; CI runs it with
//! `cargo test -p chatd-e2e --test keepalive -- --ignored` after installing nftables.

use e2e::{Client, Server};
use serde_json::json;
use std::process::Command;

/// An nftables table that drops the packets a client sends from one local port; removed
/// when dropped.
struct Blackhole {
    table: String,
}

impl Blackhole {
    fn client_port(port: u16) -> Blackhole {
        let table = format!("chatd_keepalive_{}", std::process::id());
        let script = format!(
            "add table inet {table}\n\
             add chain inet {table} input {{ type filter hook input priority 0 ; }}\n\
             add rule inet {table} input tcp sport {port} drop\n"
        );
        let out = Command::new("nft")
            .args(["-f", "-"])
            .stdin_bytes(script.as_bytes());
        assert!(
            out.status.success(),
            "nft failed (needs root and nftables): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Blackhole { table }
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        let _ = Command::new("nft")
            .args(["delete", "table", "inet", &self.table])
            .status();
    }
}

trait StdinBytes {
    fn stdin_bytes(&mut self, input: &[u8]) -> std::process::Output;
}

impl StdinBytes for Command {
    fn stdin_bytes(&mut self, input: &[u8]) -> std::process::Output {
        use std::io::Write;
        use std::process::Stdio;
        let mut child = self
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run nft (apt-get install nftables)");
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    }
}

#[tokio::test]
#[ignore = "needs root and nftables; CI runs it with --ignored"]
async fn a_silent_peer_is_found_by_keepalive_and_leaves_with_timeout() {
    let d = Server::start(&[
        "--keepalive",
        "1s",
        "--keepalive-interval",
        "1s",
        "--keepalive-retries",
        "2",
    ]);
    let stream = tokio::net::TcpStream::connect(d.addr()).await.unwrap();
    let port = stream.local_addr().unwrap().port();
    let mut victim = Client::from_stream(stream);
    victim.send(r#"{"type":"login","from":"victim"}"#).await;
    assert_eq!(victim.recv().await["type"], "ok");
    let mut watcher = Client::login(d.addr(), "watcher").await;
    let _silence = Blackhole::client_port(port);
    // 1 s idle + 2 probes 1 s apart: chatd gives up after about 3 s
    watcher
        .expect(json!({"type":"leave","user":"victim","reason":"timeout"}))
        .await;
    d.wait_log("user=victim reason=timeout");
}
