//! Rate limits: a small in-process token bucket per key (a client address, a conversation),
//! in a map of bounded size, and the middleware that applies the per-address limit.
//!
//! A bucket holds up to `per_minute` tokens and refills at `per_minute` a minute; each
//! request takes one. An empty bucket answers 429 with `Retry-After` (whole seconds until
//! the next token). The map never grows past its bound: when full, buckets that have
//! refilled completely (they hold no information) are dropped, and if none has, the least
//! recently used sixteenth is. Time is tokio's, so tests can pause it.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

use super::AppState;
use super::client::ClientAddr;
use crate::web::error::AppError;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets keyed by `K`, at most `max_keys` of them.
#[derive(Debug)]
pub struct RateLimiter<K> {
    buckets: Mutex<HashMap<K, Bucket>>,
    capacity: f64,
    per_sec: f64,
    max_keys: usize,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// `per_minute == 0` turns the limiter off.
    pub fn new(per_minute: u32, max_keys: usize) -> Self {
        RateLimiter {
            buckets: Mutex::new(HashMap::new()),
            capacity: f64::from(per_minute),
            per_sec: f64::from(per_minute) / 60.0,
            max_keys: max_keys.max(1),
        }
    }

    fn refilled(&self, b: &Bucket, now: Instant) -> f64 {
        (b.tokens + now.duration_since(b.at).as_secs_f64() * self.per_sec).min(self.capacity)
    }

    /// Takes one token for `key`; when there is none, how long until there is.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        if self.capacity == 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if !map.contains_key(key) && map.len() >= self.max_keys {
            self.make_room(&mut map, now);
        }
        let b = map.entry(key.clone()).or_insert(Bucket {
            tokens: self.capacity,
            at: now,
        });
        let tokens = self.refilled(b, now);
        if tokens >= 1.0 {
            *b = Bucket {
                tokens: tokens - 1.0,
                at: now,
            };
            Ok(())
        } else {
            *b = Bucket { tokens, at: now };
            Err(Duration::from_secs_f64((1.0 - tokens) / self.per_sec))
        }
    }

    /// Drops the buckets that are full again; if that is not enough, the least recently
    /// used sixteenth, so that under a flood of new keys the scan is paid rarely.
    fn make_room(&self, map: &mut HashMap<K, Bucket>, now: Instant) {
        map.retain(|_, b| self.refilled(b, now) < self.capacity);
        if map.len() < self.max_keys {
            return;
        }
        let mut by_age: Vec<(Instant, K)> = map.iter().map(|(k, b)| (b.at, k.clone())).collect();
        let n = (self.max_keys / 16).max(1).min(by_age.len());
        by_age.select_nth_unstable_by_key(n - 1, |(at, _)| *at);
        for (_, k) in by_age.into_iter().take(n) {
            map.remove(&k);
        }
    }

    /// How many keys are remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// Checks `key` against `limiter`: 429 with `Retry-After` when it has no allowance left.
pub fn check<K: Hash + Eq + Clone>(limiter: &RateLimiter<K>, key: &K) -> Result<(), AppError> {
    limiter
        .check(key)
        .map_err(|wait| AppError::TooManyRequests {
            retry_after_secs: retry_after_secs(wait),
        })
}

/// Whole seconds for `Retry-After`, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

/// The key a client address is limited by: an IPv4 address, or the /64 of an IPv6 one
/// (one host usually holds a whole /64, so single addresses would be free to rotate).
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, 0])
            }
        },
    }
}

/// Paths the per-address limit leaves alone: health probes must see the truth, and NLP
/// services call `/webhooks/*` many times per reply from one address (those requests are
/// signed, and a bad signature is refused cheaply).
fn exempt(path: &str) -> bool {
    path == "/healthz" || path.starts_with("/webhooks/")
}

/// Middleware: the per-address limit, keyed by the client address (`client::ClientAddr`:
/// the peer, or what a trusted proxy says). Exempt paths (see [`exempt`]) and requests with
/// no peer address (only in-process tests make those) are not counted.
pub async fn per_client(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let peer = req.extensions().get::<ClientAddr>().map(|c| c.0);
    if let Some(ip) = peer
        && !exempt(req.uri().path())
        && let Err(wait) = state.limits.per_client.check(&client_key(ip))
    {
        return AppError::TooManyRequests {
            retry_after_secs: retry_after_secs(wait),
        }
        .into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bucket_allows_a_burst_then_refills_evenly() {
        let l = RateLimiter::new(6, 10); // one token every 10 s
        for _ in 0..6 {
            assert!(l.check(&"a").is_ok());
        }
        let wait = l.check(&"a").unwrap_err();
        assert_eq!(retry_after_secs(wait), 10);
        assert!(l.check(&"b").is_ok(), "keys are independent");
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(l.check(&"a").is_ok());
        assert!(l.check(&"a").is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn the_map_stays_bounded() {
        let l = RateLimiter::new(60, 3);
        for i in 0..100 {
            let _ = l.check(&i);
            assert!(l.len() <= 3);
        }
        // A busy key survives while refilled ones are dropped first.
        let l = RateLimiter::new(60, 2);
        for _ in 0..60 {
            let _ = l.check(&"busy");
        }
        assert!(l.check(&"busy").is_err());
        let _ = l.check(&"idle");
        tokio::time::advance(Duration::from_secs(120)).await;
        for _ in 0..59 {
            let _ = l.check(&"busy");
        }
        let _ = l.check(&"new");
        assert_eq!(l.len(), 2);
        assert!(l.check(&"busy").is_ok(), "one token left");
        assert!(l.check(&"busy").is_err(), "remembered, not reset");
    }

    #[test]
    fn off_when_zero_and_v6_by_prefix() {
        let l = RateLimiter::new(0, 1);
        for i in 0..1000 {
            assert!(l.check(&i).is_ok());
        }
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        let m: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(client_key(m), "10.0.0.1".parse::<IpAddr>().unwrap());
    }
}
