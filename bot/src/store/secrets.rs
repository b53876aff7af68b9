//! Secrets at rest: XChaCha20-Poly1305 under a 32-byte key given as base64
//! (`POLITY_SECRET_KEY`), a fresh random nonce per value, stored as
//! `v1:` + base64(nonce ‖ ciphertext). Each value is bound to where it is stored (the
//! associated data names the row), so a ciphertext copied to another row does not open.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, AeadCore, OsRng, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use std::fmt;

const PREFIX: &str = "v1:";
const NONCE_LEN: usize = 24;

/// The key that encrypts secrets at rest. Debug never shows it.
#[derive(Clone)]
pub struct SecretKey(XChaCha20Poly1305);

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey([redacted])")
    }
}

impl SecretKey {
    /// Reads a key: 32 bytes in standard base64 (surrounding whitespace ignored).
    ///
    /// # Errors
    /// Says what is wrong with the text, never echoing it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bytes = STANDARD.decode(text.trim()).map_err(|_| "it is not base64".to_string())?;
        if bytes.len() != 32 {
            return Err(format!("it is {} bytes long, not 32", bytes.len()));
        }
        let cipher = XChaCha20Poly1305::new_from_slice(&bytes).map_err(|_| "it is not 32 bytes long".to_string())?;
        Ok(Self(cipher))
    }

    /// A new random key, as base64: what `POLITY_SECRET_KEY` should be set to.
    pub fn generate() -> String {
        STANDARD.encode(XChaCha20Poly1305::generate_key(&mut OsRng))
    }

    /// Encrypts `plaintext`, bound to `context` (where it is stored).
    pub(crate) fn seal(&self, plaintext: &str, context: &str) -> Result<String, String> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .0
            .encrypt(&nonce, Payload { msg: plaintext.as_bytes(), aad: context.as_bytes() })
            .map_err(|_| "encryption failed".to_string())?;
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(format!("{PREFIX}{}", STANDARD.encode(out)))
    }

    /// Decrypts what [`Self::seal`] produced for the same `context`; `None` when this key (or
    /// this context) does not open it.
    pub(crate) fn open(&self, stored: &str, context: &str) -> Option<String> {
        let bytes = STANDARD.decode(stored.strip_prefix(PREFIX)?).ok()?;
        if bytes.len() < NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let plain = self.0.decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad: context.as_bytes() }).ok()?;
        String::from_utf8(plain).ok()
    }
}

/// A secret in memory: Debug and Display print `[redacted]`; [`Secret::expose`] gives the text.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The secret itself, for the one place that needs it (an API client). Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn seals_and_opens_only_with_the_same_key_and_context() {
        let key = SecretKey::parse(&SecretKey::generate()).unwrap();
        let other = SecretKey::parse(&SecretKey::generate()).unwrap();
        let a = key.seal("hunter2", "row 1").unwrap();
        let b = key.seal("hunter2", "row 1").unwrap();
        assert_ne!(a, b, "a fresh nonce every time");
        assert!(!a.contains("hunter2"));
        assert_eq!(key.open(&a, "row 1").as_deref(), Some("hunter2"));
        assert_eq!(key.open(&a, "row 2"), None);
        assert_eq!(other.open(&a, "row 1"), None);
        assert_eq!(key.open("v1:!!", "row 1"), None);
        assert_eq!(key.open("plain", "row 1"), None);
    }

    #[test]
    fn bad_keys_are_explained_without_echoing_them() {
        assert_eq!(SecretKey::parse("not base64 at all!").unwrap_err(), "it is not base64");
        assert_eq!(SecretKey::parse(&STANDARD.encode([1u8; 16])).unwrap_err(), "it is 16 bytes long, not 32");
        assert_eq!(format!("{:?}", SecretKey::parse(&SecretKey::generate()).unwrap()), "SecretKey([redacted])");
    }
}
