//! What survives a restart: the next manifest sequence number, the next segment number, and the
//! last manifest served, in the stream's data directory. Written atomically (write, fsync, rename,
//! fsync the directory) before the manifest it describes is served, so a crash never makes a
//! restarted publisher reuse a sequence number viewers have seen.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::PublishError;

/// File name of the persisted counters.
pub const STATE_FILE: &str = "state.json";
/// File name of the last manifest served.
pub const MANIFEST_FILE: &str = "manifest";

/// The persisted counters. A new stream starts at manifest 1 and segment 0, so a viewer's first
/// blocking reload (`?after=0`) waits for the very first manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Persisted {
    /// Sequence number of the next manifest.
    pub next_seq: u64,
    /// Number of the next segment.
    pub next_segment: u64,
}

impl Default for Persisted {
    fn default() -> Self {
        Self {
            next_seq: 1,
            next_segment: 0,
        }
    }
}

/// What a previous run left.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Previous {
    /// Its counters.
    pub persisted: Persisted,
    /// The last manifest it served, if the file is there.
    pub manifest: Option<Vec<u8>>,
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, fsync, rename, fsync the
/// directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// The state files of one stream.
#[derive(Clone, Debug)]
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    /// The state of the stream whose files live in `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
        }
    }

    /// Reads the counters and the last manifest, if a previous run left them.
    pub fn load(&self) -> Result<Option<Previous>, PublishError> {
        let path = self.dir.join(STATE_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(PublishError::State {
                    path,
                    reason: e.to_string(),
                })
            }
        };
        let persisted: Persisted =
            serde_json::from_slice(&bytes).map_err(|e| PublishError::State {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        let manifest = std::fs::read(self.dir.join(MANIFEST_FILE)).ok();
        Ok(Some(Previous {
            persisted,
            manifest,
        }))
    }

    /// Persists the counters, then the manifest they go with.
    pub fn save(&self, persisted: Persisted, manifest: &[u8]) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(&persisted).expect("the state always serialises");
        write_atomic(&self.dir.join(STATE_FILE), &json)?;
        write_atomic(&self.dir.join(MANIFEST_FILE), manifest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_garbage_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        assert!(state.load().unwrap().is_none());
        let p = Persisted {
            next_seq: 7,
            next_segment: 3,
        };
        state.save(p, b"doc").unwrap();
        assert_eq!(
            state.load().unwrap(),
            Some(Previous {
                persisted: p,
                manifest: Some(b"doc".to_vec())
            })
        );
        assert!(!dir.path().join("state.tmp").exists());
        std::fs::write(dir.path().join(STATE_FILE), b"{not json").unwrap();
        let err = state.load().unwrap_err().to_string();
        assert!(err.contains("state.json"), "{err}");
    }
}
