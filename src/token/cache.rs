//! The per-worker cache of verified passes.

use std::fmt;

use super::claims::{PassClaims, MAX_TOKEN_LEN};
use super::keys::KeyRing;
use super::verify::{verify, Rejection, VerifyPolicy};

/// Ways per set of [`PassCache`].
const WAYS: usize = 4;

struct CacheEntry {
    /// The whole token: a hit must be this exact token, so a tampered copy of a
    /// cached pass (same signature, other claims) is verified, and refused.
    token: Box<[u8]>,
    claims: PassClaims,
}

/// Bounded per-worker cache of verified passes (docs/behaviour.md §7).
///
/// Design: a fixed array of `capacity` slots, 4-way set-associative. The set comes
/// from the first characters of the token's signature segment (a MAC or signature:
/// nobody can steer it without a valid pass), and a hit compares the whole token.
/// Hashing the whole token with SHA-256 instead was 90 % of a cached request's
/// instructions. Every operation is O(1) (at most 4 comparisons), memory is bounded
/// per entry (tokens over [`MAX_TOKEN_LEN`] are never cached; ours are ~450 bytes),
/// and nothing needs OS randomness. Only verified tokens are inserted. When a set is
/// full, the entry that expires first (so an expired one, if any) makes room: a set
/// conflict can evict before the whole cache is full, which only costs a re-verify.
/// The comparison is not constant time: it reveals nothing usable without the token.
///
/// A cached pass is served without re-checking its signature, issuer, audience or
/// duration bound: build a new cache whenever the key ring or the policy changes
/// (`on_configure`). Expiry is re-checked on every hit.
pub struct PassCache {
    slots: Vec<Option<CacheEntry>>,
    len: usize,
}

impl fmt::Debug for PassCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PassCache").field("capacity", &self.slots.len()).field("len", &self.len).finish()
    }
}

/// Set selector of a token: its last 8 characters, the end of its signature
/// segment (44 bits of an Ed25519 signature, 46 of an HMAC, in base64url), mixed so
/// that every bit reaches the low bits a modulo keeps. Taken from the end, with no
/// search for the segment's dot: this runs for every request with a pass, and the
/// search was a tenth of a cached pass's own work natively (bench/callgrind.sh:
/// 2,634 → 2,370 instructions). Which set
/// a token maps to decides nothing but where it is looked for: a hit is the whole
/// token equal, and only verified passes are stored.
fn selector(token: &[u8]) -> u64 {
    let start = token.len().saturating_sub(8);
    let mut bytes = [0u8; 8];
    for (out, b) in bytes.iter_mut().zip(token.iter().skip(start)) {
        *out = *b;
    }
    let mixed = u64::from_le_bytes(bytes).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    mixed ^ (mixed >> 29)
}

impl PassCache {
    /// A cache of at most `capacity` passes (at least 1).
    pub fn new(capacity: usize) -> Self {
        let mut slots = Vec::new();
        slots.resize_with(capacity.max(1), || None);
        PassCache { slots, len: 0 }
    }

    /// Claims of a cached pass still valid at `now` (`now <= exp + leeway`). An expired
    /// entry is removed and `None` returned: a cached pass still expires on time.
    pub fn get(&mut self, token: &[u8], now: u64, leeway: u64) -> Option<&PassClaims> {
        if token.len() > MAX_TOKEN_LEN {
            return None;
        }
        let index = self.find(token, now, leeway)?;
        self.claims_at(index)
    }

    /// Caches the claims of a verified token. Tokens over [`MAX_TOKEN_LEN`] are never
    /// cached. Only call this with the result of a successful [`verify`].
    pub fn insert(&mut self, token: &[u8], claims: PassClaims) {
        if token.len() > MAX_TOKEN_LEN {
            return;
        }
        let _ = self.insert_token(token, claims);
    }

    /// Number of cached passes (expired ones included until they are looked up or evicted).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Maximum number of cached passes.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Drops every entry (e.g. after the key ring changed).
    pub fn clear(&mut self) {
        self.slots.iter_mut().for_each(|s| *s = None);
        self.len = 0;
    }

    /// Slot range of the set a token maps to.
    fn set_range(&self, token: &[u8]) -> std::ops::Range<usize> {
        let hash = selector(token);
        let capacity = self.slots.len();
        let sets = capacity.div_ceil(WAYS).max(1);
        // `sets` fits in u64 and the remainder is below it, so both casts are lossless.
        let set = (hash % sets as u64) as usize;
        let start = set.saturating_mul(WAYS);
        start..start.saturating_add(WAYS).min(capacity)
    }

    /// Index of the live entry for `token`; removes it if it has expired.
    fn find(&mut self, token: &[u8], now: u64, leeway: u64) -> Option<usize> {
        let range = self.set_range(token);
        let start = range.start;
        let set = self.slots.get_mut(range)?;
        let way = set.iter().position(|s| s.as_ref().is_some_and(|e| *e.token == *token))?;
        let slot = set.get_mut(way)?;
        let exp = slot.as_ref().map(|e| e.claims.exp)?;
        if now > exp.saturating_add(leeway) {
            *slot = None;
            self.len = self.len.saturating_sub(1);
            return None;
        }
        Some(start + way)
    }

    fn claims_at(&self, index: usize) -> Option<&PassClaims> {
        self.slots.get(index).and_then(Option::as_ref).map(|e| &e.claims)
    }

    /// Stores the entry in its set: in place of the same token, else in a free slot,
    /// else in place of the entry that expires first.
    fn insert_token(&mut self, token: &[u8], claims: PassClaims) -> Option<&PassClaims> {
        let range = self.set_range(token);
        let set = self.slots.get_mut(range)?;
        let way = set
            .iter()
            .position(|s| s.as_ref().is_some_and(|e| *e.token == *token))
            .or_else(|| set.iter().position(Option::is_none))
            .or_else(|| {
                set.iter().enumerate().min_by_key(|(_, s)| s.as_ref().map_or(0, |e| e.claims.exp)).map(|(i, _)| i)
            })?;
        let slot = set.get_mut(way)?;
        if slot.is_none() {
            self.len += 1;
        }
        let entry = slot.insert(CacheEntry { token: token.into(), claims });
        Some(&entry.claims)
    }
}

/// [`PassCache::get`], else [`verify`] and cache the result. A repeat token costs a
/// byte comparison: no hashing, no signature check, no JSON parsing. Returns a reference into the cache
/// (the filter only reads the claims to set headers).
pub fn verify_cached<'c>(
    cache: &'c mut PassCache,
    ring: &KeyRing,
    policy: &VerifyPolicy,
    token: &[u8],
    now: u64,
) -> Result<&'c PassClaims, Rejection> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(Rejection::TooLarge);
    }
    if let Some(index) = cache.find(token, now, policy.leeway_seconds) {
        // `find` returned the index of a live entry, so `claims_at` is `Some`.
        return cache.claims_at(index).ok_or(Rejection::Malformed);
    }
    let claims = verify(ring, policy, token, now)?;
    // The cache has at least one slot, so insertion always finds one; `Malformed` is
    // only a type-level fallback.
    cache.insert_token(token, claims).ok_or(Rejection::Malformed)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::token::testkit::*;
    use crate::token::{sign, KeyMaterial, KeySpec};
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;

    #[test]
    fn cache_hit_skips_crypto() {
        let r = ring(vec![hs(None, SECRET)]);
        let mut cache = PassCache::new(16);
        assert!(cache.get(VECTOR.as_bytes(), IAT, 0).is_none());
        assert_eq!(verify_cached(&mut cache, &r, &policy(), VECTOR.as_bytes(), IAT), Ok(&claims()));
        assert_eq!(cache.len(), 1);
        // A ring that could not verify the token: the hit never reaches crypto.
        let other = ring(vec![hs(None, b"fedcba9876543210fedcba9876543210")]);
        assert_eq!(verify_cached(&mut cache, &other, &policy(), VECTOR.as_bytes(), IAT + 5), Ok(&claims()));
        assert_eq!(cache.get(VECTOR.as_bytes(), IAT, 0), Some(&claims()));
        assert_eq!(cache.len(), 1);
        // Rejections are not cached; a different token is a miss.
        let tampered = VECTOR.replacen(".XkG", ".XkH", 1);
        assert_eq!(verify_cached(&mut cache, &r, &policy(), tampered.as_bytes(), IAT), Err(Rejection::BadSignature));
        assert_eq!(cache.len(), 1);
        assert_eq!(verify_cached(&mut cache, &r, &policy(), &[b'a'; MAX_TOKEN_LEN + 1], IAT), Err(Rejection::TooLarge));
        // Eddsa too.
        let ed = ring(vec![ed_seed(None, SEED_A)]);
        let t = sign(&ed, &claims()).unwrap();
        assert_eq!(verify_cached(&mut cache, &ed, &policy(), t.as_bytes(), IAT), Ok(&claims()));
        assert_eq!(cache.len(), 2);
        cache.clear();
        assert!(cache.is_empty());
    }

    #[test]
    fn cache_expires_on_time() {
        let r = ring(vec![hs(None, SECRET)]);
        let mut cache = PassCache::new(4);
        verify_cached(&mut cache, &r, &policy(), VECTOR.as_bytes(), IAT).unwrap();
        assert!(cache.get(VECTOR.as_bytes(), EXP, 0).is_some());
        assert!(cache.get(VECTOR.as_bytes(), EXP + 1, 5).is_some());
        assert_eq!(verify_cached(&mut cache, &r, &policy(), VECTOR.as_bytes(), EXP), Ok(&claims()));
        // Past exp: rejected even though it is cached, and the entry is gone.
        assert_eq!(verify_cached(&mut cache, &r, &policy(), VECTOR.as_bytes(), EXP + 1), Err(Rejection::Expired));
        assert_eq!(cache.len(), 0);
        cache.insert(VECTOR.as_bytes(), claims());
        assert_eq!(cache.len(), 1);
        assert!(cache.get(VECTOR.as_bytes(), EXP + 1, 0).is_none());
        assert_eq!(cache.len(), 0);
        // Oversized tokens are never cached.
        cache.insert(&[b'a'; MAX_TOKEN_LEN + 1], claims());
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn a_tampered_copy_of_a_cached_pass_is_not_served_from_the_cache() {
        let ring =
            KeyRing::new(vec![KeySpec { kid: None, material: KeyMaterial::Hs256Secret(SECRET.to_vec()) }]).unwrap();
        let policy = VerifyPolicy {
            issuer: "x402-access-pass".into(),
            audience: None,
            leeway_seconds: 0,
            max_duration_seconds: 86_400,
        };
        let mut cache = PassCache::new(64);
        assert_eq!(verify_cached(&mut cache, &ring, &policy, VECTOR.as_bytes(), IAT).unwrap().tier, "1h");
        // Same header and signature, other claims: a cache keyed by the signature alone
        // would serve it; it must be verified, and refused.
        let mut parts: Vec<&str> = VECTOR.split('.').collect();
        let mut tampered_claims = claims();
        tampered_claims.tier = "24h".into();
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&tampered_claims).unwrap());
        parts[1] = &payload;
        let tampered = parts.join(".");
        assert_eq!(verify_cached(&mut cache, &ring, &policy, tampered.as_bytes(), IAT), Err(Rejection::BadSignature));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn cache_is_bounded() {
        for capacity in [0usize, 1, 3, 4, 5, 64] {
            let mut cache = PassCache::new(capacity);
            assert_eq!(cache.capacity(), capacity.max(1));
            for i in 0..500u64 {
                let mut c = claims();
                c.exp = EXP + i;
                // Signatures look random; vary the leading characters like they do.
                let token = format!("header.payload.{:08x}-{i}", i.wrapping_mul(2_654_435_761) as u32);
                cache.insert(token.as_bytes(), c.clone());
                assert!(cache.len() <= cache.capacity());
                // The latest insert is always retrievable.
                assert_eq!(cache.get(token.as_bytes(), IAT, 0), Some(&c));
            }
            // Filled up (500 inserts into at most 64 slots, uniform sets).
            assert_eq!(cache.len(), cache.capacity(), "capacity {capacity}");
            // Re-inserting the same token does not grow it.
            let before = cache.len();
            let last = format!("header.payload.{:08x}-499", 499u64.wrapping_mul(2_654_435_761) as u32);
            cache.insert(last.as_bytes(), claims());
            assert_eq!(cache.len(), before);
        }
        // Within a full set, the entry expiring first (an expired one) is evicted first.
        let mut cache = PassCache::new(4); // a single set
        for (i, exp) in [(0, EXP), (1, IAT), (2, EXP), (3, EXP)] {
            let mut c = claims();
            c.exp = exp;
            cache.insert(format!("h.p.t{i}").as_bytes(), c);
        }
        cache.insert(b"h.p.t4", claims());
        assert_eq!(cache.len(), 4);
        assert!(cache.get(b"h.p.t1", IAT, 0).is_none());
        for t in ["h.p.t0", "h.p.t2", "h.p.t3", "h.p.t4"] {
            assert!(cache.get(t.as_bytes(), IAT, 0).is_some(), "{t}");
        }
    }
}
