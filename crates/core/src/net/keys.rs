//! Hashing the numbers this server hands out (connection keys, server request ids, ping ids) and the
//! names the application registers (methods).

use std::hash::{BuildHasherDefault, Hasher};

/// Builds [`KeyHasher`]s: for maps keyed by a number the server handed out.
pub(crate) type Keyed = BuildHasherDefault<KeyHasher>;

/// SipHash protects a map against keys chosen to collide, at a cost paid for every recipient of a
/// broadcast; these numbers are never chosen by a client. A multiply by the golden ratio spreads
/// consecutive keys over the map's buckets (low bits) and its shards and control bytes (high bits).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn write_u64(&mut self, key: u64) {
        self.0 = key.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    /// Method names, and anything else that is not a `u64`: FNV-1a.
    fn write(&mut self, bytes: &[u8]) {
        let mut hash = self.0 ^ 0xCBF2_9CE4_8422_2325;
        for byte in bytes {
            hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01B3);
        }
        self.0 = hash;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::hash::BuildHasher;

    use super::*;

    #[test]
    fn consecutive_keys_spread_over_buckets_and_high_bits() {
        let keys = 1..=4096u64;
        let low: HashSet<u64> = keys
            .clone()
            .map(|key| Keyed::default().hash_one(key) & 4095)
            .collect();
        assert_eq!(low.len(), 4096, "one bucket each in a table of 4096");
        let high: HashSet<u64> = keys
            .map(|key| Keyed::default().hash_one(key) >> 57)
            .collect();
        assert_eq!(high.len(), 128, "every 7-bit control byte in use");
    }
}
