//! Envoy's shared data as the local ledger's store (src/ledger.rs holds the ledger itself).

use crate::ledger::{LocalLedger, SharedStore, Write};
use crate::replay::Policy;

use super::host;

/// The shared data of this Envoy process, visible to every worker.
pub struct EnvoySharedData;

impl SharedStore for EnvoySharedData {
    fn read(&self, key: &str) -> Option<(Option<Vec<u8>>, Option<u32>)> {
        host::shared_data(key)
    }

    fn write(&self, key: &str, value: &[u8], cas: Option<u32>) -> Write {
        match host::set_shared_data(key, value, cas) {
            Ok(()) => Write::Done,
            Err(proxy_wasm::types::Status::CasMismatch) => Write::CasMismatch,
            Err(status) => {
                log::error!("x402-access-pass: shared data write failed: {status:?}");
                Write::Failed
            }
        }
    }
}

/// The one-process ledger of this worker.
pub fn local_ledger(policy: Policy) -> LocalLedger<'static, EnvoySharedData> {
    LocalLedger { store: &EnvoySharedData, policy }
}
