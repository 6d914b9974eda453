//! Forgetting a purchase (the local ledger's `Bucket::remove`): nothing was charged, the same
//! payment may come again. One delete. Its lease is left to run out: it may hold other records
//! (`memory`).

use super::keys::Key;
use super::wire;
use super::{Call, Finished, Reply, Settings, Step, Unavailable};

/// A purchase being forgotten.
pub struct Forget {
    key: Key,
    memory: super::memory::Memory,
    sent: bool,
}

/// Forgets the purchase at `key`.
pub fn forget(settings: &Settings, key: Key) -> (Forget, Step<()>) {
    let call = Call { path: wire::DELETE_RANGE, body: wire::delete(key.as_bytes()), timeout_ms: settings.timeout_ms() };
    (Forget { key, memory: settings.memory().clone(), sent: true }, Step::Send(call))
}

impl Forget {
    /// The answer to the delete.
    pub fn on_reply(&mut self, reply: Reply<'_>, _now_ms: u64) -> Step<()> {
        if !std::mem::replace(&mut self.sent, false) {
            return Step::Finish(Finished { result: Err(Unavailable::Garbled), cleanup: Vec::new() });
        }
        // Deleted or not, this worker no longer knows the key.
        self.memory.learn(self.key.as_bytes(), None);
        let result = wire::read_delete(reply, self.key.as_bytes()).map(|_| ());
        Step::Finish(Finished { result, cleanup: Vec::new() })
    }
}

#[cfg(test)]
mod tests;
