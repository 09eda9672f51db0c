//! A new segment: hashed, seeded, added to the window and published; or dropped and counted,
//! the next taking its number.

use super::*;

impl Publisher {
    /// Publishes `cut` as segment `expected`. A segment that cannot be hashed or seeded (out of
    /// files, say) is dropped and counted, and the next one is published under its number as a
    /// discontinuity: the window stays contiguous and the publisher keeps going. Only an error
    /// of the window itself is returned.
    pub(crate) async fn publish_segment(
        &mut self,
        cut: CutSegment,
        expected: u64,
    ) -> Result<(), PublishError> {
        let injected = self.config.fail_segment == Some(cut.meta.number);
        let (number, size, path) = (cut.meta.number, cut.meta.size, cut.path.clone());
        let result = match self.renumber(cut, expected).await {
            Err(e) => Err(e),
            Ok(cut) if injected => Err(dir_error(&cut.path)(std::io::Error::other(
                "failure injected by --fail-segment (testing flag)",
            ))),
            Ok(cut) => self.hash_and_seed(cut).await,
        };
        // Where its file is now: under `expected`'s name once renumbered.
        let (number, path) = if path.exists() {
            (number, path)
        } else {
            (expected, self.segment_path(expected))
        };
        match result {
            Ok(ready) => {
                self.add_to_window(ready).await?;
                if self.shared.feed.recovered() {
                    tracing::info!(segment = number, "publishing again");
                }
                Ok(())
            }
            Err(e) => {
                // Never listed: nobody can have it, and its number goes to the next segment.
                let _ = tokio::fs::remove_file(&path).await;
                let reason = self.explain(&e);
                let feed = &self.shared.feed;
                feed.dropped_bytes.fetch_add(size, Ordering::Relaxed);
                feed.lose(format!("segment {number} could not be published: {reason}"));
                tracing::error!(
                    segment = number,
                    %reason,
                    "segment dropped: it could not be published; the next one takes its number"
                );
                Ok(())
            }
        }
    }

    /// Gives `cut` the number `expected` when segments before it were lost (by the segment
    /// writer or by [`Self::publish_segment`]); the first segment after each loss is marked a
    /// discontinuity.
    async fn renumber(
        &mut self,
        mut cut: CutSegment,
        expected: u64,
    ) -> Result<CutSegment, PublishError> {
        let shift = cut.meta.number.saturating_sub(expected);
        if shift != self.shift {
            self.shift = shift;
            cut.meta.discontinuity = true;
            tracing::warn!(
                cut = cut.meta.number,
                published_as = expected,
                "segments were lost before this one: it takes the next number, as a discontinuity"
            );
        }
        if shift == 0 {
            return Ok(cut);
        }
        let to = self.segment_path(expected);
        // Whatever is at `to` was never listed (only segments before `expected` were).
        let _ = tokio::fs::remove_file(&to).await;
        tokio::fs::rename(&cut.path, &to)
            .await
            .map_err(dir_error(&cut.path))?;
        cut.path = to;
        cut.meta.number = expected;
        Ok(cut)
    }

    /// `e` with what it means when files ran out: the limit and who holds the files.
    pub(crate) fn explain(&self, e: &PublishError) -> String {
        let chain = error_chain(e);
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(err) = source {
            if let Some(io) = err.downcast_ref::<std::io::Error>() {
                if crate::fds::out_of_files(io) {
                    let (limit, _) = crate::fds::FdBudget::measure();
                    let http = self.shared.conns.open.load(Ordering::Relaxed);
                    let peer = self
                        .seeder
                        .connections()
                        .map_or_else(|| "a librqbit session's".into(), |n| n.to_string());
                    return format!(
                        "{chain} (out of files: the limit is {limit} (`ulimit -n`); {http} HTTP \
                         and {peer} peer connections are open; raise the limit, or lower \
                         --http-max-conns)"
                    );
                }
            }
            source = err.source();
        }
        chain
    }

    /// Hashes and seeds `cut`: what [`Self::add_to_window`] needs.
    async fn hash_and_seed(&mut self, cut: CutSegment) -> Result<Ready, PublishError> {
        let received = Instant::now();
        let meta = cut.meta.clone();
        let n = meta.number;
        self.recorder.record(
            Some(n),
            Kind::Cut {
                size: meta.size,
                media_start: meta.media_start,
                duration: meta.duration,
                discontinuity: meta.discontinuity,
            },
        );
        let (path, name, trackers, piece_length) = (
            cut.path.clone(),
            format!("{n:08}.ts"),
            self.trackers.clone(),
            self.config.piece_length,
        );
        let torrent = self
            .tasks
            .spawn_blocking("hash", move || {
                crate::segment_file::torrent_of_file(&path, &name, piece_length, trackers)
            })
            .await
            .map_err(|source| PublishError::Task {
                what: "hashing",
                source,
            })??;
        let hashed = received.elapsed();
        self.recorder.record(
            Some(n),
            Kind::Hashed {
                hash_us: hashed.as_micros() as u64,
                pieces: torrent.info().piece_count(),
                piece_length: torrent.info().piece_length,
                info_hash: torrent.info_hash().to_string(),
            },
        );
        let entry = SegmentEntry {
            number: n,
            media_start: meta.media_start,
            duration: meta.duration,
            size: meta.size,
            discontinuity: meta.discontinuity,
            published_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            info_hash: torrent.info_hash(),
            info: torrent.info_bytes().to_vec(),
        };
        let torrent_bytes = Bytes::from(torrent.to_torrent_bytes());
        let seeded = if self.config.withhold_segment == Some(n) {
            tracing::warn!(
                segment = n,
                "withholding this segment from the swarm (testing flag)"
            );
            None
        } else {
            let add = Instant::now();
            let t = self
                .seeder
                .seed(
                    &torrent_bytes,
                    &format!("{n:08}.ts"),
                    &self.stream_dir,
                    SEED_TIMEOUT,
                )
                .await?;
            self.recorder.record(
                Some(n),
                Kind::Seeding {
                    add_us: add.elapsed().as_micros() as u64,
                },
            );
            Some(t)
        };
        Ok(Ready {
            entry,
            seeded,
            torrent_bytes,
            received,
            size: meta.size,
        })
    }

    /// Serves a hashed and seeded segment, adds it to the window, signs and serves the manifest.
    async fn add_to_window(&mut self, ready: Ready) -> Result<(), PublishError> {
        let Ready {
            entry,
            seeded,
            torrent_bytes,
            received,
            size,
        } = ready;
        let n = entry.number;
        self.serve(&entry, seeded, torrent_bytes);
        if let Some(dropped) = self.window.push(entry)? {
            if let Some(live) = self.live.get_mut(&dropped.number) {
                live.dropped_at = Some(Instant::now());
            }
            if let Some(s) = self
                .shared
                .segments
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .get_mut(&dropped.number)
            {
                s.in_window = false;
            }
        }
        // An external tracker must know the segment before any viewer can see it listed.
        self.update_whitelist().await;
        let signed = match self.sign_and_serve(Some(n + 1)).await {
            Ok(signed) => signed,
            Err(e @ PublishError::Dir { .. }) => {
                // Listed in the window; the next manifest signed carries it.
                tracing::error!(segment = n, reason = %self.explain(&e), "cannot save the manifest: the next segment's carries this one");
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        self.summary.segments += 1;
        self.summary.segment_bytes += size;
        self.recorder.record(
            Some(n),
            Kind::Published {
                seq: signed.manifest.seq,
                manifest_bytes: signed.bytes.len() as u64,
                cut_to_published_us: received.elapsed().as_micros() as u64,
            },
        );
        tracing::info!(
            segment = n,
            seq = signed.manifest.seq,
            size,
            ms = received.elapsed().as_millis() as u64,
            "segment published"
        );
        Ok(())
    }
}
