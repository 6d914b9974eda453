//! The local checks of an EVM `exact` payment before any callout (docs/behaviour.md §21), and
//! its replay key.
//!
//! `to` is the seller's `payTo`, `value` is the price, `validAfter <= now < validBefore`, and the
//! signature over the EIP-712 hash, under the domain the seller advertised (its network's chain
//! id, its token, the token's `name`/`version`), recovers `from`. A payment that passes is one
//! the buyer really signed, for this seller, amount, chain and token.

use sha2::{Digest, Sha256};

use super::address::Address;
use super::eip712::Domain;
use super::payload::ExactEvmPayload;
use super::signature::SignatureError;
use super::uint::U256;

/// What the seller asks for: its accepts entry for the pass being bought.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Terms<'a> {
    /// The token's EIP-712 domain: `extra.name`, `extra.version`, the network's chain id, the asset.
    pub domain: Domain<'a>,
    pub pay_to: Address,
    /// The price in the token's atomic units.
    pub amount: u64,
}

/// Why a payment fails the local checks. `facilitator_reason` names the official
/// facilitator's reason for the same fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckError {
    RecipientMismatch,
    AmountMismatch,
    /// `validAfter` is after now.
    NotYetValid,
    /// `validBefore` is now or earlier.
    Expired,
    /// The signature recovers no key.
    Signature(SignatureError),
    /// The signature recovers another address than `from` (another signer, or other terms signed).
    SignerMismatch,
}

impl CheckError {
    /// The `@x402/evm` 2.27.0 facilitator's `invalidReason` for this fault.
    pub fn facilitator_reason(self) -> &'static str {
        match self {
            CheckError::RecipientMismatch => "invalid_exact_evm_recipient_mismatch",
            CheckError::AmountMismatch => "invalid_exact_evm_payload_authorization_value_mismatch",
            CheckError::NotYetValid => "invalid_exact_evm_payload_authorization_valid_after",
            CheckError::Expired => "invalid_exact_evm_payload_authorization_valid_before",
            CheckError::Signature(_) | CheckError::SignerMismatch => "invalid_exact_evm_signature",
        }
    }
}

/// A payment that passed the local checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckedEvmPayment {
    /// The buyer (`from`, proven by the signature).
    pub payer: Address,
    /// The EIP-712 hash the buyer signed.
    pub signing_hash: [u8; 32],
    /// See [`replay_key`].
    pub replay_key: [u8; 32],
}

/// Checks `payment` against `terms` at unix time `now` (seconds).
pub fn check(payment: &ExactEvmPayload, terms: &Terms<'_>, now: u64) -> Result<CheckedEvmPayment, CheckError> {
    let authorization = &payment.authorization;
    if authorization.to != terms.pay_to {
        return Err(CheckError::RecipientMismatch);
    }
    if authorization.value != U256::from_u64(terms.amount) {
        return Err(CheckError::AmountMismatch);
    }
    let now = U256::from_u64(now);
    if authorization.valid_after > now {
        return Err(CheckError::NotYetValid);
    }
    if authorization.valid_before <= now {
        return Err(CheckError::Expired);
    }
    let signing_hash = authorization.signing_hash(&terms.domain);
    let signer = payment.signature.recover(&signing_hash).map_err(CheckError::Signature)?;
    if signer != authorization.from {
        return Err(CheckError::SignerMismatch);
    }
    Ok(CheckedEvmPayment {
        payer: authorization.from,
        signing_hash,
        replay_key: replay_key(&authorization.from, &authorization.nonce),
    })
}

/// The key of an EVM purchase (docs/behaviour.md §6.5, §21): SHA-256 of `from || nonce`. The
/// token contract refuses a second use of an authorization nonce by the same `from`, so this
/// pair names one payment however its JSON is written, whatever else a replay changes.
pub fn replay_key(from: &Address, nonce: &[u8; 32]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"x402-evm-exact\0");
    hasher.update(from.0);
    hasher.update(nonce);
    hasher.finalize().into()
}
