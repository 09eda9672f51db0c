//! Variants of the librqbit patch series ([`Variant`]): which changes a swarm run turns off,
//! which seeder its publisher runs, and its publisher options, parsed from names such as
//! `patched`, `upstream`, `no-steal+no-have`, `librqbit-only-window` or `wire@reveal=2`.

use serde::{Deserialize, Serialize};

/// Which changes of swarmcast's librqbit patch series a swarm run turns off (docs/librqbit.md).
///
/// Spelled `patched` (every change on, the default), `upstream` (every change off: librqbit
/// 9.1.0's own behaviour), `no-<change>[+<change>...]` (those off) or `only-<change>[+...]`
/// (only those on); changes are named as `swarmcast publish --librqbit-off` takes them. A
/// `librqbit` prefix (`librqbit`, `librqbit-no-steal`, ...) runs the publisher with `--seeder
/// librqbit` (a librqbit session, super-seeding by patch 0007) instead of the default wire
/// seeder; `upstream` implies it, and a `wire` prefix names the default explicitly. The viewers
/// are librqbit sessions either way.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Variant {
    /// The name as given (first: variants compare and sort by it; the rest follows from it).
    name: String,
    /// The publisher runs a librqbit session (`publish --seeder librqbit`), not the wire seeder.
    librqbit_seeder: bool,
    /// The changes turned off, as `--librqbit-off` names them.
    off: Vec<String>,
    /// The publisher's `--super-seed-reveal`, from an `@reveal=` option.
    reveal: Option<String>,
    /// Manifests carried by the swarm (`@manifests=swarm`): the publisher and the viewers run
    /// with `--swarm-manifests` (viewers then poll HTTP only until their first manifest, and
    /// when the swarm goes quiet).
    swarm_manifests: bool,
    /// The stream found on the DHT (`@manifests=dht`, implies `swarm_manifests`): the run has a
    /// DHT host (`swarmcast dht-testnet`), the publisher runs with `--dht --no-http-manifests
    /// --no-embedded-tracker`, and viewers follow the key-only link it prints, their peers from
    /// the DHT.
    dht: bool,
    /// The publisher's and the viewers' `--manifest-push`, from `@push=` and `@vpush=` options.
    push: Option<u16>,
    /// See `push`.
    vpush: Option<u16>,
    /// Viewers carry their peers from segment to segment on the DHT path (`@carry=on`: viewers
    /// run with `--carried-peers`; otherwise with `--no-carried-peers`, as every run recorded
    /// without the option was, though `watch` carries by default since the ninth session).
    carry: bool,
}

/// How a recorded run's variant is read back (`run.json`, `plan.json`): like a `--variants`
/// name, except that a change the patch series has since dropped is kept by name rather than
/// refused, so that results recorded before regenerate (a variant only names its runs there).
impl TryFrom<String> for Variant {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Variant::parse(&s, false)
    }
}

impl From<Variant> for String {
    fn from(v: Variant) -> Self {
        v.name
    }
}

impl Default for Variant {
    fn default() -> Self {
        Self {
            name: "patched".into(),
            librqbit_seeder: false,
            off: Vec::new(),
            reveal: None,
            swarm_manifests: false,
            dht: false,
            push: None,
            vpush: None,
            carry: false,
        }
    }
}

impl Variant {
    /// The variant's name, as given.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// Whether this is the default (`patched`).
    pub fn is_default(&self) -> bool {
        self.name == "patched"
    }

    /// The changes turned off, as `--librqbit-off` takes them (empty for `patched`).
    pub fn librqbit_off(&self) -> String {
        self.off.join(",")
    }

    /// The publisher's seeder, as `publish --seeder` takes it: `wire` or `librqbit`.
    pub fn seeder(&self) -> &'static str {
        if self.librqbit_seeder {
            "librqbit"
        } else {
            "wire"
        }
    }

    /// The publisher's `--super-seed-reveal` (seconds, or `never`), from an `@reveal=` suffix.
    pub fn super_seed_reveal(&self) -> Option<&str> {
        self.reveal.as_deref()
    }

    /// Manifests carried by the swarm (an `@manifests=swarm` or `@manifests=dht` option).
    pub fn swarm_manifests(&self) -> bool {
        self.swarm_manifests
    }

    /// The stream found on the DHT, without the publisher's HTTP manifests or tracker (an
    /// `@manifests=dht` option).
    pub fn dht(&self) -> bool {
        self.dht
    }

    /// The publisher's `--manifest-push` (an `@push=N` option).
    pub fn manifest_push(&self) -> Option<u16> {
        self.push
    }

    /// The viewers' `--manifest-push` (an `@vpush=N` option).
    pub fn viewer_manifest_push(&self) -> Option<u16> {
        self.vpush
    }

    /// Whether viewers carry their peers from segment to segment (an `@carry=on` option:
    /// viewers run with `--carried-peers`).
    pub fn carry_peers(&self) -> bool {
        self.carry
    }
}

/// A variant's name and its options: `<name>@<option>[@<option>...]`, each `reveal=SECS|never`
/// (the super-seeding reveal, `publish --super-seed-reveal`), `manifests=swarm|dht|http`
/// (manifests carried by the swarm, `--swarm-manifests`; also the stream found on a DHT, with
/// no HTTP manifests or tracker; or over HTTP alone: the default), or
/// `push=N` and `vpush=N` (the publisher's and the viewers' `--manifest-push`, 1-64), or
/// `carry=on|off` (viewers carry their peers from segment to segment on the DHT path,
/// `--carried-peers`, or look every segment up, `--no-carried-peers`: the lab's default), or the
/// name alone.
fn split_options(s: &str) -> (&str, Option<&str>) {
    match s.split_once('@') {
        Some((name, options)) => (name, Some(options)),
        None => (s, None),
    }
}

/// Checks a variant's options (each after an `@`: `--variants` splits its list at commas).
fn check_options(s: &str, options: &str) -> Result<(), String> {
    for option in options.split('@') {
        let ok = match option.split_once('=') {
            Some(("reveal", v)) => {
                v == "never" || v.parse::<f64>().is_ok_and(|x| x.is_finite() && x > 0.0)
            }
            Some(("manifests", v)) => matches!(v, "swarm" | "dht" | "http"),
            Some(("push" | "vpush", v)) => v.parse::<u16>().is_ok_and(|n| (1..=64).contains(&n)),
            Some(("carry", v)) => matches!(v, "on" | "off"),
            _ => false,
        };
        if !ok {
            return Err(format!(
                "variant {s:?}: expected @reveal=SECS|never, @manifests=swarm|dht|http, @push=N or \
                 @vpush=N (1-64), or @carry=on|off after the name (several: each after an @), \
                 found {option:?}"
            ));
        }
    }
    Ok(())
}

/// The value of option `key` in a variant's options, if given.
fn option<'a>(options: Option<&'a str>, key: &str) -> Option<&'a str> {
    options?
        .split('@')
        .filter_map(|o| o.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// The seeder a variant's publisher runs (`publish --seeder`), and the changes part of its name:
/// a `wire` or `librqbit` prefix names the seeder (alone, it means `patched`); without one, the
/// default seeder (`wire`), except for `upstream`, which is librqbit as published, the
/// publisher's seeding included.
fn split_seeder(s: &str) -> (&'static str, &str) {
    for seeder in ["wire", "librqbit"] {
        if s == seeder {
            return (seeder, "patched");
        }
        if let Some(rest) = s.strip_prefix(seeder).and_then(|r| r.strip_prefix('-')) {
            return (seeder, rest);
        }
    }
    match s {
        "upstream" => ("librqbit", s),
        _ => ("wire", s),
    }
}

/// The changes of the librqbit patch series a variant name turns off, or why the name is wrong.
fn changes_off(s: &str, strict: bool) -> Result<Vec<String>, String> {
    let names: Vec<String> = swarmcast_swarm::tweaks::names()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let (_, changes) = split_seeder(s);
    let (list, only) = match changes {
        "patched" => return Ok(Vec::new()),
        "upstream" => return Ok(names),
        _ => match (changes.strip_prefix("no-"), changes.strip_prefix("only-")) {
            (Some(list), _) => (list, false),
            (_, Some(list)) => (list, true),
            _ => {
                return Err(format!(
                    "variant {s:?}: expected patched, upstream, no-<change>[+<change>...] or \
                     only-<change>[+...], each optionally prefixed with wire- or librqbit-"
                ))
            }
        },
    };
    let mut listed = Vec::new();
    for name in list.split('+') {
        match names.iter().find(|n| *n == name) {
            Some(n) => listed.push(n.clone()),
            None if !strict && !name.is_empty() => listed.push(name.to_owned()),
            None => {
                return Err(format!(
                    "variant {s:?}: unknown change {name:?}, expected one of {}",
                    names.join(", ")
                ))
            }
        }
    }
    Ok(match only {
        false => listed,
        true => names.into_iter().filter(|n| !listed.contains(n)).collect(),
    })
}

impl std::str::FromStr for Variant {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Variant::parse(s, true)
    }
}

impl Variant {
    /// `s` parsed; `strict`: a change the patch series does not have is an error.
    fn parse(s: &str, strict: bool) -> Result<Self, String> {
        let (name, options) = split_options(s);
        let off = changes_off(name, strict)?;
        if let Some(o) = options {
            check_options(s, o)?;
        }
        Ok(Self {
            name: s.into(),
            librqbit_seeder: split_seeder(name).0 == "librqbit",
            off,
            reveal: option(options, "reveal").map(str::to_owned),
            swarm_manifests: matches!(option(options, "manifests"), Some("swarm" | "dht")),
            dht: option(options, "manifests") == Some("dht"),
            push: option(options, "push").and_then(|v| v.parse().ok()),
            vpush: option(options, "vpush").and_then(|v| v.parse().ok()),
            carry: option(options, "carry") == Some("on"),
        })
    }
}
