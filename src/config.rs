//! Plugin configuration (docs/behaviour.md §2): parsed and validated once, in `on_configure`,
//! then shared read-only by every request of the worker.
//!
//! Every field is read from a `serde_json::Value` by hand so that each problem
//! is reported as ONE line naming the field, e.g.
//! `tiers.90s: invalid tier id (expected a number then m, h, d or w)`.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;

use crate::catalogue;
pub use crate::catalogue::{Rate, Tier};
use crate::known_keys;
use crate::networks::{self, Network, Rail};
use crate::pricing::{self, PriceError};
use crate::solana::{self, Pubkey};
use crate::token::{KeyError, KeyMaterial, KeyRing, KeySpec, VerifyPolicy};

pub const MAINNET: &str = "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp";
pub const DEVNET: &str = "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1";
#[cfg(test)]
use crate::networks::{DEVNET_USDC, MAINNET_USDC};
pub const DEFAULT_ISSUER: &str = "x402-access-pass";
const DEFAULT_FACILITATOR_URL: &str = "https://x402.dexter.cash";
const DEFAULT_FACILITATOR_CLUSTER: &str = "x402_facilitator";
/// The longest pass a configuration may sell: ten years. Beyond it, prices and
/// expiry times stop fitting their integers (found by fuzzing), and no seller
/// means it.
pub const MAX_PASS_SECONDS: u64 = 10 * 365 * 86_400;

/// A configuration problem: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub problem: String,
}

impl ConfigError {
    pub(crate) fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError { field: field.into(), problem: problem.into() }
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid x402-access-pass configuration: {}: {}", self.field, self.problem)
    }
}

type Result<T> = std::result::Result<T, ConfigError>;

/// The token paid in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asset {
    pub address: String,
    pub key: Pubkey,
    pub decimals: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathRule {
    Prefix(String),
    Exact(String),
}

impl PathRule {
    fn matches(&self, path: &[u8]) -> bool {
        match self {
            PathRule::Prefix(prefix) => path.starts_with(prefix.as_bytes()),
            PathRule::Exact(exact) => path == exact.as_bytes(),
        }
    }
}

/// Where the facilitator callouts go.
#[derive(Debug, Clone)]
pub struct Facilitator {
    pub scheme: String,
    pub authority: String,
    /// Path prefix without a trailing slash (`""` for the root).
    pub path_prefix: String,
    pub cluster: String,
    pub timeout_ms: u64,
    pub headers: Vec<(String, String)>,
}

/// A pass claim that can be copied into a request header for the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    Tier,
    Payer,
    Expires,
    IssuedAt,
    Duration,
    Network,
    Issuer,
    Subject,
}

impl Claim {
    fn parse(name: &str) -> Option<Claim> {
        Some(match name {
            "tier" => Claim::Tier,
            "payer" => Claim::Payer,
            "exp" => Claim::Expires,
            "iat" => Claim::IssuedAt,
            "duration" => Claim::Duration,
            "network" => Claim::Network,
            "iss" => Claim::Issuer,
            "sub" => Claim::Subject,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    Any,
    List(Vec<String>),
}

/// The validated configuration.
pub struct Config {
    /// The Solana network's `payTo`, CAIP-2 id and asset (the first network's when all are EVM);
    /// `pay_to_key` and `asset.key` are its Solana keys (zero on an EVM network).
    pub pay_to: String,
    pub pay_to_key: Pubkey,
    pub network: String,
    pub asset: Asset,
    /// Every network the seller is paid on, in the order of the 402's `accepts` (docs/behaviour.md §21).
    pub networks: Vec<Network>,
    /// Sorted by duration, shortest first: `tiers[0]` is the default pass.
    pub tiers: Vec<Tier>,
    pub rate_per_hour: Option<Rate>,
    pub min_duration_seconds: u64,
    pub max_duration_seconds: u64,
    pub facilitator: Facilitator,
    pub fee_payer: Option<String>,
    pub keys: KeyRing,
    pub verify_policy: VerifyPolicy,
    pub issuer: String,
    pub audience: Option<String>,
    pub description: Option<String>,
    pub protect: Vec<PathRule>,
    pub bypass: Vec<PathRule>,
    pub forward_authorization: bool,
    pub claim_headers: Vec<(String, Claim)>,
    pub allowed_origins: AllowedOrigins,
    pub replay_window_seconds: u64,
    /// How long a purchase works out an unknown settlement inside the buyer's request,
    /// counted from the first `/settle` (docs/behaviour.md §17.1).
    pub settle_deadline_ms: u64,
    /// A payment that selects no pass buys the default one and the request is forwarded upstream
    /// (docs/behaviour.md §15); `false`: every payment is a purchase answered by the filter.
    pub pay_and_serve: bool,
    /// The largest `Content-Length` a paid request may carry: its body is held while the
    /// callouts run, within Envoy's buffer (docs/behaviour.md §15).
    pub max_paid_body_bytes: u64,
    /// `X-ACCESS-PASS-TIERS` value, built once (it is the same for every request).
    pub access_pass_tiers_header: String,
    /// Sign-In-With-X (docs/behaviour.md §16): `None` when `siwx.origins` is not set.
    pub siwx: Option<crate::siwx::Settings>,
    /// Where purchases, entitlements and payment ids live (docs/behaviour.md §19).
    pub ledger: crate::ledger::settings::LedgerKind,
}

/// The top-level settings, each still a raw JSON value: every field is validated by hand
/// below so that each problem names its field.
#[derive(Default)]
struct RawConfig {
    pay_to: Option<Value>,
    network: Option<Value>,
    asset: Option<Value>,
    networks: Option<Value>,
    tiers: Option<Value>,
    rate_per_hour: Option<Value>,
    min_duration_seconds: Option<Value>,
    max_duration_seconds: Option<Value>,
    facilitator_url: Option<Value>,
    facilitator_cluster: Option<Value>,
    facilitator_timeout_ms: Option<Value>,
    facilitator_headers: Option<Value>,
    fee_payer: Option<Value>,
    secret: Option<Value>,
    secret_env: Option<Value>,
    keys: Option<Value>,
    issuer: Option<Value>,
    audience: Option<Value>,
    leeway_seconds: Option<Value>,
    description: Option<Value>,
    protect: Option<Value>,
    bypass: Option<Value>,
    forward_authorization: Option<Value>,
    claim_headers: Option<Value>,
    cors: Option<Value>,
    replay_window_seconds: Option<Value>,
    settle_deadline_ms: Option<Value>,
    pay_and_serve: Option<Value>,
    max_paid_body_bytes: Option<Value>,
    siwx: Option<Value>,
    ledger: Option<Value>,
}

impl RawConfig {
    /// Reads the document's members into their slots. Walked by hand rather than with a
    /// derived `Deserialize`: the derive of a 25-field struct costs ~15 KB of wasm, and every
    /// error it gave (unknown field, duplicate field, not an object) is said here as well.
    fn from_json(json: &[u8]) -> Result<RawConfig> {
        let members: Members = serde_json::from_slice(json)
            .map_err(|e| ConfigError::new("(document)", format!("not a JSON object of settings: {e}")))?;
        let mut raw = RawConfig::default();
        for (name, value) in members.0 {
            let slot = match name.as_str() {
                "payTo" => &mut raw.pay_to,
                "network" => &mut raw.network,
                "asset" => &mut raw.asset,
                "networks" => &mut raw.networks,
                "tiers" => &mut raw.tiers,
                "ratePerHour" => &mut raw.rate_per_hour,
                "minDurationSeconds" => &mut raw.min_duration_seconds,
                "maxDurationSeconds" => &mut raw.max_duration_seconds,
                "facilitatorUrl" => &mut raw.facilitator_url,
                "facilitatorCluster" => &mut raw.facilitator_cluster,
                "facilitatorTimeoutMs" => &mut raw.facilitator_timeout_ms,
                "facilitatorHeaders" => &mut raw.facilitator_headers,
                "feePayer" => &mut raw.fee_payer,
                "secret" => &mut raw.secret,
                "secretEnv" => &mut raw.secret_env,
                "keys" => &mut raw.keys,
                "issuer" => &mut raw.issuer,
                "audience" => &mut raw.audience,
                "leewaySeconds" => &mut raw.leeway_seconds,
                "description" => &mut raw.description,
                "protect" => &mut raw.protect,
                "bypass" => &mut raw.bypass,
                "forwardAuthorization" => &mut raw.forward_authorization,
                "claimHeaders" => &mut raw.claim_headers,
                "cors" => &mut raw.cors,
                "replayWindowSeconds" => &mut raw.replay_window_seconds,
                "settleDeadlineMs" => &mut raw.settle_deadline_ms,
                "payAndServe" => &mut raw.pay_and_serve,
                "maxPaidBodyBytes" => &mut raw.max_paid_body_bytes,
                "siwx" => &mut raw.siwx,
                "ledger" => &mut raw.ledger,
                _ => return Err(ConfigError::new(&name, "unknown field")),
            };
            if slot.replace(value).is_some() {
                return Err(ConfigError::new(&name, "duplicate field"));
            }
        }
        Ok(raw)
    }
}

/// The members of a JSON object in document order, duplicates kept (a `Map` would silently
/// keep the last).
struct Members(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Members;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> std::result::Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, Value>()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(Visit)
    }
}

impl Config {
    /// Parses and validates the plugin configuration. `env` reads the VM's
    /// environment (for `secretEnv`, `privateKeyEnv` and `${NAME}` header values).
    pub fn parse(json: &[u8], env: &dyn Fn(&str) -> Option<String>) -> Result<Config> {
        let raw = RawConfig::from_json(json)?;

        let networks =
            networks::parse(raw.networks.as_ref(), raw.pay_to.as_ref(), raw.network.as_ref(), raw.asset.as_ref())?;
        // The top-level fields name the Solana network (the one whose fee payer `/supported` gives),
        // else the first network.
        let main = networks
            .iter()
            .find(|n| !n.is_evm())
            .or(networks.first())
            .ok_or_else(|| ConfigError::new("networks", "must list at least one network"))?;
        let (pay_to, network, asset) = (main.pay_to.clone(), main.network.clone(), main.asset.clone());
        let pay_to_key = match &main.rail {
            Rail::Solana { pay_to, .. } => *pay_to,
            Rail::Evm(_) => Pubkey::default(),
        };
        let solana = !main.is_evm();
        // Test keys are fine on test networks (the demo and the tests use them) and never on a mainnet.
        let mainnet = networks.iter().map(|n| n.network.as_str()).find(|n| known_keys::is_mainnet(n));

        let tiers = parse_tiers(&raw.tiers, asset.decimals)?;
        let rate_per_hour = match optional_string(&raw.rate_per_hour, "ratePerHour")? {
            Some(price) => {
                let atomic =
                    pricing::parse_price(&price, asset.decimals).map_err(|e| price_error("ratePerHour", &e))?;
                Some(Rate { price, atomic })
            }
            None => None,
        };
        if tiers.is_empty() && rate_per_hour.is_none() {
            return Err(ConfigError::new(
                "tiers",
                "configure at least one tier or ratePerHour: there is nothing to sell",
            ));
        }
        for (i, net) in networks.iter().enumerate().filter(|(_, n)| n.asset.decimals != asset.decimals) {
            let prices = tiers.iter().map(|t| t.price.as_str()).chain(rate_per_hour.iter().map(|r| r.price.as_str()));
            for price in prices {
                pricing::parse_price(price, net.asset.decimals).map_err(|e| {
                    ConfigError::new(
                        format!("networks[{i}].asset.decimals"),
                        format!("too few for the price {price:?}: {e}"),
                    )
                })?;
            }
        }
        let min_duration_seconds = optional_u64(&raw.min_duration_seconds, "minDurationSeconds")?.unwrap_or(60);
        let max_duration_seconds = optional_u64(&raw.max_duration_seconds, "maxDurationSeconds")?.unwrap_or(2_592_000);
        if min_duration_seconds == 0 {
            return Err(ConfigError::new("minDurationSeconds", "must be at least 1"));
        }
        if max_duration_seconds < min_duration_seconds {
            return Err(ConfigError::new("maxDurationSeconds", "must not be below minDurationSeconds"));
        }
        if max_duration_seconds > MAX_PASS_SECONDS {
            return Err(ConfigError::new(
                "maxDurationSeconds",
                format!("must be at most {MAX_PASS_SECONDS} (ten years)"),
            ));
        }
        if let (true, Some(rate)) = (tiers.is_empty(), &rate_per_hour) {
            if pricing::duration_price(rate.atomic, 3_600, asset.decimals).is_none() {
                return Err(ConfigError::new("ratePerHour", "one hour at this rate rounds to zero"));
            }
        }

        let facilitator = parse_facilitator(&raw, env)?;
        let fee_payer = match optional_string(&raw.fee_payer, "feePayer")? {
            Some(fp) if solana::decode_pubkey(&fp).is_none() => {
                return Err(ConfigError::new("feePayer", "must be a base58 Solana address of 32 bytes"))
            }
            // Without a Solana network no fee payer is needed: nothing asks `/supported` for one.
            None if !solana => Some(String::new()),
            other => other,
        };

        let keys = parse_keys(&raw, env, mainnet)?;
        let issuer = optional_string(&raw.issuer, "issuer")?.unwrap_or_else(|| DEFAULT_ISSUER.to_owned());
        if issuer.is_empty() {
            return Err(ConfigError::new("issuer", "must not be empty"));
        }
        let audience = optional_string(&raw.audience, "audience")?;
        let leeway_seconds = optional_u64(&raw.leeway_seconds, "leewaySeconds")?.unwrap_or(0);
        if leeway_seconds > 3_600 {
            return Err(ConfigError::new("leewaySeconds", "must be at most 3600"));
        }
        let description = optional_string(&raw.description, "description")?;
        let protect = parse_path_rules(&raw.protect, "protect")?;
        let bypass = parse_path_rules(&raw.bypass, "bypass")?;
        let forward_authorization = match &raw.forward_authorization {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(ConfigError::new("forwardAuthorization", "must be true or false")),
        };
        let pay_and_serve = match &raw.pay_and_serve {
            None => true,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(ConfigError::new("payAndServe", "must be true or false")),
        };
        // Envoy's default buffer limit (`per_connection_buffer_limit_bytes`): 1 MiB.
        let max_paid_body_bytes = optional_u64(&raw.max_paid_body_bytes, "maxPaidBodyBytes")?.unwrap_or(1_048_576);
        let claim_headers = parse_claim_headers(&raw.claim_headers)?;
        let allowed_origins = parse_cors(&raw.cors)?;
        let replay_window_seconds = optional_u64(&raw.replay_window_seconds, "replayWindowSeconds")?.unwrap_or(600);
        let settle_deadline_ms = optional_u64(&raw.settle_deadline_ms, "settleDeadlineMs")?.unwrap_or(20_000);
        if settle_deadline_ms > 300_000 {
            return Err(ConfigError::new("settleDeadlineMs", "must be at most 300000 (five minutes)"));
        }

        // The longest pass this configuration sells: no valid pass lasts longer.
        let longest_tier = tiers.iter().map(|t| t.seconds).max().unwrap_or(0);
        let longest_custom = match (&rate_per_hour, tiers.is_empty()) {
            (Some(_), true) => max_duration_seconds.max(3_600),
            (Some(_), false) => max_duration_seconds,
            (None, _) => 0,
        };
        let verify_policy = VerifyPolicy {
            issuer: issuer.clone(),
            audience: audience.clone(),
            leeway_seconds,
            max_duration_seconds: longest_tier.max(longest_custom),
        };

        let mut config = Config {
            pay_to,
            pay_to_key,
            network,
            asset,
            networks,
            tiers,
            rate_per_hour,
            min_duration_seconds,
            max_duration_seconds,
            facilitator,
            fee_payer,
            keys,
            verify_policy,
            issuer,
            audience,
            description,
            protect,
            bypass,
            forward_authorization,
            claim_headers,
            allowed_origins,
            replay_window_seconds,
            settle_deadline_ms,
            pay_and_serve,
            max_paid_body_bytes,
            access_pass_tiers_header: String::new(),
            siwx: crate::siwx::Settings::parse(raw.siwx.as_ref())
                .map_err(|(field, problem)| ConfigError::new(field, problem))?,
            ledger: crate::ledger::settings::LedgerKind::parse(raw.ledger.as_ref())
                .map_err(|(field, problem)| ConfigError::new(field, problem))?,
        };
        config.access_pass_tiers_header =
            catalogue::tiers_header(&config.tiers, config.rate_per_hour.as_ref(), &config.issuer);
        Ok(config)
    }

    /// Whether the filter applies to this `:path` (query ignored): protected and
    /// not bypassed. Bypass wins.
    pub fn applies_to(&self, path: &[u8]) -> bool {
        let path = path.split(|&b| b == b'?').next().unwrap_or_default();
        let protected = self.protect.is_empty() || self.protect.iter().any(|r| r.matches(path));
        protected && !self.bypass.iter().any(|r| r.matches(path))
    }

    /// `Access-Control-Allow-Origin` for a request from `origin`, or `None` when
    /// that origin is not allowed.
    pub fn allow_origin(&self, origin: Option<&[u8]>) -> Option<&str> {
        match &self.allowed_origins {
            AllowedOrigins::Any => Some("*"),
            AllowedOrigins::List(list) => {
                let origin = std::str::from_utf8(origin?).ok()?;
                list.iter().map(String::as_str).find(|o| *o == origin)
            }
        }
    }
}

fn type_error(field: &str, expected: &str) -> ConfigError {
    ConfigError::new(field, format!("must be {expected}"))
}

fn price_error(field: &str, e: &PriceError) -> ConfigError {
    ConfigError::new(field, format!("price {e}"))
}

fn optional_string(v: &Option<Value>, field: &str) -> Result<Option<String>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(type_error(field, "a string")),
    }
}

fn optional_u64(v: &Option<Value>, field: &str) -> Result<Option<u64>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(|| type_error(field, "a non-negative integer")),
        Some(_) => Err(type_error(field, "a non-negative integer")),
    }
}

fn string_in(obj: &serde_json::Map<String, Value>, key: &str, field: &str) -> Result<Option<String>> {
    optional_string(&obj.get(key).cloned(), &format!("{field}.{key}"))
}

fn parse_tiers(v: &Option<Value>, decimals: u8) -> Result<Vec<Tier>> {
    let obj = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(obj)) => obj,
        Some(_) => {
            return Err(type_error("tiers", "an object of tier id to USD price string, e.g. {\"1h\": \"0.50\"}"))
        }
    };
    let mut tiers = Vec::with_capacity(obj.len());
    for (id, price) in obj {
        let field = format!("tiers.{id}");
        let seconds = pricing::tier_seconds(id).ok_or_else(|| {
            ConfigError::new(&field, "invalid tier id (expected a number then m, h, d or w, such as 5m, 1h, 7d)")
        })?;
        if seconds > MAX_PASS_SECONDS {
            return Err(ConfigError::new(&field, "lasts more than ten years"));
        }
        let price = match price {
            Value::String(s) => s.clone(),
            _ => return Err(type_error(&field, "a price string such as \"0.50\"")),
        };
        let atomic = pricing::parse_price(&price, decimals).map_err(|e| price_error(&field, &e))?;
        if let Some(other) = tiers.iter().find(|t: &&Tier| t.seconds == seconds) {
            return Err(ConfigError::new(
                &field,
                format!("lasts as long as tier {} (one price per duration)", other.id),
            ));
        }
        tiers.push(Tier { id: id.clone(), seconds, price, atomic, label: pricing::label(seconds) });
    }
    tiers.sort_by_key(|t| t.seconds);
    Ok(tiers)
}

fn parse_facilitator(raw: &RawConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<Facilitator> {
    let url =
        optional_string(&raw.facilitator_url, "facilitatorUrl")?.unwrap_or_else(|| DEFAULT_FACILITATOR_URL.to_owned());
    let bad_url =
        || ConfigError::new("facilitatorUrl", "must be an http:// or https:// URL without query or user info");
    let (scheme, rest) = url.split_once("://").ok_or_else(bad_url)?;
    if scheme != "http" && scheme != "https" {
        return Err(bad_url());
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (rest.get(..i).unwrap_or_default(), rest.get(i..).unwrap_or_default()),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains('@') || path.contains(['?', '#']) || url.contains(char::is_whitespace)
    {
        return Err(bad_url());
    }
    let cluster = optional_string(&raw.facilitator_cluster, "facilitatorCluster")?
        .unwrap_or_else(|| DEFAULT_FACILITATOR_CLUSTER.to_owned());
    if cluster.is_empty() {
        return Err(ConfigError::new("facilitatorCluster", "must not be empty"));
    }
    let timeout_ms = optional_u64(&raw.facilitator_timeout_ms, "facilitatorTimeoutMs")?.unwrap_or(10_000);
    if !(1..=120_000).contains(&timeout_ms) {
        return Err(ConfigError::new("facilitatorTimeoutMs", "must be between 1 and 120000"));
    }
    let mut headers = Vec::new();
    match &raw.facilitator_headers {
        None | Some(Value::Null) => {}
        Some(Value::Object(obj)) => {
            for (name, value) in obj {
                let field = format!("facilitatorHeaders.{name}");
                let valid_name = !name.is_empty()
                    && !name.starts_with(':')
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                if !valid_name {
                    return Err(ConfigError::new(&field, "is not a valid header name"));
                }
                let Value::String(value) = value else {
                    return Err(type_error(&field, "a string"));
                };
                let value = expand_env(value, env).map_err(|name| {
                    ConfigError::new(&field, format!("environment variable {name} is not set in the VM"))
                })?;
                headers.push((name.to_ascii_lowercase(), value));
            }
        }
        Some(_) => return Err(type_error("facilitatorHeaders", "an object of header name to value")),
    }
    Ok(Facilitator {
        scheme: scheme.to_owned(),
        authority: authority.to_owned(),
        path_prefix: path.trim_end_matches('/').to_owned(),
        cluster,
        timeout_ms,
        headers,
    })
}

/// Replaces every `${NAME}` with the VM environment's value; `Err(NAME)` when unset.
fn expand_env(value: &str, env: &dyn Fn(&str) -> Option<String>) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(rest.get(..start).unwrap_or_default());
        let after = rest.get(start + 2..).unwrap_or_default();
        let Some(end) = after.find('}') else {
            out.push_str(rest.get(start..).unwrap_or_default());
            return Ok(out);
        };
        let name = after.get(..end).unwrap_or_default();
        out.push_str(&env(name).ok_or_else(|| name.to_owned())?);
        rest = after.get(end + 1..).unwrap_or_default();
    }
    out.push_str(rest);
    Ok(out)
}

fn read_env(name: &str, field: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String> {
    env(name).filter(|v| !v.is_empty()).ok_or_else(|| {
        ConfigError::new(
            field,
            format!("environment variable {name} is not set in the VM (vm_config.environment_variables)"),
        )
    })
}

/// Where a configured key came from, so that a problem the key ring finds names its field:
/// `entry` holds the `kid` (`keys[1]`), `material` the key itself (`keys[1].secret`, `secretEnv`).
struct KeySource {
    entry: String,
    material: String,
}

/// The fields of a `keys[]` entry that hold key material; each entry has exactly one.
const KEY_MATERIAL_FIELDS: [&str; 5] = ["secret", "secretEnv", "privateKey", "privateKeyEnv", "publicKey"];

/// `mainnet`: the network, when it is one where a published test key must be refused.
/// Reads the keys; every rule about the keys themselves is the key ring's (`KeyRing::new`).
fn parse_keys(raw: &RawConfig, env: &dyn Fn(&str) -> Option<String>, mainnet: Option<&str>) -> Result<KeyRing> {
    let refuse_published = |spec: &KeySpec, field: &str| {
        match mainnet {
        Some(network) if known_keys::is_published_key(&spec.material) => Err(ConfigError::new(
            field,
            format!("is a well-known test key, published in this project's tests and docs: on {network} anyone could mint passes; use your own"),
        )),
        _ => Ok(()),
    }
    };
    let mut specs = Vec::new();
    let mut sources = Vec::new();
    match &raw.keys {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) => {
            for (i, item) in list.iter().enumerate() {
                let entry = format!("keys[{i}]");
                let (spec, material) = parse_key(item, &entry, env)?;
                refuse_published(&spec, &entry)?;
                specs.push(spec);
                sources.push(KeySource { entry, material });
            }
        }
        Some(_) => {
            let members = KEY_MATERIAL_FIELDS.join("|");
            return Err(type_error("keys", &format!("a list of {{kid, alg, {members}}}")));
        }
    }
    let secret = optional_string(&raw.secret, "secret")?;
    let secret_env = optional_string(&raw.secret_env, "secretEnv")?;
    let top_level = match (secret, secret_env) {
        (Some(_), Some(_)) => return Err(ConfigError::new("secret", "give either secret or secretEnv, not both")),
        (Some(secret), None) => Some((secret, "secret")),
        (None, Some(name)) => Some((read_env(&name, "secretEnv", env)?, "secretEnv")),
        (None, None) => None,
    };
    if let Some((secret, field)) = top_level {
        let spec = KeySpec { kid: None, material: KeyMaterial::Hs256Secret(secret.into_bytes()) };
        refuse_published(&spec, field)?;
        specs.push(spec);
        sources.push(KeySource { entry: field.to_owned(), material: field.to_owned() });
    }
    // A ring of public keys only is a verify-only sidecar: it checks passes
    // sold elsewhere and refuses purchases.
    KeyRing::new(specs).map_err(|e| key_error(e, &sources))
}

/// The key ring's refusal, said of the configuration field it is about.
fn key_error(error: KeyError, sources: &[KeySource]) -> ConfigError {
    match error {
        KeyError::NoKeys => ConfigError::new("secret", "a signing key is required: set secret, secretEnv or keys"),
        KeyError::Key { index, problem } => {
            let field = match sources.get(index) {
                Some(source) if problem.is_about_kid() => format!("{}.kid", source.entry),
                Some(source) => source.material.clone(),
                None => format!("keys[{index}]"),
            };
            ConfigError::new(field, problem.to_string())
        }
    }
}

/// One `keys[]` entry, and the field that holds its material.
fn parse_key(item: &Value, field: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<(KeySpec, String)> {
    let Value::Object(obj) = item else {
        return Err(type_error(field, "an object"));
    };
    if let Some(unknown) =
        obj.keys().find(|k| !matches!(k.as_str(), "kid" | "alg") && !KEY_MATERIAL_FIELDS.contains(&k.as_str()))
    {
        return Err(ConfigError::new(format!("{field}.{unknown}"), "unknown field"));
    }
    let kid = string_in(obj, "kid", field)?;
    let alg = string_in(obj, "alg", field)?.unwrap_or_else(|| "HS256".to_owned());
    let sources: Vec<&str> = KEY_MATERIAL_FIELDS.into_iter().filter(|k| obj.contains_key(*k)).collect();
    let [source] = sources.as_slice() else {
        return Err(ConfigError::new(field, format!("needs exactly one of {}", KEY_MATERIAL_FIELDS.join(", "))));
    };
    let source_field = format!("{field}.{source}");
    let value = string_in(obj, source, field)?.unwrap_or_default();
    let value = if source.ends_with("Env") { read_env(&value, &source_field, env)? } else { value };
    let material = match (alg.as_str(), *source) {
        ("HS256", "secret" | "secretEnv") => KeyMaterial::Hs256Secret(value.into_bytes()),
        ("EdDSA", "privateKey" | "privateKeyEnv") => {
            KeyMaterial::EdDsaSeed(decode_ed25519(&value, &PKCS8_PRIVATE_PREFIX).ok_or_else(|| {
                ConfigError::new(&source_field, "must be a base64 32-byte Ed25519 seed or a PKCS#8 PEM private key")
            })?)
        }
        ("EdDSA", "publicKey") => {
            KeyMaterial::EdDsaPublic(decode_ed25519(&value, &SPKI_PUBLIC_PREFIX).ok_or_else(|| {
                ConfigError::new(&source_field, "must be a base64 32-byte Ed25519 public key or an SPKI PEM public key")
            })?)
        }
        ("HS256" | "EdDSA", _) => {
            return Err(ConfigError::new(&source_field, format!("does not fit alg {alg}")));
        }
        _ => return Err(ConfigError::new(format!("{field}.alg"), "must be HS256 or EdDSA")),
    };
    Ok((KeySpec { kid, material }, source_field))
}

/// DER prefixes of the fixed-size Ed25519 PKCS#8 private key and SPKI public key.
const PKCS8_PRIVATE_PREFIX: [u8; 16] = crate::token::ED25519_PKCS8_PREFIX;
const SPKI_PUBLIC_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

/// 32 key bytes from base64 (standard or URL-safe, padded or not), or from a PEM
/// block whose DER is `der_prefix` followed by the 32 bytes.
fn decode_ed25519(text: &str, der_prefix: &[u8]) -> Option<[u8; 32]> {
    let text = text.trim();
    let (body, is_pem) = if text.starts_with("-----BEGIN") {
        let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
        (body, true)
    } else {
        (text.to_owned(), false)
    };
    let bytes = decode_base64_any(&body)?;
    let key = if is_pem { bytes.strip_prefix(der_prefix)? } else { bytes.as_slice() };
    key.try_into().ok()
}

fn decode_base64_any(text: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD].iter().find_map(|engine| engine.decode(text).ok())
}

fn parse_path_rules(v: &Option<Value>, field: &str) -> Result<Vec<PathRule>> {
    let list = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(type_error(field, "a list of {\"prefix\": \"/api/\"} or {\"path\": \"/exact\"}")),
    };
    list.iter()
        .enumerate()
        .map(|(i, item)| {
            let item_field = format!("{field}[{i}]");
            let rule = match item.as_object().map(|o| (o.len(), o.get("prefix"), o.get("path"))) {
                Some((1, Some(Value::String(p)), None)) => PathRule::Prefix(p.clone()),
                Some((1, None, Some(Value::String(p)))) => PathRule::Exact(p.clone()),
                _ => return Err(type_error(&item_field, "{\"prefix\": \"/...\"} or {\"path\": \"/...\"}")),
            };
            match &rule {
                PathRule::Prefix(p) | PathRule::Exact(p) if !p.starts_with('/') => {
                    Err(ConfigError::new(&item_field, "must start with /"))
                }
                _ => Ok(rule),
            }
        })
        .collect()
}

fn parse_claim_headers(v: &Option<Value>) -> Result<Vec<(String, Claim)>> {
    let obj = match v {
        None | Some(Value::Null) => {
            return Ok(vec![
                ("x-access-pass-tier".to_owned(), Claim::Tier),
                ("x-access-pass-payer".to_owned(), Claim::Payer),
                ("x-access-pass-expires".to_owned(), Claim::Expires),
                ("x-access-pass-network".to_owned(), Claim::Network),
            ])
        }
        Some(Value::Object(obj)) => obj,
        Some(_) => return Err(type_error("claimHeaders", "an object of header name to claim")),
    };
    let mut headers = BTreeMap::new();
    for (name, claim) in obj {
        let field = format!("claimHeaders.{name}");
        let lower = name.to_ascii_lowercase();
        let valid = !lower.is_empty()
            && lower.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !matches!(
                lower.as_str(),
                "authorization" | "host" | "content-length" | "transfer-encoding" | "connection"
            );
        if !valid {
            return Err(ConfigError::new(&field, "is not a header the filter may set"));
        }
        let claim = claim.as_str().and_then(Claim::parse).ok_or_else(|| {
            ConfigError::new(&field, "must name a claim: tier, payer, exp, iat, duration, network, iss or sub")
        })?;
        headers.insert(lower, claim);
    }
    Ok(headers.into_iter().collect())
}

fn parse_cors(v: &Option<Value>) -> Result<AllowedOrigins> {
    let obj = match v {
        None | Some(Value::Null) => return Ok(AllowedOrigins::Any),
        Some(Value::Object(obj)) => obj,
        Some(_) => return Err(type_error("cors", "an object {allowOrigins: [...]}")),
    };
    if let Some(unknown) = obj.keys().find(|k| k.as_str() != "allowOrigins") {
        return Err(ConfigError::new(format!("cors.{unknown}"), "unknown field"));
    }
    let origins: Vec<String> = match obj.get("allowOrigins") {
        None => return Ok(AllowedOrigins::Any),
        Some(Value::Array(list)) => list
            .iter()
            .map(|o| o.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| type_error("cors.allowOrigins", "a list of origin strings"))?,
        Some(_) => return Err(type_error("cors.allowOrigins", "a list of origin strings")),
    };
    if origins.iter().any(|o| o == "*") {
        return Ok(AllowedOrigins::Any);
    }
    if origins.is_empty() {
        return Err(ConfigError::new("cors.allowOrigins", "must not be empty (use [\"*\"] to allow any origin)"));
    }
    Ok(AllowedOrigins::List(origins))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A seller of the tests' own (not one of known_keys' published test keys).
    pub const MERCHANT: &str = "GRzLBcpDz3XkKQ1y2dmbezuXYRTUJ3vNueDNkma32unv";
    const SECRET: &str = "unit-test-secret-0123456789abcdef0123";

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse(json: serde_json::Value) -> Result<Config> {
        Config::parse(json.to_string().as_bytes(), &no_env)
    }

    fn error_of(json: serde_json::Value) -> ConfigError {
        match parse(json) {
            Ok(_) => panic!("configuration was accepted"),
            Err(e) => e,
        }
    }

    #[test]
    fn pay_and_serve_is_on_unless_turned_off_and_must_be_a_boolean() {
        let off = parse(
            serde_json::json!({"payTo": MERCHANT, "tiers": {"1h": "0.50"}, "secret": SECRET, "payAndServe": false}),
        );
        assert!(!off.unwrap().pay_and_serve);
        let e = error_of(
            serde_json::json!({"payTo": MERCHANT, "tiers": {"1h": "0.50"}, "secret": SECRET, "payAndServe": "no"}),
        );
        assert_eq!((e.field.as_str(), e.problem.as_str()), ("payAndServe", "must be true or false"));
        let limit = parse(
            serde_json::json!({"payTo": MERCHANT, "tiers": {"1h": "0.50"}, "secret": SECRET, "maxPaidBodyBytes": 65536}),
        );
        assert_eq!(limit.unwrap().max_paid_body_bytes, 65_536);
        let e = error_of(
            serde_json::json!({"payTo": MERCHANT, "tiers": {"1h": "0.50"}, "secret": SECRET, "maxPaidBodyBytes": -1}),
        );
        assert_eq!(e.field, "maxPaidBodyBytes");
    }

    #[test]
    fn minimal_configuration_gets_every_default() {
        let c = parse(serde_json::json!({"payTo": MERCHANT, "tiers": {"1h": "0.50"}, "secret": SECRET})).unwrap();
        assert_eq!(c.network, MAINNET);
        assert_eq!(c.asset.address, MAINNET_USDC);
        assert_eq!(c.asset.decimals, 6);
        assert_eq!(c.min_duration_seconds, 60);
        assert_eq!(c.max_duration_seconds, 2_592_000);
        assert_eq!(c.facilitator.scheme, "https");
        assert_eq!(c.facilitator.authority, "x402.dexter.cash");
        assert_eq!(c.facilitator.path_prefix, "");
        assert_eq!(c.facilitator.cluster, "x402_facilitator");
        assert_eq!(c.facilitator.timeout_ms, 10_000);
        assert_eq!(c.issuer, "x402-access-pass");
        assert_eq!(c.verify_policy.leeway_seconds, 0);
        assert_eq!(c.replay_window_seconds, 600);
        assert_eq!(c.settle_deadline_ms, 20_000);
        assert!(!c.forward_authorization);
        assert!(c.pay_and_serve);
        assert_eq!(c.max_paid_body_bytes, 1_048_576);
        assert_eq!(c.allowed_origins, AllowedOrigins::Any);
        assert_eq!(c.claim_headers.len(), 4);
        assert!(c.applies_to(b"/anything?x=1"));
    }

    #[test]
    fn the_document_is_an_object_of_known_members_each_given_once() {
        let e = error_of(serde_json::json!({"payTo": MERCHANT, "tiers": {"1h": "0.50"}, "secret": SECRET, "tier": {}}));
        assert_eq!((e.field.as_str(), e.problem.as_str()), ("tier", "unknown field"));
        let duplicated =
            format!(r#"{{"payTo":"{MERCHANT}","tiers":{{"1h":"0.50"}},"secret":"{SECRET}","secret":"{SECRET}"}}"#);
        let e = Config::parse(duplicated.as_bytes(), &no_env).err().unwrap();
        assert_eq!((e.field.as_str(), e.problem.as_str()), ("secret", "duplicate field"));
        for document in [&b"[1]"[..], b"\"payTo\"", b"{\"payTo\":", b"", b"{} x"] {
            let e = Config::parse(document, &no_env).err().unwrap();
            assert_eq!(e.field, "(document)", "{}", String::from_utf8_lossy(document));
            assert!(e.problem.starts_with("not a JSON object of settings: "), "{}", e.problem);
        }
    }

    #[test]
    fn tiers_are_sorted_by_duration_and_info_is_built_once() {
        let c = parse(serde_json::json!({
            "payTo": MERCHANT, "network": DEVNET, "secret": SECRET,
            "tiers": {"1h": "0.50", "5m": "0.05"}, "ratePerHour": "0.50"
        }))
        .unwrap();
        assert_eq!(c.asset.address, DEVNET_USDC);
        let ids: Vec<_> = c.tiers.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["5m", "1h"]);
        assert_eq!(
            base64::engine::general_purpose::STANDARD.decode(&c.access_pass_tiers_header).unwrap(),
            br#"{"tiers":[{"id":"5m","label":"5 minutes","seconds":300,"price":"0.05","priceAtomic":"50000"},{"id":"1h","label":"1 hour","seconds":3600,"price":"0.50","priceAtomic":"500000"}],"ratePerHour":"0.50","issuer":"x402-access-pass"}"#
        );
        // the longest pass sold: maxDurationSeconds, since custom durations are on.
        assert_eq!(c.verify_policy.max_duration_seconds, 2_592_000);
    }

    #[test]
    fn each_problem_names_its_field() {
        let cases = [
            (serde_json::json!({"tiers": {"1h": "0.50"}, "secret": SECRET}), "payTo"),
            (serde_json::json!({"payTo": "abc", "tiers": {"1h": "0.50"}, "secret": SECRET}), "payTo"),
            (serde_json::json!({"payTo": MERCHANT, "tiers": {"90s": "0.50"}, "secret": SECRET}), "tiers.90s"),
            (serde_json::json!({"payTo": MERCHANT, "tiers": {"1h": "-1"}, "secret": SECRET}), "tiers.1h"),
            (serde_json::json!({"payTo": MERCHANT, "tiers": {"1h": "0"}, "secret": SECRET}), "tiers.1h"),
            (serde_json::json!({"payTo": MERCHANT, "tiers": {"1h": 0.5}, "secret": SECRET}), "tiers.1h"),
            (serde_json::json!({"payTo": MERCHANT, "tiers": {"1h": "0.0000001"}, "secret": SECRET}), "tiers.1h"),
            (serde_json::json!({"payTo": MERCHANT, "tiers": {"1h": "0.50"}}), "secret"),
            (serde_json::json!({"payTo": MERCHANT, "tiers": {"1h": "0.50"}, "secret": "short"}), "secret"),
            (serde_json::json!({"payTo": MERCHANT, "tiers": {"1h": "0.50"}, "secret": SECRET, "colour": 1}), "colour"),
            (serde_json::json!({"payTo": MERCHANT, "secret": SECRET}), "tiers"),
            (
                serde_json::json!({"payTo": MERCHANT, "tiers": {"1h": "0.50"}, "secret": SECRET, "network": "solana:other"}),
                "asset",
            ),
            (serde_json::json!({"payTo": MERCHANT, "tiers": {"1h": "0.50"}, "secretEnv": "NOPE"}), "secretEnv"),
            (
                serde_json::json!({"payTo": MERCHANT, "tiers": {"1h": "0.50"}, "secret": SECRET, "facilitatorUrl": "ftp://x"}),
                "facilitatorUrl",
            ),
            (
                serde_json::json!({"payTo": MERCHANT, "tiers": {"1h": "0.50"}, "secret": SECRET, "minDurationSeconds": 100, "maxDurationSeconds": 50}),
                "maxDurationSeconds",
            ),
            (
                serde_json::json!({"payTo": MERCHANT, "ratePerHour": "0.50", "secret": SECRET, "maxDurationSeconds": 18_446_744_073_709_551_615u64}),
                "maxDurationSeconds",
            ),
            (
                serde_json::json!({"payTo": MERCHANT, "tiers": {"30500568904943w": "0.50"}, "secret": SECRET}),
                "tiers.30500568904943w",
            ),
            (
                serde_json::json!({"payTo": MERCHANT, "tiers": {"1h": "0.50"}, "secret": SECRET, "claimHeaders": {"x-a": "password"}}),
                "claimHeaders.x-a",
            ),
            (
                serde_json::json!({"payTo": MERCHANT, "tiers": {"1h": "0.50"}, "secret": SECRET, "protect": [{"prefix": "api"}]}),
                "protect[0]",
            ),
            (
                serde_json::json!({"payTo": MERCHANT, "tiers": {"1h": "0.50"}, "keys": [{"kid": "a", "alg": "none", "secret": SECRET}]}),
                "keys[0].alg",
            ),
            (
                serde_json::json!({"payTo": MERCHANT, "tiers": {"1h": "0.50"}, "keys": [{"kid": "a", "alg": "EdDSA", "publicKey": "AAAA"}]}),
                "keys[0].publicKey",
            ),
            (
                serde_json::json!({"payTo": MERCHANT, "tiers": {"1h": "0.50"}, "secret": SECRET, "facilitatorHeaders": {"x-api-key": "${MISSING}"}}),
                "facilitatorHeaders.x-api-key",
            ),
        ];
        for (json, field) in cases {
            let e = error_of(json.clone());
            assert_eq!(e.field, field, "{json} gave {e}");
            assert!(e.to_string().contains(field), "{e}");
            assert!(!e.to_string().contains('\n'));
        }
    }

    /// Field and problem of a configuration selling one tier with these settings.
    fn key_problem(keys: serde_json::Value, env: &dyn Fn(&str) -> Option<String>) -> (String, String) {
        let mut json = serde_json::json!({"payTo": MERCHANT, "tiers": {"1h": "0.50"}});
        if let (Some(json), Some(keys)) = (json.as_object_mut(), keys.as_object()) {
            json.extend(keys.clone());
        }
        match Config::parse(json.to_string().as_bytes(), env) {
            Ok(_) => panic!("{json} was accepted"),
            Err(e) => (e.field, e.problem),
        }
    }

    fn said(field: &str, problem: &str) -> (String, String) {
        (field.to_owned(), problem.to_owned())
    }

    #[test]
    fn each_key_ring_problem_names_the_field_it_came_from() {
        let short = "too-short";
        let seed_00 = base64::engine::general_purpose::STANDARD.encode([0u8; 32]);
        let identity = base64::engine::general_purpose::STANDARD.encode({
            let mut point = [0u8; 32];
            point[0] = 1;
            point
        });
        let env = |name: &str| (name == "SHORT").then(|| short.to_owned());
        let cases = [
            (serde_json::json!({}), said("secret", "a signing key is required: set secret, secretEnv or keys")),
            (
                serde_json::json!({"keys": []}),
                said("secret", "a signing key is required: set secret, secretEnv or keys"),
            ),
            (serde_json::json!({"secret": short}), said("secret", "HS256 secret must be at least 32 bytes")),
            (serde_json::json!({"secretEnv": "SHORT"}), said("secretEnv", "HS256 secret must be at least 32 bytes")),
            (
                serde_json::json!({"keys": [{"kid": "a", "secret": SECRET}, {"kid": "b", "secret": short}]}),
                said("keys[1].secret", "HS256 secret must be at least 32 bytes"),
            ),
            (
                serde_json::json!({"keys": [{"kid": "a", "secretEnv": "SHORT"}]}),
                said("keys[0].secretEnv", "HS256 secret must be at least 32 bytes"),
            ),
            (serde_json::json!({"keys": [{"kid": "", "secret": SECRET}]}), said("keys[0].kid", "must not be empty")),
            (
                serde_json::json!({"keys": [{"kid": "k".repeat(257), "secret": SECRET}]}),
                said("keys[0].kid", "must be at most 256 bytes"),
            ),
            (
                serde_json::json!({"keys": [{"kid": "a", "secret": SECRET}, {"kid": "a", "alg": "EdDSA", "privateKey": base64::engine::general_purpose::STANDARD.encode((1..=32).collect::<Vec<u8>>())}]}),
                said("keys[1].kid", "duplicate kid (keys[0] has the same one)"),
            ),
            (
                // On mainnet the zero seed is refused first as a published (repeated-byte) test key.
                serde_json::json!({"network": DEVNET, "keys": [{"alg": "EdDSA", "privateKey": seed_00}]}),
                said("keys[0].privateKey", "EdDSA private key must not be all zeros"),
            ),
            (
                serde_json::json!({"keys": [{"alg": "EdDSA", "publicKey": identity}]}),
                said("keys[0].publicKey", "EdDSA public key is not a valid Ed25519 key"),
            ),
            (
                serde_json::json!({"keys": [{"kid": "a", "secret": SECRET, "colour": 1}]}),
                said("keys[0].colour", "unknown field"),
            ),
            (
                serde_json::json!({"keys": [{"kid": "a"}]}),
                said("keys[0]", "needs exactly one of secret, secretEnv, privateKey, privateKeyEnv, publicKey"),
            ),
            (
                serde_json::json!({"keys": {"kid": "a"}}),
                said("keys", "must be a list of {kid, alg, secret|secretEnv|privateKey|privateKeyEnv|publicKey}"),
            ),
        ];
        for (settings, expected) in cases {
            assert_eq!(key_problem(settings.clone(), &env), expected, "{settings}");
        }
        // The top-level secret comes last in the ring: a key list before it does not shift its field.
        let both = serde_json::json!({"keys": [{"kid": "a", "secret": SECRET}], "secret": short});
        assert_eq!(key_problem(both, &env), said("secret", "HS256 secret must be at least 32 bytes"));
    }

    #[test]
    fn malformed_json_is_one_line() {
        let e = Config::parse(b"{not json", &no_env).err().unwrap();
        assert!(!e.to_string().contains('\n'));
    }

    #[test]
    fn secrets_and_header_values_come_from_the_vm_environment() {
        let env = |name: &str| match name {
            "PASS_SECRET" => Some(SECRET.to_owned()),
            "API_KEY" => Some("k-123".to_owned()),
            _ => None,
        };
        let json = serde_json::json!({
            "payTo": MERCHANT, "tiers": {"1h": "0.50"}, "secretEnv": "PASS_SECRET",
            "facilitatorHeaders": {"X-Api-Key": "Bearer ${API_KEY}"},
            "facilitatorUrl": "http://127.0.0.1:8080/x402/"
        });
        let c = Config::parse(json.to_string().as_bytes(), &env).unwrap();
        assert_eq!(c.facilitator.headers, vec![("x-api-key".to_owned(), "Bearer k-123".to_owned())]);
        assert_eq!(c.facilitator.authority, "127.0.0.1:8080");
        assert_eq!(c.facilitator.path_prefix, "/x402");
    }

    #[test]
    fn bypass_wins_over_protect() {
        let c = parse(serde_json::json!({
            "payTo": MERCHANT, "tiers": {"1h": "0.50"}, "secret": SECRET,
            "protect": [{"prefix": "/api/"}, {"path": "/report"}], "bypass": [{"prefix": "/api/public/"}]
        }))
        .unwrap();
        assert!(c.applies_to(b"/api/data"));
        assert!(c.applies_to(b"/api/data?tier=1h"));
        assert!(c.applies_to(b"/report"));
        assert!(!c.applies_to(b"/report/x"));
        assert!(!c.applies_to(b"/api/public/x"));
        assert!(!c.applies_to(b"/health"));
    }

    #[test]
    fn cors_echoes_only_listed_origins() {
        let c = parse(serde_json::json!({
            "payTo": MERCHANT, "tiers": {"1h": "0.50"}, "secret": SECRET,
            "cors": {"allowOrigins": ["https://app.example"]}
        }))
        .unwrap();
        assert_eq!(c.allow_origin(Some(b"https://app.example")), Some("https://app.example"));
        assert_eq!(c.allow_origin(Some(b"https://evil.example")), None);
        assert_eq!(c.allow_origin(None), None);
    }

    #[test]
    fn the_reference_placeholder_says_what_to_set() {
        let e = error_of(
            serde_json::json!({"payTo": known_keys::PAY_TO_PLACEHOLDER, "tiers": {"1h": "0.50"}, "secret": SECRET}),
        );
        assert_eq!(e.field, "payTo");
        assert!(e.to_string().contains("set it to your own wallet address"), "{e}");
    }

    /// The demo merchant (seed 0x03) and the demo secret: public, so refused where money is real.
    const TEST_MERCHANT: &str = "GyGKxMyg1p9SsHfm15MkNUu1u9TN2JtTspcdmrtGUdse";
    const DEMO_SECRET: &str = "demo-secret-do-not-use-in-production-0123";

    #[test]
    fn published_test_keys_are_refused_on_mainnet_and_allowed_on_devnet() {
        let seed_07 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let cases = [
            (serde_json::json!({"payTo": TEST_MERCHANT, "secret": SECRET}), "payTo"),
            (serde_json::json!({"payTo": MERCHANT, "secret": DEMO_SECRET}), "secret"),
            (serde_json::json!({"payTo": MERCHANT, "secretEnv": "DEMO"}), "secretEnv"),
            (
                serde_json::json!({"payTo": MERCHANT, "keys": [{"kid": "a", "secret": SECRET}, {"kid": "b", "secret": DEMO_SECRET}]}),
                "keys[1]",
            ),
            (
                serde_json::json!({"payTo": MERCHANT, "keys": [{"kid": "e", "alg": "EdDSA", "privateKey": seed_07}]}),
                "keys[0]",
            ),
        ];
        let env = |name: &str| (name == "DEMO").then(|| DEMO_SECRET.to_owned());
        for (mut json, field) in cases {
            json["tiers"] = serde_json::json!({"1h": "0.50"});
            let Err(e) = Config::parse(json.to_string().as_bytes(), &env) else {
                panic!("{json} was accepted on mainnet");
            };
            assert_eq!(e.field, field, "{json}");
            assert!(e.to_string().contains("well-known test key"), "{e}");
            assert!(e.to_string().contains(MAINNET), "{e}");
            json["network"] = serde_json::json!(DEVNET);
            assert!(Config::parse(json.to_string().as_bytes(), &env).is_ok(), "{json} on devnet");
        }
    }

    #[test]
    fn ed25519_keys_accept_base64_and_pem() {
        let seed = [7u8; 32];
        let b64 = base64::engine::general_purpose::STANDARD.encode(seed);
        assert_eq!(decode_ed25519(&b64, &PKCS8_PRIVATE_PREFIX), Some(seed));
        let der = [PKCS8_PRIVATE_PREFIX.as_slice(), &seed].concat();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(der)
        );
        assert_eq!(decode_ed25519(&pem, &PKCS8_PRIVATE_PREFIX), Some(seed));
        assert_eq!(decode_ed25519("AAAA", &PKCS8_PRIVATE_PREFIX), None);
    }

    #[test]
    fn siwx_is_off_without_origins_and_each_mistake_is_one_line() {
        let base = serde_json::json!({"payTo": MERCHANT, "tiers": {"1h": "0.50"}, "secret": SECRET});
        assert!(parse(base.clone()).unwrap().siwx.is_none());
        let mut on = base.clone();
        on["siwx"] = serde_json::json!({"origins": ["https://api.example.com"], "statement": "Welcome back"});
        let siwx = parse(on).unwrap().siwx.unwrap();
        assert_eq!(siwx.origins[0].host, "api.example.com");
        assert_eq!((siwx.max_age_seconds, siwx.statement.as_deref()), (300, Some("Welcome back")));
        let mut bad = base;
        bad["siwx"] = serde_json::json!({"origins": ["https://api.example.com/api"]});
        let e = error_of(bad);
        assert_eq!(
            e.to_string(),
            "invalid x402-access-pass configuration: siwx.origins[0]: must not include a path, query, or fragment"
        );
    }
}
