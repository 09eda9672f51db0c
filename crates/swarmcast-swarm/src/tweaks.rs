//! The switches of swarmcast's librqbit patch series (docs/librqbit.md), for measurement.
//!
//! Every change is on by default. They are process-wide (librqbit reads them in its peer and
//! piece code), so a publisher or viewer process sets them once, before its session starts; the
//! lab runs the same configuration with some of them off to measure each change.

pub use librqbit::swarm_tweaks::SwarmTweak;

/// Names of every switch, in patch-series order (`have`, `wake`, ...).
pub fn names() -> Vec<&'static str> {
    SwarmTweak::ALL.iter().map(|t| t.name()).collect()
}

/// Parses a comma-separated list of switch names (or `all`, or `none`/empty) into switches.
pub fn parse(list: &str) -> Result<Vec<SwarmTweak>, String> {
    let mut out = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        match name {
            "none" => {}
            "all" => out.extend_from_slice(SwarmTweak::ALL),
            _ => out.push(SwarmTweak::from_name(name).ok_or_else(|| {
                format!(
                    "unknown librqbit change {name:?}: expected all, none or one of {}",
                    names().join(", ")
                )
            })?),
        }
    }
    out.sort_by_key(|t| t.name());
    out.dedup();
    Ok(out)
}

/// Turns the listed changes off and every other one on, for the whole process.
pub fn set_off(off: &[SwarmTweak]) {
    for t in SwarmTweak::ALL {
        t.set_enabled(!off.contains(t));
    }
}

/// Whether the publisher super-seeds with these changes off: the switch that turns librqbit's
/// super-seeding off (`superseed`) turns the wire seeder's off too, so a lab variant means the
/// same with either seeder.
pub fn super_seeding(off: &[SwarmTweak]) -> bool {
    !off.contains(&SwarmTweak::SuperSeed)
}

/// The changes currently off.
pub fn off() -> Vec<SwarmTweak> {
    SwarmTweak::ALL
        .iter()
        .copied()
        .filter(|t| !t.enabled())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_all_and_none() {
        assert_eq!(parse("").unwrap(), vec![]);
        assert_eq!(parse("none").unwrap(), vec![]);
        assert_eq!(parse("all").unwrap().len(), SwarmTweak::ALL.len());
        assert_eq!(
            parse("random, have,random").unwrap(),
            vec![SwarmTweak::HaveToEmptyPeers, SwarmTweak::RandomPieces]
        );
        let err = parse("have,rarest").unwrap_err();
        assert!(
            err.contains("\"rarest\"") && err.contains("nodelay"),
            "{err}"
        );
    }

    #[test]
    fn the_series_has_the_changes_the_docs_name() {
        assert_eq!(
            names(),
            [
                "have",
                "wake",
                "random",
                "window",
                "cancel",
                "nodelay",
                "superseed",
                "steal",
                "pace",
                "slots",
                "nopex",
                "urgent",
                "ban",
                "lowat",
                "keep",
                "dhtdone"
            ]
        );
    }
}
