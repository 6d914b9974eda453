//! The EIP-712 hash a buyer signs for an EIP-3009 `TransferWithAuthorization`.
//!
//! Domain `{name, version, chainId, verifyingContract}`: `name`/`version` from the accepts
//! entry's `extra`, `chainId` from the `eip155:<id>` network, `verifyingContract` = the token.
//! Digest = keccak256(0x19 0x01 || domainSeparator || hashStruct(message)).

use super::address::Address;
use super::keccak::keccak256;
use super::uint::U256;

const DOMAIN_TYPE: &[u8] = b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)";
const TRANSFER_TYPE: &[u8] = b"TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)";

/// The token's EIP-712 domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Domain<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub chain_id: u64,
    pub verifying_contract: Address,
}

impl Domain<'_> {
    /// `hashStruct(EIP712Domain)`.
    pub fn separator(&self) -> [u8; 32] {
        keccak256(&[
            &keccak256(&[DOMAIN_TYPE]),
            &keccak256(&[self.name.as_bytes()]),
            &keccak256(&[self.version.as_bytes()]),
            &U256::from_u64(self.chain_id).0,
            &self.verifying_contract.word(),
        ])
    }
}

/// The EIP-3009 authorization, as signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransferWithAuthorization {
    pub from: Address,
    pub to: Address,
    pub value: U256,
    pub valid_after: U256,
    pub valid_before: U256,
    pub nonce: [u8; 32],
}

impl TransferWithAuthorization {
    /// `hashStruct(TransferWithAuthorization)`.
    pub fn struct_hash(&self) -> [u8; 32] {
        keccak256(&[
            &keccak256(&[TRANSFER_TYPE]),
            &self.from.word(),
            &self.to.word(),
            &self.value.0,
            &self.valid_after.0,
            &self.valid_before.0,
            &self.nonce,
        ])
    }

    /// The digest the buyer's key signs under `domain`.
    pub fn signing_hash(&self, domain: &Domain<'_>) -> [u8; 32] {
        keccak256(&[b"\x19\x01", &domain.separator(), &self.struct_hash()])
    }
}

/// The chain id of a CAIP-2 `eip155:<decimal>` network (as `getEvmChainId`: digits only).
pub fn chain_id(network: &str) -> Option<u64> {
    let digits = network.strip_prefix("eip155:")?;
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evm::hex;

    #[test]
    fn type_hash_is_the_eip_3009_constant() {
        // TRANSFER_WITH_AUTHORIZATION_TYPEHASH as published in the EIP and the USDC contract.
        assert_eq!(
            hex::encode(&keccak256(&[TRANSFER_TYPE])),
            "0x7c7c6cdb67a18743f49ec6fa9b35f50d52ed05cbed4cc592e13b44501c1a2267"
        );
    }

    #[test]
    fn chain_ids_of_caip2_networks() {
        assert_eq!(chain_id("eip155:8453"), Some(8453));
        assert_eq!(chain_id("eip155:84532"), Some(84532));
        for bad in [
            "eip155:",
            "eip155:-1",
            "eip155:0x2105",
            "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp",
            "eip155:99999999999999999999999",
        ] {
            assert_eq!(chain_id(bad), None, "{bad}");
        }
    }
}
