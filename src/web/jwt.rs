//! App-signed JWTs (`Authorization: Bearer JWT`): verified against the configured keys
//! (`config::JwtConfig`: each key pinned to its algorithm, `sub` and `exp` required,
//! `iss`/`aud` when configured). The owner is `jwt:` + `sub`, so an app's user can never
//! be confused with an anonymous browser owner. Every failure is the same 401
//! `invalid_token`; the reason goes to the debug log only, never the token.

use jsonwebtoken::{decode, decode_header};
use serde::Deserialize;

use crate::config::JwtConfig;
use crate::web::error::AppError;

/// Longest `sub` accepted, in bytes.
const MAX_SUB_BYTES: usize = 256;

#[derive(Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
}

/// A verified JWT: whose it is and when it expires (Unix seconds).
#[derive(Debug, Clone)]
pub struct Verified {
    pub owner: String,
    pub exp: u64,
}

/// Does `token` look like a JWT (three dot-separated parts) rather than a conversation
/// token (which has no dot)?
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}

/// Verifies `token`; `invalid_token` when anything is wrong or no key is configured.
pub fn verify(config: Option<&JwtConfig>, token: &str) -> Result<Verified, AppError> {
    let refuse = |why: &dyn std::fmt::Display| {
        tracing::debug!(reason = %why, "JWT refused");
        AppError::InvalidToken
    };
    let config = config.ok_or_else(|| refuse(&"no JWT key is configured"))?;
    // `alg: none` and unknown algorithms fail here: they are no `Algorithm`.
    let header = decode_header(token).map_err(|e| refuse(&e))?;
    let (key, validation) = config
        .key_for(header.alg)
        .ok_or_else(|| refuse(&format!("no key for {:?}", header.alg)))?;
    let data = decode::<Claims>(token, key, &validation).map_err(|e| refuse(&e))?;
    let sub = data.claims.sub;
    if sub.is_empty() || sub.len() > MAX_SUB_BYTES {
        return Err(refuse(&"`sub` is empty or too long"));
    }
    Ok(Verified {
        owner: format!("jwt:{sub}"),
        exp: data.claims.exp,
    })
}
