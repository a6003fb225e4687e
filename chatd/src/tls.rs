//! TLS for the chat listeners: the certificate, where it comes from, and the handshake.
//!
//! The certificate and key are part of the [`Config`]: read and checked (a chain, a key that
//! matches it) by [`Config::new`](crate::config::Config::new), at start, by
//! `--check-config` and by every reload, so a SIGHUP that finds a broken or mismatched pair
//! is refused like any bad setting and the running certificate stays. The [`Resolver`] hands
//! each new handshake the certificate of the config in force, so putting a new config in
//! force is the atomic swap: handshakes after it get the new certificate, sessions already
//! encrypted go on with the keys they agreed.
//!
//! Under systemd, `LoadCredential=tls-cert:…` and `tls-key:…` let chatd read a key its own
//! user cannot: those files in `$CREDENTIALS_DIRECTORY` are the default when `tls_cert` and
//! `tls_key` are unset. systemd (252 on Debian 12) fills that directory only when the service
//! starts, so a renewal there needs a restart; the reload says so when it finds the same
//! certificate there (see the README, "Running on a network").

use crate::config::{ConfigError, Settings};
use crate::connection::Connection;
use crate::live::Live;
use crate::server::Server;
use proto::{ErrorCode, encode};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, ServerConfig};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

/// The credential names the unit's `LoadCredential=` gives the certificate and the key.
pub const CREDENTIAL_CERT: &str = "tls-cert";
pub const CREDENTIAL_KEY: &str = "tls-key";

/// The first byte of every TLS connection: a handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;
/// How long the answer to a plain-text client on the TLS port may take to leave.
const PLAIN_REFUSAL_TIMEOUT: Duration = Duration::from_secs(1);

/// The certificate chain and key in force, with the files they were read from.
#[derive(Clone)]
pub struct Cert {
    pub key: Arc<CertifiedKey>,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    /// Read from `$CREDENTIALS_DIRECTORY` (systemd's `LoadCredential=`).
    pub from_credentials: bool,
}

impl std::fmt::Debug for Cert {
    // Never the key: a config is logged at debug level.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cert")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .field("chain_len", &self.key.cert.len())
            .finish_non_exhaustive()
    }
}

/// The same files holding the same certificate; the key follows from the certificate,
/// since a pair that does not match is refused.
impl PartialEq for Cert {
    fn eq(&self, other: &Cert) -> bool {
        self.cert_path == other.cert_path
            && self.key_path == other.key_path
            && self.key.cert == other.key.cert
    }
}

/// The provider every TLS config of chatd uses, named rather than left to a process-wide
/// default, so a dependency enabling another provider cannot change or break it.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads the certificate the settings ask for, when TLS listeners are configured.
/// `credentials` is `$CREDENTIALS_DIRECTORY`, where unset paths are looked for.
pub fn configured(s: &Settings, credentials: Option<&Path>) -> Result<Option<Cert>, ConfigError> {
    if s.tls_listen.is_none() {
        return Ok(None);
    }
    let from_dir = |name: &str| credentials.map(|d| d.join(name)).filter(|p| p.exists());
    let (cert, key, from_credentials) = match (&s.tls_cert, &s.tls_key) {
        (Some(c), Some(k)) => (c.clone(), k.clone(), false),
        (None, None) => match (from_dir(CREDENTIAL_CERT), from_dir(CREDENTIAL_KEY)) {
            (Some(c), Some(k)) => (c, k, true),
            _ => {
                return Err(invalid(
                    "tls_cert",
                    "needed by --tls-listen: give --tls-cert and --tls-key (or, under \
                     systemd, LoadCredential=tls-cert:PATH and LoadCredential=tls-key:PATH)",
                ));
            }
        },
        (Some(_), None) => {
            return Err(invalid(
                "tls_key",
                "needed with --tls-cert: give the certificate's private key",
            ));
        }
        (None, Some(_)) => {
            return Err(invalid(
                "tls_cert",
                "needed with --tls-key: give the certificate chain it belongs to",
            ));
        }
    };
    let key_der = load(&cert, &key)?;
    Ok(Some(Cert {
        key: Arc::new(key_der),
        cert_path: cert,
        key_path: key,
        from_credentials,
    }))
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        key,
        reason: reason.into(),
    }
}

/// Reads a PEM chain and its key, and checks that they belong together.
fn load(cert: &Path, key: &Path) -> Result<CertifiedKey, ConfigError> {
    let shown = |p: &Path| p.display().to_string();
    let read = |k: &'static str, p: &Path| {
        std::fs::read(p).map_err(|e| invalid(k, format!("cannot read {}: {e}", shown(p))))
    };
    let cert_pem = read("tls_cert", cert)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            invalid(
                "tls_cert",
                format!("{} is not a PEM certificate chain: {e}", shown(cert)),
            )
        })?;
    if chain.is_empty() {
        return Err(invalid(
            "tls_cert",
            format!(
                "{} holds no certificate (no BEGIN CERTIFICATE block)",
                shown(cert)
            ),
        ));
    }
    let key_pem = read("tls_key", key)?;
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        let why = match e {
            rustls_pki_types::pem::Error::NoItemsFound => {
                "holds no private key (no BEGIN PRIVATE KEY block)".to_owned()
            }
            e => format!("is not a PEM private key: {e}"),
        };
        invalid("tls_key", format!("{} {why}", shown(key)))
    })?;
    CertifiedKey::from_der(chain, key_der, &provider()).map_err(|e| {
        let why = match e {
            rustls::Error::InconsistentKeys(_) => format!(
                "{} does not match the certificate in {}; give the key this certificate was \
                 made for",
                shown(key),
                shown(cert)
            ),
            e => format!("{} cannot be used with {}: {e}", shown(key), shown(cert)),
        };
        invalid("tls_key", why)
    })
}

/// Gives each handshake the certificate of the config in force.
#[derive(Debug)]
struct Resolver {
    live: Live,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.live.load().tls.as_ref().map(|c| c.key.clone())
    }
}

/// The acceptor of every TLS listener: TLS 1.2 and 1.3, no client certificates.
pub fn acceptor(live: &Live) -> TlsAcceptor {
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Resolver { live: live.clone() }));
    TlsAcceptor::from(Arc::new(config))
}

/// What a reload says about the certificate, comparing the old config's with the new one's.
pub fn log_reload(old: Option<&Cert>, new: Option<&Cert>) {
    let (Some(old), Some(new)) = (old, new) else {
        return;
    };
    if old.key.cert != new.key.cert {
        info!(cert = %new.cert_path.display(), "TLS certificate reloaded: new connections get the new one");
    } else if new.from_credentials {
        info!(
            cert = %new.cert_path.display(),
            "TLS certificate unchanged: it comes from $CREDENTIALS_DIRECTORY, which systemd fills only when chatd starts; restart chatd to use a renewed one, or set tls_cert and tls_key to files chatd may read"
        );
    } else {
        info!(cert = %new.cert_path.display(), "TLS certificate unchanged");
    }
}

/// Runs the handshake of one accepted connection (within the handshake timeout, and no
/// longer than the server runs), then its session. The connection already holds its slot
/// and its address's place; a failed handshake gives the place back.
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    server: Arc<Server>,
    slot: OwnedSemaphorePermit,
    acceptor: TlsAcceptor,
    stop: CancellationToken,
) {
    let timeout = server.config.load().settings.tls_handshake_timeout;
    let outcome = tokio::select! {
        r = tokio::time::timeout(timeout, handshake(stream, &acceptor)) => r,
        () = stop.cancelled() => Ok(Err("the server is stopping".to_owned())),
    };
    match outcome {
        Ok(Ok(tls)) => crate::session::run(tls, peer, server, slot).await,
        Ok(Err(why)) => {
            server.per_address.release(peer.ip());
            info!(%peer, "TLS handshake failed: {why}");
        }
        Err(_) => {
            server.per_address.release(peer.ip());
            info!(%peer, timeout = %humantime::format_duration(timeout), "TLS handshake not finished in time; dropped");
        }
    }
}

async fn handshake(
    stream: TcpStream,
    acceptor: &TlsAcceptor,
) -> Result<tokio_rustls::server::TlsStream<TcpStream>, String> {
    let mut first = [0u8; 1];
    let n = stream
        .peek(&mut first)
        .await
        .map_err(|e| format!("reading the client hello: {e}"))?;
    if n == 0 {
        return Err("the client closed before its hello".to_owned());
    }
    if first[0] != TLS_HANDSHAKE_RECORD {
        refuse_plain(stream).await;
        return Err("the client speaks plain text on the TLS port; told to use TLS".to_owned());
    }
    acceptor.accept(stream).await.map_err(|e| {
        debug!(error = ?e, "handshake error");
        e.to_string()
    })
}

/// A plain-text client (`nc`, a v1 client pointed at the wrong port) gets one line it can
/// read saying what is wrong, rather than TLS alert bytes.
async fn refuse_plain(stream: TcpStream) {
    let mut conn = Connection::new(stream, 0);
    encode::error(
        conn.out(),
        None,
        ErrorCode::BadRequest,
        "this port speaks TLS: connect with TLS (chatcli --tls) or use the server's plain port",
    );
    conn.close(PLAIN_REFUSAL_TIMEOUT).await;
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
