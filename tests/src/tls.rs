//! Certificates for the TLS tests, made when a test runs (never a committed key): a CA of
//! the test's own, server certificates it signs for the names a test chooses, the PEM files
//! chatd and chatcli read, and a client that trusts the CA.

use crate::client::Client;
use crate::wait::DEADLINE;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A certificate authority made for one test, with a directory for the files it writes.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
    dir: tempfile::TempDir,
}

/// A server certificate and its key, as PEM.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestCa {
    /// A new CA named `name` (its subject's common name).
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("self-sign the CA");
        TestCa {
            issuer: Issuer::new(params, key),
            pem: cert.pem(),
            dir: tempfile::tempdir().expect("a temp dir for certificates"),
        }
    }

    /// A server certificate for `names` (host names or IP addresses), signed by this CA.
    pub fn issue(&self, names: &[&str]) -> Leaf {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let params = CertificateParams::new(names).expect("leaf params");
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign the leaf");
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// Writes `leaf` as `NAME.crt` and `NAME.key` in this CA's directory (the key 0600);
    /// returns the two paths.
    pub fn write(&self, name: &str, leaf: &Leaf) -> (PathBuf, PathBuf) {
        let cert = self.write_file(&format!("{name}.crt"), &leaf.cert_pem);
        let key = self.write_file(&format!("{name}.key"), &leaf.key_pem);
        (cert, key)
    }

    /// Writes `contents` to `name` in this CA's directory, replacing it atomically (as
    /// certbot does, so a reader never sees half a file); returns the path.
    pub fn write_file(&self, name: &str, contents: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir.path().join(name);
        let tmp = self.dir.path().join(format!(".{name}.tmp"));
        std::fs::write(&tmp, contents).expect("write a certificate file");
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        std::fs::rename(&tmp, &path).expect("rename a certificate file");
        path
    }

    /// The CA's own certificate as a PEM file, for `chatcli --ca`.
    pub fn ca_file(&self) -> PathBuf {
        self.write_file("ca.crt", &self.pem)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A TLS client config that trusts this CA alone.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        let ca = CertificateDer::from_pem_slice(self.pem.as_bytes()).expect("CA PEM");
        roots.add(ca).expect("add the CA");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("default versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    }

    /// Connects to `addr` over TLS, verifying the server as `host` against this CA.
    pub async fn connect(&self, addr: SocketAddr, host: &str) -> Result<Client, std::io::Error> {
        let tls = self.handshake(addr, host).await?;
        Ok(Client::over(tls))
    }

    /// The TLS stream itself, for tests that look at the session (its certificate).
    pub async fn handshake(
        &self,
        addr: SocketAddr,
        host: &str,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, std::io::Error> {
        let connector = TlsConnector::from(self.client_config());
        let name = ServerName::try_from(host.to_owned()).expect("a valid server name");
        let tcp = tokio::time::timeout(DEADLINE, TcpStream::connect(addr))
            .await
            .expect("connect timed out")?;
        tokio::time::timeout(DEADLINE, connector.connect(name, tcp))
            .await
            .expect("TLS handshake timed out")
    }

    /// Connects over TLS and logs in as `name`.
    pub async fn login(&self, addr: SocketAddr, name: &str) -> Client {
        let mut c = self.connect(addr, "localhost").await.expect("TLS connect");
        c.send(&format!(r#"{{"type":"login","from":"{name}"}}"#))
            .await;
        let reply = c.recv().await;
        assert_eq!(
            reply["type"], "ok",
            "login as {name} over TLS failed: {reply}"
        );
        c
    }
}

/// The server certificate a TLS session was handed (the first of the chain).
pub fn peer_cert(tls: &tokio_rustls::client::TlsStream<TcpStream>) -> CertificateDer<'static> {
    tls.get_ref()
        .1
        .peer_certificates()
        .expect("the server sent a certificate")[0]
        .clone()
}
