//! Benchmark floor: the cheapest useful proxy-wasm HTTP filter, same SDK, target and release
//! settings as x402-access-pass.
//!
//! The plugin configuration's first line picks the mode:
//!
//! * `floor` (or empty): read one request header (`authorization`) and continue. That is the floor
//!   for any wasm filter: Envoy's per-request wasm plumbing (the context, the callbacks) and one
//!   host call.
//! * `pass-hostcalls` (a diagnostic, not a product): the same host calls x402-access-pass makes for
//!   a request with a valid cached pass (every header in one call, `:path` among them, the clock;
//!   set four claim headers; remove `authorization`; one counter; two response headers), with none
//!   of its work in between. Floor → this is the cost of those calls; this → the filter is the
//!   filter's own work.
//! * `challenge-hostcalls` (a diagnostic): the same host calls as the filter's challenge path
//!   (every header in one call, the clock, one counter) and then the same local reply,
//!   given after the mode line: a status line, `name: value` header lines, an empty line, the body.

use std::hint::black_box;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| Box::new(Root { mode: Mode::Floor, counter: None, reply: None }));
}}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Floor,
    PassHostcalls,
    ChallengeHostcalls,
}

/// The local reply of `challenge-hostcalls`.
struct Reply {
    status: u32,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

struct Root {
    mode: Mode,
    counter: Option<u32>,
    reply: Option<std::rc::Rc<Reply>>,
}

impl Context for Root {}

fn parse_reply(text: &str) -> Option<Reply> {
    let (head, body) = text.split_once("\n\n")?;
    let mut lines = head.lines();
    let status = lines.next()?.trim().parse().ok()?;
    let headers =
        lines.filter_map(|l| l.split_once(": ")).map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned())).collect();
    Some(Reply { status, headers, body: body.as_bytes().to_vec() })
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let config =
            hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX).ok().flatten().unwrap_or_default();
        let config = String::from_utf8_lossy(&config).into_owned();
        let (mode, rest) = config.split_once('\n').unwrap_or((config.as_str(), ""));
        self.mode = match mode.trim() {
            "" | "floor" => Mode::Floor,
            "pass-hostcalls" => Mode::PassHostcalls,
            "challenge-hostcalls" => Mode::ChallengeHostcalls,
            _ => return false,
        };
        if self.mode == Mode::ChallengeHostcalls {
            match parse_reply(rest) {
                Some(reply) => self.reply = Some(std::rc::Rc::new(reply)),
                None => return false,
            }
        }
        if self.mode != Mode::Floor {
            self.counter = hostcalls::define_metric(MetricType::Counter, "bench_floor.requests").ok();
        }
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        match self.mode {
            Mode::Floor => Some(Box::new(Floor)),
            Mode::PassHostcalls => Some(Box::new(PassHostcalls { counter: self.counter })),
            Mode::ChallengeHostcalls => {
                Some(Box::new(ChallengeHostcalls { counter: self.counter, reply: self.reply.clone()? }))
            }
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

fn get(name: &str) -> usize {
    hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, name).ok().flatten().map_or(0, |v| v.len())
}

/// Every request header in one host call, as the filter reads them (its src/filter/host.rs):
/// the serialized block, not decoded.
fn get_all() -> usize {
    #[link(wasm_import_module = "env")]
    extern "C" {
        #[allow(clashing_extern_declarations)]
        fn proxy_get_header_map_pairs(map_type: u32, data: *mut *mut u8, size: *mut usize) -> u32;
    }
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: as the SDK's get_map_bytes: on Ok the host allocated `size` bytes in this VM.
    if unsafe { proxy_get_header_map_pairs(MapType::HttpRequestHeaders as u32, &mut data, &mut size) } != 0
        || data.is_null()
    {
        return 0;
    }
    unsafe { Vec::from_raw_parts(data, size, size) }.len()
}

fn clock() {
    black_box(hostcalls::get_current_time().ok());
}

fn count(counter: Option<u32>) {
    if let Some(id) = counter {
        let _ = hostcalls::increment_metric(id, 1);
    }
}

struct Floor;

impl Context for Floor {}

impl HttpContext for Floor {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        black_box(get("authorization"));
        Action::Continue
    }
}

struct PassHostcalls {
    counter: Option<u32>,
}

impl Context for PassHostcalls {}

impl HttpContext for PassHostcalls {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        black_box(get_all());
        clock();
        for (name, value) in [
            ("x-access-pass-tier", "24h"),
            ("x-access-pass-payer", "AKnL4NNf3DGWZJS6cPknBuEGnVsV4A4m5tgebLHaRSZ9"),
            ("x-access-pass-expires", "1800086400"),
            ("x-access-pass-network", "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1"),
        ] {
            let _ = hostcalls::set_map_value_bytes(MapType::HttpRequestHeaders, name, Some(value.as_bytes()));
        }
        let _ = hostcalls::remove_map_value(MapType::HttpRequestHeaders, "authorization");
        count(self.counter);
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        for (name, value) in [
            ("access-control-allow-origin", "*"),
            ("access-control-expose-headers", "PAYMENT-REQUIRED, X-ACCESS-PASS-TIERS, ACCESS-PASS, PAYMENT-RESPONSE"),
        ] {
            let _ = hostcalls::set_map_value_bytes(MapType::HttpResponseHeaders, name, Some(value.as_bytes()));
        }
        Action::Continue
    }
}

struct ChallengeHostcalls {
    counter: Option<u32>,
    reply: std::rc::Rc<Reply>,
}

impl Context for ChallengeHostcalls {}

impl HttpContext for ChallengeHostcalls {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        black_box(get_all());
        clock();
        count(self.counter);
        let headers: Vec<(&str, &str)> = self.reply.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let _ = hostcalls::send_http_response(self.reply.status, headers, Some(&self.reply.body));
        Action::Pause
    }
}
