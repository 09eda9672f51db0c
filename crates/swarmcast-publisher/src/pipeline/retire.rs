//! Segments leaving: forgotten after their grace period, their upload counts recorded; the end
//! of the stream published; the final counts.

use super::*;

impl Publisher {
    /// Forgets segments whose grace period is over; samples upload counts.
    pub(crate) async fn housekeeping(&mut self) {
        let outages = self.shared.feed.outages.load(Ordering::Relaxed);
        if outages != self.outages_seen {
            self.outages_seen = outages;
            if let Some(reason) = self.shared.feed.failing() {
                // Who holds the files, for the one who has to find out.
                tracing::warn!(
                    %reason,
                    file_limit = crate::fds::FdBudget::measure().0,
                    http_connections = self.shared.conns.open.load(Ordering::Relaxed),
                    peer_connections = ?self.seeder.connections(),
                    "dropping input (counted in swarmcast_input_dropped_bytes_total)"
                );
            }
        }
        let mut total = self.removed_uploaded;
        for live in self.live.values_mut() {
            if let Some(t) = &live.torrent {
                live.uploaded = self.seeder.uploaded(t);
            }
            total += live.uploaded;
        }
        let (late, arrived) = self.seeder.late_pieces();
        self.shared.late_pieces.store(late, Ordering::Relaxed);
        self.shared.late_arrived.store(arrived, Ordering::Relaxed);
        if self.shared.uploaded_bytes.swap(total, Ordering::Relaxed) < total {
            self.shared
                .swarm_active_ms
                .store(self.shared.now_ms(), Ordering::Relaxed);
        }
        self.shared.sample_rates(self.shared.now_ms());
        if let Some(tracker) = &self.shared.tracker {
            let now = self.shared.now_ms();
            tracker
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .expire(now);
        }
        let due: Vec<u64> = self
            .live
            .iter()
            .filter(|(_, l)| l.dropped_at.is_some_and(|d| d.elapsed() >= self.grace))
            .map(|(n, _)| *n)
            .collect();
        for n in due {
            self.remove(n).await;
        }
    }

    /// Payload bytes of `t` sent on connections this publisher dialled (see `Kind::Uploaded`).
    fn dialled_bytes(&self, t: &Seeded) -> u64 {
        self.seeder.dialled_bytes(t)
    }

    /// Bytes of segment `n` sent over HTTP so far.
    fn http_bytes(&self, n: u64) -> u64 {
        self.shared
            .segments
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&n)
            .map_or(0, |s| s.http_bytes.load(Ordering::Relaxed))
    }

    pub(crate) async fn remove(&mut self, n: u64) {
        let Some(live) = self.live.remove(&n) else {
            return;
        };
        let mut uploaded = live.uploaded;
        let mut dialled_bytes = 0;
        if let Some(t) = &live.torrent {
            uploaded = self.seeder.uploaded(t);
            dialled_bytes = self.dialled_bytes(t);
            self.seeder.forget(t).await;
            // The wire seeder's count is final once forget returns (its connections ended);
            // librqbit's may read lower after the torrent is gone, hence the larger of the two.
            uploaded = uploaded.max(self.seeder.uploaded(t));
        }
        self.removed_uploaded += uploaded;
        let http_bytes = self.http_bytes(n);
        if let Some(s) = self
            .shared
            .segments
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&n)
        {
            self.removed_http.insert(
                n,
                (uploaded, dialled_bytes, http_bytes, s.http_bytes.clone()),
            );
        }
        self.shared
            .segments
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&n);
        self.update_whitelist().await;
        if let Some(tracker) = &self.shared.tracker {
            tracker
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove_torrent(&live.entry.info_hash.0);
        }
        if !self.config.keep_segments {
            if let Err(e) = std::fs::remove_file(self.segment_path(n)) {
                tracing::warn!(segment = n, error = %e, "cannot delete the segment file");
            }
        }
        if let Some(m) = &self.config.mirror_dir {
            let _ = std::fs::remove_file(m.join("segments").join(format!("{n:08}.torrent")));
            let _ = std::fs::remove_file(m.join("segments").join(format!("{n:08}.ts")));
        }
        self.summary.http_uploaded_bytes += http_bytes;
        self.recorder.record(
            Some(n),
            Kind::Uploaded {
                bytes: uploaded,
                http_bytes,
                dialled_bytes,
            },
        );
        self.recorder.record(
            Some(n),
            Kind::Removed {
                uploaded_bytes: uploaded,
                kept_file: self.config.keep_segments,
            },
        );
        // The totals so far, so a publisher that never exits cleanly leaves them too.
        let sent = self.manifests_sent();
        self.recorder.record(Some(n), sent);
        tracing::debug!(segment = n, uploaded, "segment forgotten");
    }

    /// Serves the end-of-stream manifest, then lingers.
    pub(crate) async fn end_of_stream(&mut self, shutdown: &Shutdown) -> Result<(), PublishError> {
        if shutdown.abort.is_cancelled() {
            return Ok(());
        }
        self.window.end_stream();
        let signed = self.sign_and_serve(None).await?;
        self.relays.end();
        self.recorder.record(
            None,
            Kind::EndOfStream {
                seq: signed.manifest.seq,
            },
        );
        let linger = self.config.linger.unwrap_or_else(|| {
            default_linger(
                self.config.target,
                self.window.segments().len(),
                self.config.dht.is_some(),
            )
        });
        tracing::info!(
            seq = signed.manifest.seq,
            linger_s = linger.as_secs_f64(),
            "end of stream: lingering so viewers get the end (Ctrl-C to exit now)"
        );
        let mut housekeeping = tokio::time::interval(HOUSEKEEPING);
        let until = Instant::now() + linger;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(until) => break,
                _ = housekeeping.tick() => self.housekeeping().await,
                () = shutdown.abort.cancelled() => break,
                // A Ctrl-C during the linger (the first one, if the input ended by itself).
                () = shutdown.stop.cancelled(), if !shutdown.stop.is_cancelled() => break,
            }
        }
        Ok(())
    }

    /// What the publisher sent of its manifests so far (a `manifests_sent` record).
    fn manifests_sent(&self) -> Kind {
        let c = &self.shared.counters;
        let swarm = self
            .shared
            .carrier
            .as_ref()
            .map(|c| c.stats())
            .unwrap_or_default();
        Kind::ManifestsSent {
            http_responses: c.manifest_responses.load(Ordering::Relaxed),
            http_bytes: c.manifest_bytes.load(Ordering::Relaxed),
            swarm_documents: swarm.manifests_sent,
            swarm_answers: swarm.manifests_answered,
            swarm_deltas: swarm.deltas_sent,
            swarm_bytes: swarm.bytes_sent,
            swarm_messages: swarm.messages_sent,
            dht_puts: c.dht_puts.load(Ordering::Relaxed),
            dht_announces: c.dht_announces.load(Ordering::Relaxed),
            swarm_haves: swarm.haves_sent,
            swarm_wants: swarm.wants_sent,
            swarm_bytes_received: swarm.bytes_received,
            swarm_duplicates: swarm.duplicates,
        }
    }

    pub(crate) async fn finish(&mut self) {
        self.housekeeping().await;
        let sent = self.manifests_sent();
        self.recorder.record(None, sent);
        let feed = &self.shared.feed;
        self.summary.dropped_segments = feed.dropped_segments.load(Ordering::Relaxed);
        self.summary.dropped_bytes = feed.dropped_bytes.load(Ordering::Relaxed);
        self.summary.dropping = feed.failing();
        let conns = &self.shared.conns;
        self.summary.http_connections = crate::HttpConnections {
            accepted: conns.accepted.load(Ordering::Relaxed),
            refused_per_address: conns.refused_per_address.load(Ordering::Relaxed),
            refused_full: conns.refused_full.load(Ordering::Relaxed),
            evicted: conns.evicted.load(Ordering::Relaxed),
            header_timeouts: conns.header_timeouts.load(Ordering::Relaxed),
        };
        for (n, live) in std::mem::take(&mut self.live) {
            let http_bytes = self.http_bytes(n);
            let dialled_bytes = live.torrent.as_ref().map_or(0, |t| self.dialled_bytes(t));
            self.summary.http_uploaded_bytes += http_bytes;
            self.recorder.record(
                Some(n),
                Kind::Uploaded {
                    bytes: live.uploaded,
                    http_bytes,
                    dialled_bytes,
                },
            );
        }
        // HTTP responses still running when their segment was removed: their final count.
        for (n, (bytes, dialled_bytes, recorded, counter)) in std::mem::take(&mut self.removed_http)
        {
            let http_bytes = counter.load(Ordering::Relaxed);
            if http_bytes > recorded {
                self.summary.http_uploaded_bytes += http_bytes - recorded;
                self.recorder.record(
                    Some(n),
                    Kind::Uploaded {
                        bytes,
                        http_bytes,
                        dialled_bytes,
                    },
                );
            }
        }
        self.summary.uploaded_bytes = self.shared.uploaded_bytes.load(Ordering::Relaxed);
        self.seeder.shutdown().await;
    }
}

/// A viewer on the DHT path that missed the end-of-stream manifest in the swarm asks the DHT
/// again once no newer manifest came for [`recheck_after`](swarmcast_core::dht_item::recheck_after)
/// the segment duration, then looks up the pointer and the newest segment's peers (up to 10 s)
/// and asks them: the publisher lingers [`DHT_LINGER_FLOOR`] past that.
pub(crate) const DHT_LINGER_FLOOR: Duration = Duration::from_secs(20);

/// How long the publisher keeps serving after the end-of-stream manifest when `--linger` is not
/// given: the window's span (`target` in 90 kHz ticks, `segments` in the window), so every
/// viewer within the window plays to the end; with the DHT on, at least until a viewer that
/// missed the end in the swarm has asked the DHT and the publisher ([`DHT_LINGER_FLOOR`]).
pub(crate) fn default_linger(target: u64, segments: usize, dht: bool) -> Duration {
    let duration = Duration::from_micros(target.saturating_mul(100) / 9);
    let window = duration.saturating_mul(segments.max(1) as u32);
    if !dht {
        return window;
    }
    window.max(swarmcast_core::dht_item::recheck_after(duration) + DHT_LINGER_FLOOR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_linger_is_the_window_and_with_the_dht_outlasts_a_viewers_recheck() {
        const S: u64 = 90_000;
        // Without the DHT: the window's span.
        assert_eq!(default_linger(2 * S, 5, false), Duration::from_secs(10));
        assert_eq!(default_linger(60 * S, 5, false), Duration::from_secs(300));
        assert_eq!(default_linger(2 * S, 0, false), Duration::from_secs(2));
        // With it, short segments: the recheck (10 s) and the floor (20 s).
        assert_eq!(default_linger(2 * S, 5, true), Duration::from_secs(30));
        // 8 s segments: three durations (24 s) and the floor, more than the window (40 s).
        assert_eq!(default_linger(8 * S, 5, true), Duration::from_secs(44));
        // One-minute segments: the window (300 s) is longer.
        assert_eq!(default_linger(60 * S, 5, true), Duration::from_secs(300));
    }
}
