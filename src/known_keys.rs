//! Keys everybody knows: the ones this repository's tests, demo and docs use. On a mainnet
//! they would hand a seller's money, or the power to mint passes, to anyone who has read the
//! code, so a configuration for a mainnet that names one is refused (docs/behaviour.md,
//! "Configuration").
//!
//! The placeholder `payTo` of the reference configurations is recognised here too, so a seller
//! who has not set it yet gets one line saying what to set rather than "not base58".

use crate::solana::Pubkey;
use crate::token::KeyMaterial;

/// The `payTo` of every reference configuration (envoy/, envoy/istio/, envoy/docker/): not an
/// address, so `envoy --mode validate` fails until the seller sets their own.
pub const PAY_TO_PLACEHOLDER: &str = "CHANGE-ME-to-your-wallet-address";

/// Networks where tokens are worth money. A test key is refused on these only: the demo and
/// the tests run on devnet with these keys on purpose.
const MAINNETS: [&str; 2] = [crate::config::MAINNET, crate::networks::BASE];

/// Ed25519 public keys of the seeds made of one repeated byte 0x01..=0x09 (the repository uses
/// 0x01 buyer, 0x02 fee payer, 0x03 merchant, 0x07 and 0x09 pass keys). The unit test below
/// derives each from its seed, so the table cannot drift.
const TEST_SEED_ADDRESSES: [&str; 9] = [
    "AKnL4NNf3DGWZJS6cPknBuEGnVsV4A4m5tgebLHaRSZ9",
    "9hSR6S7WPtxmTojgo6GG3k4yDPecgJY292j7xrsUGWBu",
    "GyGKxMyg1p9SsHfm15MkNUu1u9TN2JtTspcdmrtGUdse",
    "EdmxWPmx2WH6WgFfTdu9xfkYf3k1g5wD1zccTVySEEh1",
    "8SFqwqnq4whPhs8icwHA2hQg3hUoN1qrCLK1SBx3WKwe",
    "AKkzLhjhyFtM9j7WAhbaqYpFe49cXeJBg2kzLRC2PnNa",
    "GmaDrppBC7P5ARKV8g3djiwP89vz1jLK23V2GBjuAEGB",
    "2KW2XRd9kwqet15Aha2oK3tYvd3nWbTFH1MBiRAv1BE1",
    "J2xccRtuG43drESLYznHhLhQkLTdfepcKYbiQ9BsJVaf",
];

/// HS256 secrets printed in this repository: the demo's, the behaviour document's test vector
/// and the test suites'.
const PUBLISHED_SECRETS: [&str; 5] = [
    "demo-secret-do-not-use-in-production-0123",
    "0123456789abcdef0123456789abcdef",
    "integration-test-secret-0123456789abcdef",
    "integration-test-secret-from-env-0123456789",
    "bench-secret-0123456789abcdef0123456789",
];

pub fn is_mainnet(network: &str) -> bool {
    MAINNETS.contains(&network)
}

/// A well-known test address (see `TEST_SEED_ADDRESSES`).
pub fn is_test_address(key: &Pubkey) -> bool {
    TEST_SEED_ADDRESSES.iter().filter_map(|address| crate::solana::decode_pubkey(address)).any(|known| &known == key)
}

/// A signing or verification key anyone can read in this repository: a published secret, a
/// seed of one repeated byte, or the public key of one.
pub fn is_published_key(material: &KeyMaterial) -> bool {
    match material {
        KeyMaterial::Hs256Secret(secret) => PUBLISHED_SECRETS.iter().any(|known| known.as_bytes() == secret.as_slice()),
        KeyMaterial::EdDsaSeed(seed) => seed.iter().all(|b| Some(b) == seed.first()),
        KeyMaterial::EdDsaPublic(public) => is_test_address(public),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public_of(seed: [u8; 32]) -> Pubkey {
        *ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new(seed)).pk
    }

    #[test]
    fn the_table_holds_the_public_keys_of_the_repeated_byte_seeds() {
        for (byte, address) in TEST_SEED_ADDRESSES.iter().enumerate() {
            let key = crate::solana::decode_pubkey(address).unwrap();
            let seed = byte as u8 + 1;
            assert_eq!(key, public_of([seed; 32]), "seed 0x{seed:02x}");
            assert!(is_test_address(&key));
        }
        assert!(!is_test_address(&public_of([0x5a; 32])));
    }

    #[test]
    fn published_keys_of_every_kind_are_recognised() {
        assert!(is_published_key(&KeyMaterial::Hs256Secret(b"0123456789abcdef0123456789abcdef".to_vec())));
        assert!(!is_published_key(&KeyMaterial::Hs256Secret(b"a-seller-s-own-secret-0123456789abcdef".to_vec())));
        assert!(is_published_key(&KeyMaterial::EdDsaSeed([7; 32])));
        assert!(is_published_key(&KeyMaterial::EdDsaSeed([0xee; 32])));
        let mut own = [7; 32];
        own[31] = 8;
        assert!(!is_published_key(&KeyMaterial::EdDsaSeed(own)));
        assert!(is_published_key(&KeyMaterial::EdDsaPublic(public_of([9; 32]))));
        assert!(!is_published_key(&KeyMaterial::EdDsaPublic(public_of(own))));
    }

    #[test]
    fn only_mainnet_is_guarded() {
        assert!(is_mainnet(crate::config::MAINNET));
        assert!(!is_mainnet(crate::config::DEVNET));
    }
}
