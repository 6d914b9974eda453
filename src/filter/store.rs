//! The purchase store in Envoy shared data (see `replay` for why buckets).

use crate::replay::{bucket_key, Bucket, Policy, BUCKETS};

use super::host;

/// Compare-and-swap attempts before giving up on a busy bucket.
const MAX_ATTEMPTS: usize = 32;

/// Creates the buckets that do not exist yet. Creation is the one write that
/// cannot be a compare-and-swap; it happens at start-up, before requests.
pub fn create_buckets() {
    for index in 0..BUCKETS {
        let key = bucket_key(index);
        if let Some((None, None)) = host::shared_data(&key) {
            let _ = host::set_shared_data(&key, b"", None);
        }
    }
}

/// Applies `change` to bucket `index` atomically (read, change, sweep,
/// compare-and-swap, retry on conflict). `None` when the store is unusable.
pub fn update<R>(index: usize, now: u64, policy: Policy, mut change: impl FnMut(&mut Bucket) -> R) -> Option<R> {
    let key = bucket_key(index);
    for _ in 0..MAX_ATTEMPTS {
        let (bytes, cas) = host::shared_data(&key)?;
        let mut bucket = Bucket::decode(bytes.as_deref());
        let result = change(&mut bucket);
        bucket.sweep(now, policy);
        match host::set_shared_data(&key, &bucket.encode(), cas) {
            Ok(()) => return Some(result),
            Err(proxy_wasm::types::Status::CasMismatch) => continue,
            Err(status) => {
                log::error!("x402-access-pass: shared data write failed: {status:?}");
                return None;
            }
        }
    }
    log::error!("x402-access-pass: purchase store bucket {index} stayed busy");
    None
}

/// Background sweep of one bucket; writes only when something expired.
pub fn sweep(index: usize, now: u64, policy: Policy) {
    let key = bucket_key(index);
    let Some((bytes, cas)) = host::shared_data(&key) else { return };
    let mut bucket = Bucket::decode(bytes.as_deref());
    if cas.is_some() && bucket.sweep(now, policy) {
        // A conflict means another worker wrote (and swept) it: nothing to redo.
        let _ = host::set_shared_data(&key, &bucket.encode(), cas);
    }
}
