//! Certificate renewal on the real binary: SIGHUP re-reads the certificate and key, new
//! connections get the new one, live TLS sessions go on, and a broken or mismatched pair
//! keeps the running one and says why. Also the systemd credentials as the default paths.

use e2e::tls::peer_cert;
use e2e::{Chatd, Client, TestCa};
use serde_json::json;

/// Which certificate a new TLS connection is handed.
async fn served_cert(d: &Chatd, ca: &TestCa) -> Vec<u8> {
    let tls = ca.handshake(d.tls_addr(), "localhost").await.unwrap();
    peer_cert(&tls).to_vec()
}

fn der(pem: &str) -> Vec<u8> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

#[tokio::test]
async fn a_renewed_certificate_is_served_after_sighup_and_live_sessions_go_on() {
    let ca = TestCa::new("chatd test CA");
    let first = ca.issue(&["localhost"]);
    let (cert, key) = ca.write("server", &first);
    let (cert_s, key_s) = (cert.display().to_string(), key.display().to_string());
    let d = Chatd::start(&[
        "--tls-listen",
        "127.0.0.1:0",
        "--tls-cert",
        &cert_s,
        "--tls-key",
        &key_s,
    ]);
    assert_eq!(served_cert(&d, &ca).await, der(&first.cert_pem));
    let mut alice = ca.login(d.tls_addr(), "alice").await;

    // Renewed in place, as certbot does, then reloaded.
    let renewed = ca.issue(&["localhost"]);
    ca.write("server", &renewed);
    d.signal("HUP");
    d.wait_log("TLS certificate reloaded: new connections get the new one");
    assert_eq!(served_cert(&d, &ca).await, der(&renewed.cert_pem));
    // The session from before the renewal goes on, beside one made after it.
    let mut bob = ca.login(d.tls_addr(), "bob").await;
    alice.expect(json!({"type":"join","user":"bob"})).await;
    alice
        .send(r#"{"type":"msg","to":"bob","body":"still here","id":1}"#)
        .await;
    alice
        .expect(json!({"type":"ok","id":1,"delivered":1}))
        .await;
    bob.expect(json!({"type":"msg","from":"alice","to":"bob","body":"still here"}))
        .await;

    // A key that belongs to another certificate: refused, the renewed pair stays.
    let other = ca.issue(&["localhost"]);
    ca.write_file("server.key", &other.key_pem);
    d.signal("HUP");
    let line = d.wait_log("reload failed, keeping the running configuration");
    assert!(
        line.contains(&format!(
            "--tls-key: {key_s} does not match the certificate in {cert_s}"
        )),
        "{line}"
    );
    assert_eq!(served_cert(&d, &ca).await, der(&renewed.cert_pem));
    // A half-written certificate file: refused too.
    ca.write_file("server.key", &renewed.key_pem);
    ca.write_file("server.crt", "-----BEGIN CERTIFICATE-----\nMIIB\n");
    d.signal("HUP");
    let line = d.wait_log("reload failed, keeping the running configuration");
    assert!(line.contains(&format!("--tls-cert: {cert_s} ")), "{line}");
    assert_eq!(served_cert(&d, &ca).await, der(&renewed.cert_pem));
    // Nobody was dropped along the way.
    bob.send(r#"{"type":"msg","to":"alice","body":"me too","id":2}"#)
        .await;
    bob.expect(json!({"type":"ok","id":2,"delivered":1})).await;
    alice
        .expect(json!({"type":"msg","from":"bob","to":"alice","body":"me too"}))
        .await;
}

#[tokio::test]
async fn systemd_credentials_serve_tls_and_a_reload_says_they_need_a_restart() {
    let ca = TestCa::new("chatd test CA");
    let creds = tempfile::tempdir().unwrap();
    let leaf = ca.issue(&["localhost"]);
    std::fs::write(creds.path().join("tls-cert"), &leaf.cert_pem).unwrap();
    std::fs::write(creds.path().join("tls-key"), &leaf.key_pem).unwrap();
    let d = Chatd::start_with(&["--tls-listen", "127.0.0.1:0"], |cmd| {
        cmd.env("CREDENTIALS_DIRECTORY", creds.path());
    });
    assert_eq!(served_cert(&d, &ca).await, der(&leaf.cert_pem));
    let mut c = ca.login(d.tls_addr(), "carol").await;
    d.signal("HUP");
    d.wait_log("TLS certificate unchanged: it comes from $CREDENTIALS_DIRECTORY, which systemd fills only when chatd starts");
    c.expect_nothing_pending().await;
    // The plain listener the harness added still serves beside it.
    let mut plain = Client::login(d.addr(), "dave").await;
    plain.expect_nothing_pending().await;
}

#[test]
fn a_bad_certificate_at_start_is_a_configuration_error_naming_the_file() {
    let ca = TestCa::new("chatd test CA");
    let leaf = ca.issue(&["localhost"]);
    let cert = ca.write_file("c.crt", &leaf.cert_pem);
    let other = ca.issue(&["localhost"]);
    let key = ca.write_file("k.key", &other.key_pem);
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let mut d = Chatd::spawn_with(
        &[
            "--tls-listen",
            "127.0.0.1:0",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ],
        |_| {},
    );
    assert_eq!(d.wait_exit().code(), Some(2));
    let expected = format!(
        "chatd: --tls-key: {key} does not match the certificate in {cert}; give the key this \
         certificate was made for"
    );
    d.wait_logged(&expected);
    let mut d = Chatd::spawn_with(&["--tls-listen", "127.0.0.1:0"], |cmd| {
        cmd.env_remove("CREDENTIALS_DIRECTORY");
    });
    assert_eq!(d.wait_exit().code(), Some(2));
    d.wait_logged("chatd: --tls-cert: needed by --tls-listen: give --tls-cert and --tls-key");
}
