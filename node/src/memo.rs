//! A bounded memo: values worked out once per key and remembered, for the node's caches of
//! parsed certificates and of what the policy says of them (service `Context`, the federation
//! host). When full it forgets everything at once: the working set (the certificates of the
//! senders of the moment) refills in a few look-ups, and no eviction order is kept per hit.
//! A value that depends on more than its key (a time) is checked by the caller with
//! [`Memo::get_if`].

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

pub struct Memo<K, V> {
    map: Mutex<HashMap<K, V>>,
    max: usize,
}

impl<K: Eq + Hash, V: Clone> Memo<K, V> {
    /// A memo of at most `max` entries.
    pub fn new(max: usize) -> Self {
        Memo {
            map: Mutex::new(HashMap::new()),
            max,
        }
    }

    /// The value remembered for `key`, if `valid` holds for it.
    pub fn get_if(&self, key: &K, valid: impl FnOnce(&V) -> bool) -> Option<V> {
        let map = self.map.lock().expect("memo");
        map.get(key).filter(|v| valid(v)).cloned()
    }

    /// Remembers `value` for `key` (forgetting everything first if the memo is full).
    pub fn insert(&self, key: K, value: V) {
        let mut map = self.map.lock().expect("memo");
        if map.len() >= self.max && !map.contains_key(&key) {
            map.clear();
        }
        map.insert(key, value);
    }

    /// The value remembered for `key`, or the one `make` works out (without holding the lock:
    /// two callers may both work it out, and the second result is kept).
    pub fn get_or_try_insert_with<E>(
        &self,
        key: K,
        make: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, E> {
        if let Some(v) = self.get_if(&key, |_| true) {
            return Ok(v);
        }
        let v = make()?;
        self.insert(key, v.clone());
        Ok(v)
    }

    /// [`get_or_try_insert_with`](Self::get_or_try_insert_with) for a `make` that cannot fail.
    pub fn get_or_insert_with(&self, key: K, make: impl FnOnce() -> V) -> V {
        match self.get_or_try_insert_with(key, || Ok::<V, std::convert::Infallible>(make())) {
            Ok(v) => v,
            Err(never) => match never {},
        }
    }

    pub fn len(&self) -> usize {
        self.map.lock().expect("memo").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The key of a text in a memo: its SHA-256 (a certificate's armored text is kilobytes).
pub fn text_key(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_memo_forgets_everything_and_keeps_the_new_entry() {
        let m: Memo<u32, u32> = Memo::new(3);
        for k in 0..3 {
            m.insert(k, k * 10);
        }
        assert_eq!(m.len(), 3);
        // Replacing a remembered key does not count as growth.
        m.insert(1, 11);
        assert_eq!((m.len(), m.get_if(&1, |_| true)), (3, Some(11)));
        m.insert(7, 70);
        assert_eq!(m.len(), 1);
        assert_eq!(m.get_if(&0, |_| true), None);
        assert_eq!(m.get_if(&7, |_| true), Some(70));
    }

    #[test]
    fn values_are_made_once_and_failures_are_not_remembered() {
        let m: Memo<&str, u32> = Memo::new(10);
        let mut made = 0;
        for _ in 0..3 {
            let v = m.get_or_try_insert_with("a", || -> Result<u32, ()> {
                made += 1;
                Ok(5)
            });
            assert_eq!(v, Ok(5));
        }
        assert_eq!(made, 1);
        assert_eq!(
            m.get_or_try_insert_with("b", || Err::<u32, _>("bad")),
            Err("bad")
        );
        assert!(m.get_if(&"b", |_| true).is_none());
        assert_eq!(
            m.get_if(&"a", |v| *v > 9),
            None,
            "a value failing its check is not given"
        );
    }
}
