//! The viewer's default data directory: a temporary directory, locked while its viewer lives,
//! and the clean-up of those that killed viewers left behind.

/// The prefix of a viewer's temporary data directory in the system's temporary directory.
const TEMP_PREFIX: &str = "swarmcast-viewer-";
/// The lock file in it, held (`flock`) while its viewer lives: the kernel releases it when the
/// process dies, however it dies.
pub(super) const LOCK_FILE: &str = ".lock";
/// A leftover directory younger than this is left alone: its viewer may be starting (between
/// creating the directory and locking its file).
const LEFTOVER_MIN_AGE: std::time::Duration = std::time::Duration::from_secs(60);

/// The viewer's default data directory: a temporary directory removed on drop, locked while the
/// viewer lives so that a later viewer can tell it from one a killed viewer left behind.
pub(super) struct TempDir {
    pub(super) dir: tempfile::TempDir,
    _lock: std::fs::File,
}

pub(super) fn tempdir() -> std::io::Result<TempDir> {
    let base = std::env::temp_dir();
    let removed = remove_leftovers(&base, std::time::SystemTime::now());
    if removed > 0 {
        tracing::info!(
            removed,
            "removed data directories of viewers that were killed"
        );
    }
    let dir = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempdir_in(&base)?;
    let lock = std::fs::File::create(dir.path().join(LOCK_FILE))?;
    lock.try_lock().map_err(std::io::Error::other)?;
    Ok(TempDir { dir, _lock: lock })
}

/// Removes the data directories in `base` that viewers killed before they could remove them
/// left behind: each one older than [`LEFTOVER_MIN_AGE`] at `now` whose lock file nobody holds
/// (or that has none). Returns how many it removed; one it cannot read or remove is skipped.
pub(super) fn remove_leftovers(base: &std::path::Path, now: std::time::SystemTime) -> usize {
    let Ok(entries) = std::fs::read_dir(base) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with(TEMP_PREFIX) {
            continue;
        }
        let path = entry.path();
        let old = entry
            .metadata()
            .ok()
            .filter(|m| m.is_dir())
            .and_then(|m| m.modified().ok())
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age >= LEFTOVER_MIN_AGE);
        if !old {
            continue;
        }
        // Held by a live viewer: try_lock fails. Ours now (or no lock file): its viewer is gone.
        let lock = std::fs::File::open(path.join(LOCK_FILE));
        if lock.as_ref().is_ok_and(|l| l.try_lock().is_err()) {
            continue;
        }
        if std::fs::remove_dir_all(&path).is_ok() {
            removed += 1;
        }
    }
    removed
}
