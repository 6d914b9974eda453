//! Checked wrappers over the proxy-wasm host calls. The SDK's trait helpers
//! `unwrap` host results; a failed host call must not trap the VM (a trapped
//! VM takes every later request of its worker down), so the filter calls the
//! `hostcalls` functions directly and treats failure as absence.

use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType, Status};

use crate::config::Facilitator;
use crate::etcd::Call;
use crate::facilitator::{self, CalloutResult};
use crate::header_map::HeaderMap;
use crate::ledger::settings::EtcdLedger;
use crate::response::Response;

pub fn now_millis() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub fn now_seconds() -> u64 {
    now_millis() / 1_000
}

/// Every request header in one host call (src/header_map.rs says why). Empty when Envoy has
/// none to give: a failed call reads as no headers, never a trap (Envoy always has a request's
/// headers, `:path` among them, in the request-header phase).
pub fn request_headers() -> HeaderMap {
    HeaderMap::from_serialized(raw::header_map_pairs(MapType::HttpRequestHeaders).unwrap_or_default())
}

/// The two host calls the SDK offers no form of we can use. Its `hostcalls::get_map_bytes`
/// decodes names as UTF-8 with `unwrap` and panics on an unexpected status: either would trap the
/// VM on input; this asks for the same serialized map and leaves its decoding to the core
/// (`HeaderMap`), which reads bytes. Its `send_http_response` takes the headers as a list and
/// serializes them on every call, where a remembered challenge's are serialized already
/// (src/challenge_cache.rs): every local reply goes through this one instead.
#[allow(unsafe_code)]
mod raw {
    use proxy_wasm::types::MapType;

    #[link(wasm_import_module = "env")]
    extern "C" {
        // The ABI's signature (proxy-wasm 0.2.1): map type, where the host writes the pointer
        // and the size of the block it allocated in this VM (through `proxy_on_memory_allocate`);
        // the status is read as a plain number so that any value the host returns is defined.
        #[allow(clashing_extern_declarations)]
        fn proxy_get_header_map_pairs(map_type: u32, return_map_data: *mut *mut u8, return_map_size: *mut usize)
            -> u32;
    }

    /// The serialized map, or `None` when the host answered anything but `Ok` with a block.
    pub fn header_map_pairs(map_type: MapType) -> Option<Vec<u8>> {
        let mut data: *mut u8 = std::ptr::null_mut();
        let mut size: usize = 0;
        // SAFETY: the host writes through the two out-pointers, which are valid for the call.
        // On `Ok` (0) with a non-null pointer, the block was allocated in this VM's memory by
        // the SDK's allocator (`proxy_on_memory_allocate`, `Vec::with_capacity(size)`) and is
        // handed over to us: taking it as a `Vec` of that length and capacity is exactly what
        // the SDK's own `get_map_bytes` does, and it is freed when the `Vec` drops.
        let status = unsafe { proxy_get_header_map_pairs(map_type as u32, &mut data, &mut size) };
        if status != 0 || data.is_null() {
            return None;
        }
        // SAFETY: see above.
        Some(unsafe { Vec::from_raw_parts(data, size, size) })
    }

    #[link(wasm_import_module = "env")]
    extern "C" {
        // The ABI's signature (proxy-wasm 0.2.1), as the SDK declares it for its
        // `send_http_response`; the status is read as a plain number.
        #[allow(clashing_extern_declarations)]
        fn proxy_send_local_response(
            status_code: u32,
            status_code_details_data: *const u8,
            status_code_details_size: usize,
            body_data: *const u8,
            body_size: usize,
            headers_data: *const u8,
            headers_size: usize,
            grpc_status: i32,
        ) -> u32;
    }

    /// The SDK's `send_http_response` with the headers already serialized
    /// (`Response::serialized_headers`). The host's status, when not `Ok` (0).
    pub fn send_local_response(status: u32, headers: &[u8], body: Option<&[u8]>) -> Result<(), u32> {
        // SAFETY: every pointer and size describes a live slice that outlives the call, which
        // only reads them (Envoy copies the reply); a null pointer with size 0 is "no body", as
        // the SDK passes it; -1 is "not gRPC".
        let status = unsafe {
            proxy_send_local_response(
                status,
                std::ptr::null(),
                0,
                body.map_or(std::ptr::null(), <[u8]>::as_ptr),
                body.map_or(0, <[u8]>::len),
                headers.as_ptr(),
                headers.len(),
                -1,
            )
        };
        if status == 0 {
            Ok(())
        } else {
            Err(status)
        }
    }
}

pub fn set_request_header(name: &str, value: &str) {
    let _ = hostcalls::set_map_value_bytes(MapType::HttpRequestHeaders, name, Some(value.as_bytes()));
}

pub fn remove_request_header(name: &str) {
    let _ = hostcalls::remove_map_value(MapType::HttpRequestHeaders, name);
}

pub fn response_header(name: &str) -> Option<Vec<u8>> {
    hostcalls::get_map_value_bytes(MapType::HttpResponseHeaders, name).ok().flatten()
}

pub fn set_response_header(name: &str, value: &str) {
    let _ = hostcalls::set_map_value_bytes(MapType::HttpResponseHeaders, name, Some(value.as_bytes()));
}

pub fn send(response: &Response) {
    send_with(response, &[], false);
}

/// Sends `response` with `extra` headers after its own; `head` drops the body (a `HEAD`
/// request).
pub fn send_with(response: &Response, extra: &[(&str, &str)], head: bool) {
    send_serialized(response, &response.serialized_headers(extra), head);
}

/// Sends `response` with `headers`, its headers (and any extra ones) already serialized
/// (`Response::serialized_headers`; a remembered challenge keeps them: src/challenge_cache.rs);
/// `head` drops the body.
pub fn send_serialized(response: &Response, headers: &[u8], head: bool) {
    let body = (!head && !response.body.is_empty()).then_some(response.body.as_slice());
    if let Err(status) = raw::send_local_response(response.status, headers, body) {
        log::warn!("x402-access-pass: could not send a local response: status {status}");
    }
}

pub fn plugin_configuration() -> Option<Vec<u8>> {
    hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX).ok().flatten()
}

/// Starts a callout to the facilitator; `None` when Envoy refused to start it
/// (unknown cluster, bad headers).
pub fn dispatch(facilitator: &Facilitator, method: &str, endpoint: &str, body: Option<&[u8]>) -> Option<u32> {
    let path = format!("{}{endpoint}", facilitator.path_prefix);
    let mut headers: Vec<(&str, &str)> = vec![
        (":method", method),
        (":path", &path),
        (":authority", &facilitator.authority),
        (":scheme", &facilitator.scheme),
        ("accept", "application/json"),
        ("user-agent", "x402-access-pass"),
    ];
    if body.is_some() {
        headers.push(("content-type", "application/json"));
    }
    headers.extend(facilitator.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    let timeout = Duration::from_millis(facilitator.timeout_ms);
    match hostcalls::dispatch_http_call(&facilitator.cluster, headers, body, vec![], timeout) {
        Ok(token) => Some(token),
        Err(status) => {
            log::warn!(
                "x402-access-pass: could not call the facilitator on cluster {:?}: {status:?} (is the cluster defined?)",
                facilitator.cluster
            );
            None
        }
    }
}

/// Sends one call of a ledger operation to etcd's JSON gateway (docs/fleet.md); `None` when
/// Envoy refused to start it.
pub fn dispatch_ledger(ledger: &EtcdLedger, call: &Call) -> Option<u32> {
    let headers = vec![
        (":method", "POST"),
        (":path", call.path),
        (":authority", ledger.authority.as_str()),
        (":scheme", "http"),
        ("content-type", "application/json"),
        ("accept", "application/json"),
        ("user-agent", "x402-access-pass"),
    ];
    let timeout = Duration::from_millis(call.timeout_ms);
    match hostcalls::dispatch_http_call(&ledger.cluster, headers, Some(&call.body), vec![], timeout) {
        Ok(token) => Some(token),
        Err(status) => {
            log::warn!(
                "x402-access-pass: could not call the ledger on cluster {:?}: {status:?} (is the cluster defined?)",
                ledger.cluster
            );
            None
        }
    }
}

/// Largest callout body read; a facilitator answer is a few hundred bytes.
const MAX_CALLOUT_BODY: usize = 64 * 1024;

/// A callout answer as delivered to `on_http_call_response`.
pub struct Delivered {
    status: Option<u32>,
    body: Vec<u8>,
    timed_out: bool,
}

impl Delivered {
    /// Reads the answer of the callout started at `started_ms` (`facilitator::timed_out` tells
    /// Envoy's own timeout from the facilitator's answer).
    pub fn read(num_headers: usize, body_size: usize, started_ms: u64, timeout_ms: u64) -> Delivered {
        let elapsed = now_millis().saturating_sub(started_ms);
        if num_headers == 0 {
            return Delivered {
                status: None,
                body: Vec::new(),
                timed_out: facilitator::timed_out(None, elapsed, timeout_ms),
            };
        }
        let status = hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, ":status")
            .ok()
            .flatten()
            .and_then(|s| std::str::from_utf8(&s).ok()?.parse().ok());
        let body = if body_size == 0 || body_size > MAX_CALLOUT_BODY {
            Vec::new()
        } else {
            hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size).ok().flatten().unwrap_or_default()
        };
        Delivered { status, body, timed_out: facilitator::timed_out(status, elapsed, timeout_ms) }
    }

    pub fn result(&self) -> CalloutResult<'_> {
        match self.status {
            _ if self.timed_out => CalloutResult::TimedOut,
            Some(status) => CalloutResult::Response { status, body: &self.body },
            None => CalloutResult::Failed,
        }
    }
}

pub fn shared_data(key: &str) -> Option<(Option<Vec<u8>>, Option<u32>)> {
    hostcalls::get_shared_data(key).ok()
}

pub fn set_shared_data(key: &str, value: &[u8], cas: Option<u32>) -> Result<(), Status> {
    hostcalls::set_shared_data(key, Some(value), cas)
}
