//! Typed errors of the core. Messages are lowercase and name the field, the expected and the found
//! value; verification failures are variants of their own so callers can match on them.

use thiserror::Error;

use crate::keys::StreamKey;

/// A bencode document that is malformed, non-canonical or too deeply nested.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum BencodeError {
    /// The document ends in the middle of a value.
    #[error("bencode ends unexpectedly at byte {offset}")]
    UnexpectedEnd {
        /// Where the input ran out.
        offset: usize,
    },
    /// A byte that cannot start a value.
    #[error("bencode has unexpected byte 0x{byte:02x} at byte {offset}")]
    UnexpectedByte {
        /// Offset of the byte.
        offset: usize,
        /// The byte found.
        byte: u8,
    },
    /// An integer that is not a decimal number within the range of an `i64` (what `serde_bencode`
    /// reads).
    #[error("bencode integer at byte {offset} is malformed")]
    BadInteger {
        /// Offset of the `i`.
        offset: usize,
    },
    /// A byte-string length that is not a decimal number.
    #[error("bencode string length at byte {offset} is malformed")]
    BadLength {
        /// Offset of the length.
        offset: usize,
    },
    /// Valid bencode, but not the one canonical encoding of its value.
    #[error("bencode is not canonical at byte {offset}: {what}")]
    NonCanonical {
        /// Offset of the offending item.
        offset: usize,
        /// What is wrong.
        what: &'static str,
    },
    /// Lists and dictionaries nested deeper than allowed.
    #[error("bencode nests deeper than {max} levels at byte {offset}")]
    TooDeep {
        /// Offset of the list or dictionary that went too deep.
        offset: usize,
        /// The limit.
        max: usize,
    },
    /// Bytes after the end of the value.
    #[error("bencode has trailing bytes after byte {offset}")]
    TrailingBytes {
        /// Where the value ended.
        offset: usize,
    },
    /// A dictionary was expected at the top level.
    #[error("bencode top-level value is not a dictionary")]
    NotADictionary,
}

/// Errors building or reading a segment torrent.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TorrentError {
    /// Segments must hold at least one byte.
    #[error("segment is empty: a torrent needs at least one byte")]
    EmptySegment,
    /// The piece length is outside the rule.
    #[error("piece length {found} is invalid: expected a power of two from 16384 (16 KiB) to 16777216 (16 MiB)")]
    BadPieceLength {
        /// The piece length given.
        found: u64,
    },
    /// The reader gave a different number of bytes than announced.
    #[error("segment changed while hashing: expected {expected} bytes, read {found}")]
    SizeChanged {
        /// Bytes announced.
        expected: u64,
        /// Bytes read.
        found: u64,
    },
    /// The segment name is unusable as a single-file torrent name.
    #[error("segment name {name:?} is invalid: {reason}")]
    BadName {
        /// The name given.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A tracker URL that is not a URL.
    #[error("tracker url {url:?} is invalid: {reason}")]
    BadTracker {
        /// The URL given.
        url: String,
        /// Why it is refused.
        reason: String,
    },
    /// Reading the segment failed.
    #[error("reading the segment failed")]
    Io(#[from] std::io::Error),
    /// A .torrent or info dictionary that cannot be decoded.
    #[error("torrent is malformed: {0}")]
    Malformed(String),
    /// The bytes are not bencode.
    #[error("torrent is not valid bencode")]
    Bencode(#[from] BencodeError),
}

/// Why a manifest was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The document is over the size limit.
    #[error("manifest is {found} bytes: the limit is {max}")]
    TooLarge {
        /// Size of the document.
        found: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes are not valid, canonical bencode.
    #[error("manifest {part} is not valid canonical bencode")]
    Bencode {
        /// `envelope` or `body`.
        part: &'static str,
        /// What is wrong.
        #[source]
        source: BencodeError,
    },
    /// The bencode is fine but a field is missing or of the wrong type.
    #[error("manifest {part} is malformed: {reason}")]
    Malformed {
        /// `envelope` or `body`.
        part: &'static str,
        /// What the decoder said.
        reason: String,
    },
    /// A field has a value outside its domain.
    #[error("manifest field {field} is invalid: expected {expected}, found {found}")]
    BadField {
        /// The field.
        field: &'static str,
        /// What was expected.
        expected: String,
        /// What was found.
        found: String,
    },
    /// A format version this build does not read.
    #[error(
        "manifest format version {found} is not supported (this build reads version {supported})"
    )]
    UnsupportedVersion {
        /// Version in the document.
        found: u64,
        /// The version we read.
        supported: u64,
    },
    /// The document names another stream's key.
    #[error("manifest is for another stream: expected key {expected}, found {found}")]
    WrongStream {
        /// The pinned key.
        expected: StreamKey,
        /// The key in the body.
        found: StreamKey,
    },
    /// The signature does not verify.
    #[error("manifest signature is invalid")]
    BadSignature,
    /// An older manifest than one already accepted.
    #[error(
        "manifest sequence {found} is older than the last accepted {last} (stale or replayed)"
    )]
    StaleSequence {
        /// Last sequence accepted.
        last: u64,
        /// Sequence in the document.
        found: u64,
    },
    /// Two different documents signed with the same sequence number.
    #[error("manifest equivocation: sequence {seq} was already accepted with different contents")]
    Equivocation {
        /// The sequence number.
        seq: u64,
    },
    /// Segment numbers in the window are not consecutive.
    #[error(
        "manifest window is not contiguous: entry {index} is segment {found}, expected {expected}"
    )]
    NotContiguous {
        /// Position in the window.
        index: usize,
        /// Segment number expected.
        expected: u64,
        /// Segment number found.
        found: u64,
    },
    /// A segment's info dictionary does not hash to its stated info hash.
    #[error("segment {segment}: info dictionary hashes to {computed}, manifest states {stated}")]
    InfoHashMismatch {
        /// Segment number.
        segment: u64,
        /// Info hash stated.
        stated: String,
        /// SHA-1 of the info bytes.
        computed: String,
    },
    /// A segment's info dictionary is not a valid single-file info or disagrees with the entry.
    #[error("segment {segment}: info dictionary is invalid: {reason}")]
    BadInfo {
        /// Segment number.
        segment: u64,
        /// What is wrong.
        reason: String,
    },
    /// A manifest delta names a base document other than the one held.
    #[error("manifest delta applies to sequence {stated}, but the last accepted is {}", .have.map_or("none".to_owned(), |s| s.to_string()))]
    DeltaBase {
        /// The `base` the delta names.
        stated: u64,
        /// The sequence number of the document held (None: nothing accepted yet).
        have: Option<u64>,
    },
    /// Over one of the format's limits.
    #[error("manifest {field} has {found} entries: the limit is {max}")]
    LimitExceeded {
        /// The field.
        field: &'static str,
        /// The limit.
        max: usize,
        /// What was found.
        found: usize,
    },
}

/// Why a stream link was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum LinkError {
    /// Not a `swarmcast:?` link.
    #[error("stream link must start with \"swarmcast:?\"")]
    BadScheme,
    /// `pk` is missing.
    #[error("stream link has no pk (public key) parameter")]
    MissingKey,
    /// `pk` given more than once.
    #[error("stream link has more than one pk parameter")]
    DuplicateKey,
    /// No `xs` source where one is needed (a link alone is valid: the stream is found on the
    /// DHT).
    #[error("stream link has no xs (manifest url) parameter")]
    MissingSource,
    /// A parameter is not percent-encoded UTF-8.
    #[error("stream link parameter {name} is not valid percent-encoded utf-8")]
    BadEncoding {
        /// The parameter.
        name: String,
    },
    /// A source URL is invalid.
    #[error("stream link source {url:?} is invalid: {reason}")]
    BadSource {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The key is invalid.
    #[error("stream link key is invalid")]
    BadKey(#[from] KeyError),
}

/// Problems with a key.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Not base32 of the right length.
    #[error("public key {found:?} is not 52 characters of base32 (rfc 4648, no padding)")]
    BadPublicKeyText {
        /// The text given.
        found: String,
    },
    /// Bytes of a point that is not a valid ed25519 public key.
    #[error("public key is not a valid ed25519 point")]
    NotAPoint,
    /// A secret key of the wrong size.
    #[error("secret key is {found} bytes: expected 32")]
    BadSecretSize {
        /// Size found.
        found: usize,
    },
}

/// Problems reading or writing a secret key file.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// The file exists and would be overwritten.
    #[error("key file {path} already exists: refusing to overwrite it")]
    Exists {
        /// The path.
        path: std::path::PathBuf,
    },
    /// Other users can read or write the file.
    #[error(
        "key file {path} has mode {mode:o}: expected no access for group and others (chmod 600)"
    )]
    Permissions {
        /// The path.
        path: std::path::PathBuf,
        /// Its mode bits.
        mode: u32,
    },
    /// The file does not hold a 32-byte seed.
    #[error("key file {path} is {found} bytes: expected a 32-byte ed25519 seed")]
    Size {
        /// The path.
        path: std::path::PathBuf,
        /// Its size.
        found: u64,
    },
    /// The operating system refused.
    #[error("key file {path}: {source}")]
    Io {
        /// The path.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}
