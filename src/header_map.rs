//! A request's headers as Envoy hands them over in one host call (proxy-wasm's
//! `proxy_get_header_map_pairs`), read where they lie.
//!
//! Reading headers one by one costs a host call each (~0.4 µs in V8 plus Envoy's own lookup
//! and an allocation in the VM): a challenge read eight, a valid pass two besides `:path`
//! (bench/results.md, the host-call rows). One call returns them all, serialized as
//!
//! ```text
//! count: u32 LE | count × (name length: u32 LE, value length: u32 LE) | count × (name NUL value NUL)
//! ```
//!
//! Names are as Envoy keeps them (lower case). Values are bytes: nothing here assumes UTF-8,
//! and a malformed or truncated block reads as one without the header asked for, never a trap.

use crate::decision::RequestHeaders;

/// Envoy's serialized header map, owned as the host gave it, with where each entry lies (read
/// once: a request's headers are looked up several times and rewritten once).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HeaderMap {
    bytes: Vec<u8>,
    /// (name start, name end, value start, value end) of each entry that could be read, in order.
    entries: Vec<[usize; 4]>,
    /// Every entry the block declares could be read.
    whole: bool,
}

impl HeaderMap {
    /// Takes the bytes Envoy serialized (see the module's documentation).
    pub fn from_serialized(bytes: Vec<u8>) -> HeaderMap {
        let (entries, whole) = index(&bytes);
        HeaderMap { bytes, entries, whole }
    }

    /// The serialized form of `pairs`, as Envoy writes it: the fixture of tests and benchmarks.
    pub fn serialize(pairs: &[(&str, &[u8])]) -> HeaderMap {
        HeaderMap::from_serialized(serialize(pairs.len(), pairs.iter().map(|(n, v)| (n.as_bytes(), *v))))
    }

    /// The first value of `name` (lower case), as Envoy's own single-header read answers
    /// (it returns the first of repeated headers too).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.pairs().find(|(n, _)| *n == name.as_bytes()).map(|(_, value)| value)
    }

    /// The serialized block of this map without the headers `drop` names and with `add` after
    /// the rest, for Envoy to take in one host call (`proxy_set_header_map_pairs`) instead of a
    /// call per header set or removed. `None` when this block is not whole (a truncated or
    /// malformed block, or none at all): replacing the request's headers with what could be read
    /// of it would lose the rest, so the caller then sets and removes header by header.
    pub fn rewritten(&self, drop: impl Fn(&[u8]) -> bool, add: &[(&str, &str)]) -> Option<Vec<u8>> {
        if !self.whole || self.entries.is_empty() {
            return None;
        }
        let mut pairs: Vec<(&[u8], &[u8])> = Vec::with_capacity(self.entries.len() + add.len());
        pairs.extend(self.pairs().filter(|(name, _)| !drop(name)));
        pairs.extend(add.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())));
        Some(serialize(pairs.len(), pairs.iter().copied()))
    }

    /// Every (name, value) that could be read, in Envoy's order.
    pub fn pairs(&self) -> impl Iterator<Item = (&[u8], &[u8])> + Clone + '_ {
        self.entries.iter().filter_map(|&[name, name_end, value, value_end]| {
            Some((self.bytes.get(name..name_end)?, self.bytes.get(value..value_end)?))
        })
    }
}

impl RequestHeaders for HeaderMap {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.get(name)
    }
}

/// Where each entry of a serialized block lies, and whether every declared entry could be read.
/// Reading stops at the first entry the bytes do not hold (a length past the end, a missing NUL).
fn index(bytes: &[u8]) -> (Vec<[usize; 4]>, bool) {
    let count = read_u32(bytes, 0).unwrap_or(0);
    // Each entry takes 8 bytes of lengths: a count the block cannot hold is malformed, and
    // nothing is read from it.
    let Some(mut data) = count.checked_mul(8).and_then(|t| t.checked_add(4)).filter(|end| *end <= bytes.len()) else {
        return (Vec::new(), false);
    };
    let mut entries = Vec::with_capacity(count);
    for i in 0..count {
        let lengths = 4 + i * 8;
        let entry = read_u32(bytes, lengths).zip(read_u32(bytes, lengths + 4)).and_then(|(name_len, value_len)| {
            let name_end = data.checked_add(name_len)?;
            let value_end = name_end.checked_add(1)?.checked_add(value_len)?;
            // Each is followed by a NUL: if not, the lengths do not describe these bytes.
            (bytes.get(name_end) == Some(&0) && bytes.get(value_end) == Some(&0)).then_some([
                data,
                name_end,
                name_end + 1,
                value_end,
            ])
        });
        match entry {
            Some(entry) => {
                data = entry[3] + 1;
                entries.push(entry);
            }
            None => return (entries, false),
        }
    }
    (entries, true)
}

/// Envoy's serialization of `count` pairs.
fn serialize<'a>(count: usize, pairs: impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone) -> Vec<u8> {
    let size = 4 + pairs.clone().map(|(name, value)| 10 + name.len() + value.len()).sum::<usize>();
    let mut bytes = Vec::with_capacity(size);
    bytes.extend_from_slice(&u32_le(count));
    for (name, value) in pairs.clone() {
        bytes.extend_from_slice(&u32_le(name.len()));
        bytes.extend_from_slice(&u32_le(value.len()));
    }
    for (name, value) in pairs {
        bytes.extend_from_slice(name);
        bytes.push(0);
        bytes.extend_from_slice(value);
        bytes.push(0);
    }
    bytes
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
    fn rewritten_drops_the_named_headers_keeps_the_rest_in_order_and_adds_the_new_ones_last() {
        let map = sample();
        let drop = |name: &[u8]| name == b"authorization" || name == b"x-raw";
        let block = map.rewritten(drop, &[("x-access-pass-tier", "1h"), ("x-access-pass-payer", "Buyer")]);
        let rewritten = HeaderMap::from_serialized(block.unwrap_or_default());
        let pairs: Vec<(&[u8], &[u8])> = rewritten.pairs().collect();
        let expected: Vec<(&[u8], &[u8])> = vec![
            (b":path", b"/api/data"),
            (b":method", b"GET"),
            (b"empty", b""),
            (b"x-access-pass-tier", b"1h"),
            (b"x-access-pass-payer", b"Buyer"),
        ];
        assert_eq!(pairs, expected);
        // Exactly Envoy's serialization of those pairs.
        let names: Vec<(&str, &[u8])> = vec![
            (":path", b"/api/data"),
            (":method", b"GET"),
            ("empty", b""),
            ("x-access-pass-tier", b"1h"),
            ("x-access-pass-payer", b"Buyer"),
        ];
        assert_eq!(rewritten, HeaderMap::serialize(&names));
    }

    #[test]
    fn a_block_that_is_not_whole_is_never_rewritten() {
        let whole = sample().bytes;
        for cut in 0..whole.len() {
            let map = HeaderMap::from_serialized(whole.get(..cut).unwrap_or_default().to_vec());
            assert_eq!(map.rewritten(|_| false, &[("a", "b")]), None, "cut at {cut}");
        }
        assert_eq!(HeaderMap::default().rewritten(|_| false, &[("a", "b")]), None);
        assert_eq!(HeaderMap::serialize(&[]).rewritten(|_| false, &[("a", "b")]), None);
        assert!(sample().rewritten(|_| false, &[]).is_some());
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
