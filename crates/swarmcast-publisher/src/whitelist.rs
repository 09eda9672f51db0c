//! The hook for an external tracker that tracks only the torrents it is told of (Debian's
//! opentracker is built whitelist-only: `access.whitelist FILE`, re-read on SIGHUP).
//!
//! Before a segment is listed in a manifest, the publisher rewrites the whitelist file
//! atomically (a temporary file, fsync, rename) with the info hash of every segment it serves
//! (the window, the new one included, and those in their grace period), one 40-character
//! lowercase hex hash a line, then sends the tracker SIGHUP so it re-reads the file
//! (`publish --tracker-whitelist FILE --tracker-reload-pid PID | --tracker-reload-pidfile FILE`).
//! A failure to write or signal is logged and counted (`swarmcast_tracker_whitelist_failures_total`),
//! never fatal: the segment is still published, its viewers reach the publisher through the
//! manifest's peer hints and the HTTP fallback (docs/publish.md, "External trackers").

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use std::sync::{Arc, Mutex};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use swarmcast_core::InfoHash;

/// Which process re-reads the whitelist after each rewrite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    /// This process id (`--tracker-reload-pid`).
    Pid(i32),
    /// The process id in this file, read at each reload, so a tracker restarted under a new
    /// id is still found (`--tracker-reload-pidfile`).
    PidFile(PathBuf),
}

/// Where the whitelist goes, and whom to tell.
#[derive(Debug, Clone)]
pub struct WhitelistConfig {
    /// The whitelist file, rewritten atomically (its directory must be writable: the
    /// temporary file is made next to it).
    pub file: PathBuf,
    /// Sent SIGHUP after each rewrite (None: the file is only written).
    pub reload: Option<Reload>,
    /// The process signalled last: its id and its start time (`/proc/PID/stat`), so that an id
    /// reused by another process after the tracker ended is not sent SIGHUP (whose default
    /// action ends a process). Shared by the clones.
    signalled: Arc<Mutex<Option<(i32, u64)>>>,
}

/// Why the whitelist could not be updated; each names the file or process at fault.
#[derive(Debug, thiserror::Error)]
pub enum WhitelistError {
    /// The file could not be written.
    #[error("cannot write the tracker whitelist {path}: {source}")]
    Write {
        /// The whitelist file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The pid file could not be read or holds no process id.
    #[error("tracker pid file {path}: {reason}")]
    PidFile {
        /// The pid file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The process id now names another process than the tracker signalled before (the
    /// tracker ended and its id was reused).
    #[error("tracker process {pid} is gone: that id now names another process (started at {now} clock ticks after boot, the tracker at {then}); not signalled")]
    Reused {
        /// The process id.
        pid: i32,
        /// The start time of the process it named when it was first signalled.
        then: u64,
        /// The start time of the process it names now.
        now: u64,
    },
    /// The process could not be signalled (gone, or not ours to signal).
    #[error("cannot signal the tracker (process {pid}) to re-read its whitelist: {source}")]
    Signal {
        /// The process id.
        pid: i32,
        /// Why.
        #[source]
        source: nix::Error,
    },
}

/// The whitelist's text: each hash once, in the order given, as 40 lowercase hex characters
/// and a newline (opentracker's format).
pub fn render<'a>(hashes: impl IntoIterator<Item = &'a InfoHash>) -> String {
    let mut seen = std::collections::HashSet::new();
    let mut text = String::new();
    for h in hashes {
        if seen.insert(h.0) {
            for b in h.0 {
                let _ = write!(text, "{b:02x}");
            }
            text.push('\n');
        }
    }
    text
}

/// A process id given by the user: a positive number (0 and negative ids would signal process
/// groups, `kill(2)`), not this process.
pub fn parse_pid(text: &str) -> Result<i32, String> {
    let pid: i32 = text
        .trim()
        .parse()
        .map_err(|_| format!("{:?} is not a process id", text.trim()))?;
    if pid <= 0 {
        return Err(format!(
            "{pid} is not a process id (expected a positive number: 0 and negative ids name process groups)"
        ));
    }
    if pid as u32 == std::process::id() {
        return Err(format!("{pid} is this publisher's own process id"));
    }
    Ok(pid)
}

/// A process's start time, in clock ticks after boot (field 22 of `/proc/PID/stat`), which with
/// its id names it for good; `None` when it cannot be read (no such process, no `/proc`).
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`: comm may hold spaces and parentheses, so fields are counted
    // from the last `)`; the state is field 3, the start time field 22.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(22 - 3)?.parse().ok()
}

impl WhitelistConfig {
    /// The whitelist `file`, and the process to send SIGHUP after each rewrite.
    pub fn new(file: PathBuf, reload: Option<Reload>) -> Self {
        Self {
            file,
            reload,
            signalled: Arc::default(),
        }
    }

    /// Sends `signal` (None: only checks) to `pid`, unless the id now names another process
    /// than the one signalled before (a pid file may name a new tracker: a new id is taken).
    fn signal(&self, pid: i32, signal: Option<Signal>) -> Result<(), WhitelistError> {
        let now = start_time(pid);
        let mut last = self.signalled.lock().unwrap_or_else(|e| e.into_inner());
        if let (Some((old, then)), Some(now)) = (*last, now) {
            if old == pid && then != now {
                return Err(WhitelistError::Reused { pid, then, now });
            }
        }
        kill(Pid::from_raw(pid), signal)
            .map_err(|source| WhitelistError::Signal { pid, source })?;
        if let Some(now) = now {
            *last = Some((pid, now));
        }
        Ok(())
    }

    /// The process to signal now (a pid file is read each time).
    pub fn pid(&self) -> Result<Option<i32>, WhitelistError> {
        match &self.reload {
            None => Ok(None),
            Some(Reload::Pid(pid)) => Ok(Some(*pid)),
            Some(Reload::PidFile(path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| WhitelistError::PidFile {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                parse_pid(&text)
                    .map(Some)
                    .map_err(|reason| WhitelistError::PidFile {
                        path: path.clone(),
                        reason,
                    })
            }
        }
    }

    /// Checks at start-up that the process to signal exists and may be signalled (signal 0),
    /// without sending anything.
    pub fn check(&self) -> Result<(), WhitelistError> {
        if let Some(pid) = self.pid()? {
            self.signal(pid, None)?;
        }
        check_dir(&self.file)
    }

    /// Rewrites the file with `hashes` (atomically), then sends the tracker SIGHUP. Blocking
    /// (it fsyncs): run it off the runtime's threads.
    pub fn update<'a>(
        &self,
        hashes: impl IntoIterator<Item = &'a InfoHash>,
    ) -> Result<(), WhitelistError> {
        crate::state::write_atomic(&self.file, render(hashes).as_bytes()).map_err(|source| {
            WhitelistError::Write {
                path: self.file.clone(),
                source,
            }
        })?;
        if let Some(pid) = self.pid()? {
            self.signal(pid, Some(Signal::SIGHUP))?;
        }
        Ok(())
    }
}

/// The whitelist's directory exists (the file itself is created at the first update).
fn check_dir(file: &Path) -> Result<(), WhitelistError> {
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if dir.is_dir() {
        Ok(())
    } else {
        Err(WhitelistError::Write {
            path: file.to_owned(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("its directory {} does not exist", dir.display()),
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whitelist_is_one_lowercase_hex_hash_a_line_each_once() {
        let a = InfoHash([0xab; 20]);
        let b = InfoHash([0x01; 20]);
        let text = render([&a, &b, &a]);
        assert_eq!(text, format!("{}\n{}\n", "ab".repeat(20), "01".repeat(20)));
        assert!(text.lines().all(|l| l.len() == 40));
        assert_eq!(render([]), "");
    }

    #[test]
    fn process_ids_that_name_groups_or_ourselves_are_refused() {
        assert_eq!(parse_pid(" 1234\n"), Ok(1234));
        for bad in ["0", "-1", "x", ""] {
            assert!(parse_pid(bad).is_err(), "{bad}");
        }
        let own = std::process::id().to_string();
        assert!(parse_pid(&own).unwrap_err().contains("own process id"));
    }

    #[test]
    fn an_update_writes_the_file_and_a_bad_pid_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("whitelist");
        let config = WhitelistConfig::new(file.clone(), None);
        config.check().unwrap();
        config.update([&InfoHash([2; 20])]).unwrap();
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            format!("{}\n", "02".repeat(20))
        );
        let pidfile = dir.path().join("tracker.pid");
        std::fs::write(&pidfile, "not a pid\n").unwrap();
        let config = WhitelistConfig::new(file, Some(Reload::PidFile(pidfile.clone())));
        let err = config.update([]).unwrap_err().to_string();
        assert!(
            err.contains(&pidfile.display().to_string()) && err.contains("not a process id"),
            "{err}"
        );
        let missing = WhitelistConfig::new(dir.path().join("no/such/dir/whitelist"), None);
        let err = missing.check().unwrap_err().to_string();
        assert!(err.contains("does not exist"), "{err}");
    }

    /// A process id that names another process than the one signalled before is not signalled:
    /// here the id recorded with a start time that differs from the one `/proc` gives for it
    /// now (this test process, standing in for a process that reused the tracker's id).
    #[test]
    fn an_id_that_now_names_another_process_is_not_signalled() {
        let dir = tempfile::tempdir().unwrap();
        let me = std::process::id() as i32;
        let started = start_time(me).expect("our own start time");
        let config = WhitelistConfig::new(dir.path().join("w"), Some(Reload::Pid(me)));
        *config.signalled.lock().unwrap() = Some((me, started + 1));
        let err = config.update([]).unwrap_err();
        assert!(
            matches!(err, WhitelistError::Reused { pid, .. } if pid == me),
            "{err}"
        );
        assert!(err.to_string().contains("not signalled"), "{err}");
        // The same process (same start time): signal 0 only, nothing is sent.
        *config.signalled.lock().unwrap() = Some((me, started));
        config.signal(me, None).unwrap();
    }

    #[test]
    fn a_start_time_is_read_past_the_command_name() {
        assert!(start_time(std::process::id() as i32).is_some());
        assert_eq!(start_time(i32::MAX), None);
    }
}
