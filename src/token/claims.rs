//! What a pass says: its claims, its fixed subject, and the size bound every token obeys.

use serde::{Deserialize, Serialize};

/// `sub` of every pass.
pub const SUBJECT: &str = "x402-access-pass";

/// Longest token [`verify`](super::verify()) accepts (and [`sign`](super::sign()) produces). Our passes are ~450 bytes.
pub const MAX_TOKEN_LEN: usize = 4096;

/// Claims of a pass, in the order the Express reference writes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassClaims {
    pub sub: String,
    pub tier: String,
    pub duration: u64,
    pub iat: u64,
    pub exp: u64,
    pub payer: String,
    pub network: String,
    pub iss: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}
