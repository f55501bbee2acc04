//! Which watch events a client sees under its selectors. Pure and stateless.
//!
//! As kube-apiserver's watch cache does, a change is judged on the object before and after it: matching after but
//! not before is ADDED, before but not after is DELETED (carrying the new state), both is MODIFIED, neither is
//! dropped. The store supplies the previous state of every change, so this is exact whether the watch began with
//! the initial list or at a resourceVersion, and costs no memory per watched object.

use navarch_bus::api::{ObjectEvent, WatchType};
use serde_json::Value;

use crate::selector::Selectors;

/// Decides, event by event, what a watcher is sent.
#[derive(Debug)]
pub struct Filter {
    selectors: Selectors,
    bookmarks: bool,
}

impl Filter {
    /// A filter for `selectors`; bookmarks pass only when the client allowed them.
    pub fn new(selectors: Selectors, bookmarks: bool) -> Self {
        Self {
            selectors,
            bookmarks,
        }
    }

    /// Whether an object of the initial list is sent (as ADDED).
    pub fn initial(&mut self, object: &Value) -> bool {
        self.selectors.matches(object)
    }

    /// What to send for `event`, if anything.
    pub fn decide(&mut self, event: ObjectEvent) -> Option<(WatchType, Value)> {
        let kind = self.kind_of(&event)?;
        Some((kind, event.object))
    }

    /// As [`Filter::decide`], without taking the event: which type of event to send, if any.
    pub fn kind_of(&mut self, event: &ObjectEvent) -> Option<WatchType> {
        let now = self.selectors.matches(&event.object);
        let kind = match event.kind {
            WatchType::Bookmark => return self.bookmarks.then_some(WatchType::Bookmark),
            WatchType::Added | WatchType::Deleted => now.then_some(event.kind)?,
            WatchType::Modified => {
                let before = event
                    .previous
                    .as_ref()
                    .map_or(now, |p| self.selectors.matches(p));
                match (before, now) {
                    (true, true) => WatchType::Modified,
                    (false, true) => WatchType::Added,
                    (true, false) => WatchType::Deleted,
                    (false, false) => return None,
                }
            }
        };
        Some(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use navarch_bus::api::resource::by_kind;
    use serde_json::json;

    fn pod(name: &str, app: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "demo", "labels": {"app": app}}})
    }

    fn event(kind: WatchType, object: Value, previous: Option<Value>) -> ObjectEvent {
        ObjectEvent {
            kind,
            object,
            previous,
            revision: 1,
        }
    }

    fn filter(labels: &str) -> Filter {
        let pods = by_kind("v1", "Pod").unwrap();
        Filter::new(Selectors::parse(pods, labels, "").unwrap(), false)
    }

    fn kind_of(f: &mut Filter, kind: WatchType, object: Value) -> Option<WatchType> {
        f.decide(event(kind, object, None)).map(|(k, _)| k)
    }

    fn change(f: &mut Filter, before: Value, after: Value) -> Option<WatchType> {
        f.decide(event(WatchType::Modified, after, Some(before)))
            .map(|(k, _)| k)
    }

    #[test]
    fn objects_entering_and_leaving_the_selection_are_added_and_deleted() {
        let mut f = filter("app=web");
        assert!(f.initial(&pod("a", "web")));
        assert!(!f.initial(&pod("b", "db")));
        assert_eq!(
            change(&mut f, pod("a", "web"), pod("a", "web")),
            Some(WatchType::Modified)
        );
        assert_eq!(
            change(&mut f, pod("a", "web"), pod("a", "db")),
            Some(WatchType::Deleted)
        );
        assert_eq!(change(&mut f, pod("a", "db"), pod("a", "db")), None);
        assert_eq!(
            change(&mut f, pod("b", "db"), pod("b", "web")),
            Some(WatchType::Added)
        );
        assert_eq!(kind_of(&mut f, WatchType::Added, pod("c", "db")), None);
        assert_eq!(
            kind_of(&mut f, WatchType::Added, pod("d", "web")),
            Some(WatchType::Added)
        );
        assert_eq!(
            kind_of(&mut f, WatchType::Deleted, pod("d", "web")),
            Some(WatchType::Deleted)
        );
        assert_eq!(kind_of(&mut f, WatchType::Deleted, pod("c", "db")), None);
    }

    #[test]
    fn a_watch_resumed_at_a_revision_still_sees_objects_leave() {
        // No initial list: the filter has never seen these objects, yet the previous state decides.
        let mut f = filter("app=web");
        assert_eq!(
            change(&mut f, pod("a", "web"), pod("a", "other")),
            Some(WatchType::Deleted)
        );
        assert_eq!(
            change(&mut f, pod("b", "web"), pod("b", "web")),
            Some(WatchType::Modified)
        );
    }

    #[test]
    fn without_selectors_everything_passes_unchanged_and_bookmarks_need_consent() {
        let mut f = filter("");
        assert_eq!(
            kind_of(&mut f, WatchType::Modified, pod("a", "x")),
            Some(WatchType::Modified)
        );
        assert_eq!(
            kind_of(&mut f, WatchType::Added, pod("b", "x")),
            Some(WatchType::Added)
        );
        assert_eq!(
            kind_of(&mut f, WatchType::Deleted, pod("b", "x")),
            Some(WatchType::Deleted)
        );
        let bookmark =
            json!({"kind": "Pod", "apiVersion": "v1", "metadata": {"resourceVersion": "5"}});
        assert_eq!(kind_of(&mut f, WatchType::Bookmark, bookmark.clone()), None);
        let pods = by_kind("v1", "Pod").unwrap();
        let mut with = Filter::new(Selectors::parse(pods, "app=web", "").unwrap(), true);
        assert_eq!(
            kind_of(&mut with, WatchType::Bookmark, bookmark),
            Some(WatchType::Bookmark)
        );
    }
}
