//! End-to-end tests of the three listeners, in process, over real sockets.

use crate::app::{self, App, Bound};
use crate::http::client::{request, Conn};
use crate::testdata;
use serde_json::{json, Value};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};
use x402_access_pass::solana::decode_pubkey;

fn start() -> (Arc<App>, Bound) {
    start_with(None)
}

fn start_with(evm: Option<crate::evm::EvmConfig>) -> (Arc<App>, Bound) {
    let v = testdata::vectors();
    let merchant = decode_pubkey(v["keys"]["merchant"].as_str().unwrap()).unwrap();
    app::start(app::Options {
        listen: "127.0.0.1:0".into(),
        control_listen: "127.0.0.1:0".into(),
        rpc_listen: Some("127.0.0.1:0".into()),
        config: testdata::config(),
        evm,
        ata_owners: vec![merchant],
    })
    .unwrap()
}

fn wire(i: usize) -> (String, Vec<u8>) {
    let v = testdata::vectors();
    let w = &v["facilitatorWire"][i];
    (w["path"].as_str().unwrap().to_string(), w["req"].to_string().into_bytes())
}

fn fault(b: &Bound, body: Value) {
    let a = request(b.control, "POST", "/fault", body.to_string().as_bytes()).unwrap();
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
}

fn state(b: &Bound) -> Value {
    request(b.control, "GET", "/state", b"").unwrap().json()
}

#[test]
fn official_exchange_over_one_keep_alive_connection() {
    let (_app, b) = start();
    let v = testdata::vectors();
    let mut c = Conn::open(b.facilitator).unwrap();
    let a = c.request("GET", "/supported", b"").unwrap();
    assert_eq!(a.json(), v["facilitatorWire"][0]["resp"]);
    let (_, verify) = wire(1);
    let a = c.request("POST", "/verify", &verify).unwrap();
    assert_eq!(a.json(), v["facilitatorWire"][1]["resp"]);
    let (_, settle) = wire(2);
    let a = c.request("POST", "/settle", &settle).unwrap();
    assert_eq!(a.json(), v["facilitatorWire"][2]["resp"]);
    let a = c.request("POST", "/settle", &settle).unwrap();
    assert_eq!(a.json(), v["duplicateSettle"]);
    // A path prefix works too.
    let a = c.request("POST", "/x402/verify", &verify).unwrap();
    assert_eq!(a.json()["isValid"], true);
    let a = c.request("POST", "/verify", b"{not json").unwrap();
    assert_eq!(a.status, 400);

    let s = state(&b);
    assert_eq!(s["counts"], json!({"supported": 1, "verify": 3, "settle": 2, "settleSuccess": 1, "rpc": 0}));
    assert_eq!(s["settlements"][0]["transaction"], v["settleResult"]["decoded"]["transaction"]);
    assert_eq!(s["settlements"][0]["asset"], testdata::DEVNET_USDC);

    // Reset of faults keeps the records; records=1 clears them.
    request(b.control, "POST", "/reset", b"").unwrap();
    assert_eq!(state(&b)["settlements"].as_array().unwrap().len(), 1);
    request(b.control, "POST", "/reset?records=1", b"").unwrap();
    assert_eq!(state(&b)["settlements"].as_array().unwrap().len(), 0);
    assert_eq!(state(&b)["counts"]["verify"], 0);
    let a = c.request("POST", "/settle", &settle).unwrap();
    assert_eq!(a.json()["success"], true);
}

#[test]
fn status_garbage_and_counted_faults() {
    let (_app, b) = start();
    let (_, verify) = wire(1);
    fault(&b, json!({"endpoint": "verify", "mode": "status", "status": 503, "count": 1}));
    let mut c = Conn::open(b.facilitator).unwrap();
    assert_eq!(c.request("POST", "/verify", &verify).unwrap().status, 503);
    assert_eq!(c.request("POST", "/verify", &verify).unwrap().json()["isValid"], true);
    fault(&b, json!({"endpoint": "all", "mode": "garbage"}));
    let a = c.request("GET", "/supported", b"").unwrap();
    assert_eq!((a.status, a.body.as_slice()), (200, &b"not json{"[..]));
    fault(&b, json!({"endpoint": "supported", "mode": "none"}));
    assert_eq!(c.request("GET", "/supported", b"").unwrap().status, 200);
    assert_eq!(c.request("POST", "/verify", &verify).unwrap().body, b"not json{");
    fault(&b, json!({"endpoint": "all", "mode": "status"}));
    assert_eq!(c.request("POST", "/settle", &verify).unwrap().status, 500);
    request(b.control, "POST", "/reset", b"").unwrap();
    assert_eq!(c.request("POST", "/verify", &verify).unwrap().status, 200);
    // Bad fault requests are refused.
    let a = request(b.control, "POST", "/fault", br#"{"mode":"explode"}"#).unwrap();
    assert_eq!(a.status, 400);
}

#[test]
fn slow_truncated_and_reset() {
    let (_app, b) = start();
    let (_, settle) = wire(2);
    fault(&b, json!({"endpoint": "supported", "mode": "slow", "delayMs": 300, "count": 1}));
    let t = Instant::now();
    assert_eq!(request(b.facilitator, "GET", "/supported", b"").unwrap().status, 200);
    assert!(t.elapsed() >= Duration::from_millis(300));

    // Truncated: the settle happens, the answer is cut.
    fault(&b, json!({"endpoint": "settle", "mode": "truncated", "count": 1}));
    assert!(request(b.facilitator, "POST", "/settle", &settle).is_err());
    assert_eq!(state(&b)["settlements"].as_array().unwrap().len(), 1);

    // Reset: nothing processed, connection closed without an answer.
    request(b.control, "POST", "/reset?records=1", b"").unwrap();
    fault(&b, json!({"endpoint": "settle", "mode": "reset", "count": 1}));
    assert!(request(b.facilitator, "POST", "/settle", &settle).is_err());
    assert_eq!(state(&b)["settlements"].as_array().unwrap().len(), 0);
    assert_eq!(request(b.facilitator, "POST", "/settle", &settle).unwrap().json()["success"], true);
}

#[test]
fn settle_failure_then_success() {
    let (_app, b) = start();
    let (_, settle) = wire(2);
    fault(&b, json!({"endpoint": "settle", "mode": "settle_failure", "count": 1}));
    let a = request(b.facilitator, "POST", "/settle", &settle).unwrap().json();
    assert_eq!(a["success"], false);
    assert_eq!(a["errorReason"], "transaction_failed");
    assert_eq!(a["payer"], testdata::vectors()["keys"]["payer"]);
    assert_eq!(request(b.facilitator, "POST", "/settle", &settle).unwrap().json()["success"], true);
}

#[test]
fn refuse_closes_the_port_and_reopens_it() {
    let (_app, b) = start();
    let mut pooled = Conn::open(b.facilitator).unwrap();
    assert_eq!(pooled.request("GET", "/supported", b"").unwrap().status, 200);
    fault(&b, json!({"endpoint": "all", "mode": "refuse", "count": 1}));
    let err = TcpStream::connect(b.facilitator).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    // A pooled keep-alive connection is closed too.
    assert!(pooled.request("GET", "/supported", b"").is_err());
    // Control stays reachable; count is ignored for refuse.
    assert_eq!(request(b.control, "GET", "/state", b"").unwrap().status, 200);
    assert!(TcpStream::connect(b.facilitator).is_err());
    fault(&b, json!({"endpoint": "all", "mode": "none"}));
    assert_eq!(request(b.facilitator, "GET", "/supported", b"").unwrap().status, 200);
    // And again, cleared by /reset.
    fault(&b, json!({"endpoint": "verify", "mode": "refuse"}));
    assert!(TcpStream::connect(b.facilitator).is_err());
    request(b.control, "POST", "/reset", b"").unwrap();
    assert_eq!(request(b.facilitator, "GET", "/supported", b"").unwrap().status, 200);
}

#[test]
fn concurrent_settles_over_http_succeed_once() {
    let (_app, b) = start();
    let (_, settle) = wire(2);
    let settle = Arc::new(settle);
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let settle = Arc::clone(&settle);
            let addr = b.facilitator;
            std::thread::spawn(move || request(addr, "POST", "/settle", &settle).unwrap().json())
        })
        .collect();
    let answers: Vec<Value> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(answers.iter().filter(|a| a["success"] == true).count(), 1);
    assert_eq!(state(&b)["counts"]["settleSuccess"], 1);
    assert_eq!(state(&b)["counts"]["settle"], 8);
}

#[test]
fn rpc_over_http_with_cors() {
    let (_app, b) = start();
    let rpc = b.rpc.unwrap();
    let a = request(rpc, "OPTIONS", "/", b"").unwrap();
    assert_eq!(a.status, 204);
    assert_eq!(a.header("access-control-allow-origin"), Some("*"));
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "getLatestBlockhash", "params": []});
    let a = request(rpc, "POST", "/", body.to_string().as_bytes()).unwrap();
    assert_eq!(a.header("access-control-allow-origin"), Some("*"));
    assert!(a.json()["result"]["value"]["blockhash"].is_string());
    assert_eq!(state(&b)["counts"]["rpc"], 1);
}

#[test]
fn chunked_and_expect_continue_requests() {
    use std::io::{Read, Write};
    let (_app, b) = start();
    let (_, verify) = wire(1);
    let mut s = TcpStream::connect(b.facilitator).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut req = b"POST /verify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n".to_vec();
    let (first, second) = verify.split_at(100);
    for part in [first, second] {
        req.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        req.extend_from_slice(part);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    s.write_all(&req).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK"), "{out}");
    assert!(out.contains(r#""isValid":true"#));
}

#[test]
fn evm_payments_over_the_wire_with_balances_from_the_control_port() {
    let (_app, b) = start_with(Some(testdata::evm_config()));
    let v = testdata::evm_vectors();
    let mut c = Conn::open(b.facilitator).unwrap();
    let supported = c.request("GET", "/supported", b"").unwrap().json();
    assert!(supported["kinds"]
        .as_array()
        .unwrap()
        .contains(&json!({"x402Version": 2, "scheme": "exact", "network": "eip155:8453"})));
    assert_eq!(supported["signers"]["eip155:*"], v["supported"]["signers"]["eip155:*"]);
    // Solana is still served alongside.
    let (_, verify) = wire(1);
    assert_eq!(c.request("POST", "/verify", &verify).unwrap().json()["isValid"], true);

    let payer = v["keys"]["payer"]["address"].as_str().unwrap();
    let body = testdata::evm_body(&testdata::fresh_evm_payment("base", 0x31), &v["base"]["requirements"]);
    let body = body.to_string().into_bytes();
    assert_eq!(c.request("POST", "/verify", &body).unwrap().json(), json!({"isValid": true, "payer": payer}));
    let balance = |amount: &str| {
        let req = json!({"network": "eip155:8453", "address": payer, "amount": amount}).to_string();
        request(b.control, "POST", "/evm/balance", req.as_bytes()).unwrap().status
    };
    assert_eq!(balance("5"), 200);
    assert_eq!(
        c.request("POST", "/settle", &body).unwrap().json()["errorReason"],
        "invalid_exact_evm_insufficient_balance"
    );
    assert_eq!(balance("10000"), 200);
    let settled = c.request("POST", "/settle", &body).unwrap().json();
    assert_eq!((settled["success"].as_bool(), settled["payer"].as_str()), (Some(true), Some(payer)));
    let again = c.request("POST", "/settle", &body).unwrap().json();
    assert_eq!(again["errorReason"], "invalid_exact_evm_nonce_already_used");
    let s = state(&b);
    assert_eq!(s["settlements"].as_array().unwrap().len(), 1);
    assert_eq!(s["settlements"][0]["amount"], "10000");
    assert_eq!(s["settlements"][0]["transaction"], settled["transaction"]);
    assert!(s["evmBalances"]
        .as_array()
        .unwrap()
        .contains(&json!({"network": "eip155:8453", "address": payer, "amount": "0"})));
    // Balances only for served networks and real addresses.
    let bad = json!({"network": "eip155:1", "address": payer, "amount": "1"}).to_string();
    assert_eq!(request(b.control, "POST", "/evm/balance", bad.as_bytes()).unwrap().status, 400);
    let bad = json!({"network": "eip155:8453", "address": "0x12", "amount": "1"}).to_string();
    assert_eq!(request(b.control, "POST", "/evm/balance", bad.as_bytes()).unwrap().status, 400);
}
