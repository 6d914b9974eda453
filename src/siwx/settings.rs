//! The `siwx` configuration (docs/behaviour.md §16.5) and the seller's origins.
//!
//! A signature is worth something only for the site it was made for, and a request's own `Host`
//! and `X-Forwarded-Proto` are whatever the client sends: so the sites are configured, as the
//! official server's `origin` option, and every check compares against them.

use serde_json::Value;

/// The default `siwx.maxAgeSeconds`: how old a signed message may be (the package's default).
pub const DEFAULT_MAX_AGE_SECONDS: u64 = 300;
const MAX_MAX_AGE_SECONDS: u64 = 86_400;
const MAX_STATEMENT_CHARS: usize = 512;

/// An `http` or `https` origin as WHATWG `URL` gives it: scheme and host lower case, the
/// scheme's default port dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `URL.host`: the host, and `:port` when it is not the scheme's default.
    pub host: String,
    /// `URL.origin`: `scheme://host`.
    pub origin: String,
}

impl Origin {
    /// The origin of an absolute `http(s)` URL (`scheme://authority[/path][?query][#fragment]`),
    /// or `None`. Stricter than `URL`: no user information, no backslash, ASCII hosts only.
    pub fn of_url(url: &str) -> Option<Origin> {
        let (scheme, rest) = url.split_once("://")?;
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = rest.get(..end)?;
        Origin::from_parts(scheme, authority)
    }

    fn from_parts(scheme: &str, authority: &str) -> Option<Origin> {
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return None,
        };
        let (host, port) = match authority.strip_prefix('[') {
            // An IPv6 literal: `[…]` then an optional port.
            Some(v6) => {
                let (inside, after) = v6.split_once(']')?;
                if inside.is_empty() || !inside.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.') {
                    return None;
                }
                let port = match after {
                    "" => None,
                    p => Some(p.strip_prefix(':')?),
                };
                (format!("[{}]", inside.to_ascii_lowercase()), port)
            }
            None => {
                let (host, port) = match authority.rsplit_once(':') {
                    Some((host, port)) => (host, Some(port)),
                    None => (authority, None),
                };
                let valid = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_';
                if host.is_empty() || !host.bytes().all(valid) {
                    return None;
                }
                (host.to_ascii_lowercase(), port)
            }
        };
        let port = match port {
            None | Some("") => None,
            Some(p) if p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
                let port: u32 = p.parse().ok()?;
                (port <= 65_535).then_some(port)?;
                (port != default_port).then_some(port)
            }
            Some(_) => return None,
        };
        let host = match port {
            Some(port) => format!("{host}:{port}"),
            None => host,
        };
        Some(Origin { origin: format!("{scheme}://{host}"), host })
    }

    /// A configured origin: `scheme://host[:port]` with at most a `/` after it (the official
    /// server's `normalizeConfiguredOrigin`: no credentials, path, query or fragment).
    pub fn configured(text: &str) -> Result<Origin, &'static str> {
        let (scheme, rest) =
            text.split_once("://").ok_or("must be an absolute http(s) origin, e.g. https://api.example.com")?;
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#', '\\']) {
            return Err("must not include a path, query, or fragment");
        }
        if authority.contains('@') {
            return Err("must not include credentials");
        }
        if !matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https") {
            return Err("must use http or https");
        }
        Origin::from_parts(scheme, authority).ok_or("is not a valid origin (scheme://host[:port], ASCII host)")
    }
}

/// The validated `siwx` settings; present only when SIWX is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub origins: Vec<Origin>,
    pub max_age_seconds: u64,
    /// `info.statement` of every declaration; `None` leaves it out.
    pub statement: Option<String>,
}

impl Settings {
    /// The configured origin a resource URL is on, if any.
    pub fn origin_of(&self, url: &str) -> Option<&Origin> {
        let origin = Origin::of_url(url)?;
        self.origins.iter().find(|o| **o == origin)
    }

    /// Reads `siwx`: `Ok(None)` when it is absent or has no `origins` (SIWX off). An error is the
    /// field (under `siwx.`) and what is wrong with it.
    pub fn parse(value: Option<&Value>) -> Result<Option<Settings>, (String, String)> {
        let err = |field: &str, problem: &str| Err((format!("siwx.{field}"), problem.to_owned()));
        let object = match value {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Object(object)) => object,
            Some(_) => {
                return Err(("siwx".to_owned(), "must be an object {origins, maxAgeSeconds, statement}".to_owned()))
            }
        };
        for key in object.keys() {
            if !matches!(key.as_str(), "origins" | "maxAgeSeconds" | "statement") {
                return err(key, "unknown field");
            }
        }
        let max_age_seconds = match object.get("maxAgeSeconds") {
            None | Some(Value::Null) => DEFAULT_MAX_AGE_SECONDS,
            Some(v) => match v.as_u64() {
                Some(n) if (1..=MAX_MAX_AGE_SECONDS).contains(&n) => n,
                _ => return err("maxAgeSeconds", "must be an integer from 1 to 86400"),
            },
        };
        let statement = match object.get("statement") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.chars().any(char::is_control) => {
                return err("statement", "must be one line without control characters")
            }
            Some(Value::String(s)) if s.chars().count() > MAX_STATEMENT_CHARS => {
                return err("statement", "must be at most 512 characters")
            }
            // The package leaves an empty statement out.
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return err("statement", "must be a string"),
        };
        let list = match object.get("origins") {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Array(list)) if list.is_empty() => {
                return err("origins", "must list at least one origin (leave siwx out to turn it off)")
            }
            Some(Value::Array(list)) => list,
            Some(_) => return err("origins", "must be an array of origins, e.g. [\"https://api.example.com\"]"),
        };
        let mut origins: Vec<Origin> = Vec::with_capacity(list.len());
        for (index, item) in list.iter().enumerate() {
            let field = format!("origins[{index}]");
            let Value::String(text) = item else { return err(&field, "must be a string") };
            let origin = Origin::configured(text).map_err(|p| (format!("siwx.{field}"), p.to_owned()))?;
            if origins.contains(&origin) {
                return err(&field, "is listed twice");
            }
            origins.push(origin);
        }
        Ok(Some(Settings { origins, max_age_seconds, statement }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn origin(text: &str) -> Origin {
        Origin::configured(text).unwrap()
    }

    #[test]
    fn origins_are_normalised_as_url_does() {
        assert_eq!(origin("https://api.example.com").origin, "https://api.example.com");
        assert_eq!(origin("HTTPS://API.Example.com:443/").host, "api.example.com");
        assert_eq!(origin("http://127.0.0.1:10000").host, "127.0.0.1:10000");
        assert_eq!(origin("http://localhost:80").origin, "http://localhost");
        assert_eq!(origin("http://[::1]:8080").host, "[::1]:8080");
        assert_eq!(origin("https://a.example:8443").origin, "https://a.example:8443");
    }

    #[test]
    fn a_configured_origin_is_only_an_origin() {
        for (text, problem) in [
            ("api.example.com", "must be an absolute http(s) origin, e.g. https://api.example.com"),
            ("ftp://api.example.com", "must use http or https"),
            ("https://user:pw@api.example.com", "must not include credentials"),
            ("https://api.example.com/api", "must not include a path, query, or fragment"),
            ("https://api.example.com?x", "must not include a path, query, or fragment"),
            ("https://api.example.com#x", "must not include a path, query, or fragment"),
            ("https://", "is not a valid origin (scheme://host[:port], ASCII host)"),
            ("https://api.example.com:99999", "is not a valid origin (scheme://host[:port], ASCII host)"),
            ("https://api.example.com:x", "is not a valid origin (scheme://host[:port], ASCII host)"),
            ("https://bücher.example", "is not a valid origin (scheme://host[:port], ASCII host)"),
        ] {
            assert_eq!(Origin::configured(text), Err(problem), "{text}");
        }
    }

    #[test]
    fn the_origin_of_a_resource_url() {
        let o = |url: &str| Origin::of_url(url).map(|o| o.origin);
        assert_eq!(o("https://api.example.com/api/data?x=1").as_deref(), Some("https://api.example.com"));
        assert_eq!(o("http://LOCALHOST:10000?x").as_deref(), Some("http://localhost:10000"));
        assert_eq!(o("https://api.example.com:443#f").as_deref(), Some("https://api.example.com"));
        assert_eq!(o("https://evil.example@api.example.com/"), None);
        assert_eq!(o("https://api.example.com\\@evil.example/"), None);
        assert_eq!(o("javascript://api.example.com/"), None);
        assert_eq!(o("https:api.example.com"), None);
    }

    #[test]
    fn settings_parse_with_one_line_per_mistake() {
        assert_eq!(Settings::parse(None), Ok(None));
        assert_eq!(Settings::parse(Some(&json!({"statement": "hi"}))), Ok(None));
        let on = Settings::parse(Some(&json!({"origins": ["https://api.example.com", "http://localhost:10000"]})))
            .unwrap()
            .unwrap();
        assert_eq!(on.max_age_seconds, 300);
        assert_eq!(on.statement, None);
        assert_eq!(on.origin_of("http://localhost:10000/api").map(|o| o.host.as_str()), Some("localhost:10000"));
        assert_eq!(on.origin_of("http://localhost:10001/api"), None);
        let bad = |v: serde_json::Value| Settings::parse(Some(&v)).unwrap_err();
        assert_eq!(bad(json!([])).0, "siwx");
        assert_eq!(bad(json!({"origin": []})).0, "siwx.origin");
        assert_eq!(bad(json!({"origins": []})).0, "siwx.origins");
        assert_eq!(bad(json!({"origins": "https://a.example"})).0, "siwx.origins");
        assert_eq!(bad(json!({"origins": ["https://a.example", 1]})).0, "siwx.origins[1]");
        assert_eq!(bad(json!({"origins": ["https://a.example/x"]})).0, "siwx.origins[0]");
        assert_eq!(bad(json!({"origins": ["https://a.example", "https://A.example:443"]})).1, "is listed twice");
        assert_eq!(bad(json!({"origins": ["https://a.example"], "maxAgeSeconds": 0})).0, "siwx.maxAgeSeconds");
        assert_eq!(bad(json!({"origins": ["https://a.example"], "maxAgeSeconds": "300"})).0, "siwx.maxAgeSeconds");
        assert_eq!(bad(json!({"origins": ["https://a.example"], "statement": "a\nb"})).0, "siwx.statement");
        assert_eq!(bad(json!({"origins": ["https://a.example"], "statement": 1})).0, "siwx.statement");
    }
}
