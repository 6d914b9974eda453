//! Sign-In-With-X for Solana and EVM networks (docs/behaviour.md §16, §21): a buyer who paid once comes back without
//! paying by signing a CAIP-122 message with the wallet that paid, as the official
//! `@x402/extensions/sign-in-with-x` client does.
//!
//! One job per file: `settings` (the `siwx` configuration and the seller's origins), `declare`
//! (the `sign-in-with-x` member of a 402's `extensions`), `header` (the `SIGN-IN-WITH-X` header,
//! read as bytes), `message` (the exact text the wallet signed), `validate` (domain, uri and
//! times, bound to the configured origins), `verify` (the chain and the Ed25519 signature),
//! `signers` (the decoded keys of wallets that signed in lately) and
//! `time` (ISO-8601 instants). [`check`] runs them in the package's order; any failure is one
//! [`Reason`], and the request then carries nothing (the challenge or the payment follows).

pub mod declare;
pub mod header;
pub mod message;
pub mod settings;
pub mod signers;
pub mod time;
pub mod validate;
pub mod verify;

pub use header::Payload;
pub use settings::{Origin, Settings};
pub use signers::SignerKeys;

/// The request header, as Envoy names it (lower case).
pub const HEADER: &str = "sign-in-with-x";

/// Why a `SIGN-IN-WITH-X` was not honoured: the `<reason>` of `siwx_rejected.<reason>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Not base64 of a JSON payload of the package's shape, too long, or with a control character.
    Malformed,
    /// `domain` is not the host of a configured origin.
    Domain,
    /// `uri` is not on that same configured origin.
    Uri,
    /// `issuedAt` unreadable, older than `maxAgeSeconds`, or in the future.
    IssuedAt,
    /// `expirationTime` unreadable or past.
    Expired,
    /// `notBefore` unreadable or still ahead.
    NotBefore,
    /// `chainId` is not the configured network.
    Chain,
    /// The signature or the address is not base58 of the right length, the key has a small
    /// order, or the signature does not verify over the message.
    Signature,
    /// A valid signature from a wallet that holds no entitlement.
    NoEntitlement,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Malformed => "malformed",
            Reason::Domain => "domain",
            Reason::Uri => "uri",
            Reason::IssuedAt => "issued_at",
            Reason::Expired => "expired",
            Reason::NotBefore => "not_before",
            Reason::Chain => "chain",
            Reason::Signature => "signature",
            Reason::NoEntitlement => "no_entitlement",
        }
    }
}

/// Reads, validates and verifies one `SIGN-IN-WITH-X` header value at `now_ms`; the address of
/// the wallet that signed it (lower-case hex on an EVM network, docs/behaviour.md §21), or why
/// not. `networks` are the configured networks, `leeway_seconds` the clock skew allowed
/// (`leewaySeconds`), `signers` the worker's decoded keys (`signers`).
pub fn check(
    settings: &Settings,
    networks: &[crate::networks::Network],
    signers: &mut SignerKeys,
    leeway_seconds: u64,
    raw: &[u8],
    now_ms: u64,
) -> Result<String, Reason> {
    let payload = header::parse(raw).ok_or(Reason::Malformed)?;
    validate::validate(settings, leeway_seconds, &payload, now_ms)?;
    verify::verify(networks, signers, &payload)
}

#[cfg(test)]
mod tests;
