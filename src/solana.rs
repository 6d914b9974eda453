//! Solana transaction decoding and checks (docs/behaviour.md §11).
//!
//! A strict, allocation-light decoder of the wire format of legacy and v0
//! transactions, borrowing from the input. It never panics: every read is
//! bounds-checked. Address-table lookups are refused (a payment never needs
//! them, and without them every account index resolves to a key we can see).

use sha2::{Digest, Sha256};

/// SPL Token program.
pub const TOKEN_PROGRAM: &str = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA";
/// SPL Token-2022 program.
pub const TOKEN_2022_PROGRAM: &str = "TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb";
/// Compute Budget program.
pub const COMPUTE_BUDGET_PROGRAM: &str = "ComputeBudget111111111111111111111111111111";
/// SPL Memo program (v2).
pub const MEMO_PROGRAM: &str = "MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr";
/// SPL Associated Token Account program.
pub const ASSOCIATED_TOKEN_PROGRAM: &str = "ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL";

/// A 32-byte account address.
pub type Pubkey = [u8; 32];

/// [`TOKEN_PROGRAM`] as bytes.
pub const TOKEN_PROGRAM_ID: Pubkey = [
    6, 221, 246, 225, 215, 101, 161, 147, 217, 203, 225, 70, 206, 235, 121, 172, 28, 180, 133, 237, 95, 91, 55, 145,
    58, 140, 245, 133, 126, 255, 0, 169,
];
/// [`TOKEN_2022_PROGRAM`] as bytes.
pub const TOKEN_2022_PROGRAM_ID: Pubkey = [
    6, 221, 246, 225, 238, 117, 143, 222, 24, 66, 93, 188, 228, 108, 205, 218, 182, 26, 252, 77, 131, 185, 13, 39, 254,
    189, 249, 40, 216, 161, 139, 252,
];
/// [`COMPUTE_BUDGET_PROGRAM`] as bytes.
pub const COMPUTE_BUDGET_PROGRAM_ID: Pubkey = [
    3, 6, 70, 111, 229, 33, 23, 50, 255, 236, 173, 186, 114, 195, 155, 231, 188, 140, 229, 187, 197, 247, 18, 107, 44,
    67, 155, 58, 64, 0, 0, 0,
];
/// [`MEMO_PROGRAM`] as bytes.
pub const MEMO_PROGRAM_ID: Pubkey = [
    5, 74, 83, 90, 153, 41, 33, 6, 77, 36, 232, 113, 96, 218, 56, 124, 124, 53, 181, 221, 188, 146, 187, 129, 228, 31,
    168, 64, 65, 5, 68, 141,
];
/// [`ASSOCIATED_TOKEN_PROGRAM`] as bytes.
pub const ASSOCIATED_TOKEN_PROGRAM_ID: Pubkey = [
    140, 151, 37, 143, 78, 36, 137, 241, 187, 61, 16, 41, 20, 142, 13, 131, 11, 90, 19, 153, 218, 255, 16, 132, 4, 142,
    123, 216, 219, 233, 248, 89,
];

/// SPL Token instruction tag of `TransferChecked`.
pub const TRANSFER_CHECKED_TAG: u8 = 12;

/// Most signatures a transaction can carry: 19 × 64 bytes already fill the
/// 1232-byte packet limit of Solana.
const MAX_SIGNATURES: usize = 19;

/// Why a transaction did not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The input ends before the structure does.
    Truncated,
    /// Bytes are left after the message.
    TrailingBytes,
    /// A compact-u16 is over 3 bytes, overflows 16 bits or is not canonical.
    BadCompactU16,
    /// More signatures than a transaction can hold.
    TooManySignatures,
    /// The number of signatures differs from `numRequiredSignatures`.
    SignatureCountMismatch,
    /// Inconsistent message header (no signer, read-only fee payer, too few keys...).
    BadHeader,
    /// An instruction names an account index outside the account keys.
    BadAccountIndex,
    /// A versioned message of a version other than 0.
    UnsupportedVersion,
    /// A v0 message with address-table lookups (we accept only none).
    LookupTablesPresent,
}

/// One compiled instruction, borrowing from the wire bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instruction<'a> {
    pub program_id_index: u8,
    pub accounts: &'a [u8],
    pub data: &'a [u8],
}

/// A decoded transaction, borrowing from the wire bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction<'a> {
    /// Signatures, in account-key order (slot 0 is the fee payer's).
    pub signatures: &'a [[u8; 64]],
    /// The exact message bytes the signatures sign.
    pub message: &'a [u8],
    /// v0 message (`0x80` prefix); legacy otherwise.
    pub versioned: bool,
    pub num_required_signatures: u8,
    pub num_readonly_signed: u8,
    pub num_readonly_unsigned: u8,
    pub account_keys: Vec<&'a Pubkey>,
    pub recent_blockhash: &'a [u8; 32],
    pub instructions: Vec<Instruction<'a>>,
}

/// An SPL Token / Token-2022 `TransferChecked` instruction, resolved to keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferChecked<'a> {
    pub program: &'a Pubkey,
    pub source: &'a Pubkey,
    pub mint: &'a Pubkey,
    pub destination: &'a Pubkey,
    pub authority: &'a Pubkey,
    pub amount: u64,
    pub decimals: u8,
}

/// Bounds-checked cursor over the wire bytes.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::Truncated)?;
        let out = self.buf.get(self.pos..end).ok_or(DecodeError::Truncated)?;
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        let b = *self.buf.get(self.pos).ok_or(DecodeError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    fn array32(&mut self) -> Result<&'a [u8; 32], DecodeError> {
        <&[u8; 32]>::try_from(self.take(32)?).map_err(|_| DecodeError::Truncated)
    }

    fn compact_u16(&mut self) -> Result<u16, DecodeError> {
        let (value, used) = decode_compact_u16(self.buf.get(self.pos..).unwrap_or(&[]))?;
        self.pos += used;
        Ok(value)
    }

    fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }
}

/// Decodes a compact-u16 (Solana "shortvec") from the start of `bytes`:
/// 7 bits per byte, little-endian, high bit = more, at most 3 bytes. Refuses
/// values over `u16::MAX` and non-canonical encodings (a redundant trailing
/// zero byte). Returns the value and the number of bytes used.
pub fn decode_compact_u16(bytes: &[u8]) -> Result<(u16, usize), DecodeError> {
    let mut value: u32 = 0;
    for i in 0..3usize {
        let b = *bytes.get(i).ok_or(DecodeError::Truncated)?;
        if i > 0 && b == 0 {
            // A continuation into a zero byte: the shorter form was possible.
            return Err(DecodeError::BadCompactU16);
        }
        value |= u32::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return u16::try_from(value).map(|v| (v, i + 1)).map_err(|_| DecodeError::BadCompactU16);
        }
    }
    Err(DecodeError::BadCompactU16)
}

/// Encodes a compact-u16 (for building transactions, tests and tools).
pub fn encode_compact_u16(value: u16, out: &mut Vec<u8>) {
    let mut v = value;
    loop {
        let low = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(low);
            return;
        }
        out.push(low | 0x80);
    }
}

impl<'a> Transaction<'a> {
    /// Decodes a wire transaction strictly: the whole input must be consumed,
    /// the signature count must equal `numRequiredSignatures`, and every
    /// account index must name one of the account keys.
    pub fn decode(wire: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(wire);
        let num_sigs = usize::from(r.compact_u16()?);
        if num_sigs > MAX_SIGNATURES {
            return Err(DecodeError::TooManySignatures);
        }
        let sig_bytes = r.take(num_sigs * 64)?;
        let (signatures, rest) = sig_bytes.as_chunks::<64>();
        if !rest.is_empty() {
            return Err(DecodeError::Truncated);
        }
        let message = r.rest();

        let mut m = Reader::new(message);
        let first = m.u8()?;
        let (versioned, num_required_signatures) = if first & 0x80 != 0 {
            if first & 0x7f != 0 {
                return Err(DecodeError::UnsupportedVersion);
            }
            (true, m.u8()?)
        } else {
            (false, first)
        };
        let num_readonly_signed = m.u8()?;
        let num_readonly_unsigned = m.u8()?;

        let num_keys = usize::from(m.compact_u16()?);
        // Account indexes are u8: more than 256 keys cannot be addressed.
        if num_keys > 256 {
            return Err(DecodeError::BadHeader);
        }
        let key_bytes = m.take(num_keys * 32)?;
        let account_keys: Vec<&'a Pubkey> = key_bytes.as_chunks::<32>().0.iter().collect();
        let recent_blockhash = m.array32()?;

        let n_instructions = usize::from(m.compact_u16()?);
        // Each instruction takes at least 3 bytes: refuse absurd counts
        // before allocating for them.
        if n_instructions > m.rest().len() / 3 {
            return Err(DecodeError::Truncated);
        }
        let mut instructions = Vec::with_capacity(n_instructions);
        for _ in 0..n_instructions {
            let program_id_index = m.u8()?;
            let n_accounts = usize::from(m.compact_u16()?);
            let accounts = m.take(n_accounts)?;
            let data_len = usize::from(m.compact_u16()?);
            let data = m.take(data_len)?;
            instructions.push(Instruction { program_id_index, accounts, data });
        }

        if versioned {
            let lookups = m.compact_u16()?;
            if lookups != 0 {
                return Err(DecodeError::LookupTablesPresent);
            }
        }
        if !m.at_end() {
            return Err(DecodeError::TrailingBytes);
        }

        // Header consistency (as Solana's sanitize): at least the fee payer
        // signs, the fee payer is writable, the keys hold every signer and
        // every read-only unsigned account.
        let required = usize::from(num_required_signatures);
        if required == 0
            || num_readonly_signed >= num_required_signatures
            || required + usize::from(num_readonly_unsigned) > num_keys
        {
            return Err(DecodeError::BadHeader);
        }
        if signatures.len() != required {
            return Err(DecodeError::SignatureCountMismatch);
        }
        for ix in &instructions {
            if usize::from(ix.program_id_index) >= num_keys || ix.accounts.iter().any(|&a| usize::from(a) >= num_keys) {
                return Err(DecodeError::BadAccountIndex);
            }
        }

        Ok(Transaction {
            signatures,
            message,
            versioned,
            num_required_signatures,
            num_readonly_signed,
            num_readonly_unsigned,
            account_keys,
            recent_blockhash,
            instructions,
        })
    }

    /// The key at `index` in the account keys.
    pub fn account_key(&self, index: u8) -> Option<&'a Pubkey> {
        self.account_keys.get(usize::from(index)).copied()
    }

    /// The program an instruction calls.
    pub fn program_id(&self, ix: &Instruction) -> Option<&'a Pubkey> {
        self.account_key(ix.program_id_index)
    }

    /// The key of the `n`-th account of an instruction.
    pub fn instruction_account(&self, ix: &Instruction, n: usize) -> Option<&'a Pubkey> {
        self.account_key(*ix.accounts.get(n)?)
    }

    /// The fee payer (account key 0).
    pub fn fee_payer(&self) -> Option<&'a Pubkey> {
        self.account_key(0)
    }

    /// SHA-256 of the message bytes: the identity of a payment.
    pub fn message_hash(&self) -> [u8; 32] {
        Sha256::digest(self.message).into()
    }

    /// Whether signature `signer_index` is a valid Ed25519 signature of the
    /// message by `account_keys[signer_index]`. False for an index that is not
    /// a signer, and for an all-zero (absent) signature.
    pub fn verify_signature(&self, signer_index: usize) -> bool {
        let (Some(sig), Some(key)) = (self.signatures.get(signer_index), self.account_keys.get(signer_index)) else {
            return false;
        };
        crate::ed25519::verify(key, self.message, sig)
    }

    /// Every SPL Token / Token-2022 `TransferChecked` instruction
    /// (data `0x0c` + u64 LE amount + u8 decimals, exactly 10 bytes;
    /// accounts `[source, mint, destination, authority, ...]`).
    pub fn transfer_checked(&self) -> Vec<TransferChecked<'a>> {
        self.instructions.iter().filter_map(|ix| self.parse_transfer_checked(ix)).collect()
    }

    fn parse_transfer_checked(&self, ix: &Instruction<'a>) -> Option<TransferChecked<'a>> {
        let program = self.program_id(ix)?;
        if *program != TOKEN_PROGRAM_ID && *program != TOKEN_2022_PROGRAM_ID {
            return None;
        }
        if ix.data.len() != 10 || *ix.data.first()? != TRANSFER_CHECKED_TAG {
            return None;
        }
        let amount = u64::from_le_bytes(ix.data.get(1..9)?.try_into().ok()?);
        let decimals = *ix.data.get(9)?;
        Some(TransferChecked {
            program,
            source: self.instruction_account(ix, 0)?,
            mint: self.instruction_account(ix, 1)?,
            destination: self.instruction_account(ix, 2)?,
            authority: self.instruction_account(ix, 3)?,
            amount,
            decimals,
        })
    }
}

/// Decodes a base58 address; `None` unless it is exactly 32 bytes.
pub fn decode_pubkey(base58: &str) -> Option<Pubkey> {
    // Longest base58 of 32 bytes is 44 characters; refuse more before decoding.
    if base58.is_empty() || base58.len() > 44 {
        return None;
    }
    crate::base58::decode(base58.as_bytes())
}

/// Whether `base58` is a transaction id: the base58 of a 64-byte signature.
pub fn is_signature(base58: &str) -> bool {
    // Longest base58 of 64 bytes is 88 characters; refuse more before decoding.
    if base58.is_empty() || base58.len() > 88 {
        return false;
    }
    crate::base58::decode::<64>(base58.as_bytes()).is_some()
}

/// Base58 (Bitcoin alphabet) of `bytes`: addresses and transaction ids.
pub fn encode_base58(bytes: &[u8]) -> String {
    bs58::encode(bytes).into_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD as B64;
    use base64::Engine;

    fn vectors() -> serde_json::Value {
        serde_json::from_str(include_str!("../tests/vectors/x402-svm-exact.json")).unwrap()
    }

    fn payment_tx() -> Vec<u8> {
        let v = vectors();
        let b64 = v["decodedPaymentPayload"]["payload"]["transaction"].as_str().unwrap();
        B64.decode(b64).unwrap()
    }

    fn key(v: &serde_json::Value, name: &str) -> Pubkey {
        decode_pubkey(v["keys"][name].as_str().unwrap()).unwrap()
    }

    #[test]
    fn program_id_constants_match_their_base58() {
        for (s, b) in [
            (TOKEN_PROGRAM, TOKEN_PROGRAM_ID),
            (TOKEN_2022_PROGRAM, TOKEN_2022_PROGRAM_ID),
            (COMPUTE_BUDGET_PROGRAM, COMPUTE_BUDGET_PROGRAM_ID),
            (MEMO_PROGRAM, MEMO_PROGRAM_ID),
            (ASSOCIATED_TOKEN_PROGRAM, ASSOCIATED_TOKEN_PROGRAM_ID),
        ] {
            assert_eq!(decode_pubkey(s), Some(b), "{s}");
            assert_eq!(encode_base58(&b), s);
        }
    }

    #[test]
    fn decodes_the_official_payment() {
        let v = vectors();
        let wire = payment_tx();
        let tx = Transaction::decode(&wire).unwrap();
        assert_eq!(tx.signatures.len(), 2);
        assert!(tx.versioned);
        assert_eq!(tx.num_required_signatures, 2);
        assert_eq!(tx.num_readonly_signed, 1); // the buyer signs read-only
        assert_eq!(wire.len(), 1 + 2 * 64 + tx.message.len());
        assert_eq!(tx.message.first(), Some(&0x80));

        let fee_payer = key(&v, "feePayer");
        let payer = key(&v, "payer");
        let merchant = key(&v, "merchant");
        assert_eq!(*tx.account_keys[0], fee_payer);
        assert_eq!(*tx.account_keys[1], payer);
        assert_eq!(tx.fee_payer(), Some(&fee_payer));
        assert_eq!(
            encode_base58(tx.recent_blockhash),
            v["decodedPaymentPayload"]["accepted"]["extra"]["recentBlockhash"].as_str().unwrap()
        );

        // Fee-payer slot empty, buyer's signature valid.
        assert_eq!(tx.signatures[0], [0u8; 64]);
        assert!(!tx.verify_signature(0));
        assert!(tx.verify_signature(1));
        assert!(!tx.verify_signature(2));

        // Compute budget first, then the transfer, then the memo.
        let programs: Vec<Pubkey> = tx.instructions.iter().map(|ix| *tx.program_id(ix).unwrap()).collect();
        assert_eq!(programs[0], COMPUTE_BUDGET_PROGRAM_ID);
        assert_eq!(programs[1], COMPUTE_BUDGET_PROGRAM_ID);
        assert_eq!(tx.instructions[0].data[0], 2);
        assert_eq!(tx.instructions[1].data[0], 3);
        assert!(programs.contains(&TOKEN_PROGRAM_ID));
        let memo =
            tx.instructions.iter().find(|ix| tx.program_id(ix) == Some(&MEMO_PROGRAM_ID)).expect("memo instruction");
        assert!(!memo.data.is_empty());

        let transfers = tx.transfer_checked();
        assert_eq!(transfers.len(), 1);
        let t = transfers[0];
        assert_eq!(*t.program, TOKEN_PROGRAM_ID);
        assert_eq!(encode_base58(t.mint), "4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU");
        assert_eq!(t.amount, 1000);
        assert_eq!(t.decimals, 6);
        assert_eq!(*t.authority, payer);
        assert_ne!(*t.destination, merchant); // the merchant's ATA, not the wallet
        assert_ne!(*t.source, payer);

        assert_eq!(tx.message_hash(), <[u8; 32]>::from(Sha256::digest(&wire[1 + 128..])));
    }

    #[test]
    fn fully_signed_broadcast_verifies_both_signatures() {
        let v = vectors();
        let wire = B64.decode(v["fullySignedTxBroadcast"].as_str().unwrap()).unwrap();
        let tx = Transaction::decode(&wire).unwrap();
        assert!(tx.verify_signature(0));
        assert!(tx.verify_signature(1));
        assert_eq!(encode_base58(&tx.signatures[0]), v["settleResult"]["decoded"]["transaction"].as_str().unwrap());
        // Same message as the unsigned payment.
        let unsigned = payment_tx();
        assert_eq!(Transaction::decode(&unsigned).unwrap().message_hash(), tx.message_hash());
    }

    #[test]
    fn bad_signature_fails_verification() {
        let mut wire = payment_tx();
        wire[1 + 64 + 5] ^= 0xff;
        let tx = Transaction::decode(&wire).unwrap();
        assert!(!tx.verify_signature(1));
    }

    #[test]
    fn tampered_message_fails_verification() {
        let mut wire = payment_tx();
        let last = wire.len() - 3;
        wire[last] ^= 0x01; // inside the memo text
        let tx = Transaction::decode(&wire).unwrap();
        assert!(!tx.verify_signature(1));
    }

    #[test]
    fn garbage_does_not_decode() {
        let bytes = B64.decode("AAAA").unwrap();
        assert!(Transaction::decode(&bytes).is_err());
        assert!(Transaction::decode(&[]).is_err());
        assert_eq!(Transaction::decode(&[0xff; 5]), Err(DecodeError::BadCompactU16));
    }

    #[test]
    fn every_truncation_fails() {
        let wire = payment_tx();
        for len in 0..wire.len() {
            assert!(Transaction::decode(&wire[..len]).is_err(), "truncated at {len}");
        }
        let mut longer = wire.clone();
        longer.push(0);
        assert_eq!(Transaction::decode(&longer), Err(DecodeError::TrailingBytes));
    }

    #[test]
    fn random_mutations_never_panic() {
        let wire = payment_tx();
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mut w = wire.clone();
            let pos = (state as usize) % w.len();
            w[pos] = (state >> 32) as u8;
            if let Ok(tx) = Transaction::decode(&w) {
                let _ = tx.transfer_checked();
                let _ = tx.message_hash();
            }
        }
    }

    /// Offset of the lookup-table count: the last byte of the valid v0 payment.
    #[test]
    fn lookup_tables_are_refused() {
        let mut wire = payment_tx();
        assert_eq!(*wire.last().unwrap(), 0);
        // One table: key, 1 writable index, 0 readonly indexes.
        *wire.last_mut().unwrap() = 1;
        wire.extend_from_slice(&[7u8; 32]);
        wire.extend_from_slice(&[1, 0, 0]);
        assert_eq!(Transaction::decode(&wire), Err(DecodeError::LookupTablesPresent));
    }

    #[test]
    fn header_and_index_errors() {
        let wire = payment_tx();
        let msg = 1 + 128;
        // Unsupported version 1.
        let mut w = wire.clone();
        w[msg] = 0x81;
        assert_eq!(Transaction::decode(&w), Err(DecodeError::UnsupportedVersion));
        // Claims 3 required signatures while carrying 2.
        let mut w = wire.clone();
        w[msg + 1] = 3;
        assert_eq!(Transaction::decode(&w), Err(DecodeError::SignatureCountMismatch));
        // Read-only fee payer.
        let mut w = wire.clone();
        w[msg + 2] = 2;
        assert_eq!(Transaction::decode(&w), Err(DecodeError::BadHeader));
        // Program index out of range in the first instruction.
        let tx = Transaction::decode(&wire).unwrap();
        let n_keys = tx.account_keys.len();
        let ix_start = msg + 4 + 1 + n_keys * 32 + 32 + 1;
        assert_eq!(usize::from(wire[ix_start]), usize::from(tx.instructions[0].program_id_index));
        let mut w = wire.clone();
        w[ix_start] = n_keys as u8;
        assert_eq!(Transaction::decode(&w), Err(DecodeError::BadAccountIndex));
        // Too many signatures.
        assert_eq!(Transaction::decode(&[20]), Err(DecodeError::TooManySignatures));
    }

    #[test]
    fn compact_u16_edge_cases() {
        assert_eq!(decode_compact_u16(&[0x00]), Ok((0, 1)));
        assert_eq!(decode_compact_u16(&[0x7f]), Ok((0x7f, 1)));
        assert_eq!(decode_compact_u16(&[0x80, 0x01]), Ok((0x80, 2)));
        assert_eq!(decode_compact_u16(&[0xff, 0x7f]), Ok((0x3fff, 2)));
        assert_eq!(decode_compact_u16(&[0x80, 0x80, 0x01]), Ok((0x4000, 3)));
        assert_eq!(decode_compact_u16(&[0xff, 0xff, 0x03]), Ok((0xffff, 3)));
        assert_eq!(decode_compact_u16(&[0x05, 0xaa]), Ok((5, 1)));
        // Overflow past 16 bits.
        assert_eq!(decode_compact_u16(&[0xff, 0xff, 0x04]), Err(DecodeError::BadCompactU16));
        // Fourth byte would be needed.
        assert_eq!(decode_compact_u16(&[0x80, 0x80, 0x80, 0x01]), Err(DecodeError::BadCompactU16));
        // Non-canonical: redundant zero continuation.
        assert_eq!(decode_compact_u16(&[0x80, 0x00]), Err(DecodeError::BadCompactU16));
        assert_eq!(decode_compact_u16(&[0x81, 0x80, 0x00]), Err(DecodeError::BadCompactU16));
        // Truncated.
        assert_eq!(decode_compact_u16(&[]), Err(DecodeError::Truncated));
        assert_eq!(decode_compact_u16(&[0x80]), Err(DecodeError::Truncated));
        assert_eq!(decode_compact_u16(&[0xff, 0xff]), Err(DecodeError::Truncated));
        // Round trip.
        for v in [0u16, 1, 0x7f, 0x80, 0x3fff, 0x4000, 0xffff] {
            let mut out = Vec::new();
            encode_compact_u16(v, &mut out);
            assert_eq!(decode_compact_u16(&out), Ok((v, out.len())));
        }
    }

    #[test]
    fn pubkey_decoding() {
        assert!(decode_pubkey("11111111111111111111111111111111").is_some());
        assert_eq!(decode_pubkey("11111111111111111111111111111111"), Some([0; 32]));
        assert!(decode_pubkey("").is_none());
        assert!(decode_pubkey("0OIl").is_none());
        assert!(decode_pubkey("abc").is_none()); // too short
        assert!(decode_pubkey(&"z".repeat(45)).is_none());
        assert!(decode_pubkey(&"z".repeat(44)).is_none()); // > 32 bytes
    }
}
