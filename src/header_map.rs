//! A request's headers as Envoy hands them over in one host call (proxy-wasm's
//! `proxy_get_header_map_pairs`), read where they lie.
//!
//! Reading headers one by one costs a host call each (~0.4 µs in V8 plus Envoy's own lookup
//! and an allocation in the VM): besides `:path`, a challenge read eight and a valid pass
//! two. One call returns them all, `:path` included, serialized as
//!
//! ```text
//! count: u32 LE | count × (name length: u32 LE, value length: u32 LE) | count × (name NUL value NUL)
//! ```
//!
//! Names are as Envoy keeps them (lower case). Values are bytes: nothing here assumes UTF-8,
//! and a malformed or truncated block reads as one without the header asked for, never a trap.

use crate::decision::RequestHeaders;

/// Envoy's serialized header map, owned as the host gave it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HeaderMap {
    bytes: Vec<u8>,
}

impl HeaderMap {
    /// Takes the bytes Envoy serialized (see the module's documentation).
    pub fn from_serialized(bytes: Vec<u8>) -> HeaderMap {
        HeaderMap { bytes }
    }

    /// The serialized form of `pairs`, as Envoy writes it: the fixture of tests and benchmarks.
    pub fn serialize(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let size = 4 + pairs.iter().map(|(name, value)| 10 + name.len() + value.len()).sum::<usize>();
        let mut bytes = Vec::with_capacity(size);
        bytes.extend_from_slice(&u32_le(pairs.len()));
        for (name, value) in pairs {
            bytes.extend_from_slice(&u32_le(name.len()));
            bytes.extend_from_slice(&u32_le(value.len()));
        }
        for (name, value) in pairs {
            bytes.extend_from_slice(name.as_bytes());
            bytes.push(0);
            bytes.extend_from_slice(value);
            bytes.push(0);
        }
        HeaderMap { bytes }
    }

    /// The serialized bytes (what a local reply hands Envoy: src/challenge_cache.rs).
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// The first value of `name` (lower case), as Envoy's own single-header read answers
    /// (it returns the first of repeated headers too).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.pairs().find(|(n, _)| *n == name.as_bytes()).map(|(_, value)| value)
    }

    /// Every (name, value) in Envoy's order; stops at the first entry the bytes do not hold.
    pub fn pairs(&self) -> Pairs<'_> {
        let count = read_u32(&self.bytes, 0).unwrap_or(0);
        // Each entry takes at least 8 bytes of lengths and 2 NULs: a count the block cannot
        // hold is malformed, and nothing is read from it.
        let table_end = count.checked_mul(8).and_then(|t| t.checked_add(4));
        let fits = table_end.is_some_and(|end| end <= self.bytes.len());
        Pairs { bytes: &self.bytes, index: 0, count: if fits { count } else { 0 }, data: table_end.unwrap_or(0) }
    }
}

impl RequestHeaders for HeaderMap {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.get(name)
    }
}

/// The entries of a [`HeaderMap`].
pub struct Pairs<'a> {
    bytes: &'a [u8],
    index: usize,
    count: usize,
    /// Where the next entry's name starts.
    data: usize,
}

impl<'a> Iterator for Pairs<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.index >= self.count {
            return None;
        }
        let lengths = 4 + self.index * 8;
        let name_len = read_u32(self.bytes, lengths)?;
        let value_len = read_u32(self.bytes, lengths + 4)?;
        let name_end = self.data.checked_add(name_len)?;
        let value_start = name_end.checked_add(1)?;
        let value_end = value_start.checked_add(value_len)?;
        let name = self.bytes.get(self.data..name_end)?;
        let value = self.bytes.get(value_start..value_end)?;
        // Each is followed by a NUL: if not, the lengths do not describe these bytes.
        if self.bytes.get(name_end) != Some(&0) || self.bytes.get(value_end) != Some(&0) {
            self.count = 0;
            return None;
        }
        self.index += 1;
        self.data = value_end + 1;
        Some((name, value))
    }
}

fn read_u32(bytes: &[u8], at: usize) -> Option<usize> {
    let word: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    usize::try_from(u32::from_le_bytes(word)).ok()
}

fn u32_le(n: usize) -> [u8; 4] {
    u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> HeaderMap {
        HeaderMap::serialize(&[
            (":path", b"/api/data"),
            (":method", b"GET"),
            ("authorization", b"Bearer a.b.c"),
            ("x-raw", &[0xff, 0xfe, b'x']),
            ("authorization", b"Bearer second"),
            ("empty", b""),
        ])
    }

    #[test]
    fn finds_each_header_by_its_lower_case_name() {
        let map = sample();
        assert_eq!(map.get(":path"), Some(&b"/api/data"[..]));
        assert_eq!(map.get(":method"), Some(&b"GET"[..]));
        assert_eq!(map.get("empty"), Some(&b""[..]));
        assert_eq!(map.get("origin"), None);
    }

    #[test]
    fn a_repeated_header_reads_as_its_first_value_as_envoys_single_read_does() {
        assert_eq!(sample().get("authorization"), Some(&b"Bearer a.b.c"[..]));
    }

    #[test]
    fn values_are_bytes_not_text() {
        assert_eq!(sample().get("x-raw"), Some(&[0xff, 0xfe, b'x'][..]));
    }

    #[test]
    fn every_pair_in_envoys_order() {
        let map = sample();
        let names: Vec<&[u8]> = map.pairs().map(|(name, _)| name).collect();
        assert_eq!(names.len(), 6);
        assert_eq!(names.first(), Some(&&b":path"[..]));
        assert_eq!(names.last(), Some(&&b"empty"[..]));
    }

    #[test]
    fn an_empty_or_absent_map_has_no_headers() {
        assert_eq!(HeaderMap::default().get(":path"), None);
        assert_eq!(HeaderMap::serialize(&[]).pairs().count(), 0);
    }

    #[test]
    fn a_truncated_block_reads_only_what_it_holds_and_never_panics() {
        let whole = sample().bytes;
        for cut in 0..whole.len() {
            let map = HeaderMap::from_serialized(whole.get(..cut).unwrap_or_default().to_vec());
            // A block cut before the table ends holds nothing; one cut in the data, its first entries.
            let read = map.pairs().count();
            assert!(read < 6, "cut at {cut} read {read} entries");
            let _ = map.get("authorization");
        }
    }

    #[test]
    fn lengths_that_lie_end_the_reading() {
        let mut bytes = sample().bytes;
        // The first name's length says 200: past its NUL, so nothing is read.
        if let Some(first) = bytes.get_mut(4) {
            *first = 200;
        }
        assert_eq!(HeaderMap::from_serialized(bytes).pairs().count(), 0);
        // A count larger than the block can hold.
        let mut bytes = sample().bytes;
        if let Some(count) = bytes.get_mut(3) {
            *count = 0xff;
        }
        assert_eq!(HeaderMap::from_serialized(bytes).get(":path"), None);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for len in 0..300 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed % 7) as u8
                })
                .collect();
            let map = HeaderMap::from_serialized(bytes);
            let _ = map.pairs().count();
            let _ = map.get(":method");
        }
    }
}
