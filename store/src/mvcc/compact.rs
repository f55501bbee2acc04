//! Compaction: dropping the versions and change records that no read at or after the compaction point needs.

use std::collections::BTreeSet;

use navarch_bus::store::{StoreError, StoreResponse};

use super::ledger::version_bytes;
use super::read::header;
use super::{Commit, Compaction, Error, KeyRange, Ledger, Reader, Revisions};

/// Compaction to `to`: of each key's versions below `to`, only the latest survives, and only if it is live.
pub(super) fn compact(
    reader: &impl Reader,
    to: i64,
    mut ledger: Ledger,
) -> Result<(StoreResponse, Commit), Error> {
    let revisions = reader.revisions()?;
    if to <= revisions.compacted {
        return Err(StoreError::Compacted {
            requested: to,
            compact_revision: revisions.compacted,
        }
        .into());
    }
    if to > revisions.current {
        return Err(StoreError::FutureRevision {
            requested: to,
            current: revisions.current,
        }
        .into());
    }
    // Only keys changed since the last compaction can hold versions that just became unreachable.
    let mut touched = BTreeSet::new();
    reader.scan_changes(revisions.compacted, &mut |revision, keys| {
        if revision >= to {
            return false;
        }
        touched.extend(keys);
        true
    })?;
    let mut versions = Vec::new();
    let mut freed_bytes = 0u64;
    for key in touched {
        let mut below = Vec::new();
        reader.scan_versions(&KeyRange::single(&key), &mut |v| {
            if v.mod_revision >= to {
                return false;
            }
            below.push(v);
            true
        })?;
        let keep_last = below.last().is_some_and(|v| v.version > 0);
        let drop = below.len() - usize::from(keep_last);
        for v in below.into_iter().take(drop) {
            freed_bytes = freed_bytes.saturating_add(version_bytes(&v.key, &v.value));
            versions.push((v.key, v.mod_revision));
        }
    }
    ledger.bytes = ledger.bytes.saturating_sub(freed_bytes);
    let commit = Commit {
        revisions: Revisions {
            compacted: to,
            ..revisions
        },
        events: Vec::new(),
        compaction: Some(Compaction {
            from: revisions.compacted,
            to,
            versions,
            freed_bytes,
        }),
        ledger,
        leases: Vec::new(),
    };
    Ok((StoreResponse::Compact(header(revisions.current)), commit))
}
