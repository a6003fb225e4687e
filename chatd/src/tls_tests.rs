//! The certificate settings: what is read from where, and every way a pair can be refused,
//! with the exact error (start-up, `--check-config` and reloads all show these).

use super::*;
use crate::config::{Args, Config};
use clap::Parser;

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Files {
        Files {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, contents: &str) -> String {
        std::fs::write(self.path(name), contents).unwrap();
        self.path(name).display().to_string()
    }

    /// A fresh self-signed certificate for localhost: its two PEM files' paths.
    fn pair(&self, name: &str) -> (String, String) {
        let c = rcgen::generate_simple_self_signed(["localhost".to_owned()]).unwrap();
        let cert = self.write(&format!("{name}.crt"), &c.cert.pem());
        let key = self.write(&format!("{name}.key"), &c.signing_key.serialize_pem());
        (cert, key)
    }
}

fn parse(argv: &[&str]) -> Result<Config, String> {
    let args = Args::try_parse_from(std::iter::once("chatd").chain(argv.iter().copied()))
        .map_err(|e| e.to_string())?;
    Config::from_args(&args).map_err(|e| e.to_string())
}

const TLS: &str = "--tls-listen=127.0.0.1:0";

#[test]
fn a_pair_is_read_and_tls_alone_means_no_plain_listener() {
    let f = Files::new();
    let (cert, key) = f.pair("a");
    let c = parse(&[TLS, "--tls-cert", &cert, "--tls-key", &key]).unwrap();
    let tls = c.tls.as_ref().unwrap();
    assert_eq!(tls.key.cert.len(), 1);
    assert!(!tls.from_credentials);
    assert_eq!(c.listen, []);
    assert_eq!(c.tls_listen.len(), 1);
    // Beside a plain listener when one is asked for.
    let c = parse(&[
        TLS,
        "--listen=127.0.0.1:0",
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
    ])
    .unwrap();
    assert_eq!(c.listen.len(), 1);
    // Without TLS listeners, nothing is read (and a missing file is no error).
    let c = parse(&[
        "--tls-cert",
        "/nonexistent.crt",
        "--tls-key",
        "/nonexistent.key",
    ])
    .unwrap();
    assert!(c.tls.is_none());
    assert_eq!(c.listen.len(), 1);
}

#[test]
fn a_chain_keeps_every_certificate_in_order() {
    let f = Files::new();
    let (cert, key) = f.pair("leaf");
    let other = rcgen::generate_simple_self_signed(["ca.example".to_owned()]).unwrap();
    let chain = std::fs::read_to_string(&cert).unwrap() + &other.cert.pem();
    let chain = f.write("chain.pem", &chain);
    let c = parse(&[TLS, "--tls-cert", &chain, "--tls-key", &key]).unwrap();
    assert_eq!(c.tls.unwrap().key.cert.len(), 2);
}

#[test]
fn a_missing_half_names_what_to_give() {
    let f = Files::new();
    let (cert, key) = f.pair("a");
    assert_eq!(
        parse(&[TLS]).unwrap_err(),
        "--tls-cert: needed by --tls-listen: give --tls-cert and --tls-key (or, under systemd, \
         LoadCredential=tls-cert:PATH and LoadCredential=tls-key:PATH)"
    );
    assert_eq!(
        parse(&[TLS, "--tls-cert", &cert]).unwrap_err(),
        "--tls-key: needed with --tls-cert: give the certificate's private key"
    );
    assert_eq!(
        parse(&[TLS, "--tls-key", &key]).unwrap_err(),
        "--tls-cert: needed with --tls-key: give the certificate chain it belongs to"
    );
}

#[test]
fn unreadable_empty_and_foreign_files_are_named() {
    let f = Files::new();
    let (cert, key) = f.pair("a");
    let missing = f.path("missing.pem").display().to_string();
    assert_eq!(
        parse(&[TLS, "--tls-cert", &missing, "--tls-key", &key]).unwrap_err(),
        format!("--tls-cert: cannot read {missing}: No such file or directory (os error 2)")
    );
    assert_eq!(
        parse(&[TLS, "--tls-cert", &cert, "--tls-key", &missing]).unwrap_err(),
        format!("--tls-key: cannot read {missing}: No such file or directory (os error 2)")
    );
    let junk = f.write("junk.pem", "not a certificate\n");
    assert_eq!(
        parse(&[TLS, "--tls-cert", &junk, "--tls-key", &key]).unwrap_err(),
        format!("--tls-cert: {junk} holds no certificate (no BEGIN CERTIFICATE block)")
    );
    assert_eq!(
        parse(&[TLS, "--tls-cert", &cert, "--tls-key", &junk]).unwrap_err(),
        format!("--tls-key: {junk} holds no private key (no BEGIN PRIVATE KEY block)")
    );
    // The certificate given as the key, a common slip.
    assert_eq!(
        parse(&[TLS, "--tls-cert", &cert, "--tls-key", &cert]).unwrap_err(),
        format!("--tls-key: {cert} holds no private key (no BEGIN PRIVATE KEY block)")
    );
}

#[test]
fn a_key_of_another_certificate_is_refused() {
    let f = Files::new();
    let (cert, _) = f.pair("a");
    let (_, other_key) = f.pair("b");
    assert_eq!(
        parse(&[TLS, "--tls-cert", &cert, "--tls-key", &other_key]).unwrap_err(),
        format!(
            "--tls-key: {other_key} does not match the certificate in {cert}; give the key this \
             certificate was made for"
        )
    );
}

#[test]
fn systemd_credentials_are_the_default_paths() {
    let f = Files::new();
    let c = rcgen::generate_simple_self_signed(["localhost".to_owned()]).unwrap();
    f.write(CREDENTIAL_CERT, &c.cert.pem());
    let s = Settings {
        tls_listen: Some(vec!["127.0.0.1:0".parse().unwrap()]),
        ..Settings::default()
    };
    // Only one of the two: as if neither.
    assert_eq!(
        configured(&s, Some(f.dir.path())).unwrap_err().key,
        "tls_cert"
    );
    f.write(CREDENTIAL_KEY, &c.signing_key.serialize_pem());
    let cert = configured(&s, Some(f.dir.path())).unwrap().unwrap();
    assert!(cert.from_credentials);
    assert_eq!(cert.cert_path, f.path(CREDENTIAL_CERT));
    assert_eq!(cert.key_path, f.path(CREDENTIAL_KEY));
    // Paths that are set win over the credentials.
    let (cert_path, key_path) = f.pair("own");
    let s = Settings {
        tls_cert: Some(cert_path.clone().into()),
        tls_key: Some(key_path.into()),
        ..s
    };
    let cert = configured(&s, Some(f.dir.path())).unwrap().unwrap();
    assert!(!cert.from_credentials);
    assert_eq!(cert.cert_path, PathBuf::from(cert_path));
}

#[test]
fn a_reload_that_drops_tls_listen_keeps_serving_the_running_certificate() {
    let f = Files::new();
    let (cert, key) = f.pair("a");
    let running = parse(&[TLS, "--tls-cert", &cert, "--tls-key", &key]).unwrap();
    let dropped = parse(&[]).unwrap();
    assert!(dropped.tls.is_none());
    let kept = dropped.keeping(crate::config::Reload::Restart, &running);
    assert_eq!(kept.tls_listen, running.tls_listen);
    assert_eq!(kept.tls, running.tls);
}
