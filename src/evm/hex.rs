//! `0x`-prefixed hexadecimal text, as every EVM value on the x402 wire is written.

/// The value of one hex digit (either case), or `None`.
fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Exactly `N` bytes from `0x` followed by `2 * N` hex digits (either case); anything else is `None`.
pub fn decode_fixed<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digits = text.strip_prefix("0x")?.as_bytes();
    if digits.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let [high, low] = pair else { return None };
        *byte = (nibble(*high)? << 4) | nibble(*low)?;
    }
    Some(out)
}

/// `0x` and lower-case hex digits.
pub fn encode(bytes: &[u8]) -> String {
    let digit = |n: u8| char::from(if n < 10 { b'0' + n } else { b'a' + n - 10 });
    let mut out = String::with_capacity(2 + 2 * bytes.len());
    out.push_str("0x");
    for byte in bytes {
        out.push(digit(byte >> 4));
        out.push(digit(byte & 0x0f));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_either_case_and_refuses_wrong_lengths_and_prefixes() {
        assert_eq!(decode_fixed::<2>("0xABcd"), Some([0xab, 0xcd]));
        assert_eq!(decode_fixed::<2>("abcd"), None);
        assert_eq!(decode_fixed::<2>("0Xabcd"), None);
        assert_eq!(decode_fixed::<2>("0xabc"), None);
        assert_eq!(decode_fixed::<2>("0xabcdef"), None);
        assert_eq!(decode_fixed::<2>("0xabcg"), None);
        assert_eq!(decode_fixed::<1>("0x\u{e9}"), None);
    }

    #[test]
    fn encodes_lower_case_with_prefix() {
        assert_eq!(encode(&[0x00, 0xab, 0xff]), "0x00abff");
    }
}
