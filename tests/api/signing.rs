//! Standard Webhooks signing for the tests, written independently of the server's
//! `chatwire::signature` so a mistake there cannot hide behind the same mistake here.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// A fixed test secret and a second one (for "signed with the wrong key").
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
pub const OTHER_SECRET: &str = "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldY";

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `v1,<base64 HMAC-SHA256 of "id.ts.body">`.
pub fn sign(secret: &str, id: &str, ts: i64, body: &[u8]) -> String {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// Does a request carry a valid signature by `secret`? (What a fake NLP service checks.)
pub fn verify(secret: &str, headers: &axum::http::HeaderMap, body: &[u8]) -> bool {
    let get = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let (Some(id), Some(ts), Some(sig)) = (
        get("webhook-id"),
        get("webhook-timestamp"),
        get("webhook-signature"),
    ) else {
        return false;
    };
    let Ok(ts) = ts.parse::<i64>() else {
        return false;
    };
    (now() - ts).abs() <= 300
        && sig
            .split_whitespace()
            .any(|s| s == sign(secret, id, ts, body))
}

/// A webhook as a sender would POST it.
pub struct Delivery {
    pub id: String,
    pub ts: i64,
    pub body: Vec<u8>,
    pub signature: Option<String>,
}

impl Delivery {
    /// `body` signed with `secret`, sent now, with webhook id `id`.
    pub fn signed(secret: &str, id: &str, body: &Value) -> Self {
        Self::signed_at(secret, id, now(), body)
    }

    pub fn signed_at(secret: &str, id: &str, ts: i64, body: &Value) -> Self {
        let body = serde_json::to_vec(body).unwrap();
        Delivery {
            id: id.to_string(),
            ts,
            signature: Some(sign(secret, id, ts, &body)),
            body,
        }
    }

    /// POSTs it to `url`; returns the status and JSON body.
    pub async fn send(&self, http: &reqwest::Client, url: &str) -> (u16, Value) {
        let mut req = http
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &self.id)
            .header("webhook-timestamp", self.ts.to_string());
        if let Some(sig) = &self.signature {
            req = req.header("webhook-signature", sig);
        }
        let resp = req.body(self.body.clone()).send().await.expect("webhook");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}
