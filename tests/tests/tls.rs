//! Chat over TLS against chatd in-process, with a CA and certificates made by the test: the
//! handshake and relaying between TLS and plain clients, a plain-text client on the TLS port,
//! a handshake that stalls, the limits counted across both kinds of listener. The reload of
//! the certificate is the binary's (`tls_reload.rs`).

use e2e::{Client, Server, TestCa};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// chatd serving plain TCP and TLS, with a certificate for localhost from `ca`.
fn serve(ca: &TestCa, extra: &[&str]) -> Server {
    let (cert, key) = ca.write("server", &ca.issue(&["localhost"]));
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let mut flags = vec![
        "--listen",
        "127.0.0.1:0",
        "--tls-listen",
        "127.0.0.1:0",
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
    ];
    flags.extend_from_slice(extra);
    Server::start(&flags)
}

#[tokio::test]
async fn tls_and_plain_clients_chat_with_each_other() {
    let ca = TestCa::new("chatd test CA");
    let d = serve(&ca, &[]);
    let mut alice = ca.login(d.tls_addr(), "alice").await;
    let mut bob = Client::login(d.addr(), "bob").await;
    alice.expect(json!({"type":"join","user":"bob"})).await;
    alice
        .send(r#"{"type":"msg","to":"bob","body":"over TLS","id":1}"#)
        .await;
    alice
        .expect(json!({"type":"ok","id":1,"delivered":1}))
        .await;
    bob.expect(json!({"type":"msg","from":"alice","to":"bob","body":"over TLS"}))
        .await;
    bob.send(r#"{"type":"msg","to":"*","body":"to all","id":2}"#)
        .await;
    bob.expect(json!({"type":"ok","id":2,"delivered":1})).await;
    alice
        .expect(json!({"type":"msg","from":"bob","to":"*","body":"to all"}))
        .await;
    // A large message crosses several TLS records whole.
    let body = "z".repeat(60_000);
    bob.send(&format!(
        r#"{{"type":"msg","to":"alice","body":"{body}","id":3}}"#
    ))
    .await;
    bob.expect(json!({"type":"ok","id":3,"delivered":1})).await;
    alice
        .expect(json!({"type":"msg","from":"bob","to":"alice","body":body}))
        .await;
    // logout's bye arrives, then TLS's own close.
    alice.send(r#"{"type":"logout","id":4}"#).await;
    assert_eq!(
        alice.expect_closed().await,
        vec![
            json!({"type":"ok","id":4}),
            json!({"type":"bye","reason":"logout"})
        ]
    );
    bob.expect(json!({"type":"leave","user":"alice","reason":"logout"}))
        .await;
}

#[tokio::test]
async fn a_plain_text_client_on_the_tls_port_is_told_and_the_port_stays_healthy() {
    let ca = TestCa::new("chatd test CA");
    let d = serve(&ca, &[]);
    let mut nc = Client::connect(d.tls_addr()).await;
    nc.send(r#"{"type":"login","from":"plain","id":1}"#).await;
    assert_eq!(
        nc.expect_closed().await,
        vec![json!({"type":"error","code":"bad_request",
            "message":"this port speaks TLS: connect with TLS (chatcli --tls) or use the server's plain port"})]
    );
    d.wait_log("TLS handshake failed: the client speaks plain text on the TLS port");
    let mut after = ca.login(d.tls_addr(), "after").await;
    after.expect_nothing_pending().await;
}

#[tokio::test]
async fn a_client_trusting_another_ca_or_asking_for_another_name_is_refused() {
    let ca = TestCa::new("chatd test CA");
    let d = serve(&ca, &[]);
    let stranger = TestCa::new("someone else's CA");
    let e = stranger
        .connect(d.tls_addr(), "localhost")
        .await
        .err()
        .unwrap();
    assert!(e.to_string().contains("UnknownIssuer"), "{e}");
    let e = ca
        .connect(d.tls_addr(), "chat.example.org")
        .await
        .err()
        .unwrap();
    assert!(
        e.to_string()
            .contains("certificate not valid for name \"chat.example.org\""),
        "{e}"
    );
    d.wait_log("TLS handshake failed: ");
    let mut ok = ca.login(d.tls_addr(), "ok").await;
    ok.expect_nothing_pending().await;
}

#[tokio::test]
async fn a_stalled_handshake_is_dropped_at_its_timeout_and_frees_its_place() {
    let ca = TestCa::new("chatd test CA");
    let d = serve(
        &ca,
        &["--tls-handshake-timeout", "300ms", "--max-per-ip", "1"],
    );
    // Silent, and then half a hello: neither gets past the handshake timeout.
    let mut silent = TcpStream::connect(d.tls_addr()).await.unwrap();
    d.wait_log("TLS handshake not finished in time; dropped");
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(
        e2e::DEADLINE,
        tokio::io::AsyncReadExt::read(&mut silent, &mut buf),
    )
    .await
    .expect("chatd closes the stalled connection");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    let mut half = TcpStream::connect(d.tls_addr()).await.unwrap();
    half.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00])
        .await
        .unwrap();
    d.wait_log("TLS handshake not finished in time; dropped");
    drop((silent, half));
    // Its place under --max-per-ip 1 was given back: the next client is served.
    let mut next = ca.login(d.tls_addr(), "next").await;
    next.expect_nothing_pending().await;
}

#[tokio::test]
async fn a_finished_handshake_is_not_cut_when_the_handshake_timeout_passes() {
    let ca = TestCa::new("chatd test CA");
    let d = serve(&ca, &["--tls-handshake-timeout", "300ms"]);
    let mut done = ca.connect(d.tls_addr(), "localhost").await.unwrap();
    // Opened after `done`, so its timeout expiring means `done`'s moment has passed too.
    let _stalled = TcpStream::connect(d.tls_addr()).await.unwrap();
    d.wait_log("TLS handshake not finished in time; dropped");
    done.send(r#"{"type":"login","from":"done"}"#).await;
    assert_eq!(done.recv().await["type"], "ok");
    done.expect_nothing_pending().await;
}

#[tokio::test]
async fn connections_per_address_count_plain_and_tls_together_and_tls_is_told_over_tls() {
    let ca = TestCa::new("chatd test CA");
    let d = serve(&ca, &["--max-per-ip", "2"]);
    let _plain = Client::login(d.addr(), "p").await;
    let _tls = ca.login(d.tls_addr(), "t").await;
    // The third, on either listener, is over the limit; on TLS the refusal is encrypted.
    let mut third = ca.connect(d.tls_addr(), "localhost").await.unwrap();
    assert_eq!(
        third.expect_closed().await,
        vec![
            json!({"type":"error","code":"server_full",
                "message":"too many connections from your address (at most 2); close one and retry"}),
            json!({"type":"bye","reason":"server_full"}),
        ]
    );
    let mut fourth = Client::connect(d.addr()).await;
    assert_eq!(fourth.expect_closed().await.len(), 2);
}

#[tokio::test]
async fn the_connection_limit_counts_tls_connections() {
    let ca = TestCa::new("chatd test CA");
    let d = serve(&ca, &["--max-clients", "1"]);
    let _only = ca.login(d.tls_addr(), "only").await;
    let mut over = ca.connect(d.tls_addr(), "localhost").await.unwrap();
    assert_eq!(
        over.expect_closed().await,
        vec![
            json!({"type":"error","code":"server_full",
                "message":"server is full (1 connections); try again later"}),
            json!({"type":"bye","reason":"server_full"}),
        ]
    );
}
