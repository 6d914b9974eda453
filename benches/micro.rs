//! Micro-benchmarks of the filter's core, natively (std only, no harness):
//!
//!     cargo bench --bench micro                      # all, ~20 s
//!     cargo bench --bench micro -- --quick           # fewer, shorter rounds
//!     cargo bench --bench micro -- cached            # those whose name contains "cached"
//!     cargo bench --bench micro -- --json out.json   # also write the results as JSON
//!
//! Each benchmark is calibrated to a round of ~50 ms (10 ms with `--quick`), then timed for
//! several rounds; the median round is reported as ns/op (the fastest too). Inputs and outputs
//! go through `std::hint::black_box`. Native figures: the wasm under V8 is slower, but the
//! ratios between them hold (see bench/results.md for the whole-request numbers in Envoy).

use std::hint::black_box;
use std::time::Instant;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use x402_access_pass::challenge::{self, Challenge};
use x402_access_pass::config::Config;
use x402_access_pass::offer;
use x402_access_pass::payment;
use x402_access_pass::solana;
use x402_access_pass::token::{self, PassCache, PassClaims};

/// The golden vectors, compiled in (tests/vectors/README.md).
const VECTORS: &str = include_str!("../tests/vectors/x402-svm-exact.json");
const SIWX_VECTORS: &str = include_str!("../tests/vectors/siwx/siwx.json");
const EVM_VECTORS: &str = include_str!("../tests/vectors/evm/exact.json");
const SIWE_VECTORS: &str = include_str!("../tests/vectors/evm/siwe.json");
const VECTORS_NAME: &str = "tests/vectors/x402-svm-exact.json";
const NOW: u64 = 1_800_000_000;
const PAY_TO: &str = "GyGKxMyg1p9SsHfm15MkNUu1u9TN2JtTspcdmrtGUdse";
const FEE_PAYER: &str = "9hSR6S7WPtxmTojgo6GG3k4yDPecgJY292j7xrsUGWBu";
const PAYER: &str = "AKnL4NNf3DGWZJS6cPknBuEGnVsV4A4m5tgebLHaRSZ9";
/// base64 of the 32-byte Ed25519 seed 0x07 * 32.
const ED_SEED_B64: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

struct Options {
    quick: bool,
    json: Option<String>,
    filters: Vec<String>,
}

struct Measured {
    name: &'static str,
    what: &'static str,
    median_ns: f64,
    min_ns: f64,
    iterations: u64,
    rounds: usize,
}

fn fail(what: &str, problem: impl std::fmt::Display) -> ! {
    eprintln!("micro: {what}: {problem}");
    std::process::exit(1);
}

fn options() -> Options {
    let mut opts = Options { quick: false, json: None, filters: Vec::new() };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            // `cargo bench` passes --bench to harness = false targets.
            "--bench" => {}
            "--quick" => opts.quick = true,
            "--json" => opts.json = Some(args.next().unwrap_or_else(|| fail("--json", "needs a path"))),
            other if other.starts_with("--") => fail("unknown option", other),
            other => opts.filters.push(other.to_owned()),
        }
    }
    opts
}

/// Times `f`: calibrates the iterations of one round, then returns the median and the
/// fastest round in ns per call.
fn measure<T>(opts: &Options, mut f: impl FnMut() -> T) -> (f64, f64, u64, usize) {
    let round_ns: u128 = if opts.quick { 10_000_000 } else { 50_000_000 };
    let rounds = if opts.quick { 5 } else { 15 };
    // warm up and calibrate
    let mut iterations: u64 = 1;
    loop {
        let start = Instant::now();
        for _ in 0..iterations {
            black_box(f());
        }
        let elapsed = start.elapsed().as_nanos();
        if elapsed >= round_ns / 4 || iterations >= 1 << 40 {
            let per = (elapsed.max(1) as f64) / iterations as f64;
            iterations = ((round_ns as f64 / per).ceil() as u64).max(1);
            break;
        }
        iterations *= 4;
    }
    let mut per_op: Vec<f64> = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iterations {
                black_box(f());
            }
            start.elapsed().as_nanos() as f64 / iterations as f64
        })
        .collect();
    per_op.sort_by(f64::total_cmp);
    let median = per_op.get(per_op.len() / 2).copied().unwrap_or(f64::NAN);
    let min = per_op.first().copied().unwrap_or(f64::NAN);
    (median, min, iterations, rounds)
}

fn config(keys: &str) -> Config {
    let json = format!(
        r#"{{"payTo":"{PAY_TO}","network":"solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1",
            "tiers":{{"5m":"0.05","1h":"0.50","24h":"2.00"}},"ratePerHour":"0.50","feePayer":"{FEE_PAYER}",
            "protect":[{{"prefix":"/api/"}}],"bypass":[{{"prefix":"/api/public/"}}],{keys}}}"#
    );
    Config::parse(json.as_bytes(), &|_| None).unwrap_or_else(|e| fail("config", e))
}

fn pass(config: &Config) -> String {
    let claims = PassClaims {
        sub: token::SUBJECT.into(),
        tier: "24h".into(),
        duration: 86_400,
        iat: NOW - 60,
        exp: NOW - 60 + 86_400,
        payer: PAYER.into(),
        network: config.network.clone(),
        iss: config.issuer.clone(),
        aud: None,
    };
    token::sign(&config.keys, &claims).unwrap_or_else(|e| fail("sign", e))
}

fn main() {
    let opts = options();
    let hs = config(r#""secret":"bench-secret-0123456789abcdef0123456789""#);
    let ed = config(&format!(r#""keys":[{{"kid":"ed","alg":"EdDSA","privateKey":"{ED_SEED_B64}"}}]"#));
    let hs_pass = pass(&hs);
    let ed_pass = pass(&ed);

    let vectors: serde_json::Value = serde_json::from_str(VECTORS).unwrap_or_else(|e| fail(VECTORS_NAME, e));
    let header = vectors
        .pointer("/paymentSignatureHeader/PAYMENT-SIGNATURE")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_else(|| fail(VECTORS_NAME, "no paymentSignatureHeader.PAYMENT-SIGNATURE"))
        .to_owned();
    let tx = vectors
        .pointer("/decodedPaymentPayload/payload/transaction")
        .and_then(serde_json::Value::as_str)
        .map(|b64| BASE64.decode(b64))
        .unwrap_or_else(|| fail(VECTORS_NAME, "no decodedPaymentPayload.payload.transaction"))
        .unwrap_or_else(|e| fail("transaction base64", e));

    // Sanity: every input is valid, so the benchmarks time the success paths.
    if token::verify(&hs.keys, &hs.verify_policy, hs_pass.as_bytes(), NOW).is_err()
        || token::verify(&ed.keys, &ed.verify_policy, ed_pass.as_bytes(), NOW).is_err()
    {
        fail("passes", "a pass does not verify");
    }
    if let Err(e) = payment::decode_header(&hs, payment::Wire::V2, header.as_bytes()) {
        fail("PAYMENT-SIGNATURE", format!("{e:?}"));
    }
    if let Err(e) = solana::Transaction::decode(&tx) {
        fail("transaction", format!("{e:?}"));
    }
    let path: &[u8] = b"/api/data?page=2";
    let offer = offer::candidates(&hs, path).into_iter().next().unwrap_or_else(|| fail("offer", "none"));
    let url = challenge::resource_url(None, Some(b"http"), b"127.0.0.1:10000", path);

    let mut results: Vec<Measured> = Vec::new();
    let mut run = |name: &'static str, what: &'static str, f: &mut dyn FnMut() -> usize| {
        if !opts.filters.is_empty() && !opts.filters.iter().any(|p| name.contains(p.as_str())) {
            return;
        }
        let (median_ns, min_ns, iterations, rounds) = measure(&opts, f);
        println!(
            "{name:<22} {median_ns:>12.1} ns/op   (fastest {min_ns:.1}; {rounds} rounds of {iterations})   {what}"
        );
        results.push(Measured { name, what, median_ns, min_ns, iterations, rounds });
    };

    run("verify_hs256", "token::verify, HS256 pass, uncached", &mut || {
        token::verify(&hs.keys, &hs.verify_policy, black_box(hs_pass.as_bytes()), black_box(NOW))
            .map_or(0, |c| c.exp as usize)
    });
    run("verify_eddsa", "token::verify, EdDSA pass, uncached", &mut || {
        token::verify(&ed.keys, &ed.verify_policy, black_box(ed_pass.as_bytes()), black_box(NOW))
            .map_or(0, |c| c.exp as usize)
    });
    let mut cache = PassCache::new(8_192);
    run("verify_cached_hs256", "token::verify_cached, HS256 pass, cache hit", &mut || {
        token::verify_cached(&mut cache, &hs.keys, &hs.verify_policy, black_box(hs_pass.as_bytes()), black_box(NOW))
            .map_or(0, |c| c.exp as usize)
    });
    let mut ed_cache = PassCache::new(8_192);
    run("verify_cached_eddsa", "token::verify_cached, EdDSA pass, cache hit", &mut || {
        token::verify_cached(&mut ed_cache, &ed.keys, &ed.verify_policy, black_box(ed_pass.as_bytes()), black_box(NOW))
            .map_or(0, |c| c.exp as usize)
    });
    run("challenge", "Challenge::new + .response (JSON body)", &mut || {
        let c = Challenge::new(&hs, black_box(&offer), black_box(url.clone()), FEE_PAYER);
        let response = c.response(&hs, false);
        response.body.len() + response.headers.len()
    });
    run("payment_decode_header", "payment::decode_header (vector PAYMENT-SIGNATURE)", &mut || {
        usize::from(black_box(payment::decode_header(&hs, payment::Wire::V2, black_box(header.as_bytes()))).is_ok())
    });
    run("solana_tx_decode", "solana::Transaction::decode (vector transaction)", &mut || {
        usize::from(black_box(solana::Transaction::decode(black_box(&tx))).is_ok())
    });

    // Sign-In-With-X: the package's valid header, at its own clock (tests/vectors/siwx/siwx.json).
    let siwx_vectors: serde_json::Value = serde_json::from_str(SIWX_VECTORS).unwrap_or_else(|e| fail("siwx.json", e));
    let case = siwx_vectors.pointer("/cases/0").unwrap_or_else(|| fail("siwx.json", "no cases"));
    let siwx_header = case.get("header").and_then(serde_json::Value::as_str);
    let siwx_header = siwx_header.unwrap_or_else(|| fail("siwx.json", "no header")).to_owned();
    let siwx_now = case.get("now").and_then(serde_json::Value::as_u64).unwrap_or_else(|| fail("siwx.json", "no now"));
    let origins = case.get("origins").cloned().unwrap_or_default();
    let settings = x402_access_pass::siwx::Settings::parse(Some(&serde_json::json!({"origins": origins})))
        .ok()
        .flatten()
        .unwrap_or_else(|| fail("siwx settings", "refused"));
    let network = &hs.networks;
    let mut signers = x402_access_pass::siwx::SignerKeys::default();
    if let Err(e) = x402_access_pass::siwx::check(&settings, network, &mut signers, 0, siwx_header.as_bytes(), siwx_now)
    {
        fail("SIGN-IN-WITH-X", format!("{e:?}"));
    }
    let payload =
        x402_access_pass::siwx::header::parse(siwx_header.as_bytes()).unwrap_or_else(|| fail("siwx", "parse"));
    run(
        "siwx_verify_first",
        "siwx::verify::verify: the Ed25519 check of a wallet's first sign-in (key decoded)",
        &mut || {
            let mut first = x402_access_pass::siwx::SignerKeys::new(1);
            usize::from(x402_access_pass::siwx::verify::verify(network, &mut first, black_box(&payload)).is_ok())
        },
    );
    run(
        "siwx_verify",
        "siwx::verify::verify: the Ed25519 check of a sign-in, the wallet's key kept decoded",
        &mut || usize::from(x402_access_pass::siwx::verify::verify(network, &mut signers, black_box(&payload)).is_ok()),
    );
    run(
        "siwx_check",
        "siwx::check: a whole SIGN-IN-WITH-X (parse, validate, Ed25519), the key kept decoded",
        &mut || {
            let raw = black_box(siwx_header.as_bytes());
            usize::from(x402_access_pass::siwx::check(&settings, network, &mut signers, 0, raw, siwx_now).is_ok())
        },
    );

    // EVM (docs/behaviour.md §21): the local checks of the official client's Base Sepolia payment
    // (tests/vectors/evm/exact.json) at its own clock, and an EIP-191 sign-in (siwe.json).
    let evm_vectors: serde_json::Value = serde_json::from_str(EVM_VECTORS).unwrap_or_else(|e| fail("exact.json", e));
    let evm_case = evm_vectors.get("baseSepolia").unwrap_or_else(|| fail("exact.json", "no baseSepolia"));
    let evm_header = evm_case.get("paymentSignatureHeader").and_then(serde_json::Value::as_str);
    let evm_header = evm_header.unwrap_or_else(|| fail("exact.json", "no header")).to_owned();
    let evm_now = evm_case.get("now").and_then(serde_json::Value::as_u64).unwrap_or_else(|| fail("exact.json", "now"));
    let pay_to = evm_case.pointer("/requirements/payTo").cloned().unwrap_or_default();
    let evm_seller = Config::parse(
        serde_json::json!({"networks": [{"network": "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1", "payTo": PAY_TO},
                                        {"network": "eip155:84532", "payTo": pay_to}],
                           "tiers": {"5m": "0.001"}, "secret": "bench-secret-0123456789abcdef0123456789"})
        .to_string()
        .as_bytes(),
        &|_| None,
    )
    .unwrap_or_else(|e| fail("EVM config", e));
    let evm_check = |header: &[u8]| {
        payment::decode_header(&evm_seller, payment::Wire::V2, header)
            .and_then(|p| payment::check(&evm_seller, b"/weather", p, || evm_now))
    };
    if let Err(e) = evm_check(evm_header.as_bytes()) {
        fail("EVM PAYMENT-SIGNATURE", format!("{e:?}"));
    }
    run(
        "evm_payment_check",
        "payment::decode_header + check: EVM exact (EIP-712 hash, secp256k1 recovery)",
        &mut || usize::from(evm_check(black_box(evm_header.as_bytes())).is_ok()),
    );
    let siwe_vectors: serde_json::Value = serde_json::from_str(SIWE_VECTORS).unwrap_or_else(|e| fail("siwe.json", e));
    let siwe = siwe_vectors.pointer("/cases/0").unwrap_or_else(|| fail("siwe.json", "no cases"));
    let siwe_header = siwe.get("header").and_then(serde_json::Value::as_str).unwrap_or_default().to_owned();
    let siwe_settings =
        x402_access_pass::siwx::Settings::parse(Some(&serde_json::json!({"origins": ["https://api.example.com"]})))
            .ok()
            .flatten()
            .unwrap_or_else(|| fail("siwe settings", "refused"));
    let base = Config::parse(
        // Base mainnet refuses the published bench secret: this configuration has its own.
        serde_json::json!({"network": "eip155:8453", "payTo": pay_to, "tiers": {"5m": "0.001"},
                           "secret": "micro-bench-base-secret-0123456789abcdef"})
        .to_string()
        .as_bytes(),
        &|_| None,
    )
    .unwrap_or_else(|e| fail("Base config", e));
    let siwe_now = 1_796_605_200_000;
    if let Err(e) =
        x402_access_pass::siwx::check(&siwe_settings, &base.networks, &mut signers, 0, siwe_header.as_bytes(), siwe_now)
    {
        fail("EVM SIGN-IN-WITH-X", format!("{e:?}"));
    }
    run(
        "siwx_check_evm",
        "siwx::check: a whole EIP-191 SIGN-IN-WITH-X (parse, validate, SIWE text, recovery)",
        &mut || {
            let raw = black_box(siwe_header.as_bytes());
            usize::from(
                x402_access_pass::siwx::check(&siwe_settings, &base.networks, &mut signers, 0, raw, siwe_now).is_ok(),
            )
        },
    );

    if let Some(path) = &opts.json {
        let list: Vec<serde_json::Value> = results
            .iter()
            .map(|m| {
                serde_json::json!({"name": m.name, "what": m.what, "median_ns": m.median_ns, "min_ns": m.min_ns,
                                   "iterations": m.iterations, "rounds": m.rounds})
            })
            .collect();
        let doc = serde_json::json!({"quick": opts.quick, "results": list});
        if let Err(e) = std::fs::write(path, doc.to_string()) {
            fail(path, e);
        }
    }
}
