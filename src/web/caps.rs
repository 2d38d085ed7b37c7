//! Counting caps: how many of something (connections, event streams) each client address
//! holds at once, with a bound per address and one in all. Taking a place gives a guard
//! that frees it when dropped, however the holder ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Places per address and in all; `0` in either bound means no limit there.
#[derive(Debug)]
pub struct Caps {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    per_address: usize,
    total: usize,
    held: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    by_address: HashMap<IpAddr, usize>,
    total: usize,
}

/// Why a place was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// This address holds its share already.
    Address,
    /// The server holds its total already.
    Total,
}

/// One place taken; dropping it gives it back.
#[derive(Debug)]
pub struct Place {
    inner: Arc<Inner>,
    /// `None`: counted in the total only.
    address: Option<IpAddr>,
}

impl Caps {
    pub fn new(per_address: usize, total: usize) -> Self {
        Caps {
            inner: Arc::new(Inner {
                per_address,
                total,
                held: Mutex::new(Held::default()),
            }),
        }
    }

    /// Takes a place for `address` (`None`: a peer exempt from the per-address bound,
    /// such as a trusted proxy, counted in the total only).
    pub fn take(&self, address: Option<IpAddr>) -> Result<Place, Refused> {
        let mut held = self.inner.held.lock().unwrap_or_else(|p| p.into_inner());
        if self.inner.total != 0 && held.total >= self.inner.total {
            return Err(Refused::Total);
        }
        if let Some(ip) = address {
            let n = held.by_address.entry(ip).or_insert(0);
            if self.inner.per_address != 0 && *n >= self.inner.per_address {
                return Err(Refused::Address);
            }
            *n += 1;
        }
        held.total += 1;
        Ok(Place {
            inner: self.inner.clone(),
            address,
        })
    }

    /// Places held by `address` now.
    #[cfg(test)]
    pub fn held_by(&self, address: IpAddr) -> usize {
        let held = self.inner.held.lock().unwrap_or_else(|p| p.into_inner());
        held.by_address.get(&address).copied().unwrap_or(0)
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut held = self.inner.held.lock().unwrap_or_else(|p| p.into_inner());
        held.total = held.total.saturating_sub(1);
        if let Some(ip) = self.address
            && let Some(n) = held.by_address.get_mut(&ip)
        {
            *n -= 1;
            if *n == 0 {
                held.by_address.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_bounded_and_given_back() {
        let caps = Caps::new(2, 3);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = caps.take(Some(a)).unwrap();
        let _a2 = caps.take(Some(a)).unwrap();
        assert_eq!(caps.take(Some(a)).unwrap_err(), Refused::Address);
        let _b1 = caps.take(Some(b)).unwrap();
        assert_eq!(caps.take(None).unwrap_err(), Refused::Total);
        drop(a1);
        assert_eq!(caps.held_by(a), 1);
        let _a3 = caps.take(Some(a)).unwrap();
        let unlimited = Caps::new(0, 0);
        let many: Vec<_> = (0..1000)
            .map(|_| unlimited.take(Some(a)).unwrap())
            .collect();
        assert_eq!(unlimited.held_by(a), many.len());
        drop(many);
        assert_eq!(unlimited.held_by(a), 0);
    }
}
