//! Stream links: `swarmcast:?pk=<key>[&xs=<manifest url>...]`.
//!
//! `pk` is the stream's public key in lowercase RFC 4648 base32 without padding; each `xs` is a
//! percent-encoded http or https URL of the manifest (the publisher's `/manifest`, or a mirror).
//! Parameters we do not know are ignored, as in magnet links, so later versions can add some.

use std::fmt;
use std::str::FromStr;

use percent_encoding::{percent_decode_str, utf8_percent_encode};
use url::Url;

use crate::error::LinkError;
use crate::keys::StreamKey;
use crate::torrent::COMPONENT;

/// The scheme and query start of every link.
pub const LINK_PREFIX: &str = "swarmcast:?";

/// A parsed stream link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamLink {
    /// The pinned key.
    pub key: StreamKey,
    /// Manifest URLs, in the order to try them.
    pub sources: Vec<Url>,
}

impl StreamLink {
    /// A link for `key` with the given manifest sources (each must be http or https). With no
    /// source (`swarmcast:?pk=...` alone) a viewer finds the stream on the DHT and its
    /// manifests in the swarm (docs/manifest.md, "The DHT item").
    pub fn new(key: StreamKey, sources: Vec<Url>) -> Result<Self, LinkError> {
        for s in &sources {
            check_source(s)?;
        }
        Ok(Self { key, sources })
    }
}

fn check_source(url: &Url) -> Result<(), LinkError> {
    match url.scheme() {
        "http" | "https" if url.has_host() => Ok(()),
        "http" | "https" => Err(LinkError::BadSource {
            url: url.to_string(),
            reason: "it has no host".into(),
        }),
        other => Err(LinkError::BadSource {
            url: url.to_string(),
            reason: format!("scheme {other:?}: expected http or https"),
        }),
    }
}

impl FromStr for StreamLink {
    type Err = LinkError;

    fn from_str(s: &str) -> Result<Self, LinkError> {
        let query = s
            .trim()
            .strip_prefix(LINK_PREFIX)
            .ok_or(LinkError::BadScheme)?;
        let mut key = None;
        let mut sources = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value =
                percent_decode_str(value)
                    .decode_utf8()
                    .map_err(|_| LinkError::BadEncoding {
                        name: name.to_owned(),
                    })?;
            match name {
                "pk" if key.is_some() => return Err(LinkError::DuplicateKey),
                "pk" => key = Some(value.parse::<StreamKey>()?),
                "xs" => {
                    let url = Url::parse(&value).map_err(|e| LinkError::BadSource {
                        url: value.to_string(),
                        reason: e.to_string(),
                    })?;
                    check_source(&url)?;
                    sources.push(url);
                }
                _ => {}
            }
        }
        Self::new(key.ok_or(LinkError::MissingKey)?, sources)
    }
}

impl fmt::Display for StreamLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{LINK_PREFIX}pk={}", self.key)?;
        for s in &self.sources {
            write!(f, "&xs={}", utf8_percent_encode(s.as_str(), COMPONENT))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::StreamSecret;

    fn key() -> StreamKey {
        StreamSecret::from_seed(&[3; 32]).public()
    }

    #[test]
    fn round_trips_with_mirrors() {
        let link = StreamLink::new(
            key(),
            vec![
                Url::parse("http://127.0.0.1:8080/manifest").unwrap(),
                Url::parse("https://cdn.example/s/manifest?x=1&y=2").unwrap(),
            ],
        )
        .unwrap();
        let text = link.to_string();
        assert!(text.starts_with(&format!(
            "swarmcast:?pk={}&xs=http%3A%2F%2F127.0.0.1%3A8080%2Fmanifest&xs=",
            key()
        )));
        assert!(
            !text[LINK_PREFIX.len()..].contains(['?', '/', ':']),
            "{text}"
        );
        assert_eq!(text.parse::<StreamLink>().unwrap(), link);
    }

    #[test]
    fn ignores_unknown_parameters() {
        let text = format!("swarmcast:?xs=http%3A%2F%2Fh%2Fm&later=1&pk={}", key());
        assert_eq!(
            text.parse::<StreamLink>().unwrap().sources[0].as_str(),
            "http://h/m"
        );
    }

    #[test]
    fn a_key_alone_is_a_link() {
        let text = format!("swarmcast:?pk={}", key());
        let link: StreamLink = text.parse().unwrap();
        assert!(link.sources.is_empty());
        assert_eq!(link.to_string(), text);
    }

    #[test]
    fn refuses_bad_links() {
        let k = key();
        type Check = fn(&LinkError) -> bool;
        let cases: Vec<(String, Check)> = vec![
            ("magnet:?pk=x".into(), |e| matches!(e, LinkError::BadScheme)),
            ("swarmcast:?xs=http%3A%2F%2Fh%2F".into(), |e| {
                matches!(e, LinkError::MissingKey)
            }),
            (
                format!("swarmcast:?pk={k}&pk={k}&xs=http%3A%2F%2Fh%2F"),
                |e| matches!(e, LinkError::DuplicateKey),
            ),
            (format!("swarmcast:?pk={k}&xs=ftp%3A%2F%2Fh%2F"), |e| {
                matches!(e, LinkError::BadSource { .. })
            }),
            (format!("swarmcast:?pk={k}&xs=%FF"), |e| {
                matches!(e, LinkError::BadEncoding { .. })
            }),
            ("swarmcast:?pk=abc&xs=http%3A%2F%2Fh%2F".into(), |e| {
                matches!(e, LinkError::BadKey(_))
            }),
        ];
        for (text, check) in cases {
            let err = text.parse::<StreamLink>().unwrap_err();
            assert!(check(&err), "{text}: {err:?}");
        }
    }
}
