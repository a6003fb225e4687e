//! Logging: tracing to stderr, or to files in `log_dir` capped by day and by size
//! ([`files`]), rebuilt on reload.
//!
//! The whole formatting layer (filter, writer, timestamps) sits behind one
//! `tracing_subscriber::reload` handle, so a SIGHUP can change the level, move output between
//! stderr and files, or turn our timestamps off (journald adds its own) without a restart.
//!
//! The log never blocks the relay. Every line, to stderr as to files, goes through
//! tracing-appender's non-blocking writer in lossy mode: a session only puts the line in a
//! bounded queue ([`QUEUE_LINES`]), and one thread writes it out. When the reader is slower
//! than chatd logs (a journal that falls behind, a pipe nobody reads, a slow disk), the
//! queue fills and further lines are dropped and counted, where a synchronous write to
//! stderr used to stall every worker of the runtime. A thread of ours logs how many were
//! dropped, at most once every [`DROPS_REPORTED_EVERY`], as soon as its line gets through.
//!
//! The writer's thread starts here, so [`init`] must run after any daemon fork; the
//! [`Logging`] value owns the thread's guard, whose drop flushes what is still queued, so
//! `main` keeps it until the very end. That flush is bounded (see [`Logging`]'s `Drop`): a
//! reader that never reads cannot hold up the exit either.

pub mod files;

use crate::config::Config;
use files::LogFiles;
use std::io::{self, IsTerminal};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::warn;
use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

pub use files::{LOG_FILE_PREFIX, LOG_FILE_SUFFIX};

/// Lines waiting for the writer's thread before more are dropped: a few megabytes at most
/// (a line is one or two hundred bytes), and enough for any burst chatd makes at its
/// normal pace (a login storm of thousands).
pub const QUEUE_LINES: usize = 16_384;

/// How often the count of dropped lines may be logged.
pub const DROPS_REPORTED_EVERY: Duration = Duration::from_secs(1);

/// How long the exit waits for the writer to flush what is queued.
const FLUSH_AT_EXIT: Duration = Duration::from_secs(2);

/// The subscriber the output layer sits on: the registry under the reloadable filter.
type Filtered = tracing_subscriber::layer::Layered<reload::Layer<EnvFilter, Registry>, Registry>;
type Boxed = Box<dyn Layer<Filtered> + Send + Sync>;

/// The installed logger; dropping it flushes what is queued (for [`FLUSH_AT_EXIT`] at most).
pub struct Logging {
    // Two handles, not one filtered layer: a per-layer filter swapped in by reload is never
    // registered with the subscriber (tracing-subscriber panics on it in debug builds).
    filter: reload::Handle<EnvFilter, Registry>,
    output: reload::Handle<Boxed, Filtered>,
    /// The settings the current layer was built from, to rebuild only on a change, and the
    /// guard of its writer's thread.
    built: Mutex<(Settings, Option<WorkerGuard>)>,
    /// The current writer's count of dropped lines, shared with the thread that reports it.
    drops: Arc<Mutex<Drops>>,
    /// Dropped to stop that thread.
    _stop_reports: mpsc::Sender<()>,
}

/// Lines a writer dropped, and how many of them were reported already.
struct Drops {
    counter: ErrorCounter,
    reported: usize,
}

impl Drops {
    /// The dropped lines not reported yet, counted as reported from now on.
    fn take(&mut self) -> usize {
        let now = self.counter.dropped_lines();
        let new = now.saturating_sub(self.reported);
        self.reported = now;
        new
    }
}

/// The part of the config that shapes logging.
#[derive(Debug, Clone, PartialEq)]
struct Settings {
    level: Option<String>,
    dir: Option<std::path::PathBuf>,
    timestamps: bool,
    max_files: usize,
    max_bytes: u64,
}

impl Settings {
    fn of(c: &Config) -> Settings {
        Settings {
            level: c.log_level.clone(),
            dir: c.log_dir.clone(),
            timestamps: c.log_timestamps,
            max_files: c.log_max_files,
            max_bytes: c.log_max_bytes,
        }
    }
}

/// Installs the global logger as `config` says.
pub fn init(config: &Config) -> Result<Logging, String> {
    let settings = Settings::of(config);
    let (filter, layer, guard, counter) = build(&settings)?;
    let (filter, filter_handle) = reload::Layer::new(filter);
    let (layer, output) = reload::Layer::new(layer);
    tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .try_init()
        .map_err(|e| format!("cannot install the logger: {e}"))?;
    let drops = Arc::new(Mutex::new(Drops {
        counter,
        reported: 0,
    }));
    let (stop_reports, stopped) = mpsc::channel();
    let reporting = drops.clone();
    std::thread::Builder::new()
        .name("log-drops".into())
        .spawn(move || report_drops(&reporting, &stopped))
        .map_err(|e| format!("cannot start the logger's thread: {e}"))?;
    Ok(Logging {
        filter: filter_handle,
        output,
        built: Mutex::new((settings, Some(guard))),
        drops,
        _stop_reports: stop_reports,
    })
}

/// Logs the lines dropped since the last report, every [`DROPS_REPORTED_EVERY`] while there
/// are some, until `stop`'s sender is dropped. The report goes through the same queue, so
/// while the reader is stuck it is dropped (and counted) too, and comes out once the reader
/// catches up.
fn report_drops(drops: &Mutex<Drops>, stop: &mpsc::Receiver<()>) {
    while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(DROPS_REPORTED_EVERY) {
        let dropped = drops.lock().unwrap_or_else(|p| p.into_inner()).take();
        if dropped > 0 {
            warn!(
                dropped,
                "log lines dropped: whatever reads the log (the journal, a pipe, the disk) is slower than chatd writes it"
            );
        }
    }
}

impl Logging {
    /// Applies the logging part of a reloaded config. Returns whether anything changed.
    pub fn apply(&self, config: &Config) -> Result<bool, String> {
        let settings = Settings::of(config);
        let mut built = self.built.lock().unwrap_or_else(|p| p.into_inner());
        if built.0 == settings {
            return Ok(false);
        }
        let (filter, layer, guard, counter) = build(&settings)?;
        self.output
            .reload(layer)
            .and_then(|()| self.filter.reload(filter))
            .map_err(|e| format!("cannot replace the logger: {e}"))?;
        let old = std::mem::replace(&mut *built, (settings, Some(guard)));
        // The old writer's last drops are reported on the new one.
        let unreported = {
            let mut drops = self.drops.lock().unwrap_or_else(|p| p.into_inner());
            let left = drops.take();
            *drops = Drops {
                counter,
                reported: 0,
            };
            left
        };
        if unreported > 0 {
            warn!(
                dropped = unreported,
                "log lines dropped before the reload: the old log's reader fell behind"
            );
        }
        // Flushes the old output in the background: its reader may be the slow one.
        flush_in_background(old.1);
        Ok(true)
    }
}

impl Drop for Logging {
    /// Flushes what is queued, waiting [`FLUSH_AT_EXIT`] at most: tracing-appender's guard
    /// waits a second or so itself, then prints to stdout, which may be as stuck as stderr.
    fn drop(&mut self) {
        let built = self.built.get_mut().unwrap_or_else(|p| p.into_inner());
        let guard = built.1.take();
        if let Some(done) = flush_in_background(guard) {
            let _ = done.recv_timeout(FLUSH_AT_EXIT);
        }
    }
}

/// Drops `guard` (flushing its writer) on a thread of its own; the receiver hears when it
/// is done.
fn flush_in_background(guard: Option<WorkerGuard>) -> Option<mpsc::Receiver<()>> {
    let guard = guard?;
    let (done, finished) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("log-flush".into())
        .spawn(move || {
            drop(guard);
            let _ = done.send(());
        });
    // No thread to spare: the guard was dropped on the way out of the closure, here.
    spawned.ok().map(|_| finished)
}

type Built = (EnvFilter, Boxed, WorkerGuard, ErrorCounter);

fn build(s: &Settings) -> Result<Built, String> {
    let filter = match &s.level {
        Some(l) => {
            EnvFilter::try_new(l).map_err(|e| format!("log_level: invalid filter {l:?}: {e}"))?
        }
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let queue = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(QUEUE_LINES)
        .thread_name("log-writer");
    let (nb, guard, ansi) = match &s.dir {
        Some(dir) => {
            let files = LogFiles::open(dir, s.max_bytes, s.max_files).map_err(|e| {
                format!(
                    "log_dir: cannot write log files in {}: {e}; create it writable by chatd's user",
                    dir.display()
                )
            })?;
            let (nb, guard) = queue.finish(files);
            (nb, guard, false)
        }
        None => {
            let (nb, guard) = queue.finish(io::stderr());
            (nb, guard, io::stderr().is_terminal())
        }
    };
    let counter = nb.error_counter();
    let writer = BoxMakeWriter::new(nb);
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_target(false)
        .with_ansi(ansi);
    // journald stamps every line itself; ours would only double them.
    let stamp = s.timestamps && (s.dir.is_some() || !stderr_is_journal());
    let layer: Boxed = if stamp {
        fmt.boxed()
    } else {
        fmt.without_time().boxed()
    };
    Ok((filter, layer, guard, counter))
}

/// Whether stderr is the journal's stream: systemd sets `JOURNAL_STREAM` to its
/// `device:inode`, and only a match counts (a child of the service may have its own stderr).
fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(v) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    v.to_str() == Some(&format!("{}:{}", meta.dev(), meta.ino()))
}
