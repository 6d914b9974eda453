//! Base58 (the Bitcoin alphabet: Solana addresses, signatures, Sign-In-With-X) of exactly `N`
//! bytes, decoded five characters at a time.
//!
//! A sign-in decodes a key and a 64-byte signature on every request (docs/behaviour.md §16). The
//! `bs58` crate multiplies its whole output by 58 once per character, byte by byte: ~35,000
//! native instructions for those two. Here five characters make one multiplication by 58⁵ over
//! 32-bit limbs (58⁵ < 2³²), about a tenth of the work. It accepts exactly what
//! `bs58::decode(text).onto(&mut [0; N]) == Ok(N)` accepts (the tests check it against `bs58`):
//! each leading `1` is a zero byte, the rest is the number in big-endian with no leading zero,
//! and the two together are `N` bytes.

const ALPHABET: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// The digit of each ASCII byte, or `NONE`.
const DIGITS: [u8; 128] = digits();
const NONE: u8 = 0xff;

// Evaluated at compile time: an index out of range would fail the build, never a request.
#[allow(clippy::indexing_slicing)]
const fn digits() -> [u8; 128] {
    let mut table = [NONE; 128];
    let mut i = 0;
    while i < ALPHABET.len() {
        table[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    table
}

/// 58^k for k = 0..=5.
const POWERS: [u64; 6] = [1, 58, 3_364, 195_112, 11_316_496, 656_356_768];

/// Enough 32-bit limbs for any `N` this crate decodes (64-byte signatures), and one more so that
/// a number of more than `N` bytes is seen as too long rather than wrapped.
const LIMBS: usize = 64 / 4 + 1;

/// The `N` bytes `text` encodes, or `None` when it is not base58 or not exactly `N` bytes.
pub fn decode<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    // Each character adds at most log2(58) < 6 bits, each leading '1' one byte: a longer text
    // cannot be N bytes. Also bounds the work.
    if N == 0 || N > 64 || text.len() > 2 * N {
        return None;
    }
    let zeros = text.iter().take_while(|&&c| c == b'1').count();
    let mut limbs = [0u32; LIMBS];
    let used = N.div_ceil(4) + 1;
    for chunk in text.get(zeros..)?.chunks(5) {
        let mut value = 0u64;
        for &c in chunk {
            let digit = *DIGITS.get(usize::from(c))?;
            if digit == NONE {
                return None;
            }
            value = value * 58 + u64::from(digit);
        }
        let mut carry = value;
        let scale = *POWERS.get(chunk.len())?;
        for limb in limbs.iter_mut().take(used) {
            let product = u64::from(*limb) * scale + carry;
            *limb = product as u32;
            carry = product >> 32;
        }
        if carry != 0 {
            return None;
        }
    }
    // The number's bytes, big-endian, without leading zeros, after `zeros` zero bytes.
    let mut number = [0u8; LIMBS * 4];
    for (bytes, limb) in number.rchunks_exact_mut(4).zip(limbs.iter()) {
        bytes.copy_from_slice(&limb.to_be_bytes());
    }
    let first = number.iter().position(|&b| b != 0).unwrap_or(number.len());
    let significant = number.get(first..)?;
    if zeros.checked_add(significant.len())? != N {
        return None;
    }
    let mut out = [0u8; N];
    out.get_mut(zeros..)?.copy_from_slice(significant);
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// What `bs58` answers for the same question.
    fn oracle<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
        let mut out = [0u8; N];
        match bs58::decode(text).onto(&mut out) {
            Ok(n) if n == N => Some(out),
            _ => None,
        }
    }

    fn same<const N: usize>(text: &[u8]) {
        assert_eq!(decode::<N>(text), oracle::<N>(text), "{:?}", String::from_utf8_lossy(text));
    }

    #[test]
    fn round_trips_keys_and_signatures() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..2_000 {
            let mut key = [0u8; 32];
            let mut signature = [0u8; 64];
            for b in key.iter_mut().chain(signature.iter_mut()) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                *b = (seed >> 24) as u8;
            }
            // Leading zero bytes too, which base58 writes as '1's.
            let zeros = (seed % 4) as usize;
            key[..zeros].fill(0);
            signature[..zeros].fill(0);
            assert_eq!(decode::<32>(bs58::encode(key).into_string().as_bytes()), Some(key));
            assert_eq!(decode::<64>(bs58::encode(signature).into_string().as_bytes()), Some(signature));
        }
    }

    #[test]
    fn answers_as_bs58_does_on_edge_cases() {
        let max32 = bs58::encode([0xff; 32]).into_string();
        let max64 = bs58::encode([0xff; 64]).into_string();
        let cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"1".to_vec(),
            vec![b'1'; 32],
            vec![b'1'; 33],
            vec![b'1'; 64],
            b"11111111111111111111111111111112".to_vec(),
            b"0OIl".to_vec(),
            b"abc def".to_vec(),
            "ÿ€".as_bytes().to_vec(),
            max32.as_bytes().to_vec(),
            format!("{max32}1").into_bytes(),
            format!("1{max32}").into_bytes(),
            max64.as_bytes().to_vec(),
            format!("z{max64}").into_bytes(),
            b"GRzLBcpDz3XkKQ1y2dmbezuXYRTUJ3vNueDNkma32unv".to_vec(),
            vec![b'z'; 44],
            vec![b'z'; 45],
            vec![b'z'; 88],
            vec![b'z'; 87],
        ];
        for text in &cases {
            same::<32>(text);
            same::<64>(text);
        }
    }

    #[test]
    fn answers_as_bs58_does_on_arbitrary_text() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for len in 0..130 {
            for _ in 0..40 {
                let text: Vec<u8> = (0..len)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        // Mostly the alphabet, sometimes '1' runs and bytes outside it.
                        match seed % 16 {
                            0 => b'1',
                            1 => (seed >> 8) as u8,
                            _ => ALPHABET[(seed >> 8) as usize % 58],
                        }
                    })
                    .collect();
                same::<32>(&text);
                same::<64>(&text);
            }
        }
    }
}
