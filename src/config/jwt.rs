//! JWT verification settings (`--jwt-secret-env`, `--jwt-public-key`, `--jwt-issuer`,
//! `--jwt-audience`): the keys, each pinned to the one algorithm it may verify (HS256 for
//! the shared secret; RS256 or ES256 for the PEM public key, by its kind), and the
//! [`Validation`] every token must pass (`sub` and `exp` required, `iss` and `aud` when
//! configured). Pinning is what refuses algorithm confusion: a token names its `alg`, and
//! only the key made for that algorithm is tried; `none` is no algorithm at all.
//! `Debug` shows the algorithms, never a key.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::ConfigError;

/// Verifies app-signed JWTs; `None` in `Config` when no key is configured.
#[derive(Clone)]
pub struct JwtConfig {
    keys: Vec<(Algorithm, DecodingKey)>,
    issuer: Option<String>,
    audience: Option<String>,
}

impl std::fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let algs: Vec<_> = self.keys.iter().map(|(a, _)| a).collect();
        f.debug_struct("JwtConfig")
            .field("algorithms", &algs)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

impl JwtConfig {
    /// From the options: the HS256 secret (its bytes, already read from the environment),
    /// the public key's PEM text, the expected issuer and audience. `None` without a key.
    pub fn new(
        secret: Option<&[u8]>,
        public_pem: Option<&[u8]>,
        issuer: Option<String>,
        audience: Option<String>,
    ) -> Result<Option<Self>, ConfigError> {
        let mut keys = Vec::new();
        if let Some(secret) = secret {
            if secret.len() < 32 {
                return Err(ConfigError::Invalid(
                    "the --jwt-secret-env secret must be at least 32 bytes".into(),
                ));
            }
            keys.push((Algorithm::HS256, DecodingKey::from_secret(secret)));
        }
        if let Some(pem) = public_pem {
            let key = match DecodingKey::from_rsa_pem(pem) {
                Ok(k) => (Algorithm::RS256, k),
                Err(_) => match DecodingKey::from_ec_pem(pem) {
                    Ok(k) => (Algorithm::ES256, k),
                    Err(_) => {
                        return Err(ConfigError::Invalid(
                            "--jwt-public-key: not an RSA or EC (P-256) public key in PEM".into(),
                        ));
                    }
                },
            };
            keys.push(key);
        }
        if keys.is_empty() {
            if issuer.is_some() || audience.is_some() {
                return Err(ConfigError::Invalid(
                    "--jwt-issuer and --jwt-audience need --jwt-secret-env or --jwt-public-key"
                        .into(),
                ));
            }
            return Ok(None);
        }
        Ok(Some(JwtConfig {
            keys,
            issuer,
            audience,
        }))
    }

    /// The key for a token that says it was signed with `alg`, and the rules it must pass;
    /// `None` when no key is made for that algorithm.
    pub fn key_for(&self, alg: Algorithm) -> Option<(&DecodingKey, Validation)> {
        let (_, key) = self.keys.iter().find(|(a, _)| *a == alg)?;
        let mut v = Validation::new(alg);
        v.leeway = 30;
        let mut required = vec!["exp", "sub"];
        match &self.issuer {
            Some(iss) => {
                v.set_issuer(&[iss]);
                required.push("iss");
            }
            None => v.iss = None,
        }
        match &self.audience {
            Some(aud) => {
                v.set_audience(&[aud]);
                required.push("aud");
            }
            // No audience configured: a token's `aud` is not ours to judge.
            None => v.validate_aud = false,
        }
        v.set_required_spec_claims(&required);
        Some((key, v))
    }
}
