//! Forgetting a purchase (the local ledger's `Bucket::remove`): nothing was charged, the same
//! payment may come again. One delete that answers with what it deleted, and then that record's
//! lease revoked without waiting (it held that record alone).

use super::keys::Key;
use super::wire;
use super::{Call, Finished, Reply, Settings, Step, Unavailable};

/// A purchase being forgotten.
pub struct Forget {
    key: Key,
    cleanup_timeout_ms: u64,
    sent: bool,
}

/// Forgets the purchase at `key`.
pub fn forget(settings: &Settings, key: Key) -> (Forget, Step<()>) {
    let call = Call { path: wire::DELETE_RANGE, body: wire::delete(key.as_bytes()), timeout_ms: settings.timeout_ms() };
    (Forget { key, cleanup_timeout_ms: settings.timeout_ms(), sent: true }, Step::Send(call))
}

impl Forget {
    /// The answer to the delete.
    pub fn on_reply(&mut self, reply: Reply<'_>, _now_ms: u64) -> Step<()> {
        if !std::mem::replace(&mut self.sent, false) {
            return Step::Finish(Finished { result: Err(Unavailable::Garbled), cleanup: Vec::new() });
        }
        let (result, cleanup) = match wire::read_delete(reply, self.key.as_bytes()) {
            Ok(Some(kv)) if kv.lease != 0 => (
                Ok(()),
                vec![Call {
                    path: wire::LEASE_REVOKE,
                    body: wire::lease_revoke(kv.lease),
                    timeout_ms: self.cleanup_timeout_ms,
                }],
            ),
            Ok(_) => (Ok(()), Vec::new()),
            Err(problem) => (Err(problem), Vec::new()),
        };
        Step::Finish(Finished { result, cleanup })
    }
}

#[cfg(test)]
mod tests;
