//! A directory an encoder (such as ffmpeg's segment muxer) writes finished segment files into,
//! watched with `notify`; each file is fed through the same cutter.

use super::*;

/// A directory being watched for finished segment files; see [`DirWatch::run`].
pub struct DirWatch {
    dir: PathBuf,
    // Dropping the watcher ends the watch: it lives as long as this value.
    _watcher: notify::RecommendedWatcher,
    events: mpsc::UnboundedReceiver<notify::Result<notify::Event>>,
}

impl DirWatch {
    /// Starts watching `dir`. Files finished from this moment on are seen, even before
    /// [`run`](Self::run) is called.
    pub fn start(dir: &Path) -> Result<Self, SourceError> {
        use notify::{RecursiveMode, Watcher};
        let watch_err = |reason: String| SourceError::Watch {
            path: dir.to_owned(),
            reason,
        };
        // Event paths are the watched path joined with the file name: a canonical watched path
        // makes "is this file directly in the directory" a plain comparison.
        let dir = &dir.canonicalize().map_err(|e| watch_err(e.to_string()))?;
        let (events_tx, events) = mpsc::unbounded_channel();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let _ = events_tx.send(event);
            })
            .map_err(|e| watch_err(e.to_string()))?;
        watcher
            .watch(dir, RecursiveMode::NonRecursive)
            .map_err(|e| watch_err(e.to_string()))?;
        tracing::info!(dir = %dir.display(), "watching for finished segment files");
        Ok(Self {
            dir: dir.to_owned(),
            _watcher: watcher,
            events,
        })
    }

    /// Takes the files the encoder finishes as segments, in order, until `cancel`.
    ///
    /// A file counts as finished when the encoder closes it after writing (inotify `IN_CLOSE_WRITE`)
    /// or renames it into the directory (`IN_MOVED_TO`, for encoders that write to a temporary name).
    /// Only `*.ts` files count, compared by natural name order (`seg9.ts` < `seg10.ts`). A file that
    /// finishes after a later-named one has been taken is never taken (it is counted): segments must
    /// stay in order. Files present before the watch starts are ignored. Each taken file is checked
    /// to be MPEG-TS, cut through one [`TsCutter`] (so media times and discontinuities carry over from
    /// file to file) and written to `config.out_dir` as the next numbered segment.
    pub async fn run(
        mut self,
        config: SegmentConfig,
        tx: mpsc::Sender<CutSegment>,
        cancel: CancellationToken,
    ) -> Result<RunSummary, SourceError> {
        use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
        use notify::EventKind;
        let dir = self.dir.as_path();
        let mut files = SegmentFiles::new(&config).await?;
        // One finished file is one segment: no target-driven cuts inside it (a timestamp jump inside
        // a file still splits it, since the two halves are on different timelines).
        let mut cutter = TsCutter::new(CutterConfig {
            target: u64::MAX / 4,
            ..config.cutter.clone()
        });
        let mut next_number = config.cutter.first_number;
        let mut last_taken: Option<String> = None;
        let mut summary = RunSummary {
            ts: true,
            ..RunSummary::default()
        };

        loop {
            let event = tokio::select! {
                e = self.events.recv() => match e {
                    Some(e) => e,
                    None => break,
                },
                () = cancel.cancelled() => break,
            };
            let event = match event {
                Ok(event) => event,
                Err(e) => {
                    tracing::warn!(error = %e, "directory watch error");
                    continue;
                }
            };
            let path = match event.kind {
                EventKind::Access(AccessKind::Close(AccessMode::Write)) => event.paths.first(),
                EventKind::Modify(ModifyKind::Name(RenameMode::To)) => event.paths.first(),
                EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => event.paths.get(1),
                _ => None,
            };
            let Some(path) = path else { continue };
            let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
                continue;
            };
            if !name.to_ascii_lowercase().ends_with(".ts") || path.parent() != Some(dir) {
                continue;
            }
            if let Some(last) = &last_taken {
                if natord::compare(&name, last) != std::cmp::Ordering::Greater {
                    tracing::warn!(file = %name, after = %last, "file finished out of order: not used");
                    summary.files_out_of_order += 1;
                    continue;
                }
            }
            let bytes = match tokio::fs::read(path).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(file = %name, error = %e, "cannot read finished file: not used");
                    summary.files_unusable += 1;
                    continue;
                }
            };
            if bytes.is_empty() || !looks_like_ts(&bytes) {
                tracing::warn!(file = %name, size = bytes.len(), "finished file is empty or not MPEG-TS: not used");
                summary.files_unusable += 1;
                continue;
            }
            last_taken = Some(name.clone());
            summary.bytes_in += bytes.len() as u64;
            let mut outputs = cutter.push(&bytes);
            outputs.extend(cutter.cut_now());
            tracing::debug!(file = %name, "segment from finished file");
            files.apply(outputs, &mut next_number, &tx).await;
        }
        summary.segments = files.written;
        summary.cutter = cutter.stats();
        Ok(summary)
    }
}

/// Watches `dir` and takes the files an encoder finishes there as segments: [`DirWatch::start`]
/// then [`DirWatch::run`].
pub async fn watch_dir(
    dir: &Path,
    config: SegmentConfig,
    tx: mpsc::Sender<CutSegment>,
    cancel: CancellationToken,
) -> Result<RunSummary, SourceError> {
    DirWatch::start(dir)?.run(config, tx, cancel).await
}
