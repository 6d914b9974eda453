//! Program-derived addresses and associated token accounts (docs/behaviour.md §11).

use curve25519_dalek::edwards::CompressedEdwardsY;
use sha2::{Digest, Sha256};
use x402_access_pass::solana::{Pubkey, ASSOCIATED_TOKEN_PROGRAM_ID};

/// Whether 32 bytes are the compressed form of a valid Ed25519 point.
pub fn is_on_curve(bytes: &Pubkey) -> bool {
    CompressedEdwardsY(*bytes).decompress().is_some()
}

/// `create_program_address`: SHA-256(seeds..., program_id, "ProgramDerivedAddress"),
/// refused (None) when the result is on the curve.
pub fn create_program_address(seeds: &[&[u8]], program_id: &Pubkey) -> Option<Pubkey> {
    let mut h = Sha256::new();
    for s in seeds {
        h.update(s);
    }
    h.update(program_id);
    h.update(b"ProgramDerivedAddress");
    let out: Pubkey = h.finalize().into();
    (!is_on_curve(&out)).then_some(out)
}

/// `find_program_address`: the first bump from 255 down that gives an
/// off-curve address.
pub fn find_program_address(seeds: &[&[u8]], program_id: &Pubkey) -> Option<(Pubkey, u8)> {
    for bump in (0..=255u8).rev() {
        let bump_seed = [bump];
        let mut all: Vec<&[u8]> = seeds.to_vec();
        all.push(&bump_seed);
        if let Some(addr) = create_program_address(&all, program_id) {
            return Some((addr, bump));
        }
    }
    None
}

/// The associated token account of `owner` for `mint` under `token_program`.
pub fn associated_token_address(owner: &Pubkey, token_program: &Pubkey, mint: &Pubkey) -> Pubkey {
    find_program_address(&[owner, token_program, mint], &ASSOCIATED_TOKEN_PROGRAM_ID)
        .map(|(a, _)| a)
        // Unreachable in practice (probability 2^-256); the all-zero key
        // then matches nothing.
        .unwrap_or([0; 32])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata;
    use x402_access_pass::solana::{decode_pubkey, Transaction, TOKEN_PROGRAM_ID};

    #[test]
    fn ata_of_the_merchant_is_the_vector_destination() {
        let v = testdata::vectors();
        let merchant = decode_pubkey(v["keys"]["merchant"].as_str().unwrap()).unwrap();
        let payer = decode_pubkey(v["keys"]["payer"].as_str().unwrap()).unwrap();
        let mint = decode_pubkey(testdata::DEVNET_USDC).unwrap();
        let wire = testdata::payment_wire();
        let tx = Transaction::decode(&wire).unwrap();
        let t = tx.transfer_checked()[0];
        assert_eq!(*t.destination, associated_token_address(&merchant, &TOKEN_PROGRAM_ID, &mint));
        assert_eq!(*t.source, associated_token_address(&payer, &TOKEN_PROGRAM_ID, &mint));
        assert!(!is_on_curve(t.destination));
        assert!(is_on_curve(&merchant));
    }
}
