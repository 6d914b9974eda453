//! The pass token (docs/behaviour.md §7): a compact JWS, signed with HS256 or EdDSA (Ed25519).
//!
//! One file per job:
//! * [`claims`]: what a pass says ([`PassClaims`], [`SUBJECT`], [`MAX_TOKEN_LEN`]).
//! * [`keys`]: [`KeyRing`] holds the configured keys, validated and pre-processed once at
//!   configuration time (jsonwebtoken `EncodingKey`/`DecodingKey`, the encoded JWS header of
//!   the signing key).
//! * [`sign`](mod@sign): [`sign()`] mints a pass byte-compatible with the Express reference
//!   (Node `jsonwebtoken`).
//! * [`verify`](mod@verify): [`verify()`] checks a presented pass against every rule of §7. It
//!   never panics, bounds every input, and checks the signature (jsonwebtoken with the backend
//!   of [`crate::jwt_crypto`]: constant-time HMAC comparison, Ed25519 via crate::ed25519)
//!   before it parses the claims.
//! * [`bearer`]: [`bearer_token`] finds the token in an `Authorization` value, on raw bytes.
//! * [`cache`]: [`PassCache`] / [`verify_cached`], a bounded per-worker cache of verified
//!   passes, so a repeat token costs a byte comparison with the cached copy instead of a
//!   signature check and JSON parsing, and still expires on time.
//!
//! The JWS backend ([`crate::jwt_crypto`]) knows nothing of passes; this module uses it,
//! never the other way round.

pub mod bearer;
pub mod cache;
pub mod claims;
pub mod keys;
pub mod sign;
pub mod verify;

#[cfg(test)]
mod testkit;

pub use crate::jwt_crypto::ED25519_PKCS8_PREFIX;
pub use bearer::bearer_token;
pub use cache::{verify_cached, PassCache};
pub use claims::{PassClaims, MAX_TOKEN_LEN, SUBJECT};
pub use keys::{KeyError, KeyMaterial, KeyProblem, KeyRing, KeySpec};
pub use sign::{sign, SignError};
pub use verify::{verify, Rejection, VerifyPolicy};
