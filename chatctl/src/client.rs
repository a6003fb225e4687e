//! Talking to chatd's admin socket: find the path, connect, one request and its answer, or a
//! stream of events for `watch`.
//!
//! Plain blocking std I/O: one request and one answer need no runtime. Every failure is a
//! [`CtlError`] that names the socket path and the reason, and maps to a documented exit code
//! kept apart from "the daemon said no".
//!
//! chatctl does not trust what answers on the socket (it may be a wedged chatd, or not chatd
//! at all): a line is read through `proto`'s capped decoder, so no line costs more than
//! [`MAX_LINE_BYTES`] of memory, and one deadline, [`ANSWER_TIMEOUT`], bounds the whole
//! exchange from `connect` to the end of the answer, so an answer that trickles in a byte at a
//! time ends like one that never comes. Only `watch`, a stream, waits without a deadline once
//! chatd has answered `watching`.

use crate::cli::{EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_USAGE};
use proto::admin::{
    AdminError, DefaultPathFacts, Request, Response, SOCKET_FILE, SYSTEM_SOCKET_DIR,
    default_socket_path,
};
use proto::codec::{Frame, LineDecoder};
use std::collections::VecDeque;
use std::io::{self, Read as _, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a whole exchange may take: connecting, sending the request and reading all of its
/// answer. The daemon answers from memory, so anything close to this means it is stuck.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest line chatctl reads from the daemon, in bytes. The longest honest line is the
/// answer to `users`: at most about 330 bytes a session (a 32-character name, an IPv6 peer,
/// every counter at 20 digits), so this holds some 50 000 sessions, five times chatd's default
/// `max_clients`.
pub const MAX_LINE_BYTES: usize = 16 << 20;

/// Bytes read from the socket at a time.
const CHUNK: usize = 64 * 1024;

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

/// One line from the daemon, before parsing.
pub enum RawLine {
    Line(String),
    /// A line longer than [`MAX_LINE_BYTES`], skipped without being stored.
    TooLong,
}

/// An open admin connection.
pub struct Conn {
    path: PathBuf,
    stream: UnixStream,
    decoder: LineDecoder,
    /// Lines decoded and not handed out yet.
    ready: VecDeque<RawLine>,
    /// The daemon closed its side.
    eof: bool,
    /// When the exchange must be over; `None` while watching.
    deadline: Option<Instant>,
}

impl Conn {
    /// Connects to `path`; the exchange's deadline starts now.
    pub fn connect(path: &Path) -> Result<Conn, CtlError> {
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        let stream = connect_by(path, deadline)?;
        Ok(Conn {
            path: path.to_owned(),
            stream,
            decoder: LineDecoder::new(MAX_LINE_BYTES),
            ready: VecDeque::new(),
            eof: false,
            deadline: Some(deadline),
        })
    }

    /// Sends `req` and returns its answer; an `error` answer becomes [`CtlError::Refused`].
    pub fn request(&mut self, req: &Request) -> Result<Response, CtlError> {
        let mut line = serde_json::to_vec(req).expect("admin requests always serialize");
        line.push(b'\n');
        let written = self
            .time_left()
            .and_then(|left| self.stream.set_write_timeout(left))
            .and_then(|()| self.stream.write_all(&line));
        if let Err(e) = written {
            // The daemon may have answered (a refusal, say) and closed before reading us:
            // its answer says more than our failed write.
            return match self.next_line() {
                Ok(Some(Response::Error { code, message })) => Err(refused(code, &message)),
                _ => Err(unreachable(&self.path, &e)),
            };
        }
        self.next()
    }

    /// The next line from the daemon (for `watch`, after [`Conn::request`]); `None` when the
    /// daemon closed the connection.
    pub fn next_line(&mut self) -> Result<Option<Response>, CtlError> {
        match self.next_raw()? {
            Some(RawLine::Line(line)) => parse(&self.path, &line).map(Some),
            Some(RawLine::TooLong) => Err(too_long(&self.path)),
            None => Ok(None),
        }
    }

    /// [`Conn::next_line`] before parsing, for a caller that can make sense of lines this
    /// version does not know or skip a line over the limit.
    pub fn next_raw(&mut self) -> Result<Option<RawLine>, CtlError> {
        let mut chunk = vec![0u8; CHUNK];
        loop {
            if let Some(line) = self.ready.pop_front() {
                return Ok(Some(line));
            }
            if self.eof {
                return Ok(None);
            }
            let read = self
                .time_left()
                .and_then(|left| self.stream.set_read_timeout(left))
                .and_then(|()| self.stream.read(&mut chunk));
            match read {
                Ok(0) => {
                    self.eof = true;
                    // A last line without its newline is still a line.
                    if !self.decoder.at_boundary() {
                        self.decode(b"\n");
                    }
                }
                Ok(n) => self.decode(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(unreachable(&self.path, &e)),
            }
        }
    }

    /// Lets [`Conn::next_line`] wait for events as long as it takes: the exchange is over.
    pub fn wait_forever(&mut self) {
        self.deadline = None;
    }

    fn decode(&mut self, bytes: &[u8]) {
        let ready = &mut self.ready;
        self.decoder.feed(bytes, |frame| match frame {
            Frame::Line(l) if l.iter().all(u8::is_ascii_whitespace) => {}
            Frame::Line(l) => {
                ready.push_back(RawLine::Line(String::from_utf8_lossy(l).into_owned()))
            }
            Frame::TooLong => ready.push_back(RawLine::TooLong),
        });
    }

    /// What is left of the deadline (`None`: no deadline), or `TimedOut` once it has passed.
    fn time_left(&self) -> io::Result<Option<Duration>> {
        let Some(deadline) = self.deadline else {
            return Ok(None);
        };
        match deadline.checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => Ok(Some(left)),
            _ => Err(io::ErrorKind::TimedOut.into()),
        }
    }

    fn next(&mut self) -> Result<Response, CtlError> {
        match self.next_line()? {
            Some(Response::Error { code, message }) => Err(refused(code, &message)),
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

/// `connect(2)` on a Unix socket waits for as long as the listener's queue of connections
/// not yet accepted is full (a chatd whose accept loop is stuck, after enough health checks):
/// it runs on a thread of its own so that the deadline can leave it behind. The thread ends
/// with the process.
fn connect_by(path: &Path, deadline: Instant) -> Result<UnixStream, CtlError> {
    let (tx, rx) = std::sync::mpsc::channel();
    let target = path.to_owned();
    std::thread::Builder::new()
        .name("connect".into())
        .spawn(move || drop(tx.send(UnixStream::connect(target))))
        .map_err(|e| unreachable(path, &e))?;
    match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(unreachable(path, &e)),
        Err(_) => Err(CtlError::Unreachable {
            path: path.to_owned(),
            why: format!(
                "the connection was not accepted within {}s — chatd is stuck, or this is not its socket",
                ANSWER_TIMEOUT.as_secs()
            ),
        }),
    }
}

fn too_long(path: &Path) -> CtlError {
    CtlError::Unreachable {
        path: path.to_owned(),
        why: format!(
            "it sent a line longer than {} MiB, the most chatctl reads in one line — is this chatd's admin socket?",
            MAX_LINE_BYTES >> 20
        ),
    }
}

pub fn parse(path: &Path, line: &str) -> Result<Response, CtlError> {
    serde_json::from_str(line).map_err(|e| CtlError::Unreachable {
        path: path.to_owned(),
        why: format!(
            "the answer is not an admin reply ({}): {:?} — is this chatd's admin socket?",
            excerpt(&e.to_string()),
            excerpt(line.trim_end())
        ),
    })
}

/// The daemon said no; its words are cut to a sensible length.
fn refused(code: AdminError, message: &str) -> CtlError {
    CtlError::Refused {
        code,
        message: excerpt(message).into_owned(),
    }
}

/// Most characters of the daemon's text that go into an error message: an answer of 16 MiB
/// must not become 16 MiB of stderr.
const EXCERPT_CHARS: usize = 400;

/// At most [`EXCERPT_CHARS`] characters of `s`, with `…` where it was cut.
fn excerpt(s: &str) -> std::borrow::Cow<'_, str> {
    match s.char_indices().nth(EXCERPT_CHARS) {
        None => s.into(),
        Some((cut, _)) => format!("{}… ({} bytes in all)", &s[..cut], s.len()).into(),
    }
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

    #[test]
    fn the_daemons_text_in_an_error_is_cut_short() {
        assert_eq!(excerpt("short"), "short");
        let long = "é".repeat(1000);
        let cut = excerpt(&long);
        assert_eq!(
            cut,
            format!("{}… (2000 bytes in all)", "é".repeat(EXCERPT_CHARS))
        );
        let e = parse(
            Path::new("/s"),
            &format!("{{\"type\":\"{}\"}}", "x".repeat(100_000)),
        );
        assert!(e.unwrap_err().to_string().len() < 2 * EXCERPT_CHARS + 200);
    }
}
