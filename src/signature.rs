//! Standard Webhooks signatures (<https://www.standardwebhooks.com>): the HMAC-SHA256 scheme
//! that OpenAI uses for its webhooks and that chatwire's own callback protocol uses in both
//! directions (jobs chatwire sends to an NLP service, callbacks the service sends back).
//!
//! Pure functions, no I/O: the web layer verifies incoming webhooks with them, the provider
//! layer signs outgoing jobs, and the built-in simulated NLP service does both. A message is
//! signed as `"{webhook-id}.{webhook-timestamp}.{raw body}"`; the `webhook-signature` header
//! holds one or more space-separated `v1,<base64>` signatures (several during key rotation).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// How far a `webhook-timestamp` may be from our clock, either way.
pub const TOLERANCE_SECS: i64 = 5 * 60;
/// At most this many signatures of one header are checked (bounds the work per request).
const MAX_SIGNATURES: usize = 8;

pub const HEADER_ID: &str = "webhook-id";
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
pub const HEADER_SIGNATURE: &str = "webhook-signature";

/// A signing key, decoded from its `whsec_<base64>` text. Never printed.
#[derive(Clone)]
pub struct Secret {
    key: Vec<u8>,
}

impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        self.key.ct_eq(&other.key).into()
    }
}

impl Eq for Secret {}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Why a secret's text was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("must be `whsec_` followed by base64 (at least 16 bytes once decoded)")]
    Malformed,
}

impl Secret {
    /// Parses `whsec_<base64>` (the prefix is optional, as in the Standard Webhooks libraries).
    pub fn parse(text: &str) -> Result<Secret, SecretError> {
        let b64 = text.trim().strip_prefix("whsec_").unwrap_or(text.trim());
        let key = STANDARD.decode(b64).map_err(|_| SecretError::Malformed)?;
        if key.len() < 16 {
            return Err(SecretError::Malformed);
        }
        Ok(Secret { key })
    }

    /// A fresh random secret and its `whsec_` text.
    pub fn generate() -> (Secret, String) {
        use rand::RngCore;
        let mut key = vec![0u8; 32];
        rand::rng().fill_bytes(&mut key);
        let text = format!("whsec_{}", STANDARD.encode(&key));
        (Secret { key }, text)
    }

    fn mac(&self, id: &str, timestamp: &str, body: &[u8]) -> [u8; 32] {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().into()
    }

    /// The `webhook-signature` value for a message: `v1,<base64>`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        format!(
            "v1,{}",
            STANDARD.encode(self.mac(id, &timestamp.to_string(), body))
        )
    }

    /// The three headers of a signed message, sent at time `now` (Unix seconds).
    pub fn headers(&self, id: &str, now: i64, body: &[u8]) -> [(&'static str, String); 3] {
        [
            (HEADER_ID, id.to_string()),
            (HEADER_TIMESTAMP, now.to_string()),
            (HEADER_SIGNATURE, self.sign(id, now, body)),
        ]
    }
}

/// Why a message was refused. Every case changes nothing on our side.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing `{0}` header")]
    Missing(&'static str),
    #[error("`webhook-timestamp` is not a Unix time in seconds")]
    BadTimestamp,
    #[error("`webhook-timestamp` is more than 5 minutes away from our clock")]
    Stale,
    #[error("no valid `v1` signature")]
    BadSignature,
}

/// The Standard Webhooks headers of one incoming message, as text.
#[derive(Debug, Clone, Copy)]
pub struct Signed<'a> {
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

impl<'a> Signed<'a> {
    /// Checks the headers, the timestamp (against `now`, Unix seconds) and the signature
    /// over `body` with each of `secrets`; returns the index of the secret that matched.
    pub fn verify(&self, body: &[u8], secrets: &[&Secret], now: i64) -> Result<usize, VerifyError> {
        let id = self
            .id
            .filter(|s| !s.is_empty())
            .ok_or(VerifyError::Missing(HEADER_ID))?;
        let ts_text = self
            .timestamp
            .filter(|s| !s.is_empty())
            .ok_or(VerifyError::Missing(HEADER_TIMESTAMP))?;
        let header = self
            .signature
            .filter(|s| !s.is_empty())
            .ok_or(VerifyError::Missing(HEADER_SIGNATURE))?;
        let ts: i64 = ts_text.parse().map_err(|_| VerifyError::BadTimestamp)?;
        // `abs_diff`: a timestamp near `i64::MIN`/`MAX` must not overflow the subtraction.
        if now.abs_diff(ts) > TOLERANCE_SECS.unsigned_abs() {
            return Err(VerifyError::Stale);
        }
        let candidates: Vec<Vec<u8>> = header
            .split_whitespace()
            .take(MAX_SIGNATURES)
            .filter_map(|s| s.strip_prefix("v1,"))
            .filter_map(|b64| STANDARD.decode(b64).ok())
            .collect();
        for (index, secret) in secrets.iter().enumerate() {
            let expected = secret.mac(id, ts_text, body);
            // Check every candidate without stopping early, in constant time each.
            let mut found = subtle::Choice::from(0u8);
            for c in &candidates {
                found |= c.as_slice().ct_eq(&expected);
            }
            if bool::from(found) {
                return Ok(index);
            }
        }
        Err(VerifyError::BadSignature)
    }
}

/// Unix time in seconds.
pub fn now_secs() -> i64 {
    crate::ids::now_ms().div_euclid(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example of the Standard Webhooks specification.
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TS: i64 = 1614265330;
    const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SPEC_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn signed<'a>(id: &'a str, ts: &'a str, sig: &'a str) -> Signed<'a> {
        Signed {
            id: Some(id),
            timestamp: Some(ts),
            signature: Some(sig),
        }
    }

    #[test]
    fn matches_the_specification_example() {
        let secret = Secret::parse(SPEC_SECRET).unwrap();
        assert_eq!(secret.sign(SPEC_ID, SPEC_TS, SPEC_BODY), SPEC_SIG);
        let ts = SPEC_TS.to_string();
        assert_eq!(
            signed(SPEC_ID, &ts, SPEC_SIG).verify(SPEC_BODY, &[&secret], SPEC_TS + 10),
            Ok(0)
        );
    }

    #[test]
    fn refuses_wrong_stale_or_missing() {
        let secret = Secret::parse(SPEC_SECRET).unwrap();
        let ts = SPEC_TS.to_string();
        let ok = signed(SPEC_ID, &ts, SPEC_SIG);
        assert_eq!(
            ok.verify(b"{\"test\": 1}", &[&secret], SPEC_TS),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            ok.verify(SPEC_BODY, &[&secret], SPEC_TS + 301),
            Err(VerifyError::Stale)
        );
        assert_eq!(
            ok.verify(SPEC_BODY, &[&secret], SPEC_TS - 301),
            Err(VerifyError::Stale)
        );
        let (other, _) = Secret::generate();
        assert_eq!(
            ok.verify(SPEC_BODY, &[&other], SPEC_TS),
            Err(VerifyError::BadSignature)
        );
        let missing = Signed {
            signature: None,
            ..ok
        };
        assert_eq!(
            missing.verify(SPEC_BODY, &[&secret], SPEC_TS),
            Err(VerifyError::Missing(HEADER_SIGNATURE))
        );
        assert_eq!(
            signed(SPEC_ID, "soon", SPEC_SIG).verify(SPEC_BODY, &[&secret], SPEC_TS),
            Err(VerifyError::BadTimestamp)
        );
    }

    #[test]
    fn accepts_any_of_several_signatures_and_secrets() {
        let secret = Secret::parse(SPEC_SECRET).unwrap();
        let (old, _) = Secret::generate();
        let ts = SPEC_TS.to_string();
        let header = format!("v1a,xyz v1,{} {}", "AAAA", SPEC_SIG);
        let s = signed(SPEC_ID, &ts, &header);
        assert_eq!(s.verify(SPEC_BODY, &[&old, &secret], SPEC_TS), Ok(1));
    }

    #[test]
    fn parses_only_real_secrets() {
        assert!(Secret::parse("whsec_not base64!").is_err());
        assert!(Secret::parse("whsec_c2hvcnQ=").is_err());
        let (_, text) = Secret::generate();
        assert!(Secret::parse(&text).is_ok());
    }
}
