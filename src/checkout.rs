//! The purchase flow (docs/behaviour.md §6) as a pure step machine: the one place where money
//! moves, tested natively.
//!
//! It takes the payment header, the clock and each answer (the ledger's, the facilitator's) and
//! returns the next [`Step`]: a ledger operation, a facilitator callout, or the finished answer
//! with its counters and log line. The proxy-wasm layer only executes steps and feeds answers
//! back; it decides nothing. A ledger that answers later (by callout) is driven the same way.
//!
//! A payment that selects no pass is a paid request (docs/behaviour.md §15): the same purchase,
//! but its end is the buyer's own request forwarded upstream with the new pass, not the filter's
//! 200 ([`Answer::Forward`]).
//!
//! The order that keeps money safe: claim the payment in the ledger (one request per payment),
//! `/verify`, sign the pass, record it as pending, `/settle`, record the outcome. A pass is signed
//! before any money moves, so nothing can fail after settling; a settle outcome that is not known
//! keeps its pass, so the same payment sent again settles or recovers it, never charged twice.

use crate::challenge::{self, Challenge};
use crate::config::Config;
use crate::entitlements::Entitlement;
use crate::facilitator::{self, CalloutResult, Settlement, Unavailable, Verification};
use crate::ledger::{LedgerAnswer, LedgerOp, PurchaseKey};
use crate::payment::{self, CheckedPayment, Wire};
use crate::purchase::{self, IssuedPass, Receipt};
use crate::replay::{Claim, Entry, FirstOutcome, IdClaim};
use crate::response::Response;
use crate::settle_outcome::{self, Failure};
use crate::token;
use crate::token::PassClaims;

/// The first wait before `/settle` is asked again; it doubles up to `MAX_BACKOFF_MS`.
const FIRST_BACKOFF_MS: u64 = 200;
const MAX_BACKOFF_MS: u64 = 2_000;

/// The facilitator endpoint a callout goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Verify,
    Settle,
}

impl Endpoint {
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Verify => "/verify",
            Endpoint::Settle => "/settle",
        }
    }
}

/// A counter the answer moves (docs/behaviour.md §10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Count {
    PurchasesSucceeded,
    /// Atomic units settled, for a pass of this tier.
    SettledAtomic {
        tier: String,
        atomic: u64,
    },
    ReplaysServed,
    /// A paid request forwarded upstream with its pass (docs/behaviour.md §15).
    PaidRequestsForwarded,
    SettlementsUnknown,
    /// `/settle` asked again inside the request, this many times.
    SettleRetries(u64),
    /// A settlement found after a retry or a recovery, its pass signed anew.
    SettlementsRecovered,
    FacilitatorTimeouts,
    FacilitatorErrors,
    /// `purchases_failed.<reason>`.
    PurchasesFailed(String),
}

/// How a purchase ends for its request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The filter answers the request itself (a Part I purchase, or any failure).
    Local(Response),
    /// A paid request: the buyer's own request goes upstream (docs/behaviour.md §15).
    Forward(Forward),
}

/// What a paid request that bought its pass does on its way upstream and back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    /// Request headers to remove: the payment, and `authorization` unless it is forwarded.
    pub remove_request_headers: Vec<&'static str>,
    /// Claim headers set from the pass (docs/behaviour.md §8), replacing the client's copies.
    pub set_request_headers: Vec<(String, String)>,
    /// Added to the upstream's response: `ACCESS-PASS` and `PAYMENT-RESPONSE` (`X-PAYMENT-RESPONSE`
    /// for a v1 payment, docs/behaviour.md §20). (The filter adds
    /// CORS and merges `private` into `Cache-Control`.)
    pub response_headers: Vec<(&'static str, String)>,
}

impl Forward {
    fn new(config: &Config, wire: Wire, token: &str, payment_response: &str, claims: &PassClaims) -> Forward {
        // Both payment headers: the upstream never sees a payment, whichever was processed. A
        // sign-in that found no entitlement may ride along with the payment: it is the buyer's,
        // not the upstream's (docs/behaviour.md §16.3).
        let mut remove_request_headers = vec!["payment-signature", "x-payment", "sign-in-with-x"];
        if !config.forward_authorization {
            remove_request_headers.push("authorization");
        }
        Forward {
            remove_request_headers,
            set_request_headers: crate::decision::claim_headers(config, claims)
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value))
                .collect(),
            response_headers: vec![
                ("access-pass", token.to_owned()),
                (wire.response_header(), payment_response.to_owned()),
            ],
        }
    }
}

/// The end of a purchase: what to answer, what to count, what to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finish {
    pub answer: Answer,
    pub counts: Vec<Count>,
    /// The one log line of a purchase outcome (docs/behaviour.md §10), when there is one.
    pub log: Option<String>,
}

/// What the proxy-wasm layer does next for this purchase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Run this on the ledger and hand the answer to [`Checkout::on_ledger`].
    Ledger(LedgerOp),
    /// Call this endpoint with [`Checkout::body`] and hand the result to [`Checkout::on_callout`]
    /// (`CalloutResult::Failed` when the callout could not even be started).
    Callout(Endpoint),
    /// Wait this many milliseconds, then call [`Checkout::on_wake`].
    Wait(u64),
    /// Answer the request; the purchase is over.
    Finish(Finish),
}

enum State {
    /// Binding the payment identifier; `took_over`: this is the second try, after the payment
    /// that held it was found abandoned.
    Identifying {
        took_over: bool,
    },
    /// Reading where the identifier's first payment stands.
    LookingFirst {
        first: PurchaseKey,
        stale: bool,
        took_over: bool,
    },
    Claiming,
    Verifying,
    /// The pass is signed; waiting for the ledger to hold it as pending.
    SavingPending(IssuedPass),
    Settling(Settling),
    /// Between two `/settle` attempts.
    Sleeping(Settling),
    /// Waiting for the ledger to record the outcome, then answering; `release`: the purchase was
    /// dropped, so its payment identifier is let go next.
    Closing(Box<Finish>, bool),
    Done,
}

/// A payment identifier carried by the payment (docs/behaviour.md §17.5).
struct Identified {
    at: PurchaseKey,
    /// SHA-256 (hex) of the request's method and path with its query.
    request: String,
}

/// A settlement being worked out (docs/behaviour.md §17).
#[derive(Clone)]
struct Settling {
    pass: IssuedPass,
    /// The payment was left unknown or pending by an earlier request: a /settle was tried.
    recovering: bool,
    /// When the first `/settle` of this request left.
    first_ms: u64,
    attempts: u64,
    /// The last unrecognized refusal: the same one twice is a refusal.
    unrecognized: Option<String>,
    /// Facilitator errors and timeouts met so far (counted when the purchase ends).
    problems: Vec<Count>,
}

/// One purchase, between steps.
pub struct Checkout {
    checked: CheckedPayment,
    challenge: Challenge,
    /// The `/verify` and `/settle` body (the same for both).
    body: Vec<u8>,
    at: PurchaseKey,
    /// A paid request (docs/behaviour.md §15): success forwards it rather than answering 200.
    serve: bool,
    id: Option<Identified>,
    state: State,
}

/// A payment on a request that names no pass (no `tier`, no `duration`) is a paid request
/// (docs/behaviour.md §15), unless `payAndServe` is off.
pub fn is_paid_request(config: &Config, path: &[u8]) -> bool {
    config.pay_and_serve && !crate::pricing::selects_pass(path)
}

/// 413 before anything is charged for a paid request whose body (by its `Content-Length`) is larger
/// than `maxPaidBodyBytes`, Envoy's buffer: it could not be held while the callouts run
/// (docs/behaviour.md §15). A purchase never forwards its body, so any size will do for it.
pub fn refuse_large_body(config: &Config, path: &[u8], content_length: Option<&[u8]>) -> Option<Finish> {
    let length: u64 = std::str::from_utf8(content_length?).ok()?.trim().parse().ok()?;
    if length <= config.max_paid_body_bytes || !is_paid_request(config, path) {
        return None;
    }
    Some(Finish {
        answer: Answer::Local(Response::error(413, "Payload Too Large", "payload_too_large", None)),
        counts: vec![Count::PurchasesFailed("payload_too_large".to_owned())],
        log: Some(outcome_line("paid request refused", None, "reason=payload_too_large (body over maxPaidBodyBytes)")),
    })
}

/// 503 `sales_disabled` when this filter cannot sign passes (a ring of public keys only is a
/// verify-only sidecar: it checks passes sold elsewhere).
pub fn refuse_without_signing_key(config: &Config) -> Option<Finish> {
    if config.keys.can_sign() {
        return None;
    }
    Some(Finish {
        answer: Answer::Local(Response::error(503, "Passes are not sold here", "sales_disabled", None)),
        counts: vec![Count::PurchasesFailed("sales_disabled".to_owned())],
        log: Some(outcome_line("purchase refused", None, "reason=sales_disabled (this filter holds verify-only keys)")),
    })
}

impl Checkout {
    /// Decodes, binds and checks the payment locally (docs/behaviour.md §6.1–§6.3), then asks to
    /// claim it in the ledger. A payment refused here never reaches the facilitator.
    /// `method` and `path` (with its query) are the request's: a payment identifier is bound to
    /// them (docs/behaviour.md §17.5).
    /// `now_ms` is read for an EVM payment only (its validity window, docs/behaviour.md §21).
    #[allow(clippy::too_many_arguments)]
    pub fn begin(
        config: &Config,
        method: &[u8],
        path: &[u8],
        wire: Wire,
        header: &[u8],
        challenge: Challenge,
        fee_payer: &str,
        now_ms: impl FnOnce() -> u64,
    ) -> Result<(Checkout, Step), Finish> {
        let now_s = || now_ms() / 1_000;
        let checked = payment::decode_header(config, wire, header)
            .and_then(|p| payment::check(config, path, p, now_s))
            .and_then(|c| {
                let id = payment::identifier(&c.payment.payload)?;
                Ok((c, id))
            });
        let (checked, id) = match checked {
            Ok(checked) => checked,
            Err(refusal) => {
                let log = outcome_line("purchase refused", None, &format!("reason={}", refusal.reason()));
                return Err(refuse(config, &challenge, "Payment verification failed", refusal.reason(), log));
            }
        };
        let requirements = config
            .networks
            .get(checked.network)
            .and_then(|network| challenge::requirements(config, network, &checked.offer, fee_payer));
        let Some(requirements) = requirements else {
            let log = outcome_line("purchase refused", Some(&checked), "reason=network_mismatch");
            return Err(refuse(config, &challenge, "Payment verification failed", "network_mismatch", log));
        };
        let body = facilitator::request_body(&checked.payment.payload, wire, &requirements, &challenge.resource);
        let at = PurchaseKey::of(&checked.message_hash);
        let serve = is_paid_request(config, path);
        let id =
            id.map(|id| Identified { at: PurchaseKey::of_identifier(&id), request: request_fingerprint(method, path) });
        let mut checkout = Checkout { checked, challenge, body, at, serve, id, state: State::Claiming };
        let step = match checkout.id.is_some() {
            true => checkout.identify(None),
            false => Step::Ledger(LedgerOp::Claim(checkout.at.clone())),
        };
        Ok((checkout, step))
    }

    /// Binds the payment identifier to this payment and request (or learns who holds it).
    fn identify(&mut self, takeover: Option<String>) -> Step {
        let Some(id) = &self.id else { return Step::Ledger(LedgerOp::Claim(self.at.clone())) };
        self.state = State::Identifying { took_over: takeover.is_some() };
        Step::Ledger(LedgerOp::ClaimId {
            id: id.at.clone(),
            request: id.request.clone(),
            payment: self.at.clone(),
            takeover,
        })
    }

    pub fn body(&self) -> &[u8] {
        &self.body
    }

    pub fn checked(&self) -> &CheckedPayment {
        &self.checked
    }

    /// The ledger answered the last [`Step::Ledger`].
    pub fn on_ledger(&mut self, config: &Config, answer: LedgerAnswer, now_ms: u64) -> Step {
        match (std::mem::replace(&mut self.state, State::Done), answer) {
            (State::Identifying { took_over }, LedgerAnswer::Identified(claim)) => self.identified(claim, took_over),
            (State::LookingFirst { first, stale, took_over }, LedgerAnswer::Looked(outcome)) => {
                self.first_outcome(config, first, stale && !took_over, outcome)
            }
            (State::Claiming, LedgerAnswer::Claimed(claim)) => self.claimed(config, claim, now_ms),
            // docs/behaviour.md §19: the ledger cannot keep one payment to one request, so no
            // money may move; nothing was charged and the same payment may come again.
            (State::Claiming | State::Identifying { .. } | State::LookingFirst { .. }, _) => {
                let finish = self.ledger_unavailable("before /verify");
                self.finish(finish)
            }
            (State::SavingPending(pass), LedgerAnswer::Done) => self.settle(pass, false, now_ms),
            // The pass could not be held as pending: it is never settled. Drop what may be there.
            (State::SavingPending(_), _) => {
                let finish = self.ledger_unavailable("before /settle");
                self.close(finish, None)
            }
            // Recording the outcome is best effort: the answer stands either way.
            (State::Closing(finish, true), _) => match &self.id {
                Some(id) => {
                    let op = LedgerOp::ReleaseId { id: id.at.clone(), payment: self.at.clone() };
                    self.state = State::Closing(finish, false);
                    Step::Ledger(op)
                }
                None => self.finish(*finish),
            },
            (State::Closing(finish, false), _) => self.finish(*finish),
            (state, _) => self.out_of_order(state),
        }
    }

    /// The facilitator answered the last [`Step::Callout`] (or it could not be made).
    pub fn on_callout(&mut self, config: &Config, result: CalloutResult<'_>, now_ms: u64) -> Step {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Verifying => self.verified(config, facilitator::read_verify(result), now_ms / 1_000),
            State::Settling(settling) => {
                let settlement = facilitator::read_settle(result, self.network(config), &self.checked.payer);
                self.settled(config, settling, settlement, now_ms)
            }
            state => self.out_of_order(state),
        }
    }

    /// The last [`Step::Wait`] is over: ask `/settle` again.
    pub fn on_wake(&mut self, _config: &Config, _now_ms: u64) -> Step {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Sleeping(settling) => {
                self.state = State::Settling(settling);
                Step::Callout(Endpoint::Settle)
            }
            state => self.out_of_order(state),
        }
    }

    /// docs/behaviour.md §17.5: the identifier is this payment's, another request's, or names
    /// another payment for this request, whose outcome is then the answer.
    fn identified(&mut self, claim: IdClaim, took_over: bool) -> Step {
        match claim {
            IdClaim::Bound => {
                self.state = State::Claiming;
                Step::Ledger(LedgerOp::Claim(self.at.clone()))
            }
            IdClaim::Conflict => self.finish(Finish {
                answer: Answer::Local(purchase::identifier_conflict()),
                counts: vec![Count::PurchasesFailed("payment_identifier_conflict".to_owned())],
                log: Some(self.outcome("refused", "reason=payment_identifier_conflict")),
            }),
            IdClaim::Taken { bucket, payment, stale } => {
                let first = PurchaseKey { bucket, key: payment };
                self.state = State::LookingFirst { first: first.clone(), stale, took_over };
                Step::Ledger(LedgerOp::Look(first))
            }
        }
    }

    /// Another payment was first with this identifier for this request: its outcome, never a
    /// second settlement. `stale`: that payment was never recorded and its binding is old enough
    /// to be abandoned, so this payment takes the identifier over.
    fn first_outcome(&mut self, config: &Config, first: PurchaseKey, stale: bool, outcome: FirstOutcome) -> Step {
        match outcome {
            FirstOutcome::Settled(receipt) => {
                self.replay(config, &receipt, " (the first payment of its payment identifier; this one not settled)")
            }
            FirstOutcome::Spent => {
                let log = self.outcome("refused", "reason=duplicate_payment (its payment identifier was spent)");
                let finish = refuse(config, &self.challenge, "Payment verification failed", "duplicate_payment", log);
                self.finish(finish)
            }
            FirstOutcome::Absent if stale => self.identify(Some(first.key)),
            FirstOutcome::InProgress | FirstOutcome::Absent => self.finish(Finish {
                answer: Answer::Local(purchase::in_progress()),
                counts: vec![Count::PurchasesFailed("payment_in_progress".to_owned())],
                log: Some(self.outcome("in progress elsewhere", "status=409 (its payment identifier's first payment)")),
            }),
        }
    }

    fn claimed(&mut self, config: &Config, claim: Claim, now_ms: u64) -> Step {
        match claim {
            Claim::Fresh => {
                self.state = State::Verifying;
                Step::Callout(Endpoint::Verify)
            }
            Claim::InProgress => self.finish(Finish {
                answer: Answer::Local(purchase::in_progress()),
                counts: vec![Count::PurchasesFailed("payment_in_progress".to_owned())],
                log: Some(self.outcome("in progress elsewhere", "status=409")),
            }),
            Claim::Replay(receipt) => self.replay(config, &receipt, ""),
            Claim::Duplicate => {
                let log = self.outcome("refused", "reason=duplicate_payment");
                let finish = refuse(config, &self.challenge, "Payment verification failed", "duplicate_payment", log);
                self.finish(finish)
            }
            Claim::Recover(pass) => self.settle(pass, true, now_ms),
        }
    }

    fn verified(&mut self, config: &Config, verification: Verification, now: u64) -> Step {
        match verification {
            Verification::Valid => {
                // Sign now, before any money moves: nothing can fail after settling.
                let claims = purchase::claims(config, &self.checked, now);
                match token::sign(&config.keys, &claims) {
                    Ok(token) => {
                        let pass = IssuedPass { token, claims };
                        self.state = State::SavingPending(pass.clone());
                        Step::Ledger(LedgerOp::Put(
                            self.at.clone(),
                            Box::new(Entry::Pending { since: now, pass: Some(pass) }),
                        ))
                    }
                    Err(problem) => {
                        // Before `/settle`: nothing was charged, and the payment may be sent again.
                        log::error!("x402-access-pass: could not sign a pass: {problem}");
                        let finish = Finish {
                            answer: Answer::Local(purchase::pass_signing_failed()),
                            counts: vec![Count::PurchasesFailed("pass_signing_failed".to_owned())],
                            log: Some(self.outcome("refused", "reason=pass_signing_failed")),
                        };
                        self.close(finish, None)
                    }
                }
            }
            Verification::Invalid { reason } => {
                let log = self.outcome("refused by the facilitator", &format!("reason={reason}"));
                let finish = refuse(config, &self.challenge, "Payment verification failed", &reason, log);
                self.close(finish, None)
            }
            Verification::Unavailable(problem) => {
                let log = self.outcome("not verified", &format!("reason={}", problem.reason()));
                self.close(unavailable(problem, Some(log)), None)
            }
        }
    }

    fn settle(&mut self, pass: IssuedPass, recovering: bool, now_ms: u64) -> Step {
        let settling =
            Settling { pass, recovering, first_ms: now_ms, attempts: 1, unrecognized: None, problems: Vec::new() };
        self.state = State::Settling(settling);
        Step::Callout(Endpoint::Settle)
    }

    /// docs/behaviour.md §17: settled, refused, or unknown, and what each means for the buyer.
    fn settled(&mut self, config: &Config, mut settling: Settling, settlement: Settlement, now_ms: u64) -> Step {
        // "Already processed" is proof of a settlement only for a payment this filter already
        // tried to settle: a payment seen for the first time could be an old one sent again.
        let tried_before = settling.recovering || settling.attempts > 1;
        let why = match settlement {
            Settlement::Settled { transaction } => return self.landed(config, settling, &transaction, now_ms),
            Settlement::Failed { reason } => match settle_outcome::classify(&reason) {
                Failure::AlreadySettled if tried_before => return self.landed(config, settling, "", now_ms),
                Failure::AlreadySettled | Failure::Refused => return self.refused(config, settling, &reason),
                Failure::Unrecognized if settling.unrecognized.as_deref() == Some(reason.as_str()) => {
                    return self.refused(config, settling, &reason)
                }
                Failure::Unrecognized => {
                    settling.unrecognized = Some(reason.clone());
                    reason
                }
                Failure::MayHaveLanded => reason,
            },
            Settlement::Unknown(problem) => {
                settling.problems.push(unavailable_count(problem));
                problem.reason()
            }
        };
        let backoff =
            FIRST_BACKOFF_MS.saturating_mul(1 << settling.attempts.saturating_sub(1).min(8)).min(MAX_BACKOFF_MS);
        let elapsed = now_ms.saturating_sub(settling.first_ms);
        if elapsed.saturating_add(backoff) < config.settle_deadline_ms {
            settling.attempts += 1;
            self.state = State::Sleeping(settling);
            return Step::Wait(backoff);
        }
        let detail = format!(
            "reason={why} after {} attempt(s) in {elapsed} ms; the same payment sent again settles or recovers it",
            settling.attempts
        );
        let mut counts = std::mem::take(&mut settling.problems);
        counts.push(Count::SettlementsUnknown);
        push_retries(&mut counts, &settling);
        let finish = Finish {
            answer: Answer::Local(purchase::settlement_unknown()),
            counts,
            log: Some(self.outcome("settlement unknown", &detail)),
        };
        self.close(finish, Some(Entry::Unknown { since: now_ms / 1_000, pass: settling.pass }))
    }

    /// Refused before broadcast: 402, and the record dropped (the buyer was not charged).
    fn refused(&mut self, config: &Config, settling: Settling, reason: &str) -> Step {
        let log = self.outcome("settlement failed", &format!("reason={reason}"));
        let mut finish = refuse(config, &self.challenge, "Payment settlement failed", reason, log);
        finish.counts.extend(settling.problems.iter().cloned());
        push_retries(&mut finish.counts, &settling);
        self.close(finish, None)
    }

    /// The money moved: the pass, lasting what was paid for from now on (docs/behaviour.md §17.4).
    fn landed(&mut self, config: &Config, settling: Settling, transaction: &str, now_ms: u64) -> Step {
        let now = now_ms / 1_000;
        let recovered = settling.recovering || settling.attempts > 1;
        let pass = if recovered { self.sign_anew(config, &settling.pass, now) } else { settling.pass.clone() };
        let receipt = Receipt::new(&pass, transaction, self.network(config));
        let mut detail = match transaction {
            "" => "transaction=(recovered: settled earlier)".to_owned(),
            tx => format!("transaction={tx}"),
        };
        let mut counts = settling.problems.clone();
        counts.extend([
            Count::PurchasesSucceeded,
            Count::SettledAtomic { tier: self.checked.offer.tier.clone(), atomic: self.checked.offer.atomic },
        ]);
        if recovered {
            counts.push(Count::SettlementsRecovered);
            detail.push_str(&format!(" recovered after {} attempt(s) here", settling.attempts));
        }
        push_retries(&mut counts, &settling);
        let answer = match self.forward(config, &receipt) {
            Some(forward) => {
                counts.push(Count::PaidRequestsForwarded);
                detail.push_str(" forwarded upstream");
                Answer::Forward(forward)
            }
            None => Answer::Local(receipt.response(self.checked.payment.wire)),
        };
        let finish = Finish { answer, counts, log: Some(self.outcome("settled", &detail)) };
        // The settlement and the payer's entitlement (docs/behaviour.md §16.3), recorded together
        // before the answer leaves, so that their next `SIGN-IN-WITH-X` finds it.
        let entitlement = Entitlement::of(&pass.claims);
        let payer = crate::entitlements::key_of(&pass.claims.payer);
        self.state = State::Closing(Box::new(finish), false);
        let entry = Box::new(Entry::Settled { at: now, receipt });
        Step::Ledger(LedgerOp::PutEntitled { at: self.at.clone(), entry, payer, entitlement })
    }

    /// The same pass (tier, payer) issued now: a recovered pass is never shortened or expired.
    fn sign_anew(&self, config: &Config, pass: &IssuedPass, now: u64) -> IssuedPass {
        let claims = purchase::claims(config, &self.checked, now);
        match token::sign(&config.keys, &claims) {
            Ok(token) => IssuedPass { token, claims },
            Err(problem) => {
                log::error!("x402-access-pass: could not sign a recovered pass anew, handing out the first: {problem}");
                pass.clone()
            }
        }
    }

    /// Records `entry` (or forgets the purchase when `None`: nothing was charged), then answers.
    fn close(&mut self, finish: Finish, entry: Option<Entry>) -> Step {
        self.state = State::Closing(Box::new(finish), entry.is_none());
        let at = self.at.clone();
        Step::Ledger(match entry {
            Some(entry) => LedgerOp::Put(at, Box::new(entry)),
            None => LedgerOp::Forget(at),
        })
    }

    /// 503 `ledger_unavailable`: the ledger failed `when` (before any money moved).
    fn ledger_unavailable(&self, when: &str) -> Finish {
        Finish {
            answer: Answer::Local(purchase::ledger_unavailable()),
            counts: vec![Count::PurchasesFailed("ledger_unavailable".to_owned())],
            log: Some(self.outcome("refused", &format!("reason=ledger_unavailable ({when}; nothing was charged)"))),
        }
    }

    fn finish(&mut self, finish: Finish) -> Step {
        self.state = State::Done;
        Step::Finish(finish)
    }

    /// An answer the flow did not ask for (a host bug): answer 503 and keep whatever the ledger
    /// holds, so the same payment sent again settles or recovers.
    fn out_of_order(&mut self, state: State) -> Step {
        let name = match state {
            State::Claiming => "claiming",
            State::Verifying => "verifying",
            State::SavingPending(_) => "saving the pending pass",
            State::Settling(_) => "settling",
            State::Sleeping(_) => "waiting to settle again",
            State::Closing(..) => "recording the outcome",
            State::Identifying { .. } => "binding the payment identifier",
            State::LookingFirst { .. } => "reading the payment identifier's first payment",
            State::Done => "done",
        };
        log::error!("x402-access-pass: purchase step out of order while {name}");
        self.finish(Finish { answer: Answer::Local(purchase::settlement_unknown()), counts: Vec::new(), log: None })
    }

    /// A settled payment's answer again (docs/behaviour.md §6.5, §15): its 200, or its request
    /// forwarded again with the same pass; never a second settlement.
    fn replay(&mut self, config: &Config, receipt: &Receipt, why: &str) -> Step {
        let mut counts = vec![Count::ReplaysServed];
        let (answer, detail) = match self.forward(config, receipt) {
            Some(forward) => {
                counts.push(Count::PaidRequestsForwarded);
                (Answer::Forward(forward), "the request was forwarded again with the same pass")
            }
            None => (Answer::Local(receipt.response(self.checked.payment.wire)), "the same pass was served again"),
        };
        let log = self.outcome("replayed", &format!("{detail}{why}"));
        self.finish(Finish { answer, counts, log: Some(log) })
    }

    /// For a paid request, what forwarding it with this receipt's pass means. `None` for a
    /// Part I purchase (and for a receipt recorded without its claims, answered as Part I).
    fn forward(&self, config: &Config, receipt: &Receipt) -> Option<Forward> {
        let claims = receipt.claims.as_ref().filter(|_| self.serve)?;
        Some(Forward::new(config, self.checked.payment.wire, &receipt.token, &receipt.payment_response, claims))
    }

    /// The network as the payment's x402 version names it: in a v1 settle answer and
    /// `X-PAYMENT-RESPONSE`, the v1 name (docs/behaviour.md §20).
    fn network<'c>(&'c self, _config: &Config) -> &'c str {
        let network = &self.checked.payment.network;
        match self.checked.payment.wire {
            Wire::V2 => network,
            Wire::V1 => challenge::v1_network(network),
        }
    }

    fn outcome(&self, outcome: &str, detail: &str) -> String {
        let what = if self.serve { format!("paid request {outcome}") } else { format!("purchase {outcome}") };
        outcome_line(&what, Some(&self.checked), detail)
    }
}

/// What a payment identifier is bound to: the request's method and path (with its query).
fn request_fingerprint(method: &[u8], path: &[u8]) -> String {
    use sha2::Digest as _;
    let mut hash = sha2::Sha256::new();
    hash.update(method);
    hash.update(b" ");
    hash.update(path);
    crate::replay::locate(&hash.finalize().into()).1
}

/// 402 with the challenge headers and `{"error", "reason"}`.
fn refuse(config: &Config, challenge: &Challenge, error: &str, reason: &str, log: String) -> Finish {
    Finish {
        answer: Answer::Local(challenge.refusal(config, error, reason)),
        counts: vec![Count::PurchasesFailed(reason.to_owned())],
        log: Some(log),
    }
}

/// 502: the facilitator could not be asked; nothing was charged.
fn unavailable(problem: Unavailable, log: Option<String>) -> Finish {
    Finish {
        answer: Answer::Local(purchase::facilitator_unavailable(&problem.reason())),
        counts: vec![unavailable_count(problem), Count::PurchasesFailed(problem.reason())],
        log,
    }
}

fn push_retries(counts: &mut Vec<Count>, settling: &Settling) {
    if settling.attempts > 1 {
        counts.push(Count::SettleRetries(settling.attempts - 1));
    }
}

fn unavailable_count(problem: Unavailable) -> Count {
    match problem {
        Unavailable::Timeout => Count::FacilitatorTimeouts,
        _ => Count::FacilitatorErrors,
    }
}

/// The one log line of a purchase outcome: never a secret, never a whole token.
/// `outcome` starts with what was bought: `purchase …` or `paid request …`.
fn outcome_line(outcome: &str, checked: Option<&CheckedPayment>, detail: &str) -> String {
    match checked {
        Some(c) => format!(
            "x402-access-pass: {outcome} payer={} tier={} amount={} network={} {detail}",
            c.payer, c.offer.tier, c.price, c.payment.network
        ),
        None => format!("x402-access-pass: {outcome} {detail}"),
    }
}

#[cfg(test)]
mod tests;
