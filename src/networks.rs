//! The networks a seller is paid on (docs/behaviour.md §2, §21): the one-network top-level form
//! (`payTo`, `network`, `asset`) or the list `networks: [{network, payTo, asset?}, ...]`, each
//! validated here once, each mistake said in one line naming its field.
//!
//! Solana networks (`solana:…`) are paid by a transfer in a transaction the facilitator co-signs;
//! EVM networks (`eip155:<chain id>`) by an EIP-3009 authorization signed with EIP-712 under the
//! token's domain, whose `name`/`version` the 402 gives in `extra` (as `@x402/evm` 2.27.0 does).

use serde_json::Value;

use crate::config::{Asset, ConfigError, DEVNET, MAINNET};
use crate::evm::address::{Address, Case};
use crate::evm::eip712::{self, Domain};
use crate::solana::{self, Pubkey};

/// USDC on Solana mainnet and devnet, known without an `asset`.
pub const MAINNET_USDC: &str = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v";
pub const DEVNET_USDC: &str = "4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU";
pub const BASE: &str = "eip155:8453";
pub const BASE_SEPOLIA: &str = "eip155:84532";

/// USDC on the EVM networks known without an `asset`: `@x402/evm` 2.27.0's default assets
/// (address, EIP-712 `name`, `version`; 6 decimals).
const EVM_USDC: [(&str, &str, &str, &str); 2] = [
    (BASE, "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913", "USD Coin", "2"),
    (BASE_SEPOLIA, "0x036CbD53842c5426634e7929541eC2318f3dCF7e", "USDC", "2"),
];

/// How a network is paid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rail {
    /// A `TransferChecked` of `mint` to `pay_to` (its owner) in a Solana transaction.
    Solana { pay_to: Pubkey, mint: Pubkey },
    /// An EIP-3009 `transferWithAuthorization` of `token` to `pay_to`.
    Evm(EvmToken),
}

/// An EVM token and the seller's address on its chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvmToken {
    pub chain_id: u64,
    pub pay_to: Address,
    pub token: Address,
    /// The token's EIP-712 domain `name` and `version` (`extra.name`, `extra.version`).
    pub name: String,
    pub version: String,
}

impl EvmToken {
    /// The EIP-712 domain a buyer signs under on this network.
    pub fn domain(&self) -> Domain<'_> {
        Domain { name: &self.name, version: &self.version, chain_id: self.chain_id, verifying_contract: self.token }
    }
}

/// One network the seller is paid on: one `accepts` entry of every 402.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    /// The CAIP-2 id.
    pub network: String,
    /// The seller's address as configured (and as the 402 says it).
    pub pay_to: String,
    pub asset: Asset,
    pub rail: Rail,
}

impl Network {
    pub fn is_evm(&self) -> bool {
        matches!(self.rail, Rail::Evm(_))
    }
}

/// The networks of a configuration: `networks` if set, else the top-level one-network form
/// (`network` defaulting to Solana mainnet). Giving both is a mistake. At most one Solana
/// network (its facilitator fee payer is the one `/supported` is read for), no network twice.
pub fn parse(
    networks: Option<&Value>,
    pay_to: Option<&Value>,
    network: Option<&Value>,
    asset: Option<&Value>,
) -> Result<Vec<Network>, ConfigError> {
    let list = match networks {
        None | Some(Value::Null) => {
            let network = match network {
                None | Some(Value::Null) => MAINNET.to_owned(),
                Some(Value::String(s)) => s.clone(),
                Some(_) => return Err(ConfigError::new("network", "must be a string")),
            };
            return Ok(vec![parse_one("", pay_to, &network, asset)?]);
        }
        Some(Value::Array(list)) => list,
        Some(_) => return Err(ConfigError::new("networks", "must be a list of {network, payTo, asset?}")),
    };
    for (field, given) in [("payTo", pay_to), ("network", network), ("asset", asset)] {
        if given.is_some_and(|v| !v.is_null()) {
            return Err(ConfigError::new(field, "give either networks or the top-level payTo/network/asset, not both"));
        }
    }
    if list.is_empty() {
        return Err(ConfigError::new("networks", "must list at least one network"));
    }
    let mut parsed: Vec<Network> = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let prefix = format!("networks[{i}].");
        let obj = item
            .as_object()
            .ok_or_else(|| ConfigError::new(format!("networks[{i}]"), "must be an object {network, payTo, asset?}"))?;
        if let Some(key) = obj.keys().find(|k| !matches!(k.as_str(), "network" | "payTo" | "asset")) {
            return Err(ConfigError::new(format!("{prefix}{key}"), "unknown field"));
        }
        let network = match obj.get("network") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(ConfigError::new(format!("{prefix}network"), "is required (a CAIP-2 network id)")),
        };
        let network = parse_one(&prefix, obj.get("payTo"), &network, obj.get("asset"))?;
        if parsed.iter().any(|n| n.network == network.network) {
            return Err(ConfigError::new(format!("{prefix}network"), "is listed twice"));
        }
        if !network.is_evm() && parsed.iter().any(|n| !n.is_evm()) {
            return Err(ConfigError::new(
                format!("{prefix}network"),
                "only one Solana network per configuration (its facilitator fee payer is read once)",
            ));
        }
        parsed.push(network);
    }
    Ok(parsed)
}

/// One network; `prefix` is `""` for the top-level form, `networks[i].` in the list.
fn parse_one(
    prefix: &str,
    pay_to: Option<&Value>,
    network: &str,
    asset: Option<&Value>,
) -> Result<Network, ConfigError> {
    let field = |name: &str| format!("{prefix}{name}");
    let pay_to = match pay_to {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(ConfigError::new(field("payTo"), "is required"))
        }
        Some(_) => return Err(ConfigError::new(field("payTo"), "must be a string")),
    };
    if pay_to == crate::known_keys::PAY_TO_PLACEHOLDER {
        return Err(ConfigError::new(
            field("payTo"),
            "is the reference configuration's placeholder: set it to your own wallet address (it receives the payments)",
        ));
    }
    let asset = match asset {
        None | Some(Value::Null) => None,
        Some(Value::Object(obj)) => Some(obj),
        Some(_) => return Err(ConfigError::new(field("asset"), "must be an object {address, decimals}")),
    };
    if network.starts_with("eip155:") {
        return parse_evm(prefix, pay_to, network, asset);
    }
    let pay_to_key = solana::decode_pubkey(&pay_to)
        .ok_or_else(|| ConfigError::new(field("payTo"), "must be a base58 Solana address of 32 bytes"))?;
    if let (true, true) = (crate::known_keys::is_mainnet(network), crate::known_keys::is_test_address(&pay_to_key)) {
        return Err(ConfigError::new(
            field("payTo"),
            format!("is a well-known test key whose private key is public: on {network} anyone could take the payments; use your own wallet"),
        ));
    }
    let (address, decimals) = match asset {
        None => match network {
            MAINNET => (MAINNET_USDC.to_owned(), 6),
            DEVNET => (DEVNET_USDC.to_owned(), 6),
            _ => {
                return Err(ConfigError::new(
                    field("asset"),
                    format!("is required for network {network:?} (USDC is known only for Solana mainnet and devnet, Base and Base Sepolia)"),
                ))
            }
        },
        Some(obj) => {
            only_members(prefix, obj, &["address", "decimals"])?;
            (asset_address(prefix, obj)?, asset_decimals(prefix, obj)?)
        }
    };
    let mint = solana::decode_pubkey(&address)
        .ok_or_else(|| ConfigError::new(field("asset.address"), "must be a base58 Solana address of 32 bytes"))?;
    Ok(Network {
        network: network.to_owned(),
        pay_to,
        asset: Asset { address, key: mint, decimals },
        rail: Rail::Solana { pay_to: pay_to_key, mint },
    })
}

fn parse_evm(
    prefix: &str,
    pay_to: String,
    network: &str,
    asset: Option<&serde_json::Map<String, Value>>,
) -> Result<Network, ConfigError> {
    let field = |name: &str| format!("{prefix}{name}");
    let chain_id = eip712::chain_id(network)
        .ok_or_else(|| ConfigError::new(field("network"), "an EVM network is eip155:<decimal chain id>"))?;
    let evm_pay_to = Address::parse(&pay_to, Case::Strict).ok_or_else(|| {
        ConfigError::new(
            field("payTo"),
            "must be a 0x address of 20 bytes, all lower-case or with a valid EIP-55 checksum",
        )
    })?;
    let (address, decimals, name, version) = match asset {
        None => match EVM_USDC.iter().find(|(known, ..)| *known == network) {
            Some((_, address, name, version)) => ((*address).to_owned(), 6, (*name).to_owned(), (*version).to_owned()),
            None => {
                return Err(ConfigError::new(
                    field("asset"),
                    format!("is required for network {network:?} with its EIP-712 name and version: {{address, decimals, name, version}} (USDC is known only on Base and Base Sepolia)"),
                ))
            }
        },
        Some(obj) => {
            only_members(prefix, obj, &["address", "decimals", "name", "version"])?;
            let text = |key: &str| match obj.get(key) {
                Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
                _ => Err(ConfigError::new(
                    field(&format!("asset.{key}")),
                    "is required on an EVM network (the token's EIP-712 domain name and version)",
                )),
            };
            (asset_address(prefix, obj)?, asset_decimals(prefix, obj)?, text("name")?, text("version")?)
        }
    };
    let token = Address::parse(&address, Case::Strict).ok_or_else(|| {
        ConfigError::new(
            field("asset.address"),
            "must be a 0x address of 20 bytes, all lower-case or with a valid EIP-55 checksum",
        )
    })?;
    Ok(Network {
        network: network.to_owned(),
        pay_to,
        asset: Asset { address, key: Pubkey::default(), decimals },
        rail: Rail::Evm(EvmToken { chain_id, pay_to: evm_pay_to, token, name, version }),
    })
}

fn only_members(prefix: &str, obj: &serde_json::Map<String, Value>, known: &[&str]) -> Result<(), ConfigError> {
    match obj.keys().find(|k| !known.contains(&k.as_str())) {
        Some(key) => Err(ConfigError::new(format!("{prefix}asset.{key}"), "unknown field")),
        None => Ok(()),
    }
}

fn asset_address(prefix: &str, obj: &serde_json::Map<String, Value>) -> Result<String, ConfigError> {
    match obj.get("address") {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            Err(ConfigError::new(format!("{prefix}asset.address"), "is required"))
        }
        Some(_) => Err(ConfigError::new(format!("{prefix}asset.address"), "must be a string")),
    }
}

fn asset_decimals(prefix: &str, obj: &serde_json::Map<String, Value>) -> Result<u8, ConfigError> {
    obj.get("decimals")
        .and_then(Value::as_u64)
        .and_then(|d| u8::try_from(d).ok())
        .filter(|d| *d <= 18)
        .ok_or_else(|| ConfigError::new(format!("{prefix}asset.decimals"), "must be an integer from 0 to 18"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::config::{Config, ConfigError, DEVNET};

    const SOLANA_PAY_TO: &str = "GyGKxMyg1p9SsHfm15MkNUu1u9TN2JtTspcdmrtGUdse";
    /// EIP-55 of the address of private key 0x03…03 (tests/vectors/evm).
    const EVM_PAY_TO: &str = "0x3325a78425F17a7E487Eb5666b2bFd93aBb06c70";

    fn parse(mut json: serde_json::Value) -> Result<Config, ConfigError> {
        json["tiers"] = json!({"5m": "0.001", "1h": "0.50"});
        json["secret"] = json!("networks-test-secret-0123456789abcdef0123");
        Config::parse(json.to_string().as_bytes(), &|_| None)
    }

    fn error_of(json: serde_json::Value) -> (String, String) {
        let e = parse(json).err().expect("a configuration error");
        (e.field, e.problem)
    }

    #[test]
    fn two_networks_are_one_accepts_entry_each_in_order_with_their_own_extra() {
        let c = parse(json!({"networks": [
            {"network": DEVNET, "payTo": SOLANA_PAY_TO},
            {"network": "eip155:84532", "payTo": EVM_PAY_TO},
        ]}))
        .unwrap();
        assert_eq!((c.network.as_str(), c.pay_to.as_str()), (DEVNET, SOLANA_PAY_TO));
        let offer = crate::offer::default_offer(&c).unwrap();
        let challenge = crate::challenge::Challenge::new(&c, &offer, "http://api.test/a".into(), "FeePayer");
        let accepts = serde_json::to_value(&challenge.accepts).unwrap();
        assert_eq!(
            accepts,
            json!([
                {"scheme": "exact", "network": DEVNET, "amount": "1000", "maxAmountRequired": "1000",
                 "asset": "4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU", "payTo": SOLANA_PAY_TO,
                 "maxTimeoutSeconds": 60, "extra": {"feePayer": "FeePayer", "decimals": 6}},
                {"scheme": "exact", "network": "eip155:84532", "amount": "1000", "maxAmountRequired": "1000",
                 "asset": "0x036CbD53842c5426634e7929541eC2318f3dCF7e", "payTo": EVM_PAY_TO,
                 "maxTimeoutSeconds": 60, "extra": {"name": "USDC", "version": "2"}},
            ])
        );
        // The v1 body names the networks by their v1 names.
        let body: serde_json::Value = serde_json::from_slice(&challenge.response(&c, false).body).unwrap();
        assert_eq!(body["accepts"][0]["network"], "solana-devnet");
        assert_eq!(body["accepts"][1]["network"], "base-sepolia");
        assert_eq!(body["accepts"][1]["extra"], json!({"name": "USDC", "version": "2"}));
        // The browser paywall names both, in order.
        let html = String::from_utf8(challenge.response(&c, true).body).unwrap();
        let solana = format!("<code>{DEVNET}</code>, paid to <code>{SOLANA_PAY_TO}</code>");
        let base = format!("<code>eip155:84532</code>, paid to <code>{EVM_PAY_TO}</code>");
        assert!(html.contains(&format!("USDC on {solana} or {base}.")), "{html}");
    }

    #[test]
    fn base_mainnet_usdc_is_usd_coin_version_2_and_an_evm_only_seller_needs_no_fee_payer() {
        let c = parse(json!({"networks": [{"network": "eip155:8453", "payTo": EVM_PAY_TO.to_lowercase()}]})).unwrap();
        let token = match &c.networks[0].rail {
            super::Rail::Evm(token) => token.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!((token.chain_id, token.name.as_str(), token.version.as_str()), (8453, "USD Coin", "2"));
        assert_eq!(c.networks[0].asset.address, "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913");
        assert_eq!(c.fee_payer.as_deref(), Some(""), "nothing asks /supported for a fee payer");
        // The one-network top-level form takes an EVM network too.
        let c = parse(json!({"network": "eip155:84532", "payTo": EVM_PAY_TO})).unwrap();
        assert!(c.networks[0].is_evm());
    }

    #[test]
    fn each_network_mistake_is_one_line_naming_its_field() {
        let said = |f: &str, p: &str| (f.to_owned(), p.to_owned());
        let bad_checksum = EVM_PAY_TO.replace('F', "f").replacen('a', "A", 1);
        for (json, expected) in [
            (
                json!({"networks": [{"network": "eip155:84532", "payTo": bad_checksum}]}),
                said("networks[0].payTo", "must be a 0x address of 20 bytes, all lower-case or with a valid EIP-55 checksum"),
            ),
            (
                json!({"networks": [{"network": "eip155:84532", "payTo": "0x1234"}]}),
                said("networks[0].payTo", "must be a 0x address of 20 bytes, all lower-case or with a valid EIP-55 checksum"),
            ),
            (
                json!({"networks": [{"network": "eip155:84532", "payTo": SOLANA_PAY_TO}]}),
                said("networks[0].payTo", "must be a 0x address of 20 bytes, all lower-case or with a valid EIP-55 checksum"),
            ),
            (
                json!({"networks": [{"network": DEVNET, "payTo": EVM_PAY_TO}]}),
                said("networks[0].payTo", "must be a base58 Solana address of 32 bytes"),
            ),
            (
                json!({"networks": [{"network": DEVNET, "payTo": SOLANA_PAY_TO}, {"network": "eip155:10", "payTo": EVM_PAY_TO}]}),
                said("networks[1].asset", "is required for network \"eip155:10\" with its EIP-712 name and version: {address, decimals, name, version} (USDC is known only on Base and Base Sepolia)"),
            ),
            (
                json!({"networks": [{"network": "eip155:10", "payTo": EVM_PAY_TO,
                    "asset": {"address": "0x0b2C639c533813f4Aa9D7837CAf62653d097Ff85", "decimals": 6}}]}),
                said("networks[0].asset.name", "is required on an EVM network (the token's EIP-712 domain name and version)"),
            ),
            (
                json!({"networks": [{"network": "eip155:10", "payTo": EVM_PAY_TO,
                    "asset": {"address": "0x0b2C639c533813f4Aa9D7837CAf62653d097Ff85", "decimals": 6, "name": "USD Coin"}}]}),
                said("networks[0].asset.version", "is required on an EVM network (the token's EIP-712 domain name and version)"),
            ),
            (
                json!({"networks": [{"network": "eip155:0x1", "payTo": EVM_PAY_TO}]}),
                said("networks[0].network", "an EVM network is eip155:<decimal chain id>"),
            ),
            (
                json!({"networks": [{"network": "eip155:84532", "payTo": EVM_PAY_TO}, {"network": "eip155:84532", "payTo": EVM_PAY_TO}]}),
                said("networks[1].network", "is listed twice"),
            ),
            (
                json!({"networks": [{"network": DEVNET, "payTo": SOLANA_PAY_TO}, {"network": "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp", "payTo": "GRzLBcpDz3XkKQ1y2dmbezuXYRTUJ3vNueDNkma32unv"}]}),
                said("networks[1].network", "only one Solana network per configuration (its facilitator fee payer is read once)"),
            ),
            (
                json!({"networks": [{"network": "eip155:84532", "payTo": EVM_PAY_TO, "fee": 1}]}),
                said("networks[0].fee", "unknown field"),
            ),
            (json!({"networks": []}), said("networks", "must list at least one network")),
            (json!({"networks": {}}), said("networks", "must be a list of {network, payTo, asset?}")),
            (
                json!({"networks": [{"payTo": EVM_PAY_TO}]}),
                said("networks[0].network", "is required (a CAIP-2 network id)"),
            ),
            (json!({"networks": [{"network": "eip155:84532"}]}), said("networks[0].payTo", "is required")),
            (
                json!({"payTo": SOLANA_PAY_TO, "networks": [{"network": "eip155:84532", "payTo": EVM_PAY_TO}]}),
                said("payTo", "give either networks or the top-level payTo/network/asset, not both"),
            ),
            (
                json!({"networks": [{"network": DEVNET, "payTo": SOLANA_PAY_TO}, {"network": "eip155:84532", "payTo": EVM_PAY_TO,
                    "asset": {"address": "0x036CbD53842c5426634e7929541eC2318f3dCF7e", "decimals": 2, "name": "USDC", "version": "2"}}]}),
                said("networks[1].asset.decimals", "too few for the price \"0.001\": has more than 2 fractional digits"),
            ),
        ] {
            let got = error_of(json.clone());
            assert_eq!(got, expected, "{json}");
        }
    }

    #[test]
    fn a_well_known_test_key_is_refused_on_base_mainnet_and_allowed_on_base_sepolia() {
        let with_secret = |network: &str| {
            json!({"networks": [{"network": network, "payTo": EVM_PAY_TO}],
                   "tiers": {"5m": "0.001"}, "secret": "integration-test-secret-0123456789abcdef"})
        };
        let parse_raw = |json: serde_json::Value| Config::parse(json.to_string().as_bytes(), &|_| None);
        assert!(parse_raw(with_secret("eip155:84532")).is_ok());
        assert_eq!(parse_raw(with_secret("eip155:8453")).err().unwrap().field, "secret");
    }
}
