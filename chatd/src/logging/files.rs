//! Log files in `log_dir`, capped by day and by size: a new file each day (UTC), and another
//! whenever the current one would grow past `log_max_bytes`; at most `log_max_files` are kept,
//! the oldest removed first. So a flood of log lines can use at most `log_max_files *
//! log_max_bytes` of the disk, however fast it comes.
//!
//! Names sort by age within their kind: `chatd.2026-12-01.log` is a day's first file,
//! `chatd.2026-12-01.1.log`, `chatd.2026-12-01.2.log`, … the ones its size cap opened. A
//! restart goes on appending to the day's last file while it has room.
//!
//! tracing-appender's `RollingFileAppender` rotates by time only, so this replaces it (its
//! non-blocking writer still runs in front, so the disk is only ever written by the log
//! thread). A file is cut between writes, and each write is one log line, so a file holds at
//! most `log_max_bytes` unless it holds a single line longer than that.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Log files are `chatd.YYYY-MM-DD[.N].log`.
pub const LOG_FILE_PREFIX: &str = "chatd";
pub const LOG_FILE_SUFFIX: &str = "log";

/// Which file of which day: the order of the names is the order of their age.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Name {
    /// Days since 1970-01-01, UTC.
    day: i64,
    /// 0 for the day's first file, then one more for each the size cap opened.
    seq: u32,
}

impl Name {
    fn file_name(self) -> String {
        let (y, m, d) = civil_from_days(self.day);
        match self.seq {
            0 => format!("{LOG_FILE_PREFIX}.{y:04}-{m:02}-{d:02}.{LOG_FILE_SUFFIX}"),
            n => format!("{LOG_FILE_PREFIX}.{y:04}-{m:02}-{d:02}.{n}.{LOG_FILE_SUFFIX}"),
        }
    }

    /// The name of one of our files, or `None` for any other file.
    fn parse(file_name: &str) -> Option<Name> {
        let rest = file_name
            .strip_prefix(LOG_FILE_PREFIX)?
            .strip_prefix('.')?
            .strip_suffix(LOG_FILE_SUFFIX)?
            .strip_suffix('.')?;
        let (date, seq) = match rest.split_once('.') {
            Some((date, seq)) if !seq.starts_with('0') => (date, seq.parse().ok()?),
            Some(_) => return None,
            None => (rest, 0),
        };
        let mut parts = date.split('-');
        let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || y.len() != 4 || m.len() != 2 || d.len() != 2 {
            return None;
        }
        let (y, m, d) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
        let day = days_from_civil(y, m, d);
        // Rejects 2026-02-31 and the like, which would not round-trip.
        (civil_from_days(day) == (y, m, d)).then_some(Name { day, seq })
    }
}

/// Today, in days since the epoch (UTC).
fn today() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() / 86_400) as i64,
        // A clock before 1970: count backwards, as the calendar does.
        Err(e) => -((e.duration().as_secs() / 86_400) as i64) - 1,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The file being written.
struct Current {
    name: Name,
    file: File,
    /// Its length: what was there when it was opened and what we wrote since.
    len: u64,
}

/// The writer behind the log thread when `log_dir` is set.
pub struct LogFiles {
    dir: PathBuf,
    max_bytes: u64,
    /// 0 keeps every file.
    max_files: usize,
    /// `None` until the first write after opening failed; the next write tries again.
    current: Option<Current>,
}

impl LogFiles {
    /// Creates `dir` if need be and opens today's file, so that an unusable directory is an
    /// error now (at start, or refusing a reload) rather than lines lost later.
    pub fn open(dir: &Path, max_bytes: u64, max_files: usize) -> io::Result<LogFiles> {
        fs::create_dir_all(dir)?;
        let mut files = LogFiles {
            dir: dir.to_owned(),
            max_bytes,
            max_files,
            current: None,
        };
        files.open_for(today(), 0)?;
        Ok(files)
    }

    /// Opens the newest file of `day` that can take `incoming` more bytes, or the next one,
    /// then removes the oldest files beyond `max_files`.
    fn open_for(&mut self, day: i64, incoming: u64) -> io::Result<()> {
        self.current = None;
        let newest = self.ours()?.into_iter().filter(|n| n.day == day).max();
        let mut name = newest.unwrap_or(Name { day, seq: 0 });
        loop {
            let path = self.dir.join(name.file_name());
            let len = fs::metadata(&path).map_or(0, |m| m.len());
            if len == 0 || len.saturating_add(incoming) <= self.max_bytes {
                let file = OpenOptions::new().create(true).append(true).open(&path)?;
                self.current = Some(Current { name, file, len });
                break;
            }
            name.seq += 1;
        }
        self.prune(name)
    }

    /// Every file in the directory that is one of ours.
    fn ours(&self) -> io::Result<Vec<Name>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            if let Some(name) = entry.file_name().to_str().and_then(Name::parse) {
                names.push(name);
            }
        }
        Ok(names)
    }

    /// Removes the oldest of our files until `max_files` are left, never `current`.
    fn prune(&self, current: Name) -> io::Result<()> {
        if self.max_files == 0 {
            return Ok(());
        }
        let mut names = self.ours()?;
        names.sort();
        let extra = names.len().saturating_sub(self.max_files);
        for name in names.into_iter().filter(|n| *n != current).take(extra) {
            match fs::remove_file(self.dir.join(name.file_name())) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }
}

impl Write for LogFiles {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let incoming = buf.len() as u64;
        let day = today();
        let roll = match &self.current {
            None => true,
            Some(c) => {
                c.name.day != day || (c.len > 0 && c.len.saturating_add(incoming) > self.max_bytes)
            }
        };
        if roll {
            self.open_for(day, incoming)?;
        }
        let Some(c) = self.current.as_mut() else {
            // open_for either set it or returned the error.
            return Err(io::Error::other("no log file open"));
        };
        c.file.write_all(buf)?;
        c.len += incoming;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.current {
            Some(c) => c.file.flush(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn dates_round_trip_through_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2020, 1, 2), 18_263);
        assert_eq!(civil_from_days(18_263), (2020, 1, 2));
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        for day in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
    }

    #[test]
    fn names_parse_back_and_sort_by_age() {
        let day = days_from_civil(2026, 12, 1);
        let first = Name { day, seq: 0 };
        let third = Name { day, seq: 2 };
        assert_eq!(first.file_name(), "chatd.2026-12-01.log");
        assert_eq!(third.file_name(), "chatd.2026-12-01.2.log");
        assert_eq!(Name::parse("chatd.2026-12-01.log"), Some(first));
        assert_eq!(Name::parse("chatd.2026-12-01.2.log"), Some(third));
        let next_day = Name::parse("chatd.2026-12-02.log").unwrap();
        assert!(first < third && third < next_day);
        for other in [
            "chatd.2026-02-31.log",
            "chatd.2026-12-01.02.log",
            "chatd.2026-12-01.x.log",
            "chatd.26-12-01.log",
            "other.2026-12-01.log",
            "chatd.2026-12-01.log.gz",
        ] {
            assert_eq!(Name::parse(other), None, "{other}");
        }
    }

    #[test]
    fn a_file_is_cut_before_it_would_pass_the_cap_and_the_oldest_go() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("chatd.2019-12-01.log");
        fs::write(&old, "old\n").unwrap();
        fs::write(dir.path().join("notes.txt"), "not ours\n").unwrap();
        let mut files = LogFiles::open(dir.path(), 100, 3).unwrap();
        let line = [b'x'; 39];
        for _ in 0..7 {
            files.write_all(&line).unwrap();
        }
        // 39 + 39 fit in 100, a third would not: files of two lines, the last of one.
        let today = Name {
            day: today(),
            seq: 0,
        };
        let day = &today.file_name()[..16];
        let expected = [
            format!("{day}.1.log"),
            format!("{day}.2.log"),
            format!("{day}.3.log"),
            "notes.txt".to_owned(),
        ];
        assert_eq!(names(dir.path()), expected);
        let len = |n: &str| fs::metadata(dir.path().join(n)).unwrap().len();
        assert_eq!(
            (len(&expected[0]), len(&expected[1]), len(&expected[2])),
            (78, 78, 39)
        );
        // A line longer than the cap gets a file of its own.
        files.write_all(&[b'y'; 150]).unwrap();
        assert_eq!(len(&format!("{day}.4.log")), 150);
        files.write_all(b"z\n").unwrap();
        assert_eq!(len(&format!("{day}.5.log")), 2);
    }

    #[test]
    fn a_restart_appends_to_the_days_last_file_while_it_has_room() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = LogFiles::open(dir.path(), 100, 0).unwrap();
        files.write_all(&[b'a'; 60]).unwrap();
        drop(files);
        let mut files = LogFiles::open(dir.path(), 100, 0).unwrap();
        files.write_all(&[b'b'; 30]).unwrap();
        files.write_all(&[b'c'; 30]).unwrap();
        let day = Name {
            day: today(),
            seq: 0,
        };
        let first = fs::read(dir.path().join(day.file_name())).unwrap();
        assert_eq!(first.len(), 90);
        assert_eq!(names(dir.path()).len(), 2, "{:?}", names(dir.path()));
    }
}
