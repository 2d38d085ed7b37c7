//! Counting caps: how many of something (connections, event streams, busy conversations)
//! each key — a client address, an owner — holds at once, with a bound per key and one in
//! all. Taking a place gives a guard that frees it when dropped, however the holder ends.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Places per key (by default a client address) and in all; `0` in either bound means no
/// limit there.
#[derive(Debug)]
pub struct Caps<K: Hash + Eq + Clone = IpAddr> {
    inner: Arc<Inner<K>>,
}

#[derive(Debug)]
struct Inner<K> {
    per_address: usize,
    total: usize,
    held: Mutex<Held<K>>,
}

#[derive(Debug)]
struct Held<K> {
    by_address: HashMap<K, usize>,
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
pub struct Place<K: Hash + Eq + Clone = IpAddr> {
    inner: Arc<Inner<K>>,
    /// `None`: counted in the total only.
    address: Option<K>,
}

impl<K: Hash + Eq + Clone> Caps<K> {
    pub fn new(per_address: usize, total: usize) -> Self {
        Caps {
            inner: Arc::new(Inner {
                per_address,
                total,
                held: Mutex::new(Held {
                    by_address: HashMap::new(),
                    total: 0,
                }),
            }),
        }
    }

    /// Takes a place for `address` (`None`: a peer exempt from the per-address bound,
    /// such as a trusted proxy, counted in the total only).
    pub fn take(&self, address: Option<K>) -> Result<Place<K>, Refused> {
        let mut held = self.inner.held.lock().unwrap_or_else(|p| p.into_inner());
        if self.inner.total != 0 && held.total >= self.inner.total {
            return Err(Refused::Total);
        }
        if let Some(key) = &address {
            let n = held.by_address.entry(key.clone()).or_insert(0);
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
    pub fn held_by(&self, address: K) -> usize {
        let held = self.inner.held.lock().unwrap_or_else(|p| p.into_inner());
        held.by_address.get(&address).copied().unwrap_or(0)
    }
}

/// Places taken together under an address cap and an owner cap (either may be absent: a
/// caller with a conversation's token has no owner), given back together when dropped.
#[derive(Debug, Default)]
pub struct Places {
    _address: Option<Place<IpAddr>>,
    _owner: Option<Place<Arc<str>>>,
}

impl Places {
    /// A place under each cap that applies, or none at all.
    pub fn take(
        by_address: &Caps<IpAddr>,
        address: Option<IpAddr>,
        by_owner: &Caps<Arc<str>>,
        owner: Option<&Arc<str>>,
    ) -> Result<Places, Refused> {
        let address = address.map(|a| by_address.take(Some(a))).transpose()?;
        let owner = owner.map(|o| by_owner.take(Some(o.clone()))).transpose()?;
        Ok(Places {
            _address: address,
            _owner: owner,
        })
    }
}

impl<K: Hash + Eq + Clone> Drop for Place<K> {
    fn drop(&mut self) {
        let mut held = self.inner.held.lock().unwrap_or_else(|p| p.into_inner());
        held.total = held.total.saturating_sub(1);
        if let Some(key) = &self.address
            && let Some(n) = held.by_address.get_mut(key)
        {
            *n -= 1;
            if *n == 0 {
                held.by_address.remove(key);
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

    #[test]
    fn places_under_both_caps_are_all_or_nothing() {
        let by_address = Caps::new(3, 0);
        let by_owner: Caps<Arc<str>> = Caps::new(1, 0);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let alice: Arc<str> = "alice".into();
        let first = Places::take(&by_address, Some(a), &by_owner, Some(&alice)).unwrap();
        let refused = Places::take(&by_address, Some(a), &by_owner, Some(&alice));
        assert_eq!(refused.unwrap_err(), Refused::Address);
        assert_eq!(
            by_address.held_by(a),
            1,
            "the refused take gave its address place back"
        );
        let _token_caller = Places::take(&by_address, Some(a), &by_owner, None).unwrap();
        assert_eq!(by_address.held_by(a), 2);
        drop(first);
        assert_eq!(by_owner.held_by(alice.clone()), 0);
        let _again = Places::take(&by_address, Some(a), &by_owner, Some(&alice)).unwrap();
    }
}
