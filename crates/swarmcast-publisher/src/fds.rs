//! The publisher's file descriptors: how many connections each listener may hold so that the
//! pipeline (segment files, hashing, state, metrics) always has files left.
//!
//! Every socket is a file. A publisher at the common limit of 1,024 open files once let 1,100
//! idle HTTP connections take them all: `accept` failed, and so did the segment writer's next
//! `open` (docs/reliability.md, "Idle HTTP connections"). [`FdBudget::split`] divides what the
//! process may open between the HTTP server, the peer port and the tracker's NAT checks, and
//! keeps [`RESERVE`] files for the pipeline, which no listener can take.

/// Files kept for the pipeline: the segment being written and the one being hashed, the state
/// file and its temporary copy, the metrics file, the mirror, a librqbit session's open segment
/// files (one per segment in the window and its grace period), stdin/stdout/stderr, the
/// runtime's own (epoll, eventfds, the file watcher), with room to spare.
pub const RESERVE: usize = 64;

/// The fewest connections the HTTP server and the peer port are each left with; a file limit
/// lower than what this needs is refused at start.
pub const MIN_LISTENER: usize = 16;

/// Default cap of HTTP connections when the file limit allows it.
pub const HTTP_MAX: usize = 4096;

/// How the files a publisher may open are shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdBudget {
    /// The process's limit (`ulimit -n`, the soft `RLIMIT_NOFILE`).
    pub limit: u64,
    /// Files open when the budget was made.
    pub open: usize,
    /// HTTP connections served at once.
    pub http: usize,
    /// Peer connections served at once.
    pub peer: usize,
    /// The tracker's NAT checks in flight at once (0 when the check is off).
    pub nat_checks: usize,
}

impl FdBudget {
    /// Shares `limit` files, `open` of them open already: [`RESERVE`] for the pipeline, up to
    /// `nat_checks` (an eighth of the rest at most) for NAT checks, and the rest half and half
    /// between the peer port (at most `peer_max`) and the HTTP server (at most [`HTTP_MAX`]).
    /// An error names the limit and what it would need to be.
    pub fn split(
        limit: u64,
        open: usize,
        peer_max: usize,
        nat_checks: usize,
    ) -> Result<Self, String> {
        let limit_files = usize::try_from(limit).unwrap_or(usize::MAX);
        let needed = open + RESERVE + 2 * MIN_LISTENER;
        if limit_files < needed {
            return Err(format!(
                "the limit on open files (ulimit -n) is {limit}: a publisher needs at least \
                 {needed} ({open} open now, {RESERVE} kept for segment files and state, \
                 {MIN_LISTENER} each for HTTP and peer connections); raise it with `ulimit -n`"
            ));
        }
        let spare = limit_files - open - RESERVE;
        let nat = nat_checks.min(spare / 8);
        let rest = spare - nat;
        let peer = peer_max.min(rest / 2);
        let http = HTTP_MAX.min(rest - peer);
        Ok(Self {
            limit,
            open,
            http,
            peer,
            nat_checks: nat,
        })
    }

    /// The process's soft limit on open files and how many are open now (`/proc/self/fd`;
    /// 16 where that cannot be read).
    pub fn measure() -> (u64, usize) {
        let limit = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft);
        let open = std::fs::read_dir("/proc/self/fd").map_or(16, |d| d.count());
        (limit, open)
    }
}

/// Whether `e` is the process (EMFILE) or the system (ENFILE) running out of files.
pub fn out_of_files(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_common_limit_leaves_the_pipeline_its_reserve() {
        let b = FdBudget::split(1024, 20, 1024, 128).unwrap();
        assert_eq!(b.nat_checks, 117); // (1024 - 20 - 64) / 8
        assert_eq!(b.peer, 411);
        assert_eq!(b.http, 412);
        assert_eq!(
            b.open + RESERVE + b.nat_checks + b.peer + b.http,
            1024,
            "{b:?}"
        );
    }

    #[test]
    fn a_high_limit_is_capped_by_the_listeners_own_maxima() {
        let b = FdBudget::split(1 << 20, 20, 1024, 128).unwrap();
        assert_eq!((b.http, b.peer, b.nat_checks), (HTTP_MAX, 1024, 128));
    }

    #[test]
    fn a_low_limit_is_shared_and_a_too_low_one_refused_with_its_numbers() {
        let b = FdBudget::split(256, 16, 1024, 128).unwrap();
        assert!(
            b.open + RESERVE + b.nat_checks + b.peer + b.http <= 256,
            "{b:?}"
        );
        assert!(b.http >= MIN_LISTENER && b.peer >= MIN_LISTENER, "{b:?}");
        let e = FdBudget::split(100, 16, 1024, 128).unwrap_err();
        assert!(e.contains("is 100") && e.contains("at least 112"), "{e}");
        // No NAT checks: nothing set aside for them.
        assert_eq!(FdBudget::split(256, 16, 1024, 0).unwrap().nat_checks, 0);
    }

    #[test]
    fn the_limit_and_open_files_are_measured() {
        let (limit, open) = FdBudget::measure();
        assert!(limit >= 3 && open >= 3, "{limit} {open}");
    }
}
