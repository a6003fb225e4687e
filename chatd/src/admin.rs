//! The admin channel: a Unix socket beside the TCP listener, spoken by `chatctl`.
//!
//! This file owns the socket's lifecycle, the way greetd handles its own: find the path
//! (`--admin-socket`, `CHATD_ADMIN_SOCKET`, or the default rule of [`proto::admin`]), replace a
//! stale socket left by a crash, refuse to start when another live chatd answers on it, bind
//! with mode 0660, and unlink the file again when the listener is dropped on a clean exit.
//!
//! - [`serve`]: the accept loop and the requests (users, kick, notice, stats, status, watch).
//! - [`creds`]: the peer credential check.
//!
//! The wire format is in `proto::admin` and `docs/ADMIN-PROTOCOL.md`.

pub mod creds;
pub mod serve;

use proto::admin::{DefaultPathFacts, SYSTEM_SOCKET_DIR, default_socket_path};
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use tokio::net::UnixListener;
use tracing::{info, warn};

pub use serve::run;

/// The socket file's mode: owner and group only.
pub const SOCKET_MODE: u32 = 0o660;
/// Mode of a socket directory chatd creates: group members must be able to traverse it.
pub const DIR_MODE: u32 = 0o750;

/// Why the admin socket could not be set up. Each message names the path and the fix.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error(
        "no admin socket path: not root, {SYSTEM_SOCKET_DIR} is not writable and XDG_RUNTIME_DIR is not set; pass --admin-socket PATH or set CHATD_ADMIN_SOCKET"
    )]
    NoDefaultPath,
    #[error(
        "another chatd is already serving the admin socket at {0} — stop it first, or give this one another --admin-socket"
    )]
    InUse(PathBuf),
    #[error("{0} exists and is not a socket; remove it or choose another --admin-socket")]
    NotASocket(PathBuf),
    #[error("cannot create the admin socket directory {path}: {source}")]
    Dir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot use the admin socket {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl BindError {
    /// True when the fix is a flag or variable, not the environment (for the exit code).
    pub fn is_usage(&self) -> bool {
        matches!(self, BindError::NoDefaultPath)
    }
}

/// The bound admin socket; dropping it removes the socket file (if it is still ours).
#[derive(Debug)]
pub struct AdminListener {
    pub(crate) listener: UnixListener,
    guard: SocketGuard,
}

impl AdminListener {
    pub fn path(&self) -> &Path {
        &self.guard.path
    }
}

/// Unlinks the socket file on drop, unless something else has replaced it since.
#[derive(Debug)]
struct SocketGuard {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Drop for SocketGuard {
    fn drop(&mut self) {
        match fs::symlink_metadata(&self.path) {
            Ok(md) if md.dev() == self.dev && md.ino() == self.ino => {
                if let Err(e) = fs::remove_file(&self.path) {
                    warn!(path = %self.path.display(), error = %e, "cannot remove the admin socket");
                }
            }
            _ => {}
        }
    }
}

/// The path to use: the configured one, else the default rule.
pub fn socket_path(configured: Option<&Path>) -> Result<PathBuf, BindError> {
    if let Some(p) = configured {
        return Ok(p.to_owned());
    }
    default_socket_path(&daemon_facts()).ok_or(BindError::NoDefaultPath)
}

fn daemon_facts() -> DefaultPathFacts {
    let dir = std::ffi::CString::new(SYSTEM_SOCKET_DIR).expect("a constant without NUL");
    // SAFETY: geteuid takes nothing and cannot fail; access reads a NUL-terminated string
    // that outlives the call.
    let (root, writable) = unsafe {
        (
            libc::geteuid() == 0,
            libc::access(dir.as_ptr(), libc::W_OK) == 0,
        )
    };
    DefaultPathFacts {
        root,
        system_dir_writable: writable,
        system_socket_exists: false,
        xdg_runtime_dir: std::env::var_os("XDG_RUNTIME_DIR")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from),
    }
}

/// Sets up the admin socket at `configured` or the default path. Must run inside the tokio
/// runtime. Logs the path it serves.
pub fn bind(configured: Option<&Path>) -> Result<AdminListener, BindError> {
    let path = socket_path(configured)?;
    let io_err = |source| BindError::Io {
        path: path.clone(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)
            .map_err(|source| BindError::Dir {
                path: dir.to_owned(),
                source,
            })?;
    }
    match fs::symlink_metadata(&path) {
        Ok(md) if md.file_type().is_socket() => {
            // A socket file: either a live chatd answers on it, or it was left by a crash.
            match std::os::unix::net::UnixStream::connect(&path) {
                Ok(_) => return Err(BindError::InUse(path)),
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    fs::remove_file(&path).map_err(io_err)?;
                    warn!(path = %path.display(), "replaced a stale admin socket (left by a crash?)");
                }
                Err(e) => return Err(io_err(e)),
            }
        }
        Ok(_) => return Err(BindError::NotASocket(path)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(e)),
    }
    let listener = UnixListener::bind(&path).map_err(|e| {
        if e.kind() == io::ErrorKind::AddrInUse {
            // Another chatd bound it between our check and our bind.
            BindError::InUse(path.clone())
        } else {
            io_err(e)
        }
    })?;
    // Between bind and chmod the file has the umask's mode; the credential check still
    // guards every connection, so the window grants nothing.
    let md = fs::set_permissions(&path, fs::Permissions::from_mode(SOCKET_MODE))
        .and_then(|()| fs::symlink_metadata(&path))
        .map_err(io_err)?;
    info!("admin socket on {}", path.display());
    Ok(AdminListener {
        listener,
        guard: SocketGuard {
            path,
            dev: md.dev(),
            ino: md.ino(),
        },
    })
}
