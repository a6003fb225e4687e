//! Talking to chatd's admin socket: find the path, connect, one request and its answer, or a
//! stream of events for `watch`.
//!
//! Plain blocking std I/O: one request and one answer need no runtime. Every failure is a
//! [`CtlError`] that names the socket path and the reason, and maps to a documented exit code
//! kept apart from "the daemon said no".

use crate::cli::{EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_USAGE};
use proto::admin::{
    AdminError, DefaultPathFacts, Request, Response, SOCKET_FILE, SYSTEM_SOCKET_DIR,
    default_socket_path,
};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a request may wait for its answer: the daemon answers from memory, so anything
/// close to this means it is stuck.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("cannot reach chatd at {}: {why}", path.display())]
    Unreachable { path: PathBuf, why: String },
    #[error("{message}")]
    Refused { code: AdminError, message: String },
    #[error(
        "no admin socket path: not root, {SYSTEM_SOCKET_DIR} is not usable and XDG_RUNTIME_DIR is not set; pass --socket PATH or set CHATD_ADMIN_SOCKET"
    )]
    NoPath,
}

impl CtlError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CtlError::Unreachable { .. } => EXIT_UNREACHABLE,
            CtlError::Refused { .. } => EXIT_REFUSED,
            CtlError::NoPath => EXIT_USAGE,
        }
    }
}

/// The socket to use: the flag (or `CHATD_ADMIN_SOCKET`, which clap folds into it), else the
/// default rule shared with chatd.
pub fn socket_path(flag: Option<PathBuf>) -> Result<PathBuf, CtlError> {
    if let Some(p) = flag {
        return Ok(p);
    }
    let dir = std::ffi::CString::new(SYSTEM_SOCKET_DIR).expect("a constant without NUL");
    // SAFETY: geteuid takes nothing and cannot fail; access reads a NUL-terminated string
    // that outlives the call.
    let (root, writable) = unsafe {
        (
            libc::geteuid() == 0,
            libc::access(dir.as_ptr(), libc::W_OK) == 0,
        )
    };
    let facts = DefaultPathFacts {
        root,
        system_dir_writable: writable,
        system_socket_exists: Path::new(SYSTEM_SOCKET_DIR)
            .join(SOCKET_FILE)
            .symlink_metadata()
            .is_ok(),
        xdg_runtime_dir: std::env::var_os("XDG_RUNTIME_DIR")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from),
    };
    default_socket_path(&facts).ok_or(CtlError::NoPath)
}

/// An open admin connection.
pub struct Conn {
    path: PathBuf,
    reader: BufReader<UnixStream>,
}

impl Conn {
    pub fn connect(path: &Path) -> Result<Conn, CtlError> {
        let stream = UnixStream::connect(path).map_err(|e| unreachable(path, &e))?;
        stream
            .set_read_timeout(Some(ANSWER_TIMEOUT))
            .map_err(|e| unreachable(path, &e))?;
        Ok(Conn {
            path: path.to_owned(),
            reader: BufReader::new(stream),
        })
    }

    /// Sends `req` and returns its answer; an `error` answer becomes [`CtlError::Refused`].
    pub fn request(&mut self, req: &Request) -> Result<Response, CtlError> {
        let mut line = serde_json::to_vec(req).expect("admin requests always serialize");
        line.push(b'\n');
        if let Err(e) = self.reader.get_mut().write_all(&line) {
            // The daemon may have answered (a refusal, say) and closed before reading us:
            // its answer says more than our failed write.
            return match self.next_line() {
                Ok(Some(Response::Error { code, message })) => {
                    Err(CtlError::Refused { code, message })
                }
                _ => Err(unreachable(&self.path, &e)),
            };
        }
        self.next()
    }

    /// The next line from the daemon (for `watch`, after [`Conn::request`]); `None` when the
    /// daemon closed the connection.
    pub fn next_line(&mut self) -> Result<Option<Response>, CtlError> {
        match self.next_raw()? {
            Some(line) => parse(&self.path, &line).map(Some),
            None => Ok(None),
        }
    }

    /// [`Conn::next_line`] before parsing, for a caller that can make sense of lines this
    /// version does not know.
    pub fn next_raw(&mut self) -> Result<Option<String>, CtlError> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => Ok(None),
            Ok(_) => Ok(Some(line)),
            Err(e) => Err(unreachable(&self.path, &e)),
        }
    }

    /// Lets [`Conn::next_line`] wait for events as long as it takes.
    pub fn wait_forever(&mut self) -> Result<(), CtlError> {
        self.reader
            .get_ref()
            .set_read_timeout(None)
            .map_err(|e| unreachable(&self.path, &e))
    }

    fn next(&mut self) -> Result<Response, CtlError> {
        match self.next_line()? {
            Some(Response::Error { code, message }) => Err(CtlError::Refused { code, message }),
            Some(r) => Ok(r),
            None => Err(CtlError::Unreachable {
                path: self.path.clone(),
                why: "chatd closed the connection without answering".into(),
            }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

pub fn parse(path: &Path, line: &str) -> Result<Response, CtlError> {
    serde_json::from_str(line).map_err(|e| CtlError::Unreachable {
        path: path.to_owned(),
        why: format!(
            "the answer is not an admin reply ({e}): {:?} — is this chatd's admin socket?",
            line.trim_end()
        ),
    })
}

/// Names the reason a connection failed the way an admin would say it, with the next step.
fn unreachable(path: &Path, e: &io::Error) -> CtlError {
    let why = match e.kind() {
        io::ErrorKind::NotFound => "no such file — is chatd running?".to_owned(),
        io::ErrorKind::PermissionDenied => "permission denied — only root, chatd's user and members of its group may use the admin socket".to_owned(),
        io::ErrorKind::ConnectionRefused => "connection refused — nothing listens there (a stale socket?); is chatd running?".to_owned(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => format!(
            "no answer within {}s — chatd is stuck, or this is not its socket",
            ANSWER_TIMEOUT.as_secs()
        ),
        io::ErrorKind::NotADirectory => "a component of the path is not a directory".to_owned(),
        _ => e.to_string(),
    };
    CtlError::Unreachable {
        path: path.to_owned(),
        why,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_connect_failure_says_why_and_exits_3() {
        let dir = std::env::temp_dir().join(format!("chatctl-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.sock");
        let e = Conn::connect(&missing).err().unwrap();
        assert_eq!(e.exit_code(), EXIT_UNREACHABLE);
        assert_eq!(
            e.to_string(),
            format!(
                "cannot reach chatd at {}: no such file — is chatd running?",
                missing.display()
            )
        );
        let stale = dir.join("stale.sock");
        let _ = std::fs::remove_file(&stale);
        drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
        let e = Conn::connect(&stale).err().unwrap();
        assert!(
            e.to_string().ends_with(
                "connection refused — nothing listens there (a stale socket?); is chatd running?"
            ),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refusals_exit_1_and_a_missing_path_exits_2() {
        let e = CtlError::Refused {
            code: AdminError::UnknownUser,
            message: "x".into(),
        };
        assert_eq!(e.exit_code(), EXIT_REFUSED);
        assert_eq!(CtlError::NoPath.exit_code(), EXIT_USAGE);
    }
}
