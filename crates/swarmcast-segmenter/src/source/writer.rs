//! The segment writer: writes each cutter output into its file (`.part`, then renamed), hands
//! complete segments on, and drops a segment it cannot write, counting it in [`FeedHealth`].

use super::*;

/// Writes segment files from cutter outputs, and hands them on.
pub(super) struct SegmentFiles {
    dir: PathBuf,
    /// The file being written, its `.part` path and the bytes written to it.
    current: Option<(tokio::fs::File, PathBuf, u64)>,
    /// Segments written.
    pub(super) written: u64,
    health: Arc<FeedHealth>,
    /// Drop a segment rather than wait for a busy receiver.
    pub(super) drop_when_busy: bool,
    /// The segment being cut is being dropped (its file failed).
    dropping: bool,
    /// A segment was lost: the next one written is a discontinuity.
    after_gap: bool,
    /// Sees every segment byte as it is cut.
    tap: Option<Tap>,
}

impl SegmentFiles {
    pub(super) async fn new(config: &SegmentConfig) -> Result<Self, SourceError> {
        let dir = &config.out_dir;
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|source| SourceError::Write {
                path: dir.to_owned(),
                source,
            })?;
        Ok(Self {
            dir: dir.to_owned(),
            current: None,
            written: 0,
            health: config.health.clone(),
            drop_when_busy: config.drop_when_busy,
            dropping: false,
            after_gap: false,
            tap: config.tap.clone(),
        })
    }

    pub(super) fn part_path(&self, number: u64) -> PathBuf {
        self.dir.join(format!("{number:08}.ts.part"))
    }

    /// Gives up the segment being cut after `source` failed on `path`: its file is removed (so
    /// what space there is stays for what is published), the rest of its input is dropped.
    pub(super) async fn fail(&mut self, path: PathBuf, source: std::io::Error) {
        if let Some((file, part, written)) = self.current.take() {
            drop(file);
            let _ = tokio::fs::remove_file(&part).await;
            self.health
                .dropped_bytes
                .fetch_add(written, Ordering::Relaxed);
        }
        self.dropping = true;
        self.report(&path, &source);
    }

    /// Counts a segment lost to `source` on `path`, and logs the outage it starts.
    pub(super) fn report(&self, path: &Path, source: &std::io::Error) {
        let reason = write_failure(path, source);
        if self.health.lose(reason.clone()) {
            tracing::error!(%reason, "segment writer failing: dropping input until a segment file can be written");
        }
    }

    /// Applies outputs: writes segment files and sends each complete one on `tx`.
    pub(super) async fn apply(
        &mut self,
        outputs: Vec<Output>,
        next_number: &mut u64,
        tx: &mpsc::Sender<CutSegment>,
    ) {
        for output in outputs {
            match output {
                Output::Data(data) => {
                    if let Some(tap) = &self.tap {
                        (tap.0)(&data);
                    }
                    if self.dropping {
                        self.health
                            .dropped_bytes
                            .fetch_add(data.len() as u64, Ordering::Relaxed);
                        continue;
                    }
                    if self.current.is_none() {
                        let path = self.part_path(*next_number);
                        match tokio::fs::File::create(&path).await {
                            Ok(file) => self.current = Some((file, path, 0)),
                            Err(source) => {
                                self.fail(path, source).await;
                                self.health
                                    .dropped_bytes
                                    .fetch_add(data.len() as u64, Ordering::Relaxed);
                                continue;
                            }
                        }
                    }
                    let (file, path, written) = self.current.as_mut().expect("opened above");
                    match file.write_all(&data).await {
                        Ok(()) => *written += data.len() as u64,
                        Err(source) => {
                            let path = path.clone();
                            // What this segment had so far is lost with it.
                            self.fail(path, source).await;
                            self.health
                                .dropped_bytes
                                .fetch_add(data.len() as u64, Ordering::Relaxed);
                        }
                    }
                }
                Output::End(mut meta) => {
                    if std::mem::take(&mut self.dropping) {
                        // Lost: its number is skipped, and the next segment tries again.
                        *next_number = meta.number + 1;
                        self.after_gap = true;
                        continue;
                    }
                    let Some((mut file, part, written)) = self.current.take() else {
                        continue;
                    };
                    let path = self.dir.join(format!("{:08}.ts", meta.number));
                    let done = match file.flush().await {
                        Ok(()) => {
                            drop(file);
                            tokio::fs::rename(&part, &path).await
                        }
                        Err(e) => Err(e),
                    };
                    *next_number = meta.number + 1;
                    if let Err(source) = done {
                        let _ = tokio::fs::remove_file(&part).await;
                        self.health
                            .dropped_bytes
                            .fetch_add(written, Ordering::Relaxed);
                        self.after_gap = true;
                        self.report(&path, &source);
                        continue;
                    }
                    if std::mem::take(&mut self.after_gap) {
                        meta.discontinuity = true;
                    }
                    self.written += 1;
                    self.deliver(CutSegment { meta, path }, tx).await;
                }
            }
        }
    }

    /// Sends a complete segment on; with `drop_when_busy`, drops it if `tx` has no room.
    pub(super) async fn deliver(&mut self, segment: CutSegment, tx: &mpsc::Sender<CutSegment>) {
        if !self.drop_when_busy {
            let _ = tx.send(segment).await;
            if self.health.recovered() {
                tracing::info!("segment writer recovered");
            }
            return;
        }
        match tx.try_send(segment) {
            Ok(()) => {
                if self.health.recovered() {
                    tracing::info!("segment writer recovered");
                }
            }
            Err(mpsc::error::TrySendError::Full(segment)) => {
                let _ = tokio::fs::remove_file(&segment.path).await;
                self.written -= 1;
                self.health
                    .dropped_bytes
                    .fetch_add(segment.meta.size, Ordering::Relaxed);
                self.after_gap = true;
                let reason = format!(
                    "segment {} dropped: the publisher is still busy with the segments before it",
                    segment.meta.number
                );
                if self.health.lose(reason.clone()) {
                    tracing::error!(%reason, "segment writer failing: dropping input until the publisher takes segments again");
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// A write failure, with what its cause means for a publisher.
pub(super) fn write_failure(path: &Path, source: &std::io::Error) -> String {
    let hint = match source.raw_os_error() {
        Some(libc::EMFILE) => {
            " (the process has as many files open as its limit, `ulimit -n`, allows: open \
             connections or files hold them)"
        }
        Some(libc::ENFILE) => " (the system's table of open files is full)",
        Some(libc::ENOSPC) => " (the disk is full)",
        Some(libc::EDQUOT) => " (the disk quota is used up)",
        _ => "",
    };
    format!(
        "cannot write segment file {}: {source}{hint}",
        path.display()
    )
}
