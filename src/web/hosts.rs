//! The `Host` check against DNS rebinding: a page on `evil.example` whose name later
//! resolves to 127.0.0.1 would otherwise be "same origin" with a local chatwire and could
//! drive it (and spend the operator's provider credit). A request is served only when its
//! `Host` (the name; the port is not compared) is:
//!
//! - the host of `--public-url`;
//! - the listen address, and when that is loopback or a wildcard, `localhost`, `127.0.0.1`
//!   and `[::1]`; on a wildcard address any IP literal (a rebinding page always uses a
//!   name, so an address is never one);
//! - one of `--allowed-hosts` (`*` allows every host, for a proxy that checks it).
//!
//! Anything else gets 421 `misdirected_request`. A request without `Host` (not a browser)
//! is let through.

use std::net::IpAddr;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::config::Config;
use crate::web::error::AppError;

/// The host part of `host[:port]` or `[v6]:port`, lower case.
fn host_part(authority: &str) -> String {
    let a = authority.trim();
    let host = if let Some(rest) = a.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        match a.rsplit_once(':') {
            // One colon: host:port. More: a bare IPv6 address.
            Some((h, _)) if !h.contains(':') => h,
            _ => a,
        }
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// Whether a request with this `Host` value may be served.
pub fn allowed(config: &Config, host: &str) -> bool {
    let name = host_part(host);
    if config
        .network
        .allowed_hosts
        .iter()
        .any(|h| h == "*" || host_part(h) == name)
    {
        return true;
    }
    if let Some(public) = &config.public_url {
        let authority = public
            .split_once("://")
            .map_or(public.as_str(), |(_, rest)| rest);
        let authority = authority.split(['/', '?', '#']).next().unwrap_or("");
        let authority = authority.rsplit('@').next().unwrap_or(authority);
        if host_part(authority) == name {
            return true;
        }
    }
    let listen = config.addr.ip();
    let literal = name.parse::<IpAddr>().ok();
    if literal.is_some_and(|ip| ip == listen) {
        return true;
    }
    if listen.is_loopback() || listen.is_unspecified() {
        let loopback = name == "localhost" || literal.is_some_and(|ip| ip.is_loopback());
        if loopback {
            return true;
        }
    }
    listen.is_unspecified() && literal.is_some()
}

/// Middleware: 421 for a `Host` that is not ours (see the module docs).
pub async fn check(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(host) = req.headers().get(header::HOST) {
        let ok = host.to_str().is_ok_and(|h| allowed(&state.config, h));
        if !ok {
            return AppError::MisdirectedRequest.into_response();
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_own_names_pass() {
        let mut c = Config::for_tests();
        for ok in [
            "127.0.0.1:3000",
            "localhost:1",
            "[::1]:8080",
            "LOCALHOST",
            "127.0.0.1",
        ] {
            assert!(allowed(&c, ok), "{ok}");
        }
        for bad in ["evil.example:3000", "evil.example", "10.0.0.1:3000", ""] {
            assert!(!allowed(&c, bad), "{bad}");
        }
        c.public_url = Some("https://user:pw@Chat.Example.com/base".into());
        assert!(allowed(&c, "chat.example.com"));
        c.network.allowed_hosts = vec!["other.example".into()];
        assert!(allowed(&c, "other.example:443"));
        assert!(!allowed(&c, "evil.example"));
        c.addr = "0.0.0.0:3000".parse().unwrap();
        assert!(allowed(&c, "192.168.1.20:3000"));
        assert!(!allowed(&c, "evil.example"));
        c.addr = "192.168.1.20:3000".parse().unwrap();
        assert!(!allowed(&c, "localhost"), "not bound to loopback");
        c.network.allowed_hosts = vec!["*".into()];
        assert!(allowed(&c, "anything.example"));
    }
}
