//! Identifiers, credentials and timestamps.
//!
//! Conversation ids and tokens carry 128 and 256 random bits from the operating system's
//! generator, so they cannot be guessed; tokens are stored only as SHA-256 hashes and
//! compared in constant time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

fn random_b64(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// A new conversation id: 128 random bits, 22 URL-safe characters.
pub fn conversation_id() -> String {
    random_b64(16)
}

/// A new conversation token: 256 random bits.
pub fn token() -> String {
    random_b64(32)
}

/// A new message id (`m_…`), unique within the server for practical purposes (96 bits).
pub fn message_id() -> String {
    format!("m_{}", random_b64(12))
}

/// A new WebSocket participant id.
pub fn participant_id() -> String {
    format!("p_{}", random_b64(9))
}

/// A random id with a prefix, e.g. `job_…` or `msg_…` (`bytes` random bytes, URL-safe).
pub fn prefixed(prefix: &str, bytes: usize) -> String {
    format!("{prefix}{}", random_b64(bytes))
}

/// The stored form of a token.
pub fn token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

/// Does `token` hash to `stored`? Constant time in the compared bytes.
pub fn token_matches(token: &str, stored_hash: &str) -> bool {
    token_hash(token)
        .as_bytes()
        .ct_eq(stored_hash.as_bytes())
        .into()
}

/// Is this string shaped like an id we hand out (so junk never reaches storage)?
pub fn is_plausible_id(id: &str) -> bool {
    (16..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// RFC 3339 UTC text for a Unix time in milliseconds, e.g. `2026-11-27T07:00:00.123Z`.
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        tod / 3600,
        (tod / 60) % 60,
        tod % 60
    )
}

// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_000_000_123), "2026-11-18T11:06:40.123Z");
    }

    #[test]
    fn tokens_match_only_their_hash() {
        let t = token();
        let h = token_hash(&t);
        assert!(token_matches(&t, &h));
        assert!(!token_matches(&token(), &h));
        assert!(is_plausible_id(&conversation_id()));
        assert!(!is_plausible_id("../etc/passwd"));
        // 128 random bits per id, 256 per token.
        assert_eq!(URL_SAFE_NO_PAD.decode(conversation_id()).unwrap().len(), 16);
        assert_eq!(URL_SAFE_NO_PAD.decode(t).unwrap().len(), 32);
        assert_ne!(conversation_id(), conversation_id());
    }
}
