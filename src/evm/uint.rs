//! `uint256` values, written on the x402 wire as decimal strings (`"1000"`).

/// A `uint256`, big-endian: the ABI word as it is hashed.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Default)]
pub struct U256(pub [u8; 32]);

impl U256 {
    /// The value of `n`.
    pub fn from_u64(n: u64) -> Self {
        let mut word = [0u8; 32];
        if let Some(tail) = word.get_mut(24..) {
            tail.copy_from_slice(&n.to_be_bytes());
        }
        Self(word)
    }

    /// Digits only, no sign, no spaces, at least one digit, below 2^256 (what `BigInt(text)`
    /// turns into a valid `uint256`); anything else is `None`. Leading zeros are allowed.
    pub fn parse_decimal(text: &str) -> Option<Self> {
        // 2^256 has 78 digits; allow leading zeros up to a sane bound.
        if text.is_empty() || text.len() > 96 {
            return None;
        }
        let mut word = [0u8; 32];
        for c in text.bytes() {
            if !c.is_ascii_digit() {
                return None;
            }
            let mut carry = u16::from(c - b'0');
            for byte in word.iter_mut().rev() {
                let v = u16::from(*byte) * 10 + carry;
                *byte = (v & 0xff) as u8;
                carry = v >> 8;
            }
            if carry != 0 {
                return None;
            }
        }
        Some(Self(word))
    }

    /// The value when it fits in a `u64`.
    pub fn to_u64(&self) -> Option<u64> {
        let (high, low) = self.0.split_at(24);
        if high.iter().any(|b| *b != 0) {
            return None;
        }
        let low: [u8; 8] = low.try_into().ok()?;
        Some(u64::from_be_bytes(low))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decimal_strings_into_big_endian_words() {
        assert_eq!(U256::parse_decimal("1000"), Some(U256::from_u64(1000)));
        assert_eq!(U256::parse_decimal("0"), Some(U256::default()));
        assert_eq!(U256::parse_decimal("007"), Some(U256::from_u64(7)));
        let max = "115792089237316195423570985008687907853269984665640564039457584007913129639935";
        assert_eq!(U256::parse_decimal(max), Some(U256([0xff; 32])));
        assert_eq!(U256::parse_decimal(max).unwrap().to_u64(), None);
        assert_eq!(U256::parse_decimal("18446744073709551615").unwrap().to_u64(), Some(u64::MAX));
    }

    #[test]
    fn refuses_what_bigint_would_not_make_a_uint256_of() {
        let over = "115792089237316195423570985008687907853269984665640564039457584007913129639936";
        for bad in ["", "-1", "+1", " 1", "1 ", "0x10", "1e3", "1.0", over] {
            assert_eq!(U256::parse_decimal(bad), None, "{bad}");
        }
    }

    #[test]
    fn orders_as_numbers() {
        assert!(U256::from_u64(999) < U256::from_u64(1000));
        assert!(U256::from_u64(u64::MAX) < U256::parse_decimal("18446744073709551616").unwrap());
    }
}
