//! The `ledger` configuration (docs/behaviour.md §19, docs/fleet.md): where purchases,
//! entitlements and payment ids live. `local` (the default) is Envoy's shared data, one process;
//! `etcd` is a shared etcd v3 cluster, reached through the named Envoy cluster.

use serde_json::Value;

use crate::etcd;

const DEFAULT_CLUSTER: &str = "x402_ledger";
const DEFAULT_AUTHORITY: &str = "etcd";
const DEFAULT_PREFIX: &str = "/x402-access-pass/";
const DEFAULT_TIMEOUT_MS: u64 = 1_000;

/// Where the ledger lives.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LedgerKind {
    /// Envoy's shared data: every worker of one Envoy, nothing to install.
    #[default]
    Local,
    Etcd(EtcdLedger),
}

/// The shared ledger: etcd's JSON gateway behind an Envoy cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdLedger {
    /// The Envoy cluster the callouts go to (its endpoints are the etcd members).
    pub cluster: String,
    /// `:authority` of every callout.
    pub authority: String,
    /// The key prefix and the time one operation may take.
    pub settings: etcd::Settings,
}

impl LedgerKind {
    /// Reads `ledger`: absent or `{"kind": "local"}` is the local ledger. An error is the field
    /// (under `ledger.`) and what is wrong with it.
    pub fn parse(value: Option<&Value>) -> Result<LedgerKind, (String, String)> {
        let err = |field: &str, problem: &str| Err((format!("ledger.{field}"), problem.to_owned()));
        let object = match value {
            None | Some(Value::Null) => return Ok(LedgerKind::Local),
            Some(Value::Object(object)) => object,
            Some(_) => {
                return Err((
                    "ledger".to_owned(),
                    "must be an object {kind, cluster, authority, prefix, timeoutMs}".to_owned(),
                ))
            }
        };
        let string = |key: &str, default: &str| -> Result<String, (String, String)> {
            match object.get(key) {
                None | Some(Value::Null) => Ok(default.to_owned()),
                Some(Value::String(s)) => Ok(s.clone()),
                Some(_) => Err((format!("ledger.{key}"), "must be a string".to_owned())),
            }
        };
        let kind = string("kind", "local")?;
        let known: &[&str] = match kind.as_str() {
            "local" => &["kind"],
            "etcd" => &["kind", "cluster", "authority", "prefix", "timeoutMs"],
            _ => return err("kind", "must be \"local\" or \"etcd\""),
        };
        if let Some(key) = object.keys().find(|key| !known.contains(&key.as_str())) {
            return match kind.as_str() {
                "local" => err(key, "unknown field (a local ledger takes only kind)"),
                _ => err(key, "unknown field"),
            };
        }
        if kind == "local" {
            return Ok(LedgerKind::Local);
        }
        let cluster = string("cluster", DEFAULT_CLUSTER)?;
        if cluster.is_empty() || !cluster.bytes().all(|b| b.is_ascii_graphic()) {
            return err("cluster", "must be the name of an Envoy cluster (printable ASCII, no spaces)");
        }
        let authority = string("authority", DEFAULT_AUTHORITY)?;
        let host_char = |b: u8| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b);
        if authority.is_empty() || authority.len() > 255 || !authority.bytes().all(host_char) {
            return err("authority", "must be a host name, with an optional :port");
        }
        let prefix = string("prefix", DEFAULT_PREFIX)?;
        let timeout_ms = match object.get("timeoutMs") {
            None | Some(Value::Null) => DEFAULT_TIMEOUT_MS,
            Some(v) => match v.as_u64() {
                Some(n) if (1..=60_000).contains(&n) => n,
                _ => return err("timeoutMs", "must be an integer from 1 to 60000"),
            },
        };
        let Some(settings) = etcd::Settings::new(&prefix, timeout_ms) else {
            return err("prefix", "must start and end with /, 2 to 128 printable ASCII characters without spaces");
        };
        Ok(LedgerKind::Etcd(EtcdLedger { cluster, authority, settings }))
    }

    pub fn etcd(&self) -> Option<&EtcdLedger> {
        match self {
            LedgerKind::Local => None,
            LedgerKind::Etcd(etcd) => Some(etcd),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: Value) -> Result<LedgerKind, (String, String)> {
        LedgerKind::parse(Some(&value))
    }

    #[test]
    fn absent_or_local_is_the_local_ledger() {
        assert_eq!(LedgerKind::parse(None), Ok(LedgerKind::Local));
        assert_eq!(parse(json!({})), Ok(LedgerKind::Local));
        assert_eq!(parse(json!({"kind": "local"})), Ok(LedgerKind::Local));
    }

    #[test]
    fn etcd_takes_the_spec_defaults_and_every_field() {
        let LedgerKind::Etcd(etcd) = parse(json!({"kind": "etcd"})).unwrap() else { panic!() };
        assert_eq!((etcd.cluster.as_str(), etcd.authority.as_str()), ("x402_ledger", "etcd"));
        assert_eq!((etcd.settings.prefix(), etcd.settings.timeout_ms()), ("/x402-access-pass/", 1_000));
        let full = json!({"kind": "etcd", "cluster": "ledger", "authority": "etcd.mesh:2379", "prefix": "/shop/", "timeoutMs": 250});
        let LedgerKind::Etcd(etcd) = parse(full).unwrap() else { panic!() };
        assert_eq!((etcd.cluster.as_str(), etcd.authority.as_str()), ("ledger", "etcd.mesh:2379"));
        assert_eq!((etcd.settings.prefix(), etcd.settings.timeout_ms()), ("/shop/", 250));
    }

    #[test]
    fn each_mistake_names_its_field() {
        let cases = [
            (json!("etcd"), "ledger"),
            (json!({"kind": "redis"}), "ledger.kind"),
            (json!({"kind": "local", "cluster": "x"}), "ledger.cluster"),
            (json!({"kind": "etcd", "clusters": "x"}), "ledger.clusters"),
            (json!({"kind": "etcd", "cluster": ""}), "ledger.cluster"),
            (json!({"kind": "etcd", "cluster": 7}), "ledger.cluster"),
            (json!({"kind": "etcd", "authority": "a b"}), "ledger.authority"),
            (json!({"kind": "etcd", "prefix": "x402"}), "ledger.prefix"),
            (json!({"kind": "etcd", "timeoutMs": 0}), "ledger.timeoutMs"),
            (json!({"kind": "etcd", "timeoutMs": 60_001}), "ledger.timeoutMs"),
        ];
        for (value, field) in cases {
            assert_eq!(parse(value.clone()).unwrap_err().0, field, "{value}");
        }
    }
}
