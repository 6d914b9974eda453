//! A small per-worker memo of finished 402 challenges.
//!
//! A challenge is a pure function of the configuration, the resource URL (which holds the
//! path, so the offer), the fee payer and whether the client wants HTML. Dashboards and
//! pollers without a pass ask for the same few URLs over and over; serialising the same
//! ~2.4 KB of JSON and base64 for each of them was most of the filter's own work on the
//! challenge path. The memo is direct-mapped and fixed-size: a URL that misses evicts
//! whatever was in its slot, so memory stays bounded whatever URLs clients invent, and a
//! configuration change builds a new worker, and so a new memo.
//!
//! A challenge that declares Sign-In-With-X carries a nonce and an `issuedAt` that must be at
//! most 10 s old when sent (docs/behaviour.md §16.5): it is remembered for `DECLARING_TTL_MS`
//! only, and asked for with the clock.
//!
//! Its headers are remembered as Envoy takes them too (the block of proxy-wasm's local reply,
//! with the request's CORS headers after the challenge's own): the SDK's `send_http_response`
//! would otherwise collect and serialize the same ~1.7 KB for every 402. The CORS headers depend
//! on the request's `Origin` when the allowed origins are a list, so the block is built again
//! whenever they differ from the ones it was built with.

use crate::response::Response;

/// Slots of a worker's memo: a few hundred KB at most (an entry is ~7 KB: the challenge, and
/// its headers serialized).
pub const DEFAULT_SLOTS: usize = 64;
/// How long a challenge built at a known time (one that declares Sign-In-With-X) is served again.
pub const DECLARING_TTL_MS: u64 = 5_000;

struct Entry {
    url: String,
    fee_payer: String,
    html: bool,
    /// Built at a time, for `DECLARING_TTL_MS`: served again only before this instant.
    expires_ms: Option<u64>,
    response: Response,
    /// The extra headers `headers` was built with, and the response's headers followed by them,
    /// serialized.
    extra: Vec<(&'static str, String)>,
    headers: Vec<u8>,
}

/// A remembered challenge, and its headers (the challenge's own, then the extra ones asked
/// for) serialized as Envoy reads a local reply's (src/header_map.rs).
#[derive(Debug, PartialEq, Eq)]
pub struct Remembered<'a> {
    pub response: &'a Response,
    pub headers: &'a [u8],
}

pub struct ChallengeCache {
    slots: Vec<Option<Entry>>,
}

impl ChallengeCache {
    pub fn new(slots: usize) -> ChallengeCache {
        ChallengeCache { slots: (0..slots.max(1)).map(|_| None).collect() }
    }

    /// The challenge for this URL, fee payer and flavour, built by `build` when it is not
    /// remembered, with its headers and `extra` serialized. `build` returning `None` (nothing to
    /// offer) is not remembered. `now_ms` is given for a challenge that depends on the time (it
    /// declares Sign-In-With-X): then it is remembered for `DECLARING_TTL_MS` only.
    pub fn get_or_build(
        &mut self,
        url: &str,
        fee_payer: &str,
        html: bool,
        now_ms: Option<u64>,
        extra: &[(&'static str, &str)],
        build: impl FnOnce() -> Option<Response>,
    ) -> Option<Remembered<'_>> {
        let index = slot_of(url, html, self.slots.len());
        let slot = self.slots.get_mut(index)?;
        let fresh = |e: &Entry| match (e.expires_ms, now_ms) {
            (None, None) => true,
            (Some(expires), Some(now)) => now < expires,
            _ => false,
        };
        let hit = slot.as_ref().is_some_and(|e| e.html == html && e.url == url && e.fee_payer == fee_payer && fresh(e));
        if !hit {
            let expires_ms = now_ms.map(|now| now.saturating_add(DECLARING_TTL_MS));
            let response = build()?;
            let entry = Entry {
                url: url.to_owned(),
                fee_payer: fee_payer.to_owned(),
                html,
                expires_ms,
                headers: response.serialized_headers(extra),
                extra: owned(extra),
                response,
            };
            *slot = Some(entry);
        }
        let entry = slot.as_mut()?;
        let same_extra = entry.extra.len() == extra.len()
            && entry.extra.iter().zip(extra).all(|((n, v), (name, value))| n == name && v == value);
        if !same_extra {
            entry.headers = entry.response.serialized_headers(extra);
            entry.extra = owned(extra);
        }
        Some(Remembered { response: &entry.response, headers: &entry.headers })
    }
}

fn owned(extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    extra.iter().map(|(name, value)| (*name, (*value).to_owned())).collect()
}

/// FNV-1a of the URL and the flavour: cheap, and clients cannot make it slower than a miss.
fn slot_of(url: &str, html: bool, slots: usize) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in url.as_bytes().iter().chain([u8::from(html)].iter()) {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // `slots` is at least 1 (see `new`).
    (hash % slots as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header_map::HeaderMap;
    use std::cell::Cell;

    fn response(tag: &str) -> Response {
        Response { status: 402, headers: vec![("x-tag", tag.to_owned())], body: tag.as_bytes().to_vec() }
    }

    #[test]
    fn the_same_request_is_built_once() {
        let mut cache = ChallengeCache::new(8);
        let builds = Cell::new(0);
        for _ in 0..3 {
            let r = cache.get_or_build("http://h/api", "FP", false, None, &[], || {
                builds.set(builds.get() + 1);
                Some(response("a"))
            });
            assert_eq!(r.map(|r| r.response), Some(&response("a")));
        }
        assert_eq!(builds.get(), 1);
    }

    #[test]
    fn url_flavour_and_fee_payer_each_make_a_different_challenge() {
        let mut cache = ChallengeCache::new(1);
        let got = |cache: &mut ChallengeCache, url: &str, fp: &str, html: bool, tag: &str| {
            cache.get_or_build(url, fp, html, None, &[], || Some(response(tag))).map(|r| r.response.clone())
        };
        assert_eq!(got(&mut cache, "http://h/a", "FP", false, "1"), Some(response("1")));
        // One slot: each differing request replaces it, never answers with the other one.
        assert_eq!(got(&mut cache, "http://h/b", "FP", false, "2"), Some(response("2")));
        assert_eq!(got(&mut cache, "http://h/b", "FP", true, "3"), Some(response("3")));
        assert_eq!(got(&mut cache, "http://h/b", "FP2", true, "4"), Some(response("4")));
        assert_eq!(got(&mut cache, "http://h/b", "FP2", true, "not built"), Some(response("4")));
    }

    #[test]
    fn nothing_to_offer_is_not_remembered() {
        let mut cache = ChallengeCache::new(4);
        assert_eq!(cache.get_or_build("http://h/a", "FP", false, None, &[], || None), None);
        let built = cache.get_or_build("http://h/a", "FP", false, None, &[], || Some(response("x")));
        assert_eq!(built.map(|r| r.response), Some(&response("x")));
    }

    #[test]
    fn memory_is_bounded_by_the_slot_count() {
        let mut cache = ChallengeCache::new(4);
        for i in 0..1_000 {
            let url = format!("http://h/a?{i}");
            assert!(cache.get_or_build(&url, "FP", false, None, &[], || Some(response(&url))).is_some());
        }
        assert_eq!(cache.slots.len(), 4);
        assert!(cache.slots.iter().flatten().count() <= 4);
    }

    #[test]
    fn a_challenge_built_at_a_time_is_served_for_a_few_seconds_only() {
        let mut cache = ChallengeCache::new(4);
        let at = |cache: &mut ChallengeCache, now: u64, tag: &str| {
            cache
                .get_or_build("http://h/a", "FP", false, Some(now), &[], || Some(response(tag)))
                .map(|r| r.response.clone())
        };
        assert_eq!(at(&mut cache, 1_000, "first"), Some(response("first")));
        assert_eq!(at(&mut cache, 1_000 + DECLARING_TTL_MS - 1, "second"), Some(response("first")));
        assert_eq!(at(&mut cache, 1_000 + DECLARING_TTL_MS, "third"), Some(response("third")));
        // Never mixed with the timeless flavour of the same request.
        let timeless = cache
            .get_or_build("http://h/a", "FP", false, None, &[], || Some(response("timeless")))
            .map(|r| r.response.clone());
        assert_eq!(timeless, Some(response("timeless")));
        const { assert!(DECLARING_TTL_MS <= 10_000, "issuedAt must stay within 10 s of sending") };
    }

    #[test]
    fn the_headers_are_remembered_serialized_with_the_extra_ones_after_them() {
        let mut cache = ChallengeCache::new(4);
        let builds = Cell::new(0);
        let mut send = |origin: &str| {
            let extra = [("access-control-allow-origin", origin), ("vary", "Origin")];
            let r = cache.get_or_build("http://h/a", "FP", false, None, &extra, || {
                builds.set(builds.get() + 1);
                Some(response("a"))
            });
            r.map(|r| r.headers.to_vec())
        };
        let block = |origin: &[u8]| {
            HeaderMap::serialize(&[("x-tag", b"a"), ("access-control-allow-origin", origin), ("vary", b"Origin")])
                .into_bytes()
        };
        assert_eq!(send("https://a.example"), Some(block(b"https://a.example")));
        assert_eq!(send("https://a.example"), Some(block(b"https://a.example")));
        // Another request's Origin: the same challenge, its headers serialized again with that one.
        assert_eq!(send("https://b.example"), Some(block(b"https://b.example")));
        assert_eq!(builds.get(), 1);
        let read: Vec<(Vec<u8>, Vec<u8>)> =
            HeaderMap::from_serialized(block(b"*")).pairs().map(|(n, v)| (n.to_vec(), v.to_vec())).collect();
        assert_eq!(read.len(), 3, "the block reads back as the three headers");
    }
}
