//! Tracked tasks: every task swarmcast starts is spawned through [`Tasks`], which gives it a
//! name (a tracing span), ties it to a cancellation token and counts it, so that an owner's
//! `shutdown()` can cancel its tasks and then wait until every one has ended (rqbit's named
//! tasks, iroh's `shutdown()`; built on tokio-util's `TaskTracker` and `CancellationToken`).
//!
//! Bare `tokio::spawn` and `tokio::task::spawn_blocking` are refused elsewhere in the workspace
//! by clippy's `disallowed_methods` (`clippy.toml`): this crate is the one place that spawns,
//! each task holding tokens of its group's `TaskTracker` and its ancestors'.
//!
//! [`Shutdown`] is the signal every verb takes: the first Ctrl-C asks for a graceful end
//! (`stop`), the second for an immediate one (`abort`).

use std::future::Future;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// A named group of tasks, cancelled together and awaited together.
///
/// Cloning gives another handle to the same group. [`Tasks::child`] makes a group whose token
/// is cancelled with its parent's (and on its own), and which its parent's (and every
/// ancestor's) [`shutdown`](Tasks::shutdown) also waits for.
#[derive(Debug, Clone)]
pub struct Tasks {
    owner: &'static str,
    tracker: TaskTracker,
    cancel: CancellationToken,
    /// The ancestors' trackers, so that their `wait` includes this group's tasks.
    ancestors: Vec<TaskTracker>,
}

impl Tasks {
    /// A new group for `owner` (the component's name, shown in every task's span).
    pub fn new(owner: &'static str) -> Self {
        Self::with_token(owner, CancellationToken::new())
    }

    /// A new group cancelled by `cancel` (and by [`Tasks::cancel`], which cancels `cancel` too).
    pub fn with_token(owner: &'static str, cancel: CancellationToken) -> Self {
        Self {
            owner,
            tracker: TaskTracker::new(),
            cancel,
            ancestors: Vec::new(),
        }
    }

    /// A group for a part of this owner: cancelled when this one is (or on its own), and
    /// awaited by this one's [`shutdown`](Tasks::shutdown) and its ancestors'.
    pub fn child(&self, owner: &'static str) -> Self {
        let mut ancestors = self.ancestors.clone();
        ancestors.push(self.tracker.clone());
        Self {
            owner,
            tracker: TaskTracker::new(),
            cancel: self.cancel.child_token(),
            ancestors,
        }
    }

    /// The group's token: cancelled by [`Tasks::cancel`] and [`Tasks::shutdown`].
    pub fn token(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Spawns `future` as task `name`: it runs inside a `task` span (owner, name) and is dropped
    /// at its next await once the group is cancelled, in which case the handle gives `None`.
    pub fn spawn<F>(&self, name: &'static str, future: F) -> JoinHandle<Option<F::Output>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let cancel = self.cancel.clone();
        let span = tracing::debug_span!("task", owner = self.owner, name);
        // The task holds a token of its group's tracker and of each ancestor's, released in
        // that order (locals drop in reverse): when an ancestor's `wait` returns, the groups
        // below it are already empty. (`TaskTracker::spawn` would release its own token last.)
        let ancestors = self.ancestor_tokens();
        let own = self.tracker.token();
        let future = async move {
            let _ancestors = ancestors;
            let _own = own;
            cancel.run_until_cancelled(future).await
        };
        #[allow(clippy::disallowed_methods)] // the one place that spawns, tracked above
        tokio::spawn(future.instrument(span))
    }

    /// Spawns blocking work `name` on tokio's blocking pool. It cannot be interrupted (it may
    /// look at [`Tasks::token`]), but it is counted, so [`shutdown`](Tasks::shutdown) waits for it.
    pub fn spawn_blocking<F, T>(&self, name: &'static str, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let span = tracing::debug_span!("task", owner = self.owner, name);
        // As in `spawn`: the group's token first, then the ancestors'.
        let ancestors = self.ancestor_tokens();
        let own = self.tracker.token();
        #[allow(clippy::disallowed_methods)] // the one place that spawns, tracked above
        tokio::task::spawn_blocking(move || {
            let _ancestors = ancestors;
            let out = span.in_scope(f);
            drop(own);
            out
        })
    }

    /// A token of each ancestor's tracker, held by a task for as long as it runs; the nearest
    /// first, so that they are released from the nearest up (a `Vec` drops in order).
    fn ancestor_tokens(&self) -> Vec<tokio_util::task::task_tracker::TaskTrackerToken> {
        self.ancestors
            .iter()
            .rev()
            .map(TaskTracker::token)
            .collect()
    }

    /// Cancels every task of the group (and of its children).
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Waits until every task of the group (and of its children) has ended, without cancelling.
    pub async fn wait(&self) {
        self.tracker.close();
        self.tracker.wait().await;
    }

    /// Cancels, then waits until every task has ended: after it returns, none of the group's
    /// tasks is alive (a blocking one still running is awaited too).
    pub async fn shutdown(&self) {
        self.cancel();
        self.wait().await;
    }

    /// How many of the group's tasks are alive.
    pub fn len(&self) -> usize {
        self.tracker.len()
    }

    /// True if none of the group's tasks is alive.
    pub fn is_empty(&self) -> bool {
        self.tracker.is_empty()
    }
}

/// Ctrl-C twice: the first stops the input and ends gracefully, the second exits.
///
/// Every verb takes one: `publish` ends its stream on `stop` (end-of-stream manifest, linger)
/// and exits on `abort`; the other verbs end on `stop`.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    /// End gracefully: no more input; the publisher sends its end-of-stream manifest and
    /// lingers.
    pub stop: CancellationToken,
    /// Exit now.
    pub abort: CancellationToken,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn shutdown_cancels_then_waits_for_every_task_and_child_task() {
        let tasks = Tasks::new("test");
        let child = tasks.child("part");
        let forever = tasks.spawn("forever", std::future::pending::<()>());
        let child_forever = child.spawn("child-forever", std::future::pending::<()>());
        // A task that needs a moment after cancellation still ends before shutdown returns.
        let cleaned = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&cleaned);
        let token = child.token().clone();
        let blocking = child.spawn_blocking("blocking", move || {
            // Bounded: a failed assertion below must not leave the runtime waiting forever.
            for _ in 0..60_000 {
                if token.is_cancelled() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            flag.store(true, Ordering::SeqCst);
            7
        });
        // The parent counts its own task and, through their tokens, the child's two.
        assert_eq!((tasks.len(), child.len()), (3, 2));
        tasks.shutdown().await;
        assert!(
            cleaned.load(Ordering::SeqCst),
            "the parent waited for the child's work"
        );
        assert!(child.is_empty() && tasks.is_empty());
        assert_eq!(forever.await.unwrap(), None);
        assert_eq!(child_forever.await.unwrap(), None);
        assert_eq!(blocking.await.unwrap(), 7);
    }

    #[tokio::test]
    async fn shutdown_waits_for_the_tasks_of_grandchildren_too() {
        let tasks = Tasks::new("test");
        let grandchild = tasks.child("part").child("sub-part");
        let ended = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&ended);
        let token = grandchild.token().clone();
        grandchild.spawn_blocking("blocking", move || {
            // Bounded: a failed assertion below must not leave the runtime waiting forever.
            for _ in 0..60_000 {
                if token.is_cancelled() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
            flag.store(true, Ordering::SeqCst);
        });
        let pending = grandchild.spawn("pending", std::future::pending::<()>());
        tasks.shutdown().await;
        assert!(
            ended.load(Ordering::SeqCst),
            "the grandparent waited for the work"
        );
        assert!(tasks.is_empty() && grandchild.is_empty());
        assert_eq!(pending.await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_finished_task_gives_its_output_and_a_child_cancels_alone() {
        let tasks = Tasks::new("test");
        let child = tasks.child("part");
        assert_eq!(tasks.spawn("one", async { 1 }).await.unwrap(), Some(1));
        let parent_task = tasks.spawn("pending", std::future::pending::<()>());
        child.shutdown().await;
        assert!(child.token().is_cancelled());
        assert!(
            !tasks.token().is_cancelled(),
            "a child's cancel stays in the child"
        );
        assert!(!parent_task.is_finished());
        tasks.shutdown().await;
        assert_eq!(parent_task.await.unwrap(), None);
    }

    #[test]
    fn no_task_is_alive_on_the_runtime_after_shutdown() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let tasks = Tasks::new("test");
        runtime.block_on(async {
            for _ in 0..10 {
                tasks.spawn(
                    "sleeper",
                    tokio::time::sleep(std::time::Duration::from_secs(3600)),
                );
            }
            tasks
                .child("part")
                .spawn("pending", std::future::pending::<()>());
            assert_eq!(runtime.metrics().num_alive_tasks(), 11);
            tasks.shutdown().await;
        });
        assert_eq!(runtime.metrics().num_alive_tasks(), 0);
    }
}
