//! keccak-256 (the Ethereum hash: the original Keccak padding, not FIPS-202 SHA3-256).

use sha3::{Digest, Keccak256};

/// keccak-256 of the concatenation of `parts`.
pub fn keccak256(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Keccak256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_keccak_not_sha3() {
        // keccak256("") as every Ethereum tool prints it (SHA3-256("") starts a7ffc6f8).
        assert_eq!(
            crate::evm::hex::encode(&keccak256(&[])),
            "0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        );
        assert_eq!(keccak256(&[b"ab", b"c"]), keccak256(&[b"abc"]));
    }
}
