//! The golden vectors of tests/vectors/siwx/siwx.json, made by the published
//! `@x402/extensions` 2.27.0 (tests/vectors/siwx/gen.mjs): declarations and message text byte
//! for byte, and the same verdict on every signed payload.

use serde_json::Value;

use super::*;

const VECTORS: &str = include_str!("../../tests/vectors/siwx/siwx.json");
const DEVNET: &str = "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1";

fn vectors() -> Value {
    serde_json::from_str(VECTORS).unwrap()
}

/// `super::check` as a worker's first sign-in takes it: no key decoded yet.
fn check(
    s: &Settings,
    networks: &[crate::networks::Network],
    leeway_seconds: u64,
    raw: &[u8],
    now_ms: u64,
) -> Result<String, Reason> {
    super::check(s, networks, &mut SignerKeys::new(4), leeway_seconds, raw, now_ms)
}

/// A seller on Solana devnet only.
fn devnet() -> Vec<crate::networks::Network> {
    let pay_to = Value::from("GyGKxMyg1p9SsHfm15MkNUu1u9TN2JtTspcdmrtGUdse");
    crate::networks::parse(None, Some(&pay_to), Some(&Value::from(DEVNET)), None).unwrap()
}

fn settings(origins: &Value, max_age_seconds: u64, statement: Option<&str>) -> Settings {
    Settings {
        origins: origins.as_array().unwrap().iter().map(|o| Origin::configured(o.as_str().unwrap()).unwrap()).collect(),
        max_age_seconds,
        statement: statement.map(str::to_owned),
    }
}

fn str_of(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

#[test]
fn declarations_are_the_packages_byte_for_byte() {
    let v = vectors();
    for d in v["declarations"].as_array().unwrap() {
        let settings = settings(&serde_json::json!([d["origin"]]), 300, d["statement"].as_str());
        let expected: Value = serde_json::from_str(d["json"].as_str().unwrap()).unwrap();
        let nonce = expected["info"]["nonce"].as_str().unwrap().to_owned();
        let origin = settings.origins[0].clone();
        let url = d["resourceUrl"].as_str().unwrap();
        let now = d["now"].as_u64().unwrap();
        let ours = declare::declaration(&settings, &origin, &[d["network"].as_str().unwrap()], url, now, &nonce);
        assert_eq!(ours, d["json"].as_str().unwrap(), "{}", d["name"]);
    }
}

#[test]
fn a_declaration_is_made_only_for_a_configured_origin() {
    let s = settings(&serde_json::json!(["https://api.example.com", "http://127.0.0.1:10000"]), 300, None);
    let declared = |url: &str| {
        declare::declare(&s, &[DEVNET], url, 1_772_366_400_000).map(|d| serde_json::from_str::<Value>(&d).unwrap())
    };
    let d = declared("http://127.0.0.1:10000/api/data").unwrap();
    assert_eq!(d["info"]["domain"], "127.0.0.1:10000");
    assert_eq!(d["info"]["uri"], "http://127.0.0.1:10000/api/data");
    assert_eq!(d["info"]["issuedAt"], "2026-03-01T12:00:00.000Z");
    assert_eq!(d["info"]["nonce"].as_str().unwrap().len(), 32);
    let again = declared("http://127.0.0.1:10000/api/data").unwrap();
    assert_ne!(d["info"]["nonce"], again["info"]["nonce"], "every declaration draws its own nonce");
    assert!(declare::declare(&s, &[DEVNET], "http://127.0.0.1:10001/api/data", 0).is_none());
    assert!(declare::declare(&s, &[DEVNET], "https://evil.example/api/data", 0).is_none());
    assert!(
        declare::declare(&s, &[DEVNET], "http://api.example.com/api/data", 0).is_none(),
        "scheme is part of the origin"
    );
}

#[test]
fn message_text_is_format_siws_message_byte_for_byte() {
    let v = vectors();
    for m in v["messages"].as_array().unwrap() {
        let info = &m["info"];
        let payload = Payload {
            domain: str_of(&info["domain"]).unwrap(),
            address: str_of(&m["address"]).unwrap(),
            statement: str_of(&info["statement"]),
            uri: str_of(&info["uri"]).unwrap(),
            version: str_of(&info["version"]).unwrap(),
            chain_id: str_of(&info["chainId"]).unwrap(),
            nonce: str_of(&info["nonce"]).unwrap(),
            issued_at: str_of(&info["issuedAt"]).unwrap(),
            request_id: str_of(&info["requestId"]),
            resources: info["resources"].as_array().map(|r| r.iter().map(|x| str_of(x).unwrap()).collect()),
            ..Payload::default()
        };
        assert_eq!(message::format(&payload), m["message"].as_str().unwrap(), "{}", m["name"]);
    }
    for c in v["cases"].as_array().unwrap().iter().filter(|c| c["expect"] == "ok") {
        let payload = header::parse(c["header"].as_str().unwrap().as_bytes()).unwrap();
        assert_eq!(message::format(&payload), c["message"].as_str().unwrap(), "{}", c["name"]);
    }
}

/// The package's code for a failed check, as the reason this filter counts.
fn reason_of_package(code: &str) -> &'static str {
    match code {
        "invalid_siwx_domain_mismatch" => "domain",
        "invalid_siwx_uri_mismatch" => "uri",
        "invalid_siwx_issued_at" | "invalid_siwx_issued_at_too_old" | "invalid_siwx_issued_at_in_future" => "issued_at",
        "invalid_siwx_expiration_time" | "invalid_siwx_expired" => "expired",
        "invalid_siwx_not_before" | "invalid_siwx_not_yet_valid" => "not_before",
        "invalid_siwx_signature" | "invalid_siwx_malformed_signature" => "signature",
        other => panic!("no reason for the package's {other}"),
    }
}

#[test]
fn every_signed_payload_gets_the_packages_verdict() {
    let v = vectors();
    // Twice through the cases with one worker's keys: the second time, every key that verified
    // once is already decoded (src/siwx/signers.rs), and nothing may change.
    let mut signers = SignerKeys::new(64);
    for c in v["cases"].as_array().unwrap().iter().chain(v["cases"].as_array().unwrap()) {
        let name = c["name"].as_str().unwrap();
        let s = settings(&c["origins"], c["maxAgeSeconds"].as_u64().unwrap(), None);
        let (header, now) = (c["header"].as_str().unwrap().as_bytes(), c["now"].as_u64().unwrap());
        let got = super::check(&s, &devnet(), &mut signers, 0, header, now);
        let got = match &got {
            Ok(address) => {
                assert_eq!(address, c["payload"]["address"].as_str().unwrap());
                "ok"
            }
            Err(reason) => reason.as_str(),
        };
        assert_eq!(got, c["expect"].as_str().unwrap(), "{name}");
        // Where this filter and the package differ, it is on purpose: the chain must be the
        // configured network (the package takes any `solana:*`, and throws on an EVM one).
        let package = &c["package"];
        assert_eq!(package["parse"], "parsed", "{name}");
        let package_verdict = match (package["validate"].as_str().unwrap(), package["verify"].as_str().unwrap()) {
            ("valid", "valid") => "ok",
            ("valid", verify) if verify.starts_with("threw") => "chain",
            ("valid", verify) => reason_of_package(verify),
            (validate, _) => reason_of_package(validate),
        };
        if got == "chain" {
            assert!(matches!(package_verdict, "ok" | "chain"), "{name}");
        } else {
            assert_eq!(got, package_verdict, "{name}");
        }
    }
}

#[test]
fn a_small_order_key_is_refused_though_classic_ed25519_accepts_it() {
    let v = vectors();
    let case = v["cases"].as_array().unwrap().iter().find(|c| c["name"] == "small-order-key").unwrap();
    assert_eq!(case["tweetnaclAlone"], true, "the forgery verifies under tweetnacl alone");
    let s = settings(&case["origins"], 300, None);
    let got = check(&s, &devnet(), 0, case["header"].as_str().unwrap().as_bytes(), case["now"].as_u64().unwrap());
    assert_eq!(got, Err(Reason::Signature));
}

#[test]
fn headers_the_package_cannot_parse_are_malformed_here_too() {
    let v = vectors();
    for m in v["malformed"].as_array().unwrap() {
        assert_ne!(m["package"], "parsed");
        assert_eq!(header::parse(m["header"].as_str().unwrap().as_bytes()), None, "{}", m["name"]);
    }
}

#[test]
fn a_wallet_whose_key_is_kept_decoded_is_still_held_to_every_signature() {
    let (s, case) = valid_case();
    let now = case["now"].as_u64().unwrap();
    let mut signers = SignerKeys::new(4);
    let header = case["header"].as_str().unwrap().as_bytes();
    assert!(super::check(&s, &devnet(), &mut signers, 0, header, now).is_ok());
    let address: [u8; 32] =
        bs58::decode(case["payload"]["address"].as_str().unwrap()).into_vec().unwrap().try_into().unwrap();
    assert!(signers.get(&address).is_some(), "the key that verified is kept");
    // The same wallet, another statement than the one signed; then a signature off by one bit.
    let mut other = case["payload"].clone();
    other["statement"] = Value::from("Another statement");
    assert_eq!(super::check(&s, &devnet(), &mut signers, 0, encode(&other).as_bytes(), now), Err(Reason::Signature));
    let mut signature = bs58::decode(case["payload"]["signature"].as_str().unwrap()).into_vec().unwrap();
    signature[40] ^= 1;
    let mut other = case["payload"].clone();
    other["signature"] = Value::from(bs58::encode(&signature).into_string());
    assert_eq!(super::check(&s, &devnet(), &mut signers, 0, encode(&other).as_bytes(), now), Err(Reason::Signature));
    assert!(super::check(&s, &devnet(), &mut signers, 0, header, now).is_ok());
}

fn valid_case() -> (Settings, Value) {
    let v = vectors();
    let case = v["cases"][0].clone();
    assert_eq!(case["name"], "valid");
    (settings(&case["origins"], 300, None), case)
}

fn encode(payload: &Value) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(payload.to_string())
}

#[test]
fn bytes_of_any_kind_never_trap_and_are_malformed() {
    let (s, case) = valid_case();
    let now = case["now"].as_u64().unwrap();
    let header = case["header"].as_str().unwrap().as_bytes().to_vec();
    let mut non_utf8 = header.clone();
    non_utf8[3] = 0xff;
    let oversized = [header.clone(), vec![b'A'; header::MAX_HEADER_BYTES]].concat();
    let unpadded = header.strip_suffix(b"=").unwrap_or(&header).to_vec();
    for raw in [non_utf8, oversized, b"\0\0\0\0".to_vec(), b"====".to_vec(), b"A".to_vec(), Vec::new()] {
        assert_eq!(check(&s, &devnet(), 0, &raw, now), Err(Reason::Malformed), "{raw:?}");
    }
    // atob's leniency: padding is optional.
    assert!(check(&s, &devnet(), 0, &unpadded, now).is_ok());
    // Not valid UTF-8 inside the base64.
    use base64::Engine as _;
    let latin1 = base64::engine::general_purpose::STANDARD.encode(b"{\"domain\":\"\xff\"}");
    assert_eq!(check(&s, &devnet(), 0, latin1.as_bytes(), now), Err(Reason::Malformed));
}

#[test]
fn control_characters_and_nulls_are_malformed() {
    let (s, case) = valid_case();
    let now = case["now"].as_u64().unwrap();
    for (field, value) in [
        ("statement", Value::from("Sign in\nURI: https://evil.example/")),
        ("nonce", Value::from("n\r")),
        ("resources", serde_json::json!(["https://api.example.com/\u{85}"])),
        ("statement", Value::Null),
        ("resources", serde_json::json!("https://api.example.com/")),
        ("signatureScheme", Value::from("rsa")),
    ] {
        let mut payload = case["payload"].clone();
        payload[field] = value;
        assert_eq!(check(&s, &devnet(), 0, encode(&payload).as_bytes(), now), Err(Reason::Malformed), "{field}");
    }
}

#[test]
fn the_domain_and_uri_are_judged_against_configured_origins_only() {
    let (_, case) = valid_case();
    let now = case["now"].as_u64().unwrap();
    let header = case["header"].as_str().unwrap().as_bytes();
    // Signed for https://api.example.com: worthless to a seller configured for another origin,
    // or for the same host over another scheme or port.
    for origins in [
        serde_json::json!(["https://shop.example.org"]),
        serde_json::json!(["http://api.example.com"]),
        serde_json::json!(["https://api.example.com:8443"]),
    ] {
        let s = settings(&origins, 300, None);
        assert!(matches!(check(&s, &devnet(), 0, header, now), Err(Reason::Domain | Reason::Uri)), "{origins}");
    }
    // `domain` right, but `uri` on the same host over http: the uri must be on that origin.
    let s = settings(&serde_json::json!(["https://api.example.com", "http://api.example.com"]), 300, None);
    let mut payload = case["payload"].clone();
    payload["uri"] = Value::from("https://api.example.com.evil.example/api/data");
    assert_eq!(check(&s, &devnet(), 0, encode(&payload).as_bytes(), now), Err(Reason::Uri));
    payload["uri"] = Value::from("not a url");
    assert_eq!(check(&s, &devnet(), 0, encode(&payload).as_bytes(), now), Err(Reason::Uri));
}

#[test]
fn times_are_bounded_with_the_configured_leeway() {
    let (s, case) = valid_case();
    let header = case["header"].as_str().unwrap().as_bytes();
    let issued = 1_772_366_400_000;
    assert_eq!(check(&s, &devnet(), 0, header, issued - 1), Err(Reason::IssuedAt));
    assert!(check(&s, &devnet(), 2, header, issued - 2_000).is_ok(), "within leewaySeconds of the future");
    assert_eq!(check(&s, &devnet(), 2, header, issued - 2_001), Err(Reason::IssuedAt));
    assert!(check(&s, &devnet(), 0, header, issued + 300_000).is_ok());
    assert_eq!(check(&s, &devnet(), 0, header, issued + 300_001), Err(Reason::IssuedAt));
    let short = Settings { max_age_seconds: 10, ..s.clone() };
    assert_eq!(check(&short, &devnet(), 0, header, issued + 10_001), Err(Reason::IssuedAt));
    // The configured network only.
    let mainnet = crate::networks::parse(
        None,
        Some(&Value::from("GRzLBcpDz3XkKQ1y2dmbezuXYRTUJ3vNueDNkma32unv")),
        Some(&Value::from("solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp")),
        None,
    )
    .unwrap();
    assert_eq!(check(&s, &mainnet, 0, header, issued), Err(Reason::Chain));
}

/// docs/behaviour.md §21: on EVM networks a sign-in is the EIP-4361 text `formatSIWEMessage`
/// builds, signed with EIP-191 (tests/vectors/evm/siwe.json, made by `@x402/extensions` 2.27.0 with
/// viem accounts); the wallet comes back lower-case, as its entitlement is kept.
mod evm {
    use super::*;

    const SIWE: &str = include_str!("../../tests/vectors/evm/siwe.json");

    /// A seller on Solana devnet, Base and Base Sepolia.
    fn sellers_networks() -> Vec<crate::networks::Network> {
        let networks = serde_json::json!([
            {"network": DEVNET, "payTo": "GyGKxMyg1p9SsHfm15MkNUu1u9TN2JtTspcdmrtGUdse"},
            {"network": "eip155:8453", "payTo": "0x3325a78425F17a7E487Eb5666b2bFd93aBb06c70"},
            {"network": "eip155:84532", "payTo": "0x3325a78425F17a7E487Eb5666b2bFd93aBb06c70"},
        ]);
        crate::networks::parse(Some(&networks), None, None, None).unwrap()
    }

    fn origin_settings(uri: &str) -> Settings {
        let url = uri.split('/').take(3).collect::<Vec<_>>().join("/");
        settings(&serde_json::json!([url]), 300, None)
    }

    fn issued_ms(payload: &Value) -> u64 {
        time::parse_millis(payload["issuedAt"].as_str().unwrap()).unwrap() as u64
    }

    #[test]
    fn the_official_evm_sign_ins_are_honoured_as_their_lower_case_wallet() {
        let v: Value = serde_json::from_str(SIWE).unwrap();
        for case in v["cases"].as_array().unwrap() {
            let payload = &case["payload"];
            let s = origin_settings(payload["uri"].as_str().unwrap());
            let got =
                check(&s, &sellers_networks(), 0, case["header"].as_str().unwrap().as_bytes(), issued_ms(payload));
            let payer = case["official"]["payer"].as_str().unwrap().to_lowercase();
            assert_eq!(got, Ok(payer), "{}", case["label"]);
        }
    }

    #[test]
    fn an_evm_sign_in_for_another_chain_text_or_key_is_refused() {
        let v: Value = serde_json::from_str(SIWE).unwrap();
        let case = &v["cases"][0];
        let payload = &case["payload"];
        let s = origin_settings(payload["uri"].as_str().unwrap());
        let now = issued_ms(payload);
        let encode = |p: &Value| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(p.to_string())
        };
        // A seller not on Base (the sign-in's chain): refused, whatever the signature.
        let devnet_only = devnet();
        assert_eq!(check(&s, &devnet_only, 0, case["header"].as_str().unwrap().as_bytes(), now), Err(Reason::Chain));
        // Another chain id than the one signed: the text differs, so the signer does.
        let mut other = payload.clone();
        other["chainId"] = Value::from("eip155:84532");
        assert_eq!(check(&s, &sellers_networks(), 0, encode(&other).as_bytes(), now), Err(Reason::Signature));
        // Another address than the signer's.
        let mut other = payload.clone();
        other["address"] = v["cases"][1]["payload"]["address"].clone();
        assert_eq!(check(&s, &sellers_networks(), 0, encode(&other).as_bytes(), now), Err(Reason::Signature));
        // A Solana signature type on an EVM chain.
        let mut other = payload.clone();
        other["type"] = Value::from("ed25519");
        assert_eq!(check(&s, &sellers_networks(), 0, encode(&other).as_bytes(), now), Err(Reason::Signature));
        // The high-s twin of the signature.
        let signature = crate::evm::hex::decode_fixed::<65>(payload["signature"].as_str().unwrap()).unwrap();
        let parsed = k256::ecdsa::Signature::from_slice(&signature[..64]).unwrap();
        let (r, s_scalar) = parsed.split_scalars();
        let twin = k256::ecdsa::Signature::from_scalars(r, -*s_scalar).unwrap();
        let mut bytes = [0u8; 65];
        bytes[..64].copy_from_slice(&twin.to_bytes());
        bytes[64] = if signature[64] == 27 { 28 } else { 27 };
        let mut other = payload.clone();
        other["signature"] = Value::from(crate::evm::hex::encode(&bytes));
        assert_eq!(check(&s, &sellers_networks(), 0, encode(&other).as_bytes(), now), Err(Reason::Signature));
    }

    #[test]
    fn the_declaration_lists_every_network_with_its_signature_type_in_order() {
        let s = settings(&serde_json::json!(["https://api.example.com"]), 300, None);
        let networks = [DEVNET, "eip155:84532"];
        let json = declare::declare(&s, &networks, "https://api.example.com/api/data", 1_796_605_200_000).unwrap();
        let declared: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            declared["supportedChains"],
            serde_json::json!([{"chainId": DEVNET, "type": "ed25519"}, {"chainId": "eip155:84532", "type": "eip191"}])
        );
    }
}
