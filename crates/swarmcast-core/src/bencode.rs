//! Structural checks on bencode that `serde_bencode` does not make.
//!
//! `serde_bencode` decodes leniently: it accepts unsorted or repeated dictionary keys, integers with
//! leading zeros or a `+` sign, and ignores trailing bytes; it also recurses once per nesting level,
//! so a hostile document of a million `l`s would overflow the stack. Signed documents must be
//! canonical (one byte string per meaning), so before any `serde_bencode` decode we walk the bytes
//! once here, with a depth limit, and either prove them canonical or say exactly where they are not.
//! The walk is also how we find the exact bytes of a `.torrent`'s `info` value, which is what the
//! info hash is computed over.

use std::ops::Range;

use crate::error::BencodeError;

/// Deepest nesting of lists and dictionaries we accept. Our documents need 4.
pub const MAX_DEPTH: usize = 32;

/// Checks that `bytes` is exactly one canonical bencode value: dictionary keys sorted and unique,
/// integers within `i64` and without leading zeros, `+` or `-0`, string lengths without leading
/// zeros, nesting at most [`MAX_DEPTH`], and nothing after the value.
pub fn check_canonical(bytes: &[u8]) -> Result<(), BencodeError> {
    let end = Walker::new(bytes, true).value(0, 0)?;
    if end != bytes.len() {
        return Err(BencodeError::TrailingBytes { offset: end });
    }
    Ok(())
}

/// Returns the byte range of the value stored under `key` in the top-level dictionary of `bytes`.
///
/// The walk is lenient about canonical form (foreign `.torrent` files are not always canonical) but
/// still bounded in depth and length. `Ok(None)` means the dictionary has no such key.
pub fn dict_value_span(bytes: &[u8], key: &[u8]) -> Result<Option<Range<usize>>, BencodeError> {
    let walker = Walker::new(bytes, false);
    if bytes.first() != Some(&b'd') {
        return Err(BencodeError::NotADictionary);
    }
    let mut pos = 1;
    let mut found = None;
    loop {
        match bytes.get(pos) {
            None => return Err(BencodeError::UnexpectedEnd { offset: pos }),
            Some(b'e') => return Ok(found),
            Some(_) => {
                let (k, after_key) = walker.string(pos)?;
                let end = walker.value(after_key, 1)?;
                if k == key && found.is_none() {
                    found = Some(after_key..end);
                }
                pos = end;
            }
        }
    }
}

struct Walker<'a> {
    bytes: &'a [u8],
    strict: bool,
}

impl<'a> Walker<'a> {
    fn new(bytes: &'a [u8], strict: bool) -> Self {
        Self { bytes, strict }
    }

    /// Walks the value starting at `pos`, returns the offset just past it.
    fn value(&self, pos: usize, depth: usize) -> Result<usize, BencodeError> {
        match self.bytes.get(pos) {
            None => Err(BencodeError::UnexpectedEnd { offset: pos }),
            Some(b'i') => self.integer(pos),
            Some(b'0'..=b'9') => Ok(self.string(pos)?.1),
            Some(b'l') | Some(b'd') if depth >= MAX_DEPTH => Err(BencodeError::TooDeep {
                offset: pos,
                max: MAX_DEPTH,
            }),
            Some(b'l') => {
                let mut p = pos + 1;
                while self.bytes.get(p) != Some(&b'e') {
                    p = self.value(p, depth + 1)?;
                }
                Ok(p + 1)
            }
            Some(b'd') => {
                let mut p = pos + 1;
                let mut previous: Option<&[u8]> = None;
                while self.bytes.get(p) != Some(&b'e') {
                    let key_offset = p;
                    let (key, after_key) = self.string(p)?;
                    if self.strict {
                        if let Some(prev) = previous {
                            if key <= prev {
                                return Err(BencodeError::NonCanonical {
                                    offset: key_offset,
                                    what: "dictionary keys not sorted and unique",
                                });
                            }
                        }
                    }
                    previous = Some(key);
                    p = self.value(after_key, depth + 1)?;
                }
                Ok(p + 1)
            }
            Some(&other) => Err(BencodeError::UnexpectedByte {
                offset: pos,
                byte: other,
            }),
        }
    }

    fn integer(&self, pos: usize) -> Result<usize, BencodeError> {
        let start = pos + 1;
        let len = self.bytes[start..].iter().position(|&b| b == b'e').ok_or(
            BencodeError::UnexpectedEnd {
                offset: self.bytes.len(),
            },
        )?;
        let digits = &self.bytes[start..start + len];
        let unsigned = digits.strip_prefix(b"-").unwrap_or(digits);
        // Within i64, as serde_bencode reads every integer: a walk that passed 9444444444444444444
        // left the decoder to refuse it later, less clearly (found by fuzzing).
        let in_range = std::str::from_utf8(digits)
            .ok()
            .is_some_and(|d| d.parse::<i64>().is_ok());
        if unsigned.is_empty() || !unsigned.iter().all(u8::is_ascii_digit) || !in_range {
            return Err(BencodeError::BadInteger { offset: pos });
        }
        if self.strict && ((unsigned.len() > 1 && unsigned[0] == b'0') || digits == b"-0") {
            return Err(BencodeError::NonCanonical {
                offset: pos,
                what: "integer with a leading zero or -0",
            });
        }
        Ok(start + len + 1)
    }

    /// Walks a byte string; returns its contents and the offset just past it.
    fn string(&self, pos: usize) -> Result<(&'a [u8], usize), BencodeError> {
        let colon = self.bytes[pos..]
            .iter()
            .take(21)
            .position(|&b| b == b':')
            .ok_or(BencodeError::BadLength { offset: pos })?;
        let digits = &self.bytes[pos..pos + colon];
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return Err(BencodeError::BadLength { offset: pos });
        }
        if self.strict && digits.len() > 1 && digits[0] == b'0' {
            return Err(BencodeError::NonCanonical {
                offset: pos,
                what: "string length with a leading zero",
            });
        }
        let len: usize = std::str::from_utf8(digits)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(BencodeError::BadLength { offset: pos })?;
        let start = pos + colon + 1;
        let end = start
            .checked_add(len)
            .filter(|&end| end <= self.bytes.len())
            .ok_or(BencodeError::UnexpectedEnd {
                offset: self.bytes.len(),
            })?;
        Ok((&self.bytes[start..end], end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_canonical_values() {
        for ok in [
            &b"i0e"[..],
            b"i-3e",
            b"i42e",
            b"0:",
            b"4:spam",
            b"le",
            b"de",
            b"d1:ai1e1:bli2eee",
        ] {
            check_canonical(ok).unwrap_or_else(|e| panic!("{}: {e}", String::from_utf8_lossy(ok)));
        }
    }

    #[test]
    fn rejects_non_canonical_and_malformed() {
        for bad in [
            &b"i03e"[..],
            b"i-0e",
            b"i+3e",
            b"ie",
            b"i3",
            b"03:abc",
            b"4:abc",
            b"d1:bi1e1:ai1ee",
            b"d1:ai1e1:ai1ee",
            b"li1e",
            b"i1ei2e",
            b"x",
            b"",
            b"d",
            b"di1ei1ee",
            b"99999999999999999999999:",
        ] {
            assert!(
                check_canonical(bad).is_err(),
                "accepted {}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    /// Fuzzing found `i9444444444444444444e` (19 digits, past `i64::MAX`) proven canonical, which
    /// serde_bencode then cannot decode (fuzz/corpus/bencode holds the input).
    #[test]
    fn integers_outside_i64_are_refused() {
        for bad in [
            &b"i9444444444444444444e"[..],
            b"i9223372036854775808e",
            b"i-9223372036854775809e",
            b"d1:ai99999999999999999999ee",
        ] {
            assert!(
                matches!(check_canonical(bad), Err(BencodeError::BadInteger { .. })),
                "accepted {}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(matches!(
            dict_value_span(b"d1:ai9444444444444444444e4:infode", b"info"),
            Err(BencodeError::BadInteger { .. })
        ));
        for ok in [&b"i9223372036854775807e"[..], b"i-9223372036854775808e"] {
            check_canonical(ok).unwrap();
            let _: i64 = serde_bencode::from_bytes(ok).unwrap();
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let mut doc = vec![b'l'; 1_000_000];
        doc.extend(std::iter::repeat_n(b'e', 1_000_000));
        assert!(matches!(
            check_canonical(&doc),
            Err(BencodeError::TooDeep { .. })
        ));
        let mut ok = vec![b'l'; MAX_DEPTH];
        ok.extend(std::iter::repeat_n(b'e', MAX_DEPTH));
        check_canonical(&ok).unwrap();
    }

    #[test]
    fn finds_the_span_of_a_key() {
        let doc = b"d8:announce3:url4:infod6:lengthi5eee";
        let span = dict_value_span(doc, b"info").unwrap().unwrap();
        assert_eq!(&doc[span], b"d6:lengthi5ee");
        assert_eq!(dict_value_span(doc, b"nope").unwrap(), None);
        assert!(dict_value_span(b"le", b"info").is_err());
    }
}
