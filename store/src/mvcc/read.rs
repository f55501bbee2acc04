//! Reads: ranges at the current or a past revision, and the history of changes that watches catch up from.

use navarch_bus::store::{
    stream_of, ChangeBatch, Event, EventKind, HistoryRequest, HistoryResponse, KeyValue,
    RangeRequest, RangeResponse, ResponseHeader, StoreError,
};

use super::{kv_size, Error, KeyRange, Limits, Reader};

/// Answers a range request: the keys of the range at `request.revision` (0: now), capped by `limit` and by
/// `limits.range_bytes`, with the count of the whole range.
pub fn range(
    reader: &impl Reader,
    request: &RangeRequest,
    limits: &Limits,
) -> Result<RangeResponse, Error> {
    if request.limit < 0 {
        return Err(StoreError::InvalidArgument("negative limit".into()).into());
    }
    if request.revision < 0 {
        return Err(StoreError::InvalidArgument("negative revision".into()).into());
    }
    let range = KeyRange::new(&request.key, &request.range_end)?;
    let revisions = reader.revisions()?;
    let at = match request.revision {
        0 => revisions.current,
        revision => revision,
    };
    check_revision(at, revisions.current, revisions.compacted)?;
    let mut page = Page {
        request,
        byte_cap: limits.range_bytes,
        bytes: 0,
        full: false,
        kvs: Vec::new(),
        count: 0,
    };
    if at == revisions.current {
        reader.scan(&range, &mut |kv| page.add(kv))?;
    } else {
        // Every kept version of the range, by key then revision: the last one at or below `at` is the key's state.
        let mut latest: Option<KeyValue> = None;
        reader.scan_versions(&range, &mut |version| {
            if latest.as_ref().is_some_and(|l| l.key != version.key) {
                page.add_live(latest.take());
            }
            if version.mod_revision <= at {
                latest = Some(version);
            }
            true
        })?;
        page.add_live(latest);
    }
    let more = !request.count_only && (page.kvs.len() as i64) < page.count;
    Ok(RangeResponse {
        header: header(revisions.current),
        kvs: page.kvs,
        more,
        count: page.count,
    })
}

/// Refuses a read at a revision the store does not have.
fn check_revision(at: i64, current: i64, compacted: i64) -> Result<(), StoreError> {
    if at > current {
        return Err(StoreError::FutureRevision {
            requested: at,
            current,
        });
    }
    if at < compacted {
        return Err(StoreError::Compacted {
            requested: at,
            compact_revision: compacted,
        });
    }
    Ok(())
}

/// Collects one page of a range answer while counting the whole range.
struct Page<'a> {
    request: &'a RangeRequest,
    byte_cap: usize,
    bytes: usize,
    /// Set once the page stopped taking keys; later keys are only counted so the page stays contiguous.
    full: bool,
    kvs: Vec<KeyValue>,
    count: i64,
}

impl Page<'_> {
    fn add(&mut self, mut kv: KeyValue) -> bool {
        self.count += 1;
        if self.request.count_only || self.full {
            return true;
        }
        let limit_reached = self.request.limit > 0 && self.kvs.len() as i64 >= self.request.limit;
        let bytes_reached = !self.kvs.is_empty() && self.bytes >= self.byte_cap;
        if limit_reached || bytes_reached {
            self.full = true;
            return true;
        }
        if self.request.keys_only {
            kv.value = Vec::new();
        }
        self.bytes += kv_size(&kv);
        self.kvs.push(kv);
        true
    }

    /// Adds a key's state if it is a live version (not a deletion).
    fn add_live(&mut self, kv: Option<KeyValue>) {
        if let Some(kv) = kv.filter(|kv| kv.version > 0) {
            self.add(kv);
        }
    }
}

/// Answers a history request: every revision from `start_revision` on that changed the range, with the previous
/// value of each changed key, up to the current revision or to the caps (then `more`).
pub fn history(
    reader: &impl Reader,
    request: &HistoryRequest,
    limits: &Limits,
) -> Result<HistoryResponse, Error> {
    let revisions = reader.revisions()?;
    let mut response = HistoryResponse {
        header: header(revisions.current),
        ..Default::default()
    };
    if request.start_revision == 0 {
        return Ok(response);
    }
    if request.start_revision < 0 || request.limit < 0 {
        return Err(StoreError::InvalidArgument("negative start revision or limit".into()).into());
    }
    let range = KeyRange::new(&request.key, &request.range_end)?;
    if request.start_revision < revisions.compacted {
        return Err(StoreError::Compacted {
            requested: request.start_revision,
            compact_revision: revisions.compacted,
        }
        .into());
    }
    let max_batches = match request.limit {
        0 => limits.history_revisions,
        limit => usize::try_from(limit).unwrap_or(usize::MAX),
    };
    let mut bytes = 0;
    let mut failure = None;
    reader.scan_changes(request.start_revision, &mut |revision, keys| {
        if revision > revisions.current {
            return false;
        }
        let mut events = Vec::new();
        for key in keys.into_iter().filter(|k| range.contains(k)) {
            match event_at(reader, key, revision) {
                Ok(event) => events.push(event),
                Err(e) => {
                    failure = Some(e);
                    return false;
                }
            }
        }
        let Some(first) = events.first() else {
            return true;
        };
        bytes += events
            .iter()
            .map(|e| kv_size(&e.kv) + e.prev_kv.as_ref().map_or(0, kv_size))
            .sum::<usize>();
        response.batches.push(ChangeBatch {
            revision,
            prev: 0,
            stream: stream_of(&first.kv.key),
            events,
        });
        let capped = response.batches.len() >= max_batches || bytes >= limits.history_bytes;
        response.more = capped && revision < revisions.current;
        !capped
    })?;
    match failure {
        Some(e) => Err(e),
        None => Ok(response),
    }
}

/// Rebuilds the event that changed `key` at `revision` from the kept versions.
fn event_at(reader: &impl Reader, key: Vec<u8>, revision: i64) -> Result<Event, Error> {
    let kv = reader
        .version_before(&key, revision + 1)?
        .filter(|kv| kv.mod_revision == revision)
        .ok_or_else(|| {
            Error::Storage(format!(
                "change of {} at revision {revision} has no version",
                String::from_utf8_lossy(&key)
            ))
        })?;
    let prev_kv = reader
        .version_before(&key, revision)?
        .filter(|prev| prev.version > 0);
    let kind = if kv.version == 0 {
        EventKind::Delete
    } else {
        EventKind::Put
    };
    Ok(Event { kind, kv, prev_kv })
}

/// A header carrying `revision`; the serving layer adds the member and term.
pub(super) fn header(revision: i64) -> ResponseHeader {
    ResponseHeader {
        revision,
        ..Default::default()
    }
}
