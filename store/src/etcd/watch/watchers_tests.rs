use navarch_bus::store::{prefix_end, KeyValue};

use super::*;

const STAMP: Stamp = Stamp {
    cluster_id: 1,
    member_id: 1,
};

fn put(key: &str, revision: i64) -> Event {
    Event {
        kind: EventKind::Put,
        kv: KeyValue {
            key: key.into(),
            mod_revision: revision,
            version: 1,
            ..Default::default()
        },
        prev_kv: None,
    }
}

fn delete(key: &str, revision: i64) -> Event {
    Event {
        kind: EventKind::Delete,
        ..put(key, revision)
    }
}

fn prefix(key: &str, start_revision: i64) -> pb::WatchCreateRequest {
    pb::WatchCreateRequest {
        key: key.into(),
        range_end: prefix_end(key.as_bytes()),
        start_revision,
        ..Default::default()
    }
}

fn revision(response: &pb::WatchResponse) -> i64 {
    response.header.as_ref().map_or(0, |h| h.revision)
}

#[test]
fn ids_start_at_zero_and_refusals_are_etcds() {
    let mut watchers = Watchers::new(STAMP);
    let first = watchers.create(prefix("a", 0), 5);
    assert!(first.created && !first.canceled);
    assert_eq!((first.watch_id, revision(&first)), (0, 5));
    let chosen = watchers.create(
        pb::WatchCreateRequest {
            watch_id: 1,
            ..prefix("b", 0)
        },
        5,
    );
    assert_eq!(chosen.watch_id, 1);
    assert_eq!(watchers.create(prefix("c", 0), 5).watch_id, 2);
    let duplicate = watchers.create(
        pb::WatchCreateRequest {
            watch_id: 2,
            ..prefix("d", 0)
        },
        5,
    );
    assert!(duplicate.canceled && duplicate.watch_id == -1);
    assert_eq!(duplicate.cancel_reason, DUPLICATE_ID);
    let empty = watchers.create(
        pb::WatchCreateRequest {
            key: b"b".to_vec(),
            range_end: b"b".to_vec(),
            ..Default::default()
        },
        5,
    );
    assert_eq!(empty.cancel_reason, EMPTY_RANGE);
    // From-key ranges ("\0") are fine.
    let from_key = watchers.create(
        pb::WatchCreateRequest {
            key: b"b".to_vec(),
            range_end: vec![0],
            ..Default::default()
        },
        5,
    );
    assert!(!from_key.canceled);
    assert_eq!(watchers.cancel(0).map(|r| r.canceled), Some(true));
    assert_eq!(watchers.cancel(0), None);
}

#[test]
fn live_changes_go_to_synced_watchers_in_range_with_filters() {
    let mut watchers = Watchers::new(STAMP);
    watchers.create(prefix("a", 0), 1);
    watchers.create(
        pb::WatchCreateRequest {
            filters: vec![FilterType::Noput as i32],
            ..prefix("a", 0)
        },
        1,
    );
    // Already covered by the creation's revision: skipped.
    assert!(watchers.on_revision(1, &[put("a1", 1)]).is_empty());
    let out = watchers.on_revision(2, &[put("a1", 2), put("b", 2), delete("a2", 2)]);
    assert_eq!(out.len(), 2);
    assert_eq!(
        (out[0].watch_id, out[0].events.len(), revision(&out[0])),
        (0, 2, 2)
    );
    assert_eq!((out[1].watch_id, out[1].events.len()), (1, 1));
    assert_eq!(
        out[1].events[0].r#type(),
        crate::etcd::proto::mvccpb::event::EventType::Delete
    );
    // Replayed revisions (a restart's repeated notices) are not delivered twice.
    assert!(watchers.on_revision(2, &[put("a1", 2)]).is_empty());
}

#[test]
fn a_past_start_reads_history_before_following_live_changes() {
    let mut watchers = Watchers::new(STAMP);
    watchers.create(prefix("a", 3), 10);
    let (id, watcher) = watchers.unsynced().expect("must catch up");
    assert_eq!((id, watcher.next), (0, 3));
    // Live changes are not for it yet.
    assert!(watchers.on_revision(11, &[put("a", 11)]).is_empty());
    // A first page up to 6, then the rest up to 11.
    let page = |revision: i64| ChangeBatch {
        revision,
        prev: 0,
        stream: "_".into(),
        events: vec![put("a", revision)],
    };
    let first = watchers
        .caught_up(0, vec![page(3), page(6)], 6, false)
        .expect("events");
    assert_eq!((first.events.len(), revision(&first)), (2, 6));
    assert!(watchers.unsynced().is_some());
    let rest = watchers
        .caught_up(0, vec![page(9), page(11)], 11, true)
        .expect("events");
    assert_eq!(rest.events.len(), 2);
    assert!(watchers.unsynced().is_none());
    assert!(watchers.on_revision(11, &[put("a", 11)]).is_empty());
    assert_eq!(watchers.on_revision(12, &[put("a", 12)]).len(), 1);
    // Lagging puts it back to history from where it is.
    watchers.unsync_all();
    assert_eq!(watchers.unsynced().map(|(_, w)| w.next), Some(13));
    let gone = watchers.compacted(0, 20).expect("known watcher");
    assert!(gone.canceled && gone.compact_revision == 20);
    assert!(watchers.unsynced().is_none());
}

#[test]
fn a_future_start_waits_for_its_revision() {
    let mut watchers = Watchers::new(STAMP);
    watchers.create(prefix("a", 8), 5);
    assert!(watchers.caught_up(0, Vec::new(), 5, true).is_none());
    assert!(watchers.on_revision(6, &[put("a", 6)]).is_empty());
    assert!(watchers.on_revision(7, &[put("a", 7)]).is_empty());
    assert_eq!(watchers.on_revision(8, &[put("a", 8)]).len(), 1);
}

#[test]
fn progress_is_what_every_watcher_has() {
    let mut watchers = Watchers::new(STAMP);
    assert_eq!(revision(&watchers.progress()), 0);
    watchers.saw(4);
    assert_eq!(revision(&watchers.progress()), 4);
    watchers.create(prefix("a", 0), 4);
    watchers.create(prefix("b", 2), 4);
    // The second still owes revisions 2..=4.
    let progress = watchers.progress();
    assert_eq!((progress.watch_id, revision(&progress)), (-1, 1));
    watchers.caught_up(1, Vec::new(), 4, true);
    watchers.on_revision(5, &[put("zzz", 5)]);
    assert_eq!(revision(&watchers.progress()), 5);
    // A future watcher claims no more than the member has.
    watchers.create(prefix("c", 50), 5);
    watchers.caught_up(2, Vec::new(), 5, true);
    assert_eq!(revision(&watchers.progress()), 5);
}

#[test]
fn ticks_notify_quiet_watchers_that_asked() {
    let mut watchers = Watchers::new(STAMP);
    watchers.create(
        pb::WatchCreateRequest {
            progress_notify: true,
            ..prefix("a", 0)
        },
        3,
    );
    watchers.create(prefix("b", 0), 3);
    let due = watchers.tick();
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].watch_id, revision(&due[0])), (0, 3));
    // Events since the last tick: no notification this time.
    assert_eq!(watchers.on_revision(4, &[put("a", 4)]).len(), 1);
    assert!(watchers.tick().is_empty());
    assert_eq!(watchers.tick().len(), 1);
}
