//! The stream's identity: an ed25519 key pair.
//!
//! [`StreamKey`] is the public half, written in links as RFC 4648 base32, lowercase, without
//! padding (52 characters). [`StreamSecret`] signs manifests. [`keyfile`] stores the secret as its
//! raw 32-byte seed in a file only its owner may read: the one place the core touches the
//! filesystem, because both `keygen` and `publish` need exactly the same checks.

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use data_encoding::{Encoding, Specification};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::error::KeyError;

static BASE32: LazyLock<Encoding> = LazyLock::new(|| {
    let mut spec = Specification::new();
    spec.symbols.push_str("abcdefghijklmnopqrstuvwxyz234567");
    // Accept upper case on input (people retype links); always print lower case.
    spec.translate.from.push_str("ABCDEFGHIJKLMNOPQRSTUVWXYZ");
    spec.translate.to.push_str("abcdefghijklmnopqrstuvwxyz");
    spec.encoding()
        .expect("a constant, valid base32 specification")
});

/// Encodes bytes as RFC 4648 base32, lowercase, no padding.
pub fn base32_encode(bytes: &[u8]) -> String {
    BASE32.encode(bytes)
}

/// A stream's public key: the identity viewers pin.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamKey([u8; 32]);

impl StreamKey {
    /// Length of the key in bytes.
    pub const LEN: usize = 32;

    /// Reads a key from its 32 bytes; fails if they are not a valid curve point.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, KeyError> {
        VerifyingKey::from_bytes(bytes)
            .map(|_| Self(*bytes))
            .map_err(|_| KeyError::NotAPoint)
    }

    /// The key's 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Checks an ed25519 signature over `message` (strict verification: no malleable signatures).
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        // The bytes were checked to be a point when the key was made, so decoding cannot fail;
        // if it did, the answer would still only be "not verified".
        VerifyingKey::from_bytes(&self.0).is_ok_and(|key| {
            key.verify_strict(message, &Signature::from_bytes(signature))
                .is_ok()
        })
    }
}

impl fmt::Display for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&base32_encode(self.as_bytes()))
    }
}

impl fmt::Debug for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StreamKey({self})")
    }
}

impl FromStr for StreamKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, KeyError> {
        let bad = || KeyError::BadPublicKeyText {
            found: s.to_owned(),
        };
        let bytes = BASE32.decode(s.as_bytes()).map_err(|_| bad())?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| bad())?;
        Self::from_bytes(&bytes)
    }
}

/// A stream's secret key: signs manifests. Its `Debug` never shows the secret.
#[derive(Clone)]
pub struct StreamSecret(SigningKey);

impl StreamSecret {
    /// A new key from the operating system's random source.
    pub fn generate() -> Result<Self, std::io::Error> {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).map_err(std::io::Error::from)?;
        Ok(Self::from_seed(&seed))
    }

    /// The key for a 32-byte seed (RFC 8032 secret key).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self(SigningKey::from_bytes(seed))
    }

    /// The key for a seed given as a slice; fails unless it is 32 bytes.
    pub fn from_slice(seed: &[u8]) -> Result<Self, KeyError> {
        let seed: &[u8; 32] = seed
            .try_into()
            .map_err(|_| KeyError::BadSecretSize { found: seed.len() })?;
        Ok(Self::from_seed(seed))
    }

    /// The 32-byte seed.
    pub fn seed(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }

    /// The public half.
    pub fn public(&self) -> StreamKey {
        StreamKey(self.0.verifying_key().to_bytes())
    }

    /// Signs `message` (deterministic, RFC 8032).
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }
}

impl fmt::Debug for StreamSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StreamSecret(public: {})", self.public())
    }
}

/// Secret key files: the raw 32-byte seed, mode 0600.
pub mod keyfile {
    use std::fs;
    use std::io::Write;
    use std::path::Path;

    use super::StreamSecret;
    use crate::error::KeyFileError;

    fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> KeyFileError + '_ {
        move |source| KeyFileError::Io {
            path: path.to_owned(),
            source,
        }
    }

    /// Writes `secret` to a new file at `path`, readable only by its owner; refuses to overwrite.
    pub fn write_new(path: &Path, secret: &StreamSecret) -> Result<(), KeyFileError> {
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => KeyFileError::Exists {
                path: path.to_owned(),
            },
            _ => KeyFileError::Io {
                path: path.to_owned(),
                source: e,
            },
        })?;
        file.write_all(secret.seed()).map_err(io_err(path))?;
        file.sync_all().map_err(io_err(path))
    }

    /// Reads a secret key file, refusing one that others may read or that is not 32 bytes.
    pub fn read(path: &Path) -> Result<StreamSecret, KeyFileError> {
        let meta = fs::metadata(path).map_err(io_err(path))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(KeyFileError::Permissions {
                    path: path.to_owned(),
                    mode,
                });
            }
        }
        if meta.len() != 32 {
            return Err(KeyFileError::Size {
                path: path.to_owned(),
                found: meta.len(),
            });
        }
        let bytes = fs::read(path).map_err(io_err(path))?;
        StreamSecret::from_slice(&bytes).map_err(|_| KeyFileError::Size {
            path: path.to_owned(),
            found: bytes.len() as u64,
        })
    }

    /// Reads the key at `path`, or creates one there if there is no file yet.
    pub fn read_or_create(path: &Path) -> Result<(StreamSecret, bool), KeyFileError> {
        match read(path) {
            Ok(secret) => Ok((secret, false)),
            Err(KeyFileError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                let secret = StreamSecret::generate().map_err(io_err(path))?;
                write_new(path, &secret)?;
                Ok((secret, true))
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::KeyFileError;

    #[test]
    fn public_key_text_round_trips() {
        let secret = StreamSecret::from_seed(&[7; 32]);
        let text = secret.public().to_string();
        assert_eq!(text.len(), 52);
        assert_eq!(text, text.to_lowercase());
        assert_eq!(text.parse::<StreamKey>().unwrap(), secret.public());
        assert_eq!(
            text.to_uppercase().parse::<StreamKey>().unwrap(),
            secret.public()
        );
        assert!(text[..51].parse::<StreamKey>().is_err());
        assert!(format!("{text}a").parse::<StreamKey>().is_err());
        assert!("not base32!".parse::<StreamKey>().is_err());
    }

    #[test]
    fn signatures_verify_only_for_their_message_and_key() {
        let secret = StreamSecret::from_seed(&[1; 32]);
        let sig = secret.sign(b"hello");
        assert!(secret.public().verify(b"hello", &sig));
        assert!(!secret.public().verify(b"hellp", &sig));
        assert!(!StreamSecret::from_seed(&[2; 32])
            .public()
            .verify(b"hello", &sig));
    }

    #[test]
    fn debug_hides_the_secret() {
        let secret = StreamSecret::from_seed(&[9; 32]);
        assert!(!format!("{secret:?}").contains(&hex::encode(secret.seed())));
    }

    #[cfg(unix)]
    #[test]
    fn key_files_are_private_and_never_overwritten() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let (created, fresh) = keyfile::read_or_create(&path).unwrap();
        assert!(fresh);
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let (again, fresh) = keyfile::read_or_create(&path).unwrap();
        assert!(!fresh);
        assert_eq!(again.seed(), created.seed());
        assert!(matches!(
            keyfile::write_new(&path, &again),
            Err(KeyFileError::Exists { .. })
        ));
        assert_eq!(keyfile::read(&path).unwrap().seed(), created.seed());

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            keyfile::read(&path),
            Err(KeyFileError::Permissions { mode: 0o644, .. })
        ));

        let short = dir.path().join("short");
        std::fs::write(&short, [0u8; 31]).unwrap();
        std::fs::set_permissions(&short, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            keyfile::read(&short),
            Err(KeyFileError::Size { found: 31, .. })
        ));
    }
}
