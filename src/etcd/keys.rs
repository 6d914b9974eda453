//! Where each record lives under the ledger's prefix. Every part of a key is checked here, so a
//! [`Key`] is always one this filter could have written: `/`, control characters or anything
//! unbounded never reach etcd from a buyer.
//!
//! - `{prefix}purchase/{sha-256 of the transaction message, 64 lowercase hex}` (docs/behaviour.md §6.5)
//! - `{prefix}entitlement/{payer address}` (docs/fleet.md, "Entitlements")
//! - `{prefix}payment-id/{payment-identifier id}` (docs/behaviour.md §17.5)

use super::Settings;

/// An etcd key of the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key(Vec<u8>);

impl Key {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

fn key(settings: &Settings, kind: &str, name: &str) -> Key {
    Key(format!("{}{kind}/{name}", settings.prefix()).into_bytes())
}

/// A purchase, by its `PurchaseKey::key` (64 lowercase hex characters).
pub fn purchase(settings: &Settings, hash_hex: &str) -> Option<Key> {
    let hex = hash_hex.len() == 64 && hash_hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    hex.then(|| key(settings, "purchase", hash_hex))
}

/// A payer's entitlement: a Solana (base58) or EVM (0x hex) address, 1 to 128 ASCII letters
/// and digits.
pub fn entitlement(settings: &Settings, payer: &str) -> Option<Key> {
    let ok = (1..=128).contains(&payer.len()) && payer.bytes().all(|b| b.is_ascii_alphanumeric());
    ok.then(|| key(settings, "entitlement", payer))
}

/// A payment-identifier id: 1 to 128 ASCII letters, digits, `_` and `-` (the extension's alphabet).
pub fn payment_id(settings: &Settings, id: &str) -> Option<Key> {
    let ok = (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    ok.then(|| key(settings, "payment-id", id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_live_under_the_prefix_and_only_well_formed_names_make_keys() {
        let settings = Settings::new("/x402-access-pass/", 1_000).unwrap();
        let hash = "ab".repeat(32);
        assert_eq!(
            purchase(&settings, &hash).unwrap().as_bytes(),
            format!("/x402-access-pass/purchase/{hash}").as_bytes()
        );
        assert_eq!(
            entitlement(&settings, "GyGKxMyg1p9SsHfm15MkNUu1u9TN2JtTspcdmrtGUdse").unwrap().as_bytes(),
            b"/x402-access-pass/entitlement/GyGKxMyg1p9SsHfm15MkNUu1u9TN2JtTspcdmrtGUdse"
        );
        assert_eq!(
            payment_id(&settings, "pay_0123-abc").unwrap().as_bytes(),
            b"/x402-access-pass/payment-id/pay_0123-abc"
        );
        for bad in ["AB".repeat(32), "ab".repeat(31), format!("{}/", "a".repeat(63))] {
            assert_eq!(purchase(&settings, &bad), None, "{bad}");
        }
        for bad in ["", "a/b", "a b", "a\n", "ä", &"a".repeat(129)] {
            assert_eq!(entitlement(&settings, bad), None, "{bad:?}");
            assert_eq!(payment_id(&settings, bad), None, "{bad:?}");
        }
        assert_eq!(entitlement(&settings, "pay_1"), None);
    }

    #[test]
    fn settings_want_a_slash_framed_printable_prefix_and_a_sane_timeout() {
        assert!(Settings::new("/p/", 1).is_some());
        assert!(Settings::new("/p/", 60_000).is_some());
        for (prefix, timeout) in
            [("/p/", 0), ("/p/", 60_001), ("p/", 1_000), ("/p", 1_000), ("/", 1_000), ("/a b/", 1_000)]
        {
            assert_eq!(Settings::new(prefix, timeout), None, "{prefix:?} {timeout}");
        }
        assert_eq!(Settings::new(&format!("/{}/", "a".repeat(127)), 1_000), None);
    }
}
