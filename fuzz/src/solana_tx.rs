//! `solana::Transaction::decode` on arbitrary bytes, then every method.
//!
//! The decoder is strict (the whole input, canonical compact-u16s, one
//! signature per required signer, no lookup tables), so a transaction it
//! accepts re-encodes to exactly the input bytes. Every account index it lets
//! through names an account key, and every `TransferChecked` it reports is a
//! Token / Token-2022 instruction with the 10-byte layout.

use sha2::{Digest, Sha256};
use x402_access_pass::solana::{
    self, decode_compact_u16, encode_compact_u16, Transaction, TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID,
    TRANSFER_CHECKED_TAG,
};

pub fn run(data: &[u8]) {
    // compact-u16: a decoded value re-encodes to the bytes it was read from.
    if let Ok((value, used)) = decode_compact_u16(data) {
        let mut out = Vec::new();
        encode_compact_u16(value, &mut out);
        assert_eq!(out.as_slice(), &data[..used], "compact-u16 {value} is not canonical");
    }

    let Ok(tx) = Transaction::decode(data) else { return };

    assert_eq!(encode(&tx), data, "a decoded transaction does not re-encode to its bytes");
    assert_eq!(tx.signatures.len(), usize::from(tx.num_required_signatures));
    assert!(tx.num_required_signatures >= 1 && tx.num_readonly_signed < tx.num_required_signatures);
    assert!(usize::from(tx.num_required_signatures) + usize::from(tx.num_readonly_unsigned) <= tx.account_keys.len());
    assert_eq!(tx.message_hash(), <[u8; 32]>::from(Sha256::digest(tx.message)));
    assert_eq!(tx.fee_payer(), tx.account_keys.first().copied());

    for ix in &tx.instructions {
        assert!(tx.program_id(ix).is_some(), "program index out of range");
        for n in 0..ix.accounts.len() {
            assert!(tx.instruction_account(ix, n).is_some(), "account index out of range");
        }
        assert!(tx.instruction_account(ix, ix.accounts.len()).is_none());
    }
    for t in tx.transfer_checked() {
        assert!(*t.program == TOKEN_PROGRAM_ID || *t.program == TOKEN_2022_PROGRAM_ID);
        let _ = solana::encode_base58(t.authority);
    }
    let transfers = tx
        .instructions
        .iter()
        .filter(|ix| {
            tx.program_id(ix).is_some_and(|p| *p == TOKEN_PROGRAM_ID || *p == TOKEN_2022_PROGRAM_ID)
                && ix.data.len() == 10
                && ix.data.first() == Some(&TRANSFER_CHECKED_TAG)
                && ix.accounts.len() >= 4
        })
        .count();
    assert_eq!(tx.transfer_checked().len(), transfers);

    // Signatures: only a few (an Ed25519 check is the costly part), and one past the end.
    let n = tx.signatures.len();
    for i in (0..n.min(3)).chain([n, n + 1, usize::MAX]) {
        let valid = tx.verify_signature(i);
        assert!(!(valid && i >= n), "signature {i} of {n} verified");
    }
    let _ = tx.account_key(u8::MAX);
}

/// The wire bytes of a decoded transaction (docs/behaviour.md §11 layout).
pub fn encode(tx: &Transaction) -> Vec<u8> {
    let mut out = Vec::with_capacity(tx.message.len() + 1 + 64 * tx.signatures.len());
    encode_compact_u16(len16(tx.signatures.len()), &mut out);
    for sig in tx.signatures {
        out.extend_from_slice(sig);
    }
    let start = out.len();
    if tx.versioned {
        out.push(0x80);
    }
    out.extend([tx.num_required_signatures, tx.num_readonly_signed, tx.num_readonly_unsigned]);
    encode_compact_u16(len16(tx.account_keys.len()), &mut out);
    for key in &tx.account_keys {
        out.extend_from_slice(&key[..]);
    }
    out.extend_from_slice(tx.recent_blockhash);
    encode_compact_u16(len16(tx.instructions.len()), &mut out);
    for ix in &tx.instructions {
        out.push(ix.program_id_index);
        encode_compact_u16(len16(ix.accounts.len()), &mut out);
        out.extend_from_slice(ix.accounts);
        encode_compact_u16(len16(ix.data.len()), &mut out);
        out.extend_from_slice(ix.data);
    }
    if tx.versioned {
        encode_compact_u16(0, &mut out);
    }
    assert_eq!(&out[start..], tx.message, "the message bytes are not the message");
    out
}

fn len16(n: usize) -> u16 {
    u16::try_from(n).expect("a decoded length fits a compact-u16")
}
