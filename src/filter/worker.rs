//! What every request of one worker shares: the configuration, the facilitator's fee
//! payer, the caches of verified passes, signer keys and finished challenges, the metrics, and the
//! purchases in flight. The root context (`root`) builds it in `on_configure`; requests
//! (`request`) and purchases (`flows`) only read it.

use std::cell::{Cell, RefCell};

use crate::challenge_cache::{self, ChallengeCache};
use crate::config::Config;
use crate::entitlement_cache::EntitlementCache;
use crate::facilitator::{self, CalloutResult};
use crate::replay::Policy;
use crate::siwx::SignerKeys;
use crate::token::PassCache;

use super::flows::Flows;
use super::host;
use super::metrics::Metrics;
use super::shared_ledger::Unsaved;

/// Verified passes kept per worker. An entry is the token (~450 bytes) and its
/// claims (~300 bytes): about 6 MB per worker when full, whatever is presented.
const PASS_CACHE_CAPACITY: usize = 8_192;

/// What every request of this worker shares, read-only but for the cache and
/// the fee payer.
pub struct Worker {
    pub config: Config,
    pub fee_payer: RefCell<Option<String>>,
    /// When `/supported` last failed: requests then answer 503 at once rather
    /// than each asking a facilitator that is down.
    pub fee_payer_failed_at_ms: Cell<u64>,
    pub cache: RefCell<PassCache>,
    /// Decoded keys of the Solana wallets that signed in lately (src/siwx/signers.rs).
    pub signers: RefCell<SignerKeys>,
    /// Finished 402s of recent URLs (src/challenge_cache.rs).
    pub challenges: RefCell<ChallengeCache>,
    pub metrics: Metrics,
    /// Purchases in flight (src/filter/flows.rs).
    pub flows: Flows,
    /// This worker's root context: host calls made for a purchase from the tick go back to it.
    pub root_context_id: u32,
    /// Entitlements read from the shared ledger, for a few seconds (src/entitlement_cache.rs).
    pub entitlements: RefCell<EntitlementCache>,
    /// Records of money that moved which the shared ledger has not taken yet
    /// (src/filter/shared_ledger.rs).
    pub unsaved: RefCell<Unsaved>,
}

impl Worker {
    /// A worker for a freshly parsed configuration: empty caches, no purchase in flight.
    pub fn new(config: Config, root_context_id: u32) -> Worker {
        let fee_payer = config.fee_payer.clone();
        let metrics = Metrics::define(&config);
        Worker {
            config,
            fee_payer: RefCell::new(fee_payer),
            fee_payer_failed_at_ms: Cell::new(0),
            cache: RefCell::new(PassCache::new(PASS_CACHE_CAPACITY)),
            signers: RefCell::new(SignerKeys::default()),
            challenges: RefCell::new(ChallengeCache::new(challenge_cache::DEFAULT_SLOTS)),
            metrics,
            flows: Flows::default(),
            root_context_id,
            entitlements: RefCell::new(EntitlementCache::default()),
            unsaved: RefCell::new(Unsaved::default()),
        }
    }

    pub fn replay_policy(&self) -> Policy {
        Policy {
            replay_window_seconds: self.config.replay_window_seconds,
            // a purchase makes a /verify and /settle attempts until its settle deadline, each
            // bounded by the timeout: a pending record older than that was abandoned
            stale_after_seconds: (2 * self.config.facilitator.timeout_ms + self.config.settle_deadline_ms)
                .div_ceil(1_000)
                + 5,
        }
    }

    /// Learns the fee payer from a `/supported` answer; `false` if it had none.
    pub fn learn_fee_payer(&self, result: CalloutResult<'_>) -> bool {
        match facilitator::fee_payer_from_supported(result, &self.config.network) {
            Ok(fee_payer) => {
                let mut known = self.fee_payer.borrow_mut();
                if known.as_deref() != Some(fee_payer.as_str()) {
                    log::info!("x402-access-pass: facilitator fee payer for {} is {fee_payer}", self.config.network);
                }
                *known = Some(fee_payer);
                true
            }
            Err(problem) => {
                self.fee_payer_failed_at_ms.set(host::now_millis());
                log::warn!(
                    "x402-access-pass: GET /supported gave no fee payer for {}: {}",
                    self.config.network,
                    problem.reason()
                );
                false
            }
        }
    }
}
