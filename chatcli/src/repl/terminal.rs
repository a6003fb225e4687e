//! The terminal under rustyline: a pseudo-terminal between the user's terminal and the
//! editor, so that bursts of typed-in text reach rustyline as bracketed pastes (see
//! [`super::paste`] for why), and the terminal's settings are put back however the REPL ends.
//!
//! rustyline reads standard input, so [`TerminalGuard::take_over`] makes descriptor 0 the
//! slave side of a new pty, kept in raw mode (no echo, no line editing), and puts the real
//! terminal in raw mode too, with the flags rustyline itself uses. A thread reads the real
//! terminal and writes what it read, rewritten by [`Bracketer`], to the pty's master side;
//! after a read that ends in a burst of plain text it waits [`GATHER`] for more, so that a
//! paste the kernel hands over in pieces is still one paste. Output does not go through the pty:
//! descriptor 1 is still the terminal, for rustyline (which takes the window size from it)
//! and for everything printed. When no pty can be had, nothing is changed and pasting is only
//! slower.
//!
//! The real terminal stays raw for the whole session, so Ctrl-C between two prompts is a key
//! for the next prompt rather than a signal. A stop (Ctrl-Z, which rustyline turns into
//! SIGTSTP, or `kill -TSTP`) puts the saved settings back first and raw mode again once
//! continued; dropping the guard puts them back for good.

use super::paste::Bracketer;
use std::io;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long the reader waits for more of a burst before passing on what it has.
pub const GATHER: Duration = Duration::from_millis(10);

/// Plain text held after a read from which on the reader waits for more: a read that brings
/// this much at once is no typist's, so a single key is never delayed.
const BURST: usize = 16;

/// Turns bracketed paste off, for when the process ends while rustyline has it on.
const BRACKETED_PASTE_OFF: &[u8] = b"\x1b[?2004l";

/// The terminal's descriptor and its settings, for the stop handler.
struct Modes {
    fd: RawFd,
    saved: libc::termios,
    raw: libc::termios,
}

static MODES: OnceLock<Modes> = OnceLock::new();

/// The stop handler may touch the terminal: the guard is alive and its descriptor open.
static ARMED: AtomicBool = AtomicBool::new(false);

/// Puts the terminal's settings back when dropped.
pub struct TerminalGuard {
    /// The user's terminal: standard input as it was (a copy of it when the pty took its
    /// place), kept open as long as the guard lives.
    terminal: Option<OwnedFd>,
    /// Its settings before chatcli.
    saved: Option<libc::termios>,
}

impl TerminalGuard {
    /// Puts the pty in front of rustyline if it can; in any case remembers the settings to
    /// put back.
    pub fn take_over() -> TerminalGuard {
        let saved = get_attr(libc::STDIN_FILENO);
        let interposed = saved.map(|saved| (saved, interpose()));
        let Some((saved, Ok((real, reader, master)))) = interposed else {
            return TerminalGuard {
                terminal: None,
                saved,
            };
        };
        if spawn_reader(reader, master).is_err() {
            // Nobody would feed the pty: the terminal goes back in its place.
            // SAFETY: dup2 onto descriptor 0 from a descriptor we own.
            unsafe { libc::dup2(real.as_raw_fd(), libc::STDIN_FILENO) };
            return TerminalGuard {
                terminal: None,
                saved: Some(saved),
            };
        }
        let raw = raw_mode(&saved);
        let fd = real.as_raw_fd();
        if set_attr(fd, &raw) && MODES.set(Modes { fd, saved, raw }).is_ok() {
            ARMED.store(true, Ordering::SeqCst);
            install_stop_handler();
        }
        TerminalGuard {
            terminal: Some(real),
            saved: Some(saved),
        }
    }

    fn fd(&self) -> RawFd {
        self.terminal
            .as_ref()
            .map_or(libc::STDIN_FILENO, |t| t.as_raw_fd())
    }

    /// Puts the settings back now, and bracketed paste off: the process is ending while
    /// rustyline's thread may still be inside `readline`.
    pub fn restore(&self) {
        if let Some(saved) = &self.saved {
            set_attr(self.fd(), saved);
        }
        // SAFETY: a write of a constant buffer to standard output.
        unsafe {
            libc::write(
                libc::STDOUT_FILENO,
                BRACKETED_PASTE_OFF.as_ptr().cast(),
                BRACKETED_PASTE_OFF.len(),
            )
        };
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        ARMED.store(false, Ordering::SeqCst);
        if let Some(saved) = &self.saved {
            set_attr(self.fd(), saved);
        }
    }
}

/// Opens a pty, makes its slave side descriptor 0, and returns the real terminal (descriptor
/// 0 as it was), a second descriptor of it for the reader, and the master side.
fn interpose() -> io::Result<(OwnedFd, OwnedFd, OwnedFd)> {
    // SAFETY: each call is checked; every descriptor made here is owned by an OwnedFd at once
    // (or is descriptor 0, which dup2 replaces atomically), and the name buffer outlives the
    // calls that fill and read it.
    unsafe {
        let master = cvt(libc::posix_openpt(
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        ))?;
        let master = OwnedFd::from_raw_fd(master);
        cvt(libc::grantpt(master.as_raw_fd()))?;
        cvt(libc::unlockpt(master.as_raw_fd()))?;
        let mut name = [0 as libc::c_char; 128];
        let named = libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len());
        if named != 0 {
            return Err(io::Error::from_raw_os_error(named));
        }
        let slave = cvt(libc::open(
            name.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        ))?;
        let slave = OwnedFd::from_raw_fd(slave);
        let real = cvt(libc::fcntl(libc::STDIN_FILENO, libc::F_DUPFD_CLOEXEC, 3))?;
        let real = OwnedFd::from_raw_fd(real);
        let reader = real.try_clone()?;
        // The slave starts as rustyline will want it, and stays so between prompts: no echo
        // of keys typed ahead, no line discipline holding them back.
        let mut modes = get_attr(real.as_raw_fd()).ok_or_else(io::Error::last_os_error)?;
        modes = raw_mode(&modes);
        if !set_attr(slave.as_raw_fd(), &modes) {
            return Err(io::Error::last_os_error());
        }
        cvt(libc::dup2(slave.as_raw_fd(), libc::STDIN_FILENO))?;
        Ok((real, reader, master))
    }
}

/// Reads the real terminal for ever, rewriting bursts into bracketed pastes for rustyline.
/// Ends when either side ends (the terminal hung up, the process is exiting).
fn spawn_reader(real: OwnedFd, master: OwnedFd) -> io::Result<()> {
    let read_loop = move || {
        let mut bracketer = Bracketer::default();
        let mut buf = vec![0u8; 64 * 1024];
        let mut out = Vec::new();
        loop {
            let Some(n) = read(&real, &mut buf) else {
                return;
            };
            bracketer.feed(&buf[..n], &mut out);
            while bracketer.held() >= BURST && readable(&real, GATHER) {
                let Some(n) = read(&real, &mut buf) else {
                    break;
                };
                bracketer.feed(&buf[..n], &mut out);
            }
            bracketer.flush(&mut out);
            if !write_all(&master, &out) {
                return;
            }
            out.clear();
        }
    };
    std::thread::Builder::new()
        .name("keyboard".into())
        .spawn(read_loop)
        .map(drop)
}

/// rustyline's raw mode: no echo, no line editing, no signals from keys, 8-bit input.
fn raw_mode(t: &libc::termios) -> libc::termios {
    let mut raw = *t;
    raw.c_iflag &= !(libc::BRKINT | libc::ICRNL | libc::INPCK | libc::ISTRIP | libc::IXON);
    raw.c_cflag |= libc::CS8;
    raw.c_lflag &= !(libc::ECHO | libc::ICANON | libc::IEXTEN | libc::ISIG);
    raw.c_cc[libc::VMIN] = 1;
    raw.c_cc[libc::VTIME] = 0;
    raw
}

fn get_attr(fd: RawFd) -> Option<libc::termios> {
    // SAFETY: tcgetattr writes only into the termios we own; zeroed is a valid value.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    (unsafe { libc::tcgetattr(fd, &mut t) } == 0).then_some(t)
}

/// Async-signal-safe (tcsetattr is), so the stop handler uses it too.
fn set_attr(fd: RawFd, t: &libc::termios) -> bool {
    // SAFETY: passes settings for a terminal descriptor; it only reads them.
    unsafe { libc::tcsetattr(fd, libc::TCSADRAIN, t) == 0 }
}

/// Catches SIGTSTP (unless it is ignored, as for a job without job control) to put the
/// terminal's settings back before stopping and raw mode again after.
fn install_stop_handler() {
    // SAFETY: sigaction with a zeroed (valid) struct naming a handler that only makes
    // async-signal-safe calls.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGTSTP, std::ptr::null(), &mut old) != 0
            || old.sa_sigaction == libc::SIG_IGN
        {
            return;
        }
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = on_stop as *const () as libc::sighandler_t;
        // NODEFER: the SIGTSTP raised from inside the handler must stop us at once.
        act.sa_flags = libc::SA_RESTART | libc::SA_NODEFER;
        libc::sigemptyset(&mut act.sa_mask);
        libc::sigaction(libc::SIGTSTP, &act, std::ptr::null_mut());
    }
}

extern "C" fn on_stop(_: libc::c_int) {
    let modes = MODES.get().filter(|_| ARMED.load(Ordering::SeqCst));
    if let Some(m) = modes {
        set_attr(m.fd, &m.saved);
    }
    // SAFETY: sigaction and raise are async-signal-safe; the structs are ours.
    unsafe {
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        let mut ours: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGTSTP, &dfl, &mut ours);
        // Stops the process here; returns once it is continued.
        libc::raise(libc::SIGTSTP);
        libc::sigaction(libc::SIGTSTP, &ours, std::ptr::null_mut());
    }
    if let Some(m) = modes.filter(|_| ARMED.load(Ordering::SeqCst)) {
        set_attr(m.fd, &m.raw);
    }
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// One read; `None` at the end or on an error other than an interrupted call.
fn read(fd: &OwnedFd, buf: &mut [u8]) -> Option<usize> {
    loop {
        // SAFETY: reads into a buffer we own, at most its length.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        match n {
            n if n > 0 => return Some(n as usize),
            0 => return None,
            _ if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
            _ => return None,
        }
    }
}

fn write_all(fd: &OwnedFd, mut bytes: &[u8]) -> bool {
    while !bytes.is_empty() {
        // SAFETY: writes from a buffer we own, at most its length.
        let n = unsafe { libc::write(fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
        if n > 0 {
            bytes = &bytes[n as usize..];
        } else if n == 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return false;
        }
    }
    true
}

/// Waits up to `wait` for `fd` to have something to read.
fn readable(fd: &OwnedFd, wait: Duration) -> bool {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: polls one pollfd we own.
    let n = unsafe { libc::poll(&mut p, 1, wait.as_millis() as libc::c_int) };
    n > 0 && p.revents & libc::POLLIN != 0
}
