//! The signature backend jsonwebtoken uses for passes: HS256 (RustCrypto `hmac` + `sha2`)
//! and EdDSA ([`crate::ed25519`] signs, and verifies as it checks Solana signatures).
//!
//! Why not jsonwebtoken's `rust_crypto` feature: its provider builds a signer or verifier for
//! every JWS algorithm from one table, so RSA, P-256, P-384 and their big-integer arithmetic
//! (~400 KB of wasm) and a second Ed25519 implementation (ed25519-dalek) are linked into a
//! module that every Envoy worker compiles and keeps in memory, although a pass is only ever
//! HS256 or EdDSA. jsonwebtoken's own [`CryptoProvider`] hook lets us give it just those two;
//! everything else about the token (encoding, keys, constant-time comparison) stays as the
//! crate does it.
//!
//! [`install`] is called before any key is used (by `KeyRing::new`, at configuration time);
//! it is idempotent.

use hmac::{Hmac, Mac};
use jsonwebtoken::crypto::{CryptoProvider, JwkUtils, JwtSigner, JwtVerifier};
use jsonwebtoken::errors::{Error, ErrorKind};
use jsonwebtoken::signature::{self, Signer, Verifier};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// PKCS#8 v1 DER prefix of an Ed25519 private key; the 32-byte seed follows. `EncodingKey`s for
/// EdDSA hold this layout (`crate::token` builds them, `EdDsaSigner` reads them back).
pub const ED25519_PKCS8_PREFIX: [u8; 16] =
    [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];

/// HS256 and EdDSA only; any other algorithm is refused as unsupported. Passes never carry
/// JWKs, so the JWK helpers stay unimplemented.
static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: new_signer,
    verifier_factory: new_verifier,
    jwk_utils: JwkUtils::new_unimplemented(),
};

/// Makes [`PROVIDER`] jsonwebtoken's process-wide provider. A second call (or a provider
/// installed first by someone else in the same process, e.g. a test harness) is not an
/// error: whichever is installed implements HS256 and EdDSA the same way.
pub fn install() {
    // Err only says a provider is already installed.
    let _ = PROVIDER.install_default();
}

fn new_signer(alg: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>, Error> {
    match alg {
        Algorithm::HS256 => Ok(Box::new(Hs256(hmac_key(key.try_get_hmac_secret()?)?))),
        Algorithm::EdDSA => Ok(Box::new(EdDsaSigner::from_pkcs8(key.inner())?)),
        _ => Err(ErrorKind::InvalidAlgorithm.into()),
    }
}

fn new_verifier(alg: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>, Error> {
    match alg {
        Algorithm::HS256 => Ok(Box::new(Hs256(hmac_key(key.try_get_hmac_secret()?)?))),
        Algorithm::EdDSA => Ok(Box::new(EdDsaVerifier::from_raw(key.as_bytes())?)),
        _ => Err(ErrorKind::InvalidAlgorithm.into()),
    }
}

fn hmac_key(secret: &[u8]) -> Result<HmacSha256, Error> {
    HmacSha256::new_from_slice(secret).map_err(|_| ErrorKind::InvalidKeyFormat.into())
}

/// HMAC-SHA256 keyed with the secret; signs and verifies.
struct Hs256(HmacSha256);

impl Signer<Vec<u8>> for Hs256 {
    fn try_sign(&self, msg: &[u8]) -> Result<Vec<u8>, signature::Error> {
        let mut mac = self.0.clone();
        mac.update(msg);
        Ok(mac.finalize().into_bytes().to_vec())
    }
}

impl JwtSigner for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

impl Verifier<Vec<u8>> for Hs256 {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> Result<(), signature::Error> {
        let mut mac = self.0.clone();
        mac.update(msg);
        // Constant-time comparison of the whole tag (a truncated tag is refused).
        mac.verify_slice(signature).map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

/// Ed25519 private key from the ring's PKCS#8 v1 DER (prefix + 32-byte seed).
struct EdDsaSigner(crate::ed25519::SigningKey);

impl EdDsaSigner {
    fn from_pkcs8(der: &[u8]) -> Result<Self, Error> {
        let seed = der
            .strip_prefix(&ED25519_PKCS8_PREFIX[..])
            .and_then(|seed| <[u8; 32]>::try_from(seed).ok())
            .ok_or(ErrorKind::InvalidEddsaKey)?;
        crate::ed25519::SigningKey::from_seed(&seed).map(Self).ok_or_else(|| ErrorKind::InvalidEddsaKey.into())
    }
}

impl Signer<Vec<u8>> for EdDsaSigner {
    fn try_sign(&self, msg: &[u8]) -> Result<Vec<u8>, signature::Error> {
        // No noise: deterministic RFC 8032 signatures, as every other Ed25519 signer.
        Ok(self.0.sign(msg).to_vec())
    }
}

impl JwtSigner for EdDsaSigner {
    fn algorithm(&self) -> Algorithm {
        Algorithm::EdDSA
    }
}

/// Ed25519 public key, the raw 32 bytes (what `DecodingKey::from_ed_der` holds for us).
struct EdDsaVerifier([u8; 32]);

impl EdDsaVerifier {
    fn from_raw(bytes: &[u8]) -> Result<Self, Error> {
        <[u8; 32]>::try_from(bytes).map(Self).map_err(|_| ErrorKind::InvalidEddsaKey.into())
    }
}

impl Verifier<Vec<u8>> for EdDsaVerifier {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> Result<(), signature::Error> {
        let signature = <[u8; 64]>::try_from(signature.as_slice()).map_err(|_| signature::Error::new())?;
        if crate::ed25519::verify(&self.0, msg, &signature) {
            Ok(())
        } else {
            Err(signature::Error::new())
        }
    }
}

impl JwtVerifier for EdDsaVerifier {
    fn algorithm(&self) -> Algorithm {
        Algorithm::EdDSA
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn unhex(text: &str) -> Vec<u8> {
        (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn hs256_matches_rfc4231_test_case_2() {
        install();
        let key = EncodingKey::from_secret(b"Jefe");
        let tag = jsonwebtoken::crypto::sign(b"what do ya want for nothing?", &key, Algorithm::HS256).unwrap();
        assert_eq!(
            hex(&URL_SAFE_NO_PAD.decode(tag).unwrap()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn hs256_verifies_rfc7515_appendix_a1() {
        // The HS256 example JWS of RFC 7515 A.1, with its JWK secret.
        install();
        let secret = URL_SAFE_NO_PAD
            .decode("AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow")
            .unwrap();
        let signing_input = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
        let signature = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let key = DecodingKey::from_secret(&secret);
        assert!(jsonwebtoken::crypto::verify(signature, signing_input.as_bytes(), &key, Algorithm::HS256).unwrap());
        // The same claims with "iss":"eve" instead of "iss":"joe".
        let tampered = signing_input.replace("eyJpc3MiOiJqb2Ui", "eyJpc3MiOiJldmUi");
        assert_ne!(tampered, signing_input);
        assert!(!jsonwebtoken::crypto::verify(signature, tampered.as_bytes(), &key, Algorithm::HS256).unwrap());
        // A truncated tag (its first 16 bytes) is not a prefix match.
        let truncated = URL_SAFE_NO_PAD.encode(&URL_SAFE_NO_PAD.decode(signature).unwrap()[..16]);
        assert!(!jsonwebtoken::crypto::verify(&truncated, signing_input.as_bytes(), &key, Algorithm::HS256).unwrap());
    }

    #[test]
    fn eddsa_matches_rfc8032_test_1() {
        install();
        let seed = unhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
        let public = unhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
        let expected = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";
        let mut der = ED25519_PKCS8_PREFIX.to_vec();
        der.extend_from_slice(&seed);
        let signature = jsonwebtoken::crypto::sign(b"", &EncodingKey::from_ed_der(&der), Algorithm::EdDSA).unwrap();
        assert_eq!(hex(&URL_SAFE_NO_PAD.decode(&signature).unwrap()), expected);
        let key = DecodingKey::from_ed_der(&public);
        assert!(jsonwebtoken::crypto::verify(&signature, b"", &key, Algorithm::EdDSA).unwrap());
        assert!(!jsonwebtoken::crypto::verify(&signature, b"x", &key, Algorithm::EdDSA).unwrap());
    }

    #[test]
    fn other_algorithms_and_malformed_keys_are_refused() {
        install();
        let secret = EncodingKey::from_secret(&[7u8; 32]);
        assert!(jsonwebtoken::crypto::sign(b"m", &secret, Algorithm::HS512).is_err());
        assert!(jsonwebtoken::crypto::sign(b"m", &secret, Algorithm::RS256).is_err());
        // An EdDSA key that is not our PKCS#8 layout, and a public key of the wrong length.
        assert!(jsonwebtoken::crypto::sign(b"m", &EncodingKey::from_ed_der(&[1u8; 48]), Algorithm::EdDSA).is_err());
        let short = DecodingKey::from_ed_der(&[1u8; 31]);
        assert!(jsonwebtoken::crypto::verify("AAAA", b"m", &short, Algorithm::EdDSA).is_err());
    }
}
