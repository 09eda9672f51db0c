//! The seed's method (a) on real Icecast: relay trees of `icecast2` servers (docs/relay-tree.md).
//!
//! Each node (`swarmcast icecast-node`) runs an `icecast2` child: the source node accepts the
//! publisher's push on [`MOUNT`]; a relay node relays its parent's mount onto its own, plays
//! its own mount into a file, takes its parent from the directory, and moves its relay when
//! the parent is gone ([`node::run`]). The pieces:
//!
//! - [`config`]: the `icecast.xml` from a struct (pure);
//! - [`watch`]: the node's decisions, a small state machine on a clock passed in (pure), and
//!   the packet aligner of its output;
//! - [`Icecast`]: the `icecast2` child (written config, start, reload by SIGHUP, stop);
//! - [`node`]: the node itself.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

pub mod config;
pub mod node;
pub mod watch;

pub use config::{IcecastConfig, Owner, RelayFrom, MOUNT};

/// How long `icecast2` may take to answer after it was started.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Why an Icecast node failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IcecastError {
    /// The `icecast2` program is not installed (or not at the path given).
    #[error(
        "cannot run {bin}: {source} (install Debian's icecast2: `apt-get install icecast2`, or \
         `bash scripts/install-deps.sh`)"
    )]
    Missing {
        /// The program.
        bin: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The listen address is taken (or cannot be bound).
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `icecast2` exited (or never answered); what it logged.
    #[error("icecast2 ({config}) {what}: {log}")]
    Failed {
        /// Its configuration file.
        config: PathBuf,
        /// What happened.
        what: String,
        /// The end of its output and error log.
        log: String,
    },
    /// The node's directory or a file in it.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Bad flags.
    #[error("{0}")]
    Config(String),
    /// The relay directory.
    #[error(transparent)]
    Directory(#[from] crate::directory::DirectoryError),
    /// The metrics file.
    #[error(transparent)]
    Metrics(#[from] swarmcast_metrics::MetricsError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> IcecastError + '_ {
    move |source| IcecastError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The unprivileged owner `icecast2` must switch to when we run as root (it refuses to run as
/// root): `nobody`, in `nogroup` (Debian) or else `nobody`. None when not root.
pub fn owner_if_root() -> Option<Owner> {
    use nix::unistd::{geteuid, Group};
    if !geteuid().is_root() {
        return None;
    }
    let group = if matches!(Group::from_name("nogroup"), Ok(Some(_))) {
        "nogroup"
    } else {
        "nobody"
    };
    Some(Owner {
        user: "nobody".into(),
        group: group.into(),
    })
}

/// Makes `dir` usable by `owner` (icecast2 writes its logs and pid file there after switching
/// to it, and re-reads its configuration there on SIGHUP).
fn hand_over(dir: &Path, owner: Option<&Owner>) -> Result<(), IcecastError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).map_err(io(dir))?;
    if let Some(o) = owner {
        let uid = nix::unistd::User::from_name(&o.user)
            .ok()
            .flatten()
            .map(|u| u.uid);
        let gid = nix::unistd::Group::from_name(&o.group)
            .ok()
            .flatten()
            .map(|g| g.gid);
        nix::unistd::chown(dir, uid, gid).map_err(|e| IcecastError::Io {
            path: dir.to_owned(),
            source: e.into(),
        })?;
    }
    Ok(())
}

/// A running `icecast2` child. Dropped, it is killed (SIGKILL); [`stop`](Self::stop) ends it
/// gracefully first.
#[derive(Debug)]
pub struct Icecast {
    child: tokio::process::Child,
    config: IcecastConfig,
    bin: std::path::PathBuf,
}

impl Icecast {
    /// Writes `config` into its directory (created; handed to its owner) and starts `bin` on
    /// it; returns once it answers HTTP on its listen address. The address is checked free
    /// first, so a taken port is named as such.
    pub async fn start(bin: &Path, config: IcecastConfig) -> Result<Self, IcecastError> {
        // A taken port is refused here, by name (icecast2 would only log it).
        drop(
            std::net::TcpListener::bind(config.listen).map_err(|source| IcecastError::Listen {
                addr: config.listen,
                source,
            })?,
        );
        std::fs::create_dir_all(&config.dir).map_err(io(&config.dir))?;
        hand_over(&config.dir, config.owner.as_ref())?;
        write_config(&config)?;
        let out_path = config.dir.join("icecast2.out");
        let out = std::fs::File::create(&out_path).map_err(io(&out_path))?;
        let err = out.try_clone().map_err(io(&out_path))?;
        let child = tokio::process::Command::new(bin)
            .arg("-c")
            .arg(config.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| IcecastError::Missing {
                bin: bin.to_owned(),
                source,
            })?;
        let mut me = Self {
            child,
            config,
            bin: bin.to_owned(),
        };
        me.wait_answering().await?;
        Ok(me)
    }

    /// Starts it again on the configuration it runs with now (its current relay included),
    /// after it died: a supervisor's restart. icecast2 2.4.4 was seen to crash (SIGSEGV) in the
    /// lab, once in 21 nodes, seconds after it started relaying.
    pub async fn restart(&mut self) -> Result<(), IcecastError> {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        *self = Self::start(&self.bin.clone(), self.config.clone()).await?;
        Ok(())
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &IcecastConfig {
        &self.config
    }

    /// The URL of its mount.
    pub fn mount_url(&self) -> String {
        format!("http://{}{MOUNT}", self.config.listen)
    }

    /// Its process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    async fn wait_answering(&mut self) -> Result<(), IcecastError> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().map_err(io(&self.config.dir))? {
                return Err(self.failed(format!("exited at start ({status})")));
            }
            if answers(self.config.listen).await {
                return Ok(());
            }
            if start.elapsed() > START_TIMEOUT {
                return Err(self.failed(format!(
                    "did not answer on {} within {START_TIMEOUT:?}",
                    self.config.listen
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn failed(&self, what: String) -> IcecastError {
        IcecastError::Failed {
            config: self.config.path(),
            what,
            log: self.log_tail(),
        }
    }

    /// The last lines of its output and error log.
    pub fn log_tail(&self) -> String {
        let mut out = String::new();
        for name in ["icecast2.out", "error.log"] {
            if let Ok(text) = std::fs::read_to_string(self.config.dir.join(name)) {
                let lines: Vec<&str> = text.lines().filter(|l| !l.contains(" DBUG ")).collect();
                let tail = lines[lines.len().saturating_sub(5)..].join(" | ");
                if !tail.is_empty() {
                    out.push_str(&format!("[{name}] {tail} "));
                }
            }
        }
        if out.is_empty() {
            "(nothing logged)".into()
        } else {
            out.trim_end().to_owned()
        }
    }

    /// Relays `relay` from now on (or nothing): rewrites the configuration and sends SIGHUP.
    /// Icecast 2.4 re-reads it, and its relay thread, at its next check (within
    /// `relay_check` seconds), stops the old relay (its listeners are disconnected) and starts
    /// the new one.
    pub fn set_relay(&mut self, relay: Option<RelayFrom>) -> Result<(), IcecastError> {
        self.config.relay = relay;
        write_config(&self.config)?;
        self.signal(nix::sys::signal::Signal::SIGHUP)
    }

    fn signal(&self, sig: nix::sys::signal::Signal) -> Result<(), IcecastError> {
        let Some(pid) = self.child.id() else {
            return Err(self.failed("is gone".into()));
        };
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).map_err(|e| {
            IcecastError::Io {
                path: self.config.path(),
                source: e.into(),
            }
        })
    }

    /// Waits until it exits by itself; the error says how, with its log.
    pub async fn exited(&mut self) -> IcecastError {
        match self.child.wait().await {
            Ok(status) => self.failed(format!("exited ({status})")),
            Err(e) => self.failed(format!("cannot be waited for: {e}")),
        }
    }

    /// Stops it: SIGTERM, then SIGKILL after 2 s.
    pub async fn stop(mut self) {
        let _ = self.signal(nix::sys::signal::Signal::SIGTERM);
        if tokio::time::timeout(Duration::from_secs(2), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// Writes the configuration (readable by its owner: icecast2 re-reads it after switching).
fn write_config(config: &IcecastConfig) -> Result<(), IcecastError> {
    use std::os::unix::fs::PermissionsExt;
    let path = config.path();
    let tmp = path.with_extension("xml.tmp");
    std::fs::write(&tmp, config.to_xml()).map_err(io(&tmp))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).map_err(io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io(&path))
}

/// Whether an HTTP server answers at `addr` (any status line).
async fn answers(addr: std::net::SocketAddr) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        s.write_all(b"GET /swarmcast-probe HTTP/1.0\r\n\r\n")
            .await
            .ok()?;
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).await.ok()?;
        (&buf == b"HTTP/").then_some(())
    };
    tokio::time::timeout(Duration::from_millis(500), attempt)
        .await
        .ok()
        .flatten()
        .is_some()
}
