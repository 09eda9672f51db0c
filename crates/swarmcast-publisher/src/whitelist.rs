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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhitelistConfig {
    /// The whitelist file, rewritten atomically (its directory must be writable: the
    /// temporary file is made next to it).
    pub file: PathBuf,
    /// Sent SIGHUP after each rewrite (None: the file is only written).
    pub reload: Option<Reload>,
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

impl WhitelistConfig {
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
            kill(Pid::from_raw(pid), None)
                .map_err(|source| WhitelistError::Signal { pid, source })?;
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
            kill(Pid::from_raw(pid), Signal::SIGHUP)
                .map_err(|source| WhitelistError::Signal { pid, source })?;
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
        let config = WhitelistConfig {
            file: file.clone(),
            reload: None,
        };
        config.check().unwrap();
        config.update([&InfoHash([2; 20])]).unwrap();
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            format!("{}\n", "02".repeat(20))
        );
        let pidfile = dir.path().join("tracker.pid");
        std::fs::write(&pidfile, "not a pid\n").unwrap();
        let config = WhitelistConfig {
            file,
            reload: Some(Reload::PidFile(pidfile.clone())),
        };
        let err = config.update([]).unwrap_err().to_string();
        assert!(
            err.contains(&pidfile.display().to_string()) && err.contains("not a process id"),
            "{err}"
        );
        let missing = WhitelistConfig {
            file: dir.path().join("no/such/dir/whitelist"),
            reload: None,
        };
        let err = missing.check().unwrap_err().to_string();
        assert!(err.contains("does not exist"), "{err}");
    }
}
