//! An `icecast.xml` from a struct (pure): what a node's `icecast2` child runs with.
//!
//! Every setting that changes what a listener or a relay sees is a field here, with Icecast
//! 2.4's meaning (docs/relay-tree.md, "Icecast settings"); the rest is Icecast's default.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The mount every node serves the stream on (the source's, and each relay's local mount).
pub const MOUNT: &str = "/live.ts";

/// The master a relay node's `icecast2` relays (Icecast's "single-broadcast" `<relay>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayFrom {
    /// The master's host (an IP address or a name).
    pub server: String,
    /// Its port.
    pub port: u16,
    /// Its mount (`/live.ts`).
    pub mount: String,
}

impl RelayFrom {
    /// The master named by a mount URL (`http://host:port/mount`), as listed in the directory.
    pub fn from_url(url: &str) -> Result<Self, String> {
        let u = url::Url::parse(url).map_err(|e| format!("parent URL {url:?}: {e}"))?;
        if u.scheme() != "http" {
            return Err(format!(
                "parent URL {url:?}: Icecast relays only http, not {}",
                u.scheme()
            ));
        }
        let server = u
            .host_str()
            .ok_or_else(|| format!("parent URL {url:?}: no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = u.port_or_known_default().unwrap_or(80);
        let mount = match u.path() {
            "" | "/" => return Err(format!("parent URL {url:?}: no mount")),
            p => p.to_owned(),
        };
        Ok(Self {
            server,
            port,
            mount,
        })
    }
}

/// The unprivileged user and group `icecast2` switches to (`<changeowner>`): it refuses to run
/// as root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// User name (`nobody`).
    pub user: String,
    /// Group name (`nogroup` on Debian).
    pub group: String,
}

/// What a node's `icecast.xml` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IcecastConfig {
    /// The address it listens on (`<listen-socket>`, `<hostname>`).
    pub listen: SocketAddr,
    /// The password a source must give (`source:<password>`); also the admin's and the relay
    /// password.
    pub password: String,
    /// Its directory: logs, pid file; also basedir and webroot (nothing is served from it).
    pub dir: PathBuf,
    /// The master it relays onto [`MOUNT`], if a relay node.
    pub relay: Option<RelayFrom>,
    /// `<clients>`: listeners and relays at most (the lab's fan-out is far below).
    pub clients: u32,
    /// `<queue-size>`: bytes a listener may fall behind the source before it is dropped.
    pub queue_size: u32,
    /// `<burst-size>`: bytes of the past a new listener (or relay) gets at once; 0 turns
    /// `<burst-on-connect>` off.
    pub burst_size: u32,
    /// `<source-timeout>`: seconds without a byte from a source (or a relay's master) before
    /// Icecast drops it.
    pub source_timeout: u32,
    /// `<master-update-interval>`: seconds between the checks of the relay list; a relay whose
    /// master dropped (or that failed to connect) is retried at the next check.
    pub relay_check: u32,
    /// `<changeowner>`, when running as root.
    pub owner: Option<Owner>,
    /// `<loglevel>`: 1 error, 2 warn, 3 info, 4 debug.
    pub log_level: u8,
}

impl IcecastConfig {
    /// The lab's settings (docs/relay-tree.md): 128 clients, Icecast's 512 KiB queue, no burst,
    /// a 10 s source timeout, relays checked every second, warnings logged.
    pub fn new(listen: SocketAddr, password: String, dir: PathBuf) -> Self {
        Self {
            listen,
            password,
            dir,
            relay: None,
            clients: 128,
            queue_size: 512 * 1024,
            burst_size: 0,
            source_timeout: 10,
            relay_check: 1,
            owner: None,
            log_level: 3,
        }
    }

    /// The path the XML is written to.
    pub fn path(&self) -> PathBuf {
        self.dir.join("icecast.xml")
    }

    /// The document.
    pub fn to_xml(&self) -> String {
        let e = escape;
        let mut x = String::new();
        let dir = self.dir.display().to_string();
        let host = self.listen.ip().to_string();
        let _ = writeln!(x, "<icecast>");
        let _ = writeln!(x, "  <location>swarmcast</location>");
        let _ = writeln!(x, "  <admin>swarmcast@localhost</admin>");
        let _ = writeln!(x, "  <limits>");
        let _ = writeln!(x, "    <clients>{}</clients>", self.clients);
        let _ = writeln!(x, "    <sources>4</sources>");
        let _ = writeln!(x, "    <queue-size>{}</queue-size>", self.queue_size);
        let _ = writeln!(x, "    <client-timeout>30</client-timeout>");
        let _ = writeln!(x, "    <header-timeout>15</header-timeout>");
        let _ = writeln!(
            x,
            "    <source-timeout>{}</source-timeout>",
            self.source_timeout
        );
        let _ = writeln!(
            x,
            "    <burst-on-connect>{}</burst-on-connect>",
            u8::from(self.burst_size > 0)
        );
        let _ = writeln!(x, "    <burst-size>{}</burst-size>", self.burst_size);
        let _ = writeln!(x, "  </limits>");
        let _ = writeln!(x, "  <authentication>");
        let _ = writeln!(
            x,
            "    <source-password>{}</source-password>",
            e(&self.password)
        );
        let _ = writeln!(
            x,
            "    <relay-password>{}</relay-password>",
            e(&self.password)
        );
        let _ = writeln!(x, "    <admin-user>admin</admin-user>");
        let _ = writeln!(
            x,
            "    <admin-password>{}</admin-password>",
            e(&self.password)
        );
        let _ = writeln!(x, "  </authentication>");
        let _ = writeln!(x, "  <hostname>{}</hostname>", e(&host));
        let _ = writeln!(x, "  <listen-socket>");
        let _ = writeln!(x, "    <port>{}</port>", self.listen.port());
        let _ = writeln!(x, "    <bind-address>{}</bind-address>", e(&host));
        let _ = writeln!(x, "  </listen-socket>");
        let _ = writeln!(
            x,
            "  <master-update-interval>{}</master-update-interval>",
            self.relay_check
        );
        if let Some(r) = &self.relay {
            let _ = writeln!(x, "  <relay>");
            let _ = writeln!(x, "    <server>{}</server>", e(&r.server));
            let _ = writeln!(x, "    <port>{}</port>", r.port);
            let _ = writeln!(x, "    <mount>{}</mount>", e(&r.mount));
            let _ = writeln!(x, "    <local-mount>{MOUNT}</local-mount>");
            let _ = writeln!(x, "    <on-demand>0</on-demand>");
            let _ = writeln!(
                x,
                "    <relay-shoutcast-metadata>0</relay-shoutcast-metadata>"
            );
            let _ = writeln!(x, "  </relay>");
        }
        let _ = writeln!(x, "  <fileserve>0</fileserve>");
        let _ = writeln!(x, "  <paths>");
        let _ = writeln!(x, "    <basedir>{}</basedir>", e(&dir));
        let _ = writeln!(x, "    <logdir>{}</logdir>", e(&dir));
        let _ = writeln!(x, "    <webroot>{}</webroot>", e(&dir));
        let _ = writeln!(x, "    <adminroot>{}</adminroot>", e(&dir));
        let _ = writeln!(x, "    <pidfile>{}/icecast.pid</pidfile>", e(&dir));
        let _ = writeln!(x, "  </paths>");
        let _ = writeln!(x, "  <logging>");
        let _ = writeln!(x, "    <accesslog>access.log</accesslog>");
        let _ = writeln!(x, "    <errorlog>error.log</errorlog>");
        let _ = writeln!(x, "    <loglevel>{}</loglevel>", self.log_level);
        let _ = writeln!(x, "  </logging>");
        let _ = writeln!(x, "  <security>");
        let _ = writeln!(x, "    <chroot>0</chroot>");
        if let Some(o) = &self.owner {
            let _ = writeln!(x, "    <changeowner>");
            let _ = writeln!(x, "      <user>{}</user>", e(&o.user));
            let _ = writeln!(x, "      <group>{}</group>", e(&o.group));
            let _ = writeln!(x, "    </changeowner>");
        }
        let _ = writeln!(x, "  </security>");
        let _ = writeln!(x, "</icecast>");
        x
    }
}

/// XML text escaping.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn between<'a>(x: &'a str, tag: &str) -> Vec<&'a str> {
        let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
        x.match_indices(&open)
            .map(|(i, _)| {
                let rest = &x[i + open.len()..];
                &rest[..rest.find(&close).expect("closed")]
            })
            .collect()
    }

    #[test]
    fn a_relay_node_relays_its_parents_mount_onto_its_own() {
        let mut c = IcecastConfig::new(
            "10.0.0.7:8000".parse().unwrap(),
            "p<&>w".into(),
            "/tmp/n1".into(),
        );
        c.relay = Some(RelayFrom::from_url("http://10.0.0.3:8001/live.ts").unwrap());
        c.owner = Some(Owner {
            user: "nobody".into(),
            group: "nogroup".into(),
        });
        let x = c.to_xml();
        assert_eq!(between(&x, "server"), ["10.0.0.3"]);
        assert_eq!(between(&x, "port"), ["8000", "8001"]);
        assert_eq!(between(&x, "mount"), ["/live.ts"]);
        assert_eq!(between(&x, "local-mount"), [MOUNT]);
        assert_eq!(between(&x, "bind-address"), ["10.0.0.7"]);
        assert_eq!(between(&x, "source-password"), ["p&lt;&amp;&gt;w"]);
        assert_eq!(between(&x, "user"), ["nobody"]);
        assert_eq!(between(&x, "burst-on-connect"), ["0"]);
        assert_eq!(between(&x, "master-update-interval"), ["1"]);
        assert!(x.contains("<logdir>/tmp/n1</logdir>"));
    }

    #[test]
    fn a_source_has_no_relay_and_a_burst_turns_burst_on_connect_on() {
        let mut c = IcecastConfig::new("127.0.0.1:9".parse().unwrap(), "pw".into(), "/d".into());
        c.burst_size = 65536;
        let x = c.to_xml();
        assert!(between(&x, "relay").is_empty());
        assert!(between(&x, "changeowner").is_empty());
        assert_eq!(between(&x, "burst-on-connect"), ["1"]);
        assert_eq!(between(&x, "burst-size"), ["65536"]);
    }

    #[test]
    fn parent_urls_are_checked() {
        let r = RelayFrom::from_url("http://[::1]:8000/live.ts").unwrap();
        assert_eq!((r.server.as_str(), r.port), ("::1", 8000));
        assert_eq!(RelayFrom::from_url("http://h/x.ts").unwrap().port, 80);
        for bad in ["https://h:1/live.ts", "http://h:1/", "not a url"] {
            let e = RelayFrom::from_url(bad).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }
}
