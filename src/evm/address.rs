//! 20-byte EVM addresses and their EIP-55 mixed-case checksum.

use super::hex;
use super::keccak::keccak256;

/// An EVM account or contract address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address(pub [u8; 20]);

/// How strictly the letters of an address are judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    /// All lower-case, or mixed case that is a valid EIP-55 checksum: what viem's
    /// `isAddress` (strict) accepts, and so what the official facilitator hashes and verifies.
    Strict,
    /// Also all upper-case: what the SIWE message parser accepts as "unchecksummed".
    AllowUpper,
}

impl Address {
    /// `0x` + 40 hex digits whose case is acceptable under `case`; anything else is `None`.
    pub fn parse(text: &str, case: Case) -> Option<Self> {
        let address = Self(hex::decode_fixed::<20>(text)?);
        let digits = text.get(2..)?;
        let lower = !digits.bytes().any(|c| c.is_ascii_uppercase());
        let upper = !digits.bytes().any(|c| c.is_ascii_lowercase());
        let accepted = lower || (upper && case == Case::AllowUpper) || address.to_checksum().get(2..) == Some(digits);
        accepted.then_some(address)
    }

    /// The EIP-55 form: a letter is upper-case when the matching nibble of keccak-256 of the
    /// lower-case hex digits is 8 or more.
    pub fn to_checksum(&self) -> String {
        let lower = hex::encode(&self.0);
        let digits = lower.get(2..).unwrap_or_default();
        let hash = keccak256(&[digits.as_bytes()]);
        let mut out = String::with_capacity(42);
        out.push_str("0x");
        for (i, c) in digits.chars().enumerate() {
            let byte = hash.get(i / 2).copied().unwrap_or_default();
            let nib = if i % 2 == 0 { byte >> 4 } else { byte & 0x0f };
            out.push(if nib >= 8 { c.to_ascii_uppercase() } else { c });
        }
        out
    }

    /// The 32-byte ABI word: 12 zero bytes, then the address.
    pub fn word(&self) -> [u8; 32] {
        let mut word = [0u8; 32];
        if let Some(tail) = word.get_mut(12..) {
            tail.copy_from_slice(&self.0);
        }
        word
    }
}

impl core::fmt::Debug for Address {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.to_checksum())
    }
}

impl core::fmt::Display for Address {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.to_checksum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USDC_BASE: &str = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913";

    #[test]
    fn checksum_matches_the_published_usdc_addresses() {
        for published in [USDC_BASE, "0x036CbD53842c5426634e7929541eC2318f3dCF7e"] {
            let address = Address::parse(published, Case::Strict).unwrap();
            assert_eq!(address.to_checksum(), published);
        }
    }

    #[test]
    fn lower_case_is_accepted_and_a_wrong_checksum_is_not() {
        let lower = USDC_BASE.to_ascii_lowercase();
        assert_eq!(Address::parse(&lower, Case::Strict).unwrap().to_checksum(), USDC_BASE);
        // One letter's case flipped: a typo the checksum exists to catch.
        let typo = USDC_BASE.replacen("fCD6", "fcD6", 1);
        assert_eq!(Address::parse(&typo, Case::Strict), None);
        assert_eq!(Address::parse(&typo, Case::AllowUpper), None);
    }

    #[test]
    fn all_upper_case_only_where_the_siwe_parser_takes_it() {
        let upper = format!("0x{}", USDC_BASE[2..].to_ascii_uppercase());
        assert_eq!(Address::parse(&upper, Case::Strict), None);
        assert_eq!(Address::parse(&upper, Case::AllowUpper).unwrap().to_checksum(), USDC_BASE);
    }

    #[test]
    fn refuses_what_is_not_an_address() {
        for bad in [
            "",
            "0x",
            "833589fcd6edb6e08f4c7c32d4f71b54bda02913",
            "0x833589fcd6",
            "0X833589fcd6edb6e08f4c7c32d4f71b54bda02913",
        ] {
            assert_eq!(Address::parse(bad, Case::AllowUpper), None, "{bad}");
        }
    }

    #[test]
    fn word_is_left_padded() {
        let address = Address::parse(USDC_BASE, Case::Strict).unwrap();
        let word = address.word();
        assert_eq!(word[..12], [0u8; 12]);
        assert_eq!(word[12..], address.0);
    }
}
