//! Positions in the relayed stream: `<segment>:<offset>` (docs/relay.md, "Positions").

use std::fmt;
use std::str::FromStr;

/// A byte of the relayed stream: byte `offset` of segment `segment`'s file. The relayed stream
/// is the published segment files concatenated in number order, so positions order as
/// `(segment, offset)` pairs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// Segment number (as in the manifest).
    pub segment: u64,
    /// Byte offset in that segment's file.
    pub offset: u64,
}

impl Position {
    /// Byte `offset` of segment `segment`.
    pub const fn new(segment: u64, offset: u64) -> Self {
        Self { segment, offset }
    }

    /// The start of segment `segment`.
    pub const fn start_of(segment: u64) -> Self {
        Self::new(segment, 0)
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.segment, self.offset)
    }
}

/// A position that is not `<segment>:<offset>` in decimal.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("position {0:?}: expected <segment>:<offset>, two decimal numbers (e.g. 12:65536)")]
pub struct PositionError(pub String);

impl FromStr for Position {
    type Err = PositionError;

    fn from_str(s: &str) -> Result<Self, PositionError> {
        let bad = || PositionError(s.chars().take(64).collect());
        let (seg, off) = s.split_once(':').ok_or_else(bad)?;
        let digits =
            |t: &str| !t.is_empty() && t.len() <= 20 && t.bytes().all(|b| b.is_ascii_digit());
        if !digits(seg) || !digits(off) {
            return Err(bad());
        }
        Ok(Self {
            segment: seg.parse().map_err(|_| bad())?,
            offset: off.parse().map_err(|_| bad())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_parse_print_and_order() {
        let p: Position = "12:65536".parse().unwrap();
        assert_eq!(p, Position::new(12, 65536));
        assert_eq!(p.to_string(), "12:65536");
        assert!(Position::new(3, 900) < Position::new(4, 0));
        assert!(Position::new(4, 1) > Position::new(4, 0));
        for bad in [
            "",
            "12",
            ":1",
            "1:",
            "a:1",
            "1:-2",
            "+1:2",
            "1:2:3",
            "99999999999999999999:0",
        ] {
            let e = bad.parse::<Position>().unwrap_err();
            assert!(
                e.to_string().contains("expected <segment>:<offset>"),
                "{bad}: {e}"
            );
        }
    }
}
