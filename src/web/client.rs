//! Who the client is: the peer address, or — when the peer is a trusted reverse proxy
//! (`--trusted-proxies`) — the address that proxy saw, from `Forwarded` (RFC 7239) or else
//! `X-Forwarded-For`. Walking the list from the right, trusted hops are skipped; the first
//! untrusted entry is the client. A header from an untrusted peer is ignored, so a client
//! cannot pick its own address. The rate limiter and the stream caps key on this.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;

use crate::config::Cidr;

/// The client's address, put in each request's extensions by [`resolve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

fn trusted(ip: IpAddr, proxies: &[Cidr]) -> bool {
    proxies.iter().any(|c| c.contains(ip))
}

/// The client address of a request from `peer` with these headers.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, proxies: &[Cidr]) -> IpAddr {
    if !trusted(peer, proxies) {
        return peer.to_canonical();
    }
    let hops = forwarded_for(headers);
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop {
            Some(ip) => {
                client = *ip;
                if !trusted(*ip, proxies) {
                    break;
                }
            }
            // Unreadable (`unknown`, an obfuscated name): the hop that added it is the client.
            None => break,
        }
    }
    client.to_canonical()
}

/// The `for=` addresses of every `Forwarded` header, in order; without one, the entries
/// of every `X-Forwarded-For`. `None` for an entry that is not an address.
fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let forwarded: Vec<Option<IpAddr>> = headers
        .get_all("forwarded")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| parse_node(v.trim().trim_matches('"')))
            })
        })
        .collect();
    if !forwarded.is_empty() {
        return forwarded;
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|entry| parse_node(entry.trim()))
        .collect()
}

/// `1.2.3.4`, `1.2.3.4:80`, `[::1]`, `[::1]:80` or `::1`.
fn parse_node(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sock) = text.parse::<SocketAddr>() {
        return Some(sock.ip());
    }
    text.strip_prefix('[')
        .and_then(|t| t.split_once(']'))
        .and_then(|(ip, _)| ip.parse().ok())
}

/// Middleware: works out [`ClientAddr`] once per request. Requests with no peer address
/// (only in-process tests make those) get none.
pub async fn resolve(
    axum::extract::State(state): axum::extract::State<super::AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(peer) = peer {
        let ip = client_address(peer, req.headers(), &state.config.network.trusted_proxies);
        req.extensions_mut().insert(ClientAddr(ip));
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn only_trusted_proxies_are_believed() {
        let proxies = [Cidr::parse("10.0.0.0/8").unwrap()];
        let peer: IpAddr = "10.0.0.5".parse().unwrap();
        let stranger: IpAddr = "203.0.113.9".parse().unwrap();
        let xff = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7")]);
        assert_eq!(client_address(stranger, &xff, &proxies), stranger);
        assert_eq!(
            client_address(peer, &xff, &proxies),
            "198.51.100.7".parse::<IpAddr>().unwrap(),
            "the entry the trusted proxy added, not the one the client wrote"
        );
        let chain = headers(&[("x-forwarded-for", "198.51.100.7, 10.9.9.9")]);
        assert_eq!(
            client_address(peer, &chain, &proxies),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        let fwd = headers(&[
            ("forwarded", "for=6.6.6.6"),
            ("forwarded", "for=\"[2001:db8::1]:4711\";proto=https"),
            ("x-forwarded-for", "1.1.1.1"),
        ]);
        assert_eq!(
            client_address(peer, &fwd, &proxies),
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
        let none = headers(&[]);
        assert_eq!(client_address(peer, &none, &proxies), peer);
        let unknown = headers(&[("x-forwarded-for", "unknown")]);
        assert_eq!(client_address(peer, &unknown, &proxies), peer);
    }
}
