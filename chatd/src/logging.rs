//! Logging: tracing to stderr, or to daily-rotated files in `log_dir`, rebuilt on reload.
//!
//! The whole formatting layer (filter, writer, timestamps) sits behind one
//! `tracing_subscriber::reload` handle, so a SIGHUP can change the level, move output between
//! stderr and files, or turn our timestamps off (journald adds its own) without a restart.
//! Files go through tracing-appender's non-blocking writer: a slow disk never stalls a
//! session. Its worker thread starts here, so [`init`] must run after any daemon fork; the
//! [`Logging`] value owns the worker's guard, whose drop flushes what is still buffered, so
//! `main` keeps it until the very end.

use crate::config::Config;
use std::io::{self, IsTerminal};
use std::path::Path;
use std::sync::Mutex;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

/// Log files are `chatd.YYYY-MM-DD.log`.
pub const LOG_FILE_PREFIX: &str = "chatd";
pub const LOG_FILE_SUFFIX: &str = "log";

/// The subscriber the output layer sits on: the registry under the reloadable filter.
type Filtered = tracing_subscriber::layer::Layered<reload::Layer<EnvFilter, Registry>, Registry>;
type Boxed = Box<dyn Layer<Filtered> + Send + Sync>;

/// The installed logger; dropping it flushes the log files.
pub struct Logging {
    // Two handles, not one filtered layer: a per-layer filter swapped in by reload is never
    // registered with the subscriber (tracing-subscriber panics on it in debug builds).
    filter: reload::Handle<EnvFilter, Registry>,
    output: reload::Handle<Boxed, Filtered>,
    /// The settings the current layer was built from, to rebuild only on a change.
    built: Mutex<(Settings, Option<WorkerGuard>)>,
}

/// The part of the config that shapes logging.
#[derive(Debug, Clone, PartialEq)]
struct Settings {
    level: Option<String>,
    dir: Option<std::path::PathBuf>,
    timestamps: bool,
    max_files: usize,
}

impl Settings {
    fn of(c: &Config) -> Settings {
        Settings {
            level: c.log_level.clone(),
            dir: c.log_dir.clone(),
            timestamps: c.log_timestamps,
            max_files: c.log_max_files,
        }
    }
}

/// Installs the global logger as `config` says.
pub fn init(config: &Config) -> Result<Logging, String> {
    let settings = Settings::of(config);
    let (filter, layer, guard) = build(&settings)?;
    let (filter, filter_handle) = reload::Layer::new(filter);
    let (layer, output) = reload::Layer::new(layer);
    tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .try_init()
        .map_err(|e| format!("cannot install the logger: {e}"))?;
    Ok(Logging {
        filter: filter_handle,
        output,
        built: Mutex::new((settings, guard)),
    })
}

impl Logging {
    /// Applies the logging part of a reloaded config. Returns whether anything changed.
    pub fn apply(&self, config: &Config) -> Result<bool, String> {
        let settings = Settings::of(config);
        let mut built = self.built.lock().unwrap_or_else(|p| p.into_inner());
        if built.0 == settings {
            return Ok(false);
        }
        let (filter, layer, guard) = build(&settings)?;
        self.output
            .reload(layer)
            .and_then(|()| self.filter.reload(filter))
            .map_err(|e| format!("cannot replace the logger: {e}"))?;
        // Dropping the old guard flushes the old file before it is forgotten.
        *built = (settings, guard);
        Ok(true)
    }
}

fn build(s: &Settings) -> Result<(EnvFilter, Boxed, Option<WorkerGuard>), String> {
    let filter = match &s.level {
        Some(l) => {
            EnvFilter::try_new(l).map_err(|e| format!("log_level: invalid filter {l:?}: {e}"))?
        }
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let (writer, guard, ansi) = match &s.dir {
        Some(dir) => {
            let (nb, guard) = tracing_appender::non_blocking(appender(dir, s.max_files)?);
            (BoxMakeWriter::new(nb), Some(guard), false)
        }
        None => (
            BoxMakeWriter::new(io::stderr),
            None,
            io::stderr().is_terminal(),
        ),
    };
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
    Ok((filter, layer, guard))
}

fn appender(dir: &Path, max_files: usize) -> Result<RollingFileAppender, String> {
    let mut b = RollingFileAppender::builder()
        .rotation(Rotation::DAILY)
        .filename_prefix(LOG_FILE_PREFIX)
        .filename_suffix(LOG_FILE_SUFFIX);
    if max_files > 0 {
        b = b.max_log_files(max_files);
    }
    b.build(dir).map_err(|e| {
        format!(
            "log_dir: cannot write log files in {}: {e}; create it writable by chatd's user",
            dir.display()
        )
    })
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
