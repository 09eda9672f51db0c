//! The node's I/O: the directory's listings and announces, the player, the probes.

use std::sync::Arc;
use std::time::Duration;

use swarmcast_tasks::Tasks;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use super::{Heard, FIRST_LISTING, PROBE_TIMEOUT, TICK};
use crate::directory::{self, Announce, Listing, ANNOUNCE_EVERY};
use crate::icecast::watch::Aligner;
use crate::icecast::IcecastError;

/// The directory's first listing, retried while it does not answer (for [`FIRST_LISTING`]).
pub(super) async fn first_listing(
    client: &reqwest::Client,
    url: &str,
    cancel: &CancellationToken,
) -> Result<Listing, IcecastError> {
    let start = tokio::time::Instant::now();
    loop {
        match directory::fetch(client, url).await {
            Ok(l) => return Ok(l),
            Err(e) if start.elapsed() >= FIRST_LISTING || cancel.is_cancelled() => {
                return Err(e.into())
            }
            Err(e) => tracing::debug!(error = %e, "no listing yet"),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Announces the node (if a relay) with its current parent, then fetches the listing if the
/// node `wants` it (the source always does; a relay only without a parent or while it may
/// settle: its announce's answer tells it the end): every [`ANNOUNCE_EVERY`], and at once when
/// asked. An announce that says the stream ended is passed on as an empty `ended` listing.
pub(super) async fn directory_loop(
    client: reqwest::Client,
    url: String,
    me: Option<Announce>,
    parent: tokio::sync::watch::Receiver<Option<String>>,
    wants: tokio::sync::watch::Receiver<bool>,
    now: Arc<Notify>,
    tx: mpsc::Sender<Listing>,
) {
    let mut tick = tokio::time::interval(ANNOUNCE_EVERY);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = now.notified() => {}
        }
        if let Some(me) = &me {
            let a = Announce {
                parent: parent.borrow().clone(),
                ..me.clone()
            };
            match directory::announce(&client, &url, &a).await {
                Err(e) => {
                    if !std::mem::replace(&mut failing, true) {
                        tracing::warn!(error = %e, "cannot announce to the directory");
                    }
                    continue;
                }
                Ok(said) if said.ended => {
                    let ended = Listing {
                        relays: Vec::new(),
                        ended: true,
                    };
                    if tx.send(ended).await.is_err() {
                        return;
                    }
                }
                Ok(_) => failing = false,
            }
            if !*wants.borrow() {
                continue;
            }
        }
        match directory::fetch(&client, &url).await {
            Ok(l) => {
                failing = false;
                if tx.send(l).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(error = %e, "cannot fetch the directory");
                }
            }
        }
    }
}

/// Plays `url` (the node's own mount) into `out` as whole packets, reconnecting every
/// [`TICK`] while the mount is not there, and tells the node what it hears.
pub(super) async fn play(
    client: reqwest::Client,
    url: String,
    mut out: Option<tokio::fs::File>,
    tx: mpsc::Sender<Heard>,
) {
    let mut aligner = Aligner::default();
    let mut total = 0u64;
    loop {
        if let Ok(mut resp) = client.get(&url).send().await {
            if resp.status() == reqwest::StatusCode::OK {
                aligner.reset();
                if tx.send(Heard::Connected).await.is_err() {
                    return;
                }
                let reason = loop {
                    match resp.chunk().await {
                        Ok(Some(chunk)) => {
                            let whole = aligner.push(&chunk);
                            if let Some(f) = &mut out {
                                // Flushed: what was played is in the file even if the node is
                                // stopped right after.
                                let written = async {
                                    f.write_all(&whole).await?;
                                    f.flush().await
                                };
                                if let Err(e) = written.await {
                                    tracing::error!(error = %e, "cannot write the output: playing on without it");
                                    out = None;
                                }
                            }
                            total += whole.len() as u64;
                            let heard = Heard::Bytes {
                                total,
                                skipped: aligner.skipped,
                            };
                            if tx.send(heard).await.is_err() {
                                return;
                            }
                        }
                        Ok(None) => break "eof".to_owned(),
                        Err(e) => break format!("error: {e}"),
                    }
                };
                if tx.send(Heard::Ended { reason }).await.is_err() {
                    return;
                }
            }
        }
        tokio::time::sleep(TICK).await;
    }
}

/// Probes `parent` (any HTTP answer within [`PROBE_TIMEOUT`]: alive) and reports on `tx`.
pub(super) fn probe(
    tasks: &Tasks,
    client: &reqwest::Client,
    tx: &mpsc::Sender<(String, bool)>,
    parent: String,
) {
    let (client, tx) = (client.clone(), tx.clone());
    tasks.spawn("probe", async move {
        let alive = tokio::time::timeout(PROBE_TIMEOUT, client.get(&parent).send())
            .await
            .is_ok_and(|r| r.is_ok());
        let _ = tx.send((parent, alive)).await;
    });
}
