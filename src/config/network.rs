//! The connection-level limits (`Network`): timeouts and connection caps for the accept
//! loop, the trusted reverse proxies whose forwarding headers name the client, and the
//! `Host` names accepted. `Cidr` is one `--trusted-proxies` entry.

use std::net::IpAddr;
use std::time::Duration;

use super::ConfigError;

/// How the accept loop and the first middleware guard the server's sockets.
#[derive(Debug, Clone)]
pub struct Network {
    /// A request head must be complete within this (an idle keep-alive socket is closed
    /// after it too); a request body that stalls this long ends the request with 408.
    pub header_timeout: Duration,
    /// Open connections in all (0 = no limit).
    pub max_connections: usize,
    /// Open connections per client address (0 = no limit).
    pub max_connections_per_address: usize,
    /// Open event streams and WebSockets per client address (0 = no limit).
    pub max_streams_per_address: usize,
    /// Peers whose forwarding headers are believed.
    pub trusted_proxies: Vec<Cidr>,
    /// Extra accepted `Host` names (lower case, with or without a port).
    pub allowed_hosts: Vec<String>,
}

impl Default for Network {
    fn default() -> Self {
        Network {
            header_timeout: Duration::from_secs(10),
            max_connections: 16_384,
            max_connections_per_address: 256,
            max_streams_per_address: 128,
            trusted_proxies: Vec::new(),
            allowed_hosts: Vec::new(),
        }
    }
}

/// An address block: `10.0.0.0/8`, `::1/128`, or one address (a full-length prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `ADDR` or `ADDR/PREFIX`.
    pub fn parse(text: &str) -> Result<Cidr, ConfigError> {
        let bad = || ConfigError::Invalid(format!("--trusted-proxies: `{text}` is not a CIDR"));
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| bad())?)),
            None => (text, None),
        };
        let net: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(bad());
        }
        Ok(Cidr { net, prefix })
    }

    /// Whether `ip` is in the block (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                masked(u128::from(u32::from(n)), 32, self.prefix)
                    == masked(u128::from(u32::from(a)), 32, self.prefix)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                masked(u128::from(n), 128, self.prefix) == masked(u128::from(a), 128, self.prefix)
            }
            _ => false,
        }
    }
}

fn masked(bits: u128, width: u32, prefix: u8) -> u128 {
    let keep = u32::from(prefix).min(width);
    if keep == 0 { 0 } else { bits >> (width - keep) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_match_their_block_only() {
        let c = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(c.contains("10.1.200.3".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.0.9".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        assert!(!c.contains("::1".parse().unwrap()));
        let one = Cidr::parse("127.0.0.1").unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        let v6 = Cidr::parse("fd00::/8").unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        for bad in ["10.0.0.0/33", "nope", "10.0.0.0/x", "::/129"] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }
}
