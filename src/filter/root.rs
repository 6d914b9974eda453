//! The root context of one worker: parses the configuration once, keeps the
//! facilitator's fee payer fresh (`GET /supported`), and sweeps the purchase
//! store in the background. What requests share lives in `worker`.

use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;

use crate::config::Config;
use crate::entitlements;
use crate::replay::BUCKETS;

use super::flows;
use super::host;
use super::request::Request;
use super::store;
use super::worker::Worker;

/// Purchases waiting between two `/settle` attempts are woken on the tick: its period bounds
/// how late they wake. The purchase store is swept one bucket every `SWEEP_EVERY` ticks.
const TICK: Duration = Duration::from_millis(100);
const SWEEP_EVERY: u32 = 10;
/// The first `/supported` waits for the first tick rather than leaving from `on_configure`:
/// `envoy --mode validate` runs `on_configure` with no clusters and no event loop, so a callout
/// there only warns that a cluster which is defined is not; timers never fire there.
const FIRST_TICK: Duration = Duration::from_millis(1);
/// `/supported` is fetched again this often once known (docs/behaviour.md §9.1).
const SUPPORTED_REFRESH_MS: u64 = 10 * 60 * 1_000;
const SUPPORTED_BACKOFF_FIRST_MS: u64 = 1_000;
const SUPPORTED_BACKOFF_MAX_MS: u64 = 30_000;
#[derive(Default)]
pub struct Root {
    context_id: u32,
    worker: Option<Rc<Worker>>,
    supported_in_flight: Option<(u32, u64)>,
    supported_next_ms: u64,
    supported_backoff_ms: u64,
    sweep_cursor: usize,
    entitlement_cursor: usize,
    /// `false` until the first tick has set the steady period.
    steady_ticks: bool,
    ticks: u32,
}

impl Root {
    pub fn new(context_id: u32) -> Root {
        Root { context_id, ..Root::default() }
    }

    fn fetch_supported(&mut self) {
        let Some(worker) = &self.worker else { return };
        if worker.config.fee_payer.is_some() || self.supported_in_flight.is_some() {
            return;
        }
        let now = host::now_millis();
        if now < self.supported_next_ms {
            return;
        }
        match host::dispatch(&worker.config.facilitator, "GET", "/supported", None) {
            Some(token) => self.supported_in_flight = Some((token, now)),
            None => self.schedule_retry(now),
        }
    }

    fn schedule_retry(&mut self, now: u64) {
        self.supported_backoff_ms =
            (self.supported_backoff_ms * 2).clamp(SUPPORTED_BACKOFF_FIRST_MS, SUPPORTED_BACKOFF_MAX_MS);
        self.supported_next_ms = now + self.supported_backoff_ms;
    }
}

impl Context for Root {
    fn on_http_call_response(&mut self, token: u32, num_headers: usize, body_size: usize, _trailers: usize) {
        let Some(worker) = self.worker.clone() else { return };
        // Callouts the tick made for a purchase (a /settle asked again) come back here.
        if flows::answered(&worker, token, num_headers, body_size) {
            return;
        }
        let Some((expected, started)) = self.supported_in_flight else { return };
        if token != expected {
            return;
        }
        self.supported_in_flight = None;
        let answer = host::Delivered::read(num_headers, body_size, started, worker.config.facilitator.timeout_ms);
        let now = host::now_millis();
        if worker.learn_fee_payer(answer.result()) {
            self.supported_backoff_ms = 0;
            self.supported_next_ms = now + SUPPORTED_REFRESH_MS;
        } else {
            self.schedule_retry(now);
        }
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let Some(bytes) = host::plugin_configuration() else {
            log::error!("invalid x402-access-pass configuration: (document): no plugin configuration was given");
            return false;
        };
        let config = match Config::parse(&bytes, &|name| std::env::var(name).ok()) {
            Ok(config) => config,
            Err(problem) => {
                log::error!("{problem}");
                return false;
            }
        };
        crate::ledger::create_buckets(&store::EnvoySharedData);
        match &config.siwx {
            None => log::info!("x402-access-pass: sign-in-with-x is off (no siwx.origins configured)"),
            Some(siwx) => log::info!("x402-access-pass: sign-in-with-x is on for {} origin(s)", siwx.origins.len()),
        }
        self.worker = Some(Rc::new(Worker::new(config, self.context_id)));
        self.supported_in_flight = None;
        self.supported_next_ms = 0;
        self.supported_backoff_ms = 0;
        self.steady_ticks = false;
        if hostcalls::set_tick_period(FIRST_TICK).is_err() {
            log::warn!("x402-access-pass: no timer: the fee payer is fetched by requests only");
        }
        true
    }

    fn on_tick(&mut self) {
        if !self.steady_ticks {
            self.steady_ticks = true;
            if hostcalls::set_tick_period(TICK).is_err() {
                log::warn!("x402-access-pass: could not set the tick period to {TICK:?}");
            }
        }
        self.fetch_supported();
        let Some(worker) = self.worker.clone() else { return };
        if !worker.flows.is_idle() || !worker.unsaved.borrow().queue.is_empty() {
            flows::tick(&worker);
        }
        self.ticks = self.ticks.wrapping_add(1);
        if self.ticks.is_multiple_of(SWEEP_EVERY) {
            // One bucket a second: the whole store is swept every BUCKETS seconds.
            store::local_ledger(worker.replay_policy()).sweep(self.sweep_cursor, host::now_seconds());
            self.sweep_cursor = (self.sweep_cursor + 1) % BUCKETS;
            // And one entitlement bucket: expired entitlements leave the gauge as they go.
            let dropped = entitlements::sweep(&store::EnvoySharedData, self.entitlement_cursor, host::now_seconds());
            worker.metrics.shift(worker.metrics.entitlements, -dropped);
            self.entitlement_cursor = (self.entitlement_cursor + 1) % entitlements::BUCKETS;
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Request::new(self.worker.clone(), context_id)))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
