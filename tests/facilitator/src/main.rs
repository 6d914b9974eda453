//! x402-test-facilitator: an offline x402 `exact` SVM facilitator, its
//! control API for fault injection, and a Solana JSON-RPC stand-in, for the
//! integration tests and `make run` (docs/behaviour.md §13). See README.md.

mod app;
mod evm;
mod facilitator;
mod faults;
mod http;
mod pda;
mod rpc;
#[cfg(test)]
mod testdata;
#[cfg(test)]
mod tests;

use std::io::Write;
use std::process::ExitCode;
use x402_access_pass::solana::decode_pubkey;

const USAGE: &str =
    "usage: x402-test-facilitator --listen HOST:PORT --control-listen HOST:PORT [--rpc-listen HOST:PORT]
    --network CAIP2 --asset MINT_BASE58 --fee-payer-seed-hex 64HEX
    [--decimals 6] [--ata-owner BASE58]... [--ready-file PATH]
    [--evm-network eip155:84532|eip155:8453]... [--evm-signer-key-hex 64HEX]";

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn parse_args(args: &[String]) -> Result<(app::Options, Option<String>), String> {
    let mut listen = None;
    let mut control = None;
    let mut rpc = None;
    let mut network = None;
    let mut asset = None;
    let mut seed = None;
    let mut decimals = 6u8;
    let mut owners = Vec::new();
    let mut ready = None;
    let mut evm_networks = Vec::new();
    let mut evm_key = None;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (flag.as_str(), None),
        };
        let mut value = || inline.clone().or_else(|| it.next().cloned()).ok_or_else(|| format!("{name} needs a value"));
        match name {
            "--listen" => listen = Some(value()?),
            "--control-listen" => control = Some(value()?),
            "--rpc-listen" => rpc = Some(value()?),
            "--network" => network = Some(value()?),
            "--asset" => asset = Some(value()?),
            "--fee-payer-seed-hex" => {
                let v = value()?;
                seed = Some(parse_hex32(&v).ok_or("--fee-payer-seed-hex must be 64 hex digits")?);
            }
            "--decimals" => {
                decimals = value()?.parse().map_err(|_| "--decimals must be an integer 0..=255".to_string())?
            }
            "--ata-owner" => {
                let v = value()?;
                owners
                    .push(decode_pubkey(&v).ok_or_else(|| format!("--ata-owner {v} is not a base58 32-byte address"))?);
            }
            "--ready-file" => ready = Some(value()?),
            "--evm-network" => evm_networks.push(value()?),
            "--evm-signer-key-hex" => {
                let v = value()?;
                evm_key = Some(parse_hex32(&v).ok_or("--evm-signer-key-hex must be 64 hex digits")?);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let need = |v: Option<String>, name: &str| v.ok_or_else(|| format!("{name} is required"));
    let network = need(network, "--network")?;
    let asset = need(asset, "--asset")?;
    let seed = seed.ok_or("--fee-payer-seed-hex is required")?;
    let config = facilitator::Config::new(&network, &asset, seed, decimals)?;
    let evm = match (evm_networks.is_empty(), evm_key) {
        (true, None) => None,
        (true, Some(_)) => return Err("--evm-signer-key-hex needs an --evm-network".into()),
        (false, None) => return Err("--evm-network needs --evm-signer-key-hex".into()),
        (false, Some(key)) => Some(evm::EvmConfig::new(&evm_networks, key)?),
    };
    Ok((
        app::Options {
            listen: need(listen, "--listen")?,
            control_listen: need(control, "--control-listen")?,
            rpc_listen: rpc,
            config,
            evm,
            ata_owners: owners,
        },
        ready,
    ))
}

/// Writes the ready file atomically: a temporary file beside it, renamed.
fn write_ready(path: &str, content: &str) -> std::io::Result<()> {
    let tmp = format!("{path}.tmp.{}", std::process::id());
    std::fs::write(&tmp, content)?;
    std::fs::rename(&tmp, path)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (opts, ready) = match parse_args(&args) {
        Ok(x) => x,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("x402-test-facilitator: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let fee_payer = opts.config.fee_payer_b58();
    let network = opts.config.network.clone();
    let (_app, bound) = match app::start(opts) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("x402-test-facilitator: {e}");
            return ExitCode::from(1);
        }
    };
    eprintln!("x402-test-facilitator: network {network}, fee payer {fee_payer}");
    println!("{}", bound.line());
    let _ = std::io::stdout().flush();
    if let Some(path) = ready {
        if let Err(e) = write_ready(&path, &bound.json().to_string()) {
            eprintln!("x402-test-facilitator: cannot write --ready-file {path}: {e}");
            return ExitCode::from(1);
        }
    }
    loop {
        std::thread::park();
    }
}

#[cfg(test)]
mod cli_tests {
    use super::*;

    impl app::Options {
        fn config_evm(&self) -> Option<&evm::EvmConfig> {
            self.evm.as_ref()
        }
    }

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_the_documented_cli() {
        let (o, ready) = parse_args(&args(
            "--listen 127.0.0.1:0 --control-listen 127.0.0.1:0 --rpc-listen 127.0.0.1:0 \
             --network solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1 --asset 4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU \
             --fee-payer-seed-hex 0202020202020202020202020202020202020202020202020202020202020202 \
             --decimals 6 --ata-owner GyGKxMyg1p9SsHfm15MkNUu1u9TN2JtTspcdmrtGUdse --ata-owner AKnL4NNf3DGWZJS6cPknBuEGnVsV4A4m5tgebLHaRSZ9 \
             --ready-file /tmp/x",
        ))
        .unwrap();
        assert_eq!(o.config.fee_payer_b58(), "9hSR6S7WPtxmTojgo6GG3k4yDPecgJY292j7xrsUGWBu");
        assert_eq!(o.ata_owners.len(), 2);
        assert_eq!(o.rpc_listen.as_deref(), Some("127.0.0.1:0"));
        assert_eq!(ready.as_deref(), Some("/tmp/x"));
    }

    #[test]
    fn evm_networks_need_a_signer_key_and_a_base_network() {
        let base = format!(
            "--listen a --control-listen b --network n --asset 4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU --fee-payer-seed-hex {}",
            "1".repeat(64)
        );
        let key = "04".repeat(32);
        let (o, _) = parse_args(&args(&format!(
            "{base} --evm-network eip155:84532 --evm-network eip155:8453 --evm-signer-key-hex {key}"
        )))
        .unwrap();
        let evm = o.config_evm();
        assert_eq!(evm.map(|e| e.tokens.len()), Some(2));
        assert_eq!(evm.map(|e| e.signer.to_checksum()).as_deref(), Some("0xc48B812bB43401392c037381AcA934F4069C0517"));
        assert!(parse_args(&args(&format!("{base} --evm-network eip155:84532"))).is_err());
        assert!(parse_args(&args(&format!("{base} --evm-signer-key-hex {key}"))).is_err());
        assert!(parse_args(&args(&format!("{base} --evm-network eip155:1 --evm-signer-key-hex {key}"))).is_err());
        assert!(parse_args(&args(&format!(
            "{base} --evm-network eip155:8453 --evm-signer-key-hex {}",
            "0".repeat(64)
        )))
        .is_err());
        assert!(parse_args(&args(&base)).unwrap().0.config_evm().is_none());
    }

    #[test]
    fn rejects_bad_arguments() {
        let base = "--listen a --control-listen b --network n --asset 4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU";
        assert!(parse_args(&args(base)).is_err()); // no seed
        assert!(parse_args(&args(&format!("{base} --fee-payer-seed-hex 02"))).is_err());
        assert!(parse_args(&args(&format!("{base} --fee-payer-seed-hex {} --bogus 1", "0".repeat(64)))).is_err());
        assert!(parse_args(&args(&format!("{base} --fee-payer-seed-hex={}", "0".repeat(64)))).is_err()); // all-zero seed
        assert!(parse_args(&args(&format!("{base} --fee-payer-seed-hex={}", "1".repeat(64)))).is_ok());
        assert!(parse_args(&args("--listen")).is_err());
    }
}
