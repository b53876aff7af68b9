//! A GitHub App's JSON Web Token: RS256 over `{"iat", "exp", "iss"}` with the App's private
//! key, as GitHub documents ("Generating a JSON Web Token for a GitHub App": issued a minute
//! in the past against clock drift, expiring at most ten minutes later).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};

/// An App's private key, read once.
pub struct AppKey(RsaKeyPair);

impl std::fmt::Debug for AppKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AppKey([redacted])")
    }
}

impl AppKey {
    /// Reads a PEM private key: PKCS#1 (`BEGIN RSA PRIVATE KEY`, as GitHub hands it out) or
    /// PKCS#8 (`BEGIN PRIVATE KEY`). The error never repeats the key.
    ///
    /// # Errors
    /// What is wrong with it.
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        let pkcs1 = pem.contains("BEGIN RSA PRIVATE KEY");
        let body: String = pem.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("-----")).collect();
        let der = STANDARD
            .decode(body)
            .map_err(|_| "the App's private key is not PEM (base64 between its BEGIN and END lines)".to_string())?;
        let key = if pkcs1 { RsaKeyPair::from_der(&der) } else { RsaKeyPair::from_pkcs8(&der) };
        key.map(Self).map_err(|e| format!("the App's private key is not an RSA private key GitHub makes: {e}"))
    }

    /// The JWT that authenticates as App `app_id` at `now`.
    ///
    /// # Errors
    /// When the key cannot sign.
    pub fn jwt(&self, app_id: u64, now: DateTime<Utc>) -> Result<String, String> {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let iat = now.timestamp() - 60;
        let claims = URL_SAFE_NO_PAD.encode(format!(r#"{{"iat":{iat},"exp":{},"iss":"{app_id}"}}"#, iat + 540));
        let message = format!("{header}.{claims}");
        let mut signature = vec![0; self.0.public().modulus_len()];
        self.0
            .sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), message.as_bytes(), &mut signature)
            .map_err(|_| "signing the App's token failed".to_string())?;
        Ok(format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_that_is_no_key_is_refused_without_being_repeated() {
        for pem in [
            "",
            "-----BEGIN RSA PRIVATE KEY-----\nnot base64!\n-----END RSA PRIVATE KEY-----",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
        ] {
            let error = AppKey::from_pem(pem).map(|_| ()).unwrap_err();
            assert!(!error.contains("AAAA") && !error.contains("not base64!"), "{error}");
        }
    }
}
