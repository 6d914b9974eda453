//! The proxy-wasm layer: moves bytes between Envoy and the core, nothing more.
//! Host calls go through `host`, which never panics on a failed call.

mod flows;
mod host;
mod metrics;
mod request;
mod root;
mod shared_ledger;
mod store;
mod worker;

use proxy_wasm::types::LogLevel;

proxy_wasm::main! {{
    // Debug lines are never formatted on the hot path: Envoy filters levels
    // too, but only after the guest built the string.
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|context_id| Box::new(root::Root::new(context_id)));
}}
