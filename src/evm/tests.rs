//! The EVM core against the golden vectors captured from the official packages
//! (tests/vectors/evm/, made by capture.mjs with @x402/evm and @x402/extensions 2.27.0).

use serde_json::Value;

use super::address::{Address, Case};
use super::eip712::{chain_id, Domain};
use super::exact::{check, replay_key, CheckError, Terms};
use super::hex;
use super::payload::{ExactEvmPayload, PayloadError};
use super::signature::SignatureError;
use super::siwe::{self, SiweFields, VerifyError};

const EXACT: &str = include_str!("../../tests/vectors/evm/exact.json");
const SIWE: &str = include_str!("../../tests/vectors/evm/siwe.json");

fn vectors() -> Value {
    serde_json::from_str(EXACT).unwrap()
}

fn address(text: &Value) -> Address {
    Address::parse(text.as_str().unwrap(), Case::Strict).unwrap()
}

/// The seller's terms as the vector's requirements state them.
fn terms(requirements: &Value) -> Terms<'_> {
    Terms {
        domain: Domain {
            name: requirements["extra"]["name"].as_str().unwrap(),
            version: requirements["extra"]["version"].as_str().unwrap(),
            chain_id: chain_id(requirements["network"].as_str().unwrap()).unwrap(),
            verifying_contract: address(&requirements["asset"]),
        },
        pay_to: address(&requirements["payTo"]),
        amount: requirements["amount"].as_str().unwrap().parse().unwrap(),
    }
}

fn decode(payment: &Value) -> ExactEvmPayload {
    ExactEvmPayload::from_value(&payment["payload"]).unwrap()
}

const NETWORKS: [&str; 2] = ["baseSepolia", "base"];

#[test]
fn the_official_clients_payment_decodes_hashes_and_recovers_its_payer() {
    let v = vectors();
    for net in NETWORKS {
        let case = &v[net];
        let terms = terms(&case["requirements"]);
        let payment = decode(&case["paymentPayload"]);
        assert_eq!(hex::encode(&terms.domain.separator()), case["domainSeparator"].as_str().unwrap(), "{net}");
        let hash = payment.authorization.signing_hash(&terms.domain);
        assert_eq!(hex::encode(&hash), case["signingHash"].as_str().unwrap(), "{net}");

        let checked = check(&payment, &terms, case["now"].as_u64().unwrap()).unwrap();
        assert_eq!(checked.payer, address(&case["recoveredFrom"]), "{net}");
        assert_eq!(checked.payer, address(&v["keys"]["payer"]["address"]));
        assert_eq!(checked.signing_hash, hash);
        assert_eq!(case["official"]["isValid"], true);
    }
}

#[test]
fn the_payment_signature_header_carries_the_same_payload() {
    use base64::Engine as _;
    let v = vectors();
    for net in NETWORKS {
        let header = v[net]["paymentSignatureHeader"].as_str().unwrap();
        let json = base64::engine::general_purpose::STANDARD.decode(header).unwrap();
        let decoded: Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(decoded, v[net]["paymentPayload"]);
        let payload = serde_json::to_vec(&decoded["payload"]).unwrap();
        assert_eq!(ExactEvmPayload::from_json(&payload).unwrap(), decode(&decoded));
    }
}

#[test]
fn the_validity_window_is_valid_after_to_before_valid_before() {
    let v = vectors();
    let case = &v["baseSepolia"];
    let terms = terms(&case["requirements"]);
    let payment = decode(&case["paymentPayload"]);
    let valid_before: u64 =
        case["paymentPayload"]["payload"]["authorization"]["validBefore"].as_str().unwrap().parse().unwrap();
    assert!(check(&payment, &terms, valid_before - 1).is_ok());
    assert_eq!(check(&payment, &terms, valid_before), Err(CheckError::Expired));
    // The official facilitator refuses the same payment once it has expired.
    let expired = &case["negatives"]["expired"];
    assert_eq!(check(&payment, &terms, expired["now"].as_u64().unwrap()), Err(CheckError::Expired));
    assert_eq!(expired["official"]["invalidReason"], CheckError::Expired.facilitator_reason());

    let mut later = payment;
    later.authorization.valid_after = super::uint::U256::from_u64(case["now"].as_u64().unwrap() + 1);
    assert_eq!(check(&later, &terms, case["now"].as_u64().unwrap()), Err(CheckError::NotYetValid));
}

/// Each broken variant the official facilitator refused is refused here too, before any callout.
#[test]
fn the_official_facilitators_refusals_are_local_refusals() {
    let v = vectors();
    for net in NETWORKS {
        let case = &v[net];
        let now = case["now"].as_u64().unwrap();
        let negatives = case["negatives"].as_object().unwrap();
        for (name, negative) in negatives {
            if name == "expired" {
                continue;
            }
            let official = negative["official"]["invalidReason"].as_str().unwrap();
            assert_eq!(negative["official"]["isValid"], false, "{net} {name}");
            let seller = terms(&negative["requirements"]);
            let payment = decode(&negative["paymentPayload"]);
            let refusal = check(&payment, &seller, now).unwrap_err();
            let expected = match name.as_str() {
                // The value and recipient the seller asks for are checked before the signature.
                "tamperedValue" | "amountRequired" => CheckError::AmountMismatch,
                "tamperedTo" => CheckError::RecipientMismatch,
                "otherFrom" | "wrongChainDomain" | "wrongName" => CheckError::SignerMismatch,
                other => panic!("a negative vector without an expectation: {other}"),
            };
            assert_eq!(refusal, expected, "{net} {name}");
            if name == "amountRequired" || expected == CheckError::SignerMismatch {
                assert_eq!(refusal.facilitator_reason(), official, "{net} {name}");
            }
        }
    }
}

#[test]
fn a_signature_by_another_key_does_not_prove_the_payer() {
    let v = vectors();
    let case = &v["base"];
    let terms = terms(&case["requirements"]);
    let mut payment = decode(&case["otherSignerPayment"]);
    // The other account's own payment is valid for the other account...
    assert_eq!(
        check(&payment, &terms, case["now"].as_u64().unwrap()).unwrap().payer,
        address(&v["keys"]["other"]["address"])
    );
    // ...and claiming it is the payer's is not.
    payment.authorization.from = address(&v["keys"]["payer"]["address"]);
    assert_eq!(check(&payment, &terms, case["now"].as_u64().unwrap()), Err(CheckError::SignerMismatch));
}

#[test]
fn the_malleated_high_s_twin_is_refused() {
    let v = vectors();
    let case = &v["baseSepolia"];
    let mut payload = case["paymentPayload"]["payload"].clone();
    let signature = hex::decode_fixed::<65>(payload["signature"].as_str().unwrap()).unwrap();
    let parsed = k256::ecdsa::Signature::from_slice(&signature[..64]).unwrap();
    let (r, s) = parsed.split_scalars();
    let twin = k256::ecdsa::Signature::from_scalars(r, -*s).unwrap();
    let mut bytes = [0u8; 65];
    bytes[..64].copy_from_slice(&twin.to_bytes());
    bytes[64] = if signature[64] == 27 { 28 } else { 27 };
    payload["signature"] = Value::from(hex::encode(&bytes));
    assert_eq!(ExactEvmPayload::from_value(&payload), Err(PayloadError::Signature(SignatureError::HighS)));
}

#[test]
fn v_0_or_1_is_taken_like_27_or_28() {
    let v = vectors();
    let case = &v["base"];
    let mut payload = case["paymentPayload"]["payload"].clone();
    let mut signature = hex::decode_fixed::<65>(payload["signature"].as_str().unwrap()).unwrap();
    signature[64] -= 27;
    payload["signature"] = Value::from(hex::encode(&signature));
    let payment = ExactEvmPayload::from_value(&payload).unwrap();
    let checked = check(&payment, &terms(&case["requirements"]), case["now"].as_u64().unwrap()).unwrap();
    assert_eq!(checked.payer, address(&v["keys"]["payer"]["address"]));
}

#[test]
fn malformed_payloads_are_refused_without_panicking() {
    let v = vectors();
    let good = v["base"]["paymentPayload"]["payload"].clone();
    let with = |path: &[&str], value: Value| {
        let mut p = good.clone();
        let mut slot = &mut p;
        for key in path {
            slot = &mut slot[*key];
        }
        *slot = value;
        ExactEvmPayload::from_value(&p)
    };
    assert_eq!(with(&["authorization", "value"], Value::from(10000)), Err(PayloadError::Shape));
    assert_eq!(with(&["authorization", "value"], Value::from("-1")), Err(PayloadError::Number));
    assert_eq!(with(&["authorization", "validBefore"], Value::from("1e9")), Err(PayloadError::Number));
    assert_eq!(with(&["authorization", "nonce"], Value::from("0x11")), Err(PayloadError::Nonce));
    assert_eq!(
        with(&["authorization", "to"], Value::from("0x3325A78425F17a7E487Eb5666b2bFd93aBb06c70")),
        Err(PayloadError::Address)
    );
    assert_eq!(with(&["authorization"], Value::Null), Err(PayloadError::Shape));
    assert_eq!(with(&["signature"], Value::from("0x1234")), Err(PayloadError::Signature(SignatureError::Encoding)));
    // A smart-wallet (ERC-6492) signature: longer than 65 bytes, only a chain can judge it.
    let long = format!("0x{}", "ab".repeat(200));
    assert_eq!(with(&["signature"], Value::from(long)), Err(PayloadError::Signature(SignatureError::Encoding)));
    assert_eq!(
        ExactEvmPayload::from_value(&serde_json::json!({"permit2Authorization": {}, "signature": "0x"})),
        Err(PayloadError::Permit2)
    );
    assert_eq!(ExactEvmPayload::from_json(b"{"), Err(PayloadError::Shape));
    assert_eq!(ExactEvmPayload::from_json(&vec![b' '; 5000]), Err(PayloadError::Shape));
    // Lower-case addresses are what some clients send: taken, the same payment.
    let lower =
        with(&["authorization", "to"], Value::from(good["authorization"]["to"].as_str().unwrap().to_ascii_lowercase()));
    assert_eq!(lower.unwrap(), ExactEvmPayload::from_value(&good).unwrap());
}

#[test]
fn the_replay_key_is_from_and_nonce() {
    let v = vectors();
    let a = decode(&v["base"]["paymentPayload"]);
    let b = decode(&v["baseSepolia"]["paymentPayload"]);
    let key = |p: &ExactEvmPayload| replay_key(&p.authorization.from, &p.authorization.nonce);
    assert_ne!(key(&a), key(&b), "other nonce, other payment");
    let mut same = a;
    same.authorization.value = super::uint::U256::from_u64(1);
    assert_eq!(key(&a), key(&same), "the same authorization nonce is the same payment");
    let checked = check(&a, &terms(&v["base"]["requirements"]), v["base"]["now"].as_u64().unwrap()).unwrap();
    assert_eq!(checked.replay_key, key(&a));
}

fn siwe_fields<'a>(payload: &'a Value, resources: &'a [&'a str]) -> SiweFields<'a> {
    let text = |key: &str| payload.get(key).and_then(Value::as_str);
    SiweFields {
        domain: text("domain").unwrap(),
        address: text("address").unwrap(),
        statement: text("statement"),
        uri: text("uri").unwrap(),
        version: text("version").unwrap(),
        chain_id: text("chainId").unwrap(),
        nonce: text("nonce").unwrap(),
        issued_at: text("issuedAt").unwrap(),
        expiration_time: text("expirationTime"),
        not_before: text("notBefore"),
        request_id: text("requestId"),
        resources: payload.get("resources").map(|_| resources),
    }
}

fn resources(payload: &Value) -> Vec<&str> {
    payload
        .get("resources")
        .and_then(Value::as_array)
        .map(|list| list.iter().map(|r| r.as_str().unwrap()).collect())
        .unwrap_or_default()
}

#[test]
fn siwe_messages_are_byte_for_byte_format_siwe_message_and_verify() {
    let v: Value = serde_json::from_str(SIWE).unwrap();
    for case in v["cases"].as_array().unwrap() {
        let payload = &case["payload"];
        let list = resources(payload);
        let fields = siwe_fields(payload, &list);
        let label = case["label"].as_str().unwrap();
        assert_eq!(siwe::format_message(&fields).unwrap(), case["message"].as_str().unwrap(), "{label}");
        assert_eq!(
            hex::encode(&siwe::personal_sign_hash(case["message"].as_str().unwrap().as_bytes())),
            case["personalSignHash"].as_str().unwrap()
        );
        let signer = siwe::verify(&fields, payload["signature"].as_str().unwrap()).unwrap();
        assert_eq!(signer, address(&case["official"]["payer"]), "{label}");
    }
}

#[test]
fn a_siwe_signature_for_other_text_or_by_another_key_proves_nothing() {
    let v: Value = serde_json::from_str(SIWE).unwrap();
    let case = &v["cases"][0];
    let payload = &case["payload"];
    let list = resources(payload);
    let signature = payload["signature"].as_str().unwrap();
    let fields = siwe_fields(payload, &list);

    let other_domain = SiweFields { domain: "evil.example.com", ..fields };
    assert_eq!(siwe::verify(&other_domain, signature), Err(VerifyError::SignerMismatch));
    let other_nonce = SiweFields { nonce: "ffffffffffffffffffffffffffffffff", ..fields };
    assert_eq!(siwe::verify(&other_nonce, signature), Err(VerifyError::SignerMismatch));
    let no_statement = SiweFields { statement: None, ..fields };
    assert_eq!(siwe::verify(&no_statement, signature), Err(VerifyError::SignerMismatch));
    // Claiming another account's address with this signature.
    let other = v["keys"]["other"]["address"].as_str().unwrap();
    let claimed = SiweFields { address: other, ..fields };
    assert_eq!(siwe::verify(&claimed, signature), Err(VerifyError::SignerMismatch));
    // The same address lower-case is the same account (rendered checksummed, as the package does).
    let lower = fields.address.to_ascii_lowercase();
    let lower_fields = SiweFields { address: &lower, ..fields };
    assert!(siwe::verify(&lower_fields, signature).is_ok());
    // A garbage signature.
    assert!(matches!(siwe::verify(&fields, "0x00"), Err(VerifyError::Signature(_))));
    let zero = format!("0x{}1b", "00".repeat(64));
    assert!(matches!(siwe::verify(&fields, &zero), Err(VerifyError::Signature(SignatureError::Scalar))));
}
