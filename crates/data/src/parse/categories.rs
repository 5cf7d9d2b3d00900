//! Codes of a learned categorical feature's values, looked up once per cell of every row read
//! with a schema.
//!
//! Categorical values are short (`tcp`, `http`, `SF`): a value of at most 8 bytes is looked up as
//! one integer, in a small open-addressing table, with no byte-slice compare. Under `perf`,
//! `fedids detect` on 503,892 NSL-KDD flows (each lookup kept out of line to be counted, two runs
//! of each build): the hash map lookups and their `memcmp` calls took 3.1-3.6% of the samples,
//! this table 1.4-1.8%. Longer values go through a hash map.

use super::BytesMap;

/// A table slot: the value's bytes (little-endian, zero-padded), its length, its code.
#[derive(Debug, Clone, Copy)]
struct Slot {
    key: u64,
    /// [`EMPTY`] for a free slot.
    len: u8,
    code: u32,
}

/// The length of a free slot (values in the table have at most 8 bytes).
const EMPTY: u8 = u8::MAX;

/// The code of each category of one feature; values outside them get the unknown code.
#[derive(Debug, Clone)]
pub(crate) struct CategoryCodes {
    /// Categories of at most 8 bytes; a power-of-two length of at least twice their count, so a
    /// free slot ends every probe.
    short: Vec<Slot>,
    /// Categories longer than 8 bytes.
    long: BytesMap<u32>,
    /// The code of a value that is no category: the category count.
    unknown: u32,
}

/// `value` (at most 8 bytes) as a little-endian integer, zero-padded.
#[inline]
fn pack(value: &[u8]) -> u64 {
    value
        .iter()
        .rev()
        .fold(0u64, |key, &b| key << 8 | u64::from(b))
}

/// The table slot to look at first for `key` of length `len` in a table of `mask + 1` slots.
#[inline]
fn home(key: u64, len: usize, mask: usize) -> usize {
    // Fibonacci hashing: the top bits of the product depend on every bit of the key.
    let h = (key ^ (len as u64) << 59).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (h >> 32) as usize & mask
}

impl CategoryCodes {
    /// Codes `0..categories.len()` in order. A repeated category takes the last of its codes,
    /// as collecting the categories into a map does.
    pub(crate) fn new(categories: &[String]) -> CategoryCodes {
        let n_short = categories.iter().filter(|c| c.len() <= 8).count();
        let size = (2 * n_short).next_power_of_two().max(2);
        let mut short = vec![
            Slot {
                key: 0,
                len: EMPTY,
                code: 0,
            };
            size
        ];
        let mut long = BytesMap::default();
        for (code, c) in categories.iter().enumerate() {
            let (bytes, code) = (c.as_bytes(), code as u32);
            if bytes.len() > 8 {
                long.insert(bytes.into(), code);
                continue;
            }
            let key = pack(bytes);
            let mut i = home(key, bytes.len(), size - 1);
            loop {
                let slot = &mut short[i];
                if slot.len == EMPTY || (slot.key == key && usize::from(slot.len) == bytes.len()) {
                    *slot = Slot {
                        key,
                        len: bytes.len() as u8,
                        code,
                    };
                    break;
                }
                i = (i + 1) & (size - 1);
            }
        }
        CategoryCodes {
            short,
            long,
            unknown: categories.len() as u32,
        }
    }

    /// The code of `value`, or the unknown code.
    #[inline]
    pub(crate) fn code(&self, value: &[u8]) -> u32 {
        if value.len() > 8 {
            return self.long.get(value).copied().unwrap_or(self.unknown);
        }
        let key = pack(value);
        let mask = self.short.len() - 1;
        let mut i = home(key, value.len(), mask);
        loop {
            let slot = self.short[i];
            if slot.len == EMPTY {
                return self.unknown;
            }
            if slot.key == key && usize::from(slot.len) == value.len() {
                return slot.code;
            }
            i = (i + 1) & mask;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The code a plain map from the categories gives (the last of repeated categories wins,
    /// as `collect` into a map keeps the last), or the category count.
    fn reference(categories: &[String], value: &[u8]) -> u32 {
        let map: std::collections::HashMap<&[u8], u32> = categories
            .iter()
            .enumerate()
            .map(|(i, c)| (c.as_bytes(), i as u32))
            .collect();
        map.get(value).copied().unwrap_or(categories.len() as u32)
    }

    #[test]
    fn nsl_kdd_values() {
        let cats: Vec<String> = ["icmp", "tcp", "udp", "", "ftp_data", "http_8001", "\0tcp"]
            .map(String::from)
            .to_vec();
        let codes = CategoryCodes::new(&cats);
        for (i, c) in cats.iter().enumerate() {
            assert_eq!(codes.code(c.as_bytes()), i as u32, "{c:?}");
        }
        // Neither a prefix, nor zero padding, nor a longer value is a category.
        for v in [
            "tc",
            "tcp\0",
            "tcpp",
            "http_800",
            "http_80011",
            "ftp_dat",
            "ICMP",
        ] {
            assert_eq!(codes.code(v.as_bytes()), 7, "{v:?}");
        }
    }

    proptest! {
        /// Every value, short or long, category or not, gets the code a plain map gives.
        #[test]
        fn codes_match_a_map(
            cats in proptest::collection::vec("[a-c\\x00_]{0,10}", 0..40),
            probes in proptest::collection::vec("[a-c\\x00_]{0,10}", 0..40),
        ) {
            let codes = CategoryCodes::new(&cats);
            for v in cats.iter().chain(&probes) {
                prop_assert_eq!(codes.code(v.as_bytes()), reference(&cats, v.as_bytes()), "{:?}", v);
            }
        }
    }
}
