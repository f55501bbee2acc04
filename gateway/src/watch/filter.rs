//! Which watch events a client sees under its selectors. Pure.
//!
//! Kubernetes turns an object that stops matching into DELETED and one that starts matching into ADDED. The store's
//! events carry only the new state, so the filter remembers which objects it has shown as matching: exact for a
//! watch that started with the initial list (no `resourceVersion`, or "0"); for a watch resumed at a revision, an
//! object that stops matching before the filter ever saw it match produces no event.

use std::collections::HashSet;

use navarch_bus::api::{ObjectEvent, WatchType};
use serde_json::Value;

use crate::selector::Selectors;

/// Decides, event by event, what a watcher is sent.
#[derive(Debug)]
pub struct Filter {
    selectors: Selectors,
    bookmarks: bool,
    /// `namespace/name` of every object last shown as matching.
    shown: HashSet<String>,
}

fn key(object: &Value) -> String {
    format!(
        "{}/{}",
        object["metadata"]["namespace"].as_str().unwrap_or_default(),
        object["metadata"]["name"].as_str().unwrap_or_default()
    )
}

impl Filter {
    /// A filter for `selectors`; bookmarks pass only when the client allowed them.
    pub fn new(selectors: Selectors, bookmarks: bool) -> Self {
        Self {
            selectors,
            bookmarks,
            shown: HashSet::new(),
        }
    }

    /// Whether an object of the initial list is sent (as ADDED).
    pub fn initial(&mut self, object: &Value) -> bool {
        let matches = self.selectors.matches(object);
        if matches {
            self.shown.insert(key(object));
        }
        matches
    }

    /// What to send for `event`, if anything.
    pub fn decide(&mut self, event: ObjectEvent) -> Option<(WatchType, Value)> {
        if event.kind == WatchType::Bookmark {
            return self
                .bookmarks
                .then_some((WatchType::Bookmark, event.object));
        }
        let k = key(&event.object);
        let matches = self.selectors.matches(&event.object);
        let was_shown = self.shown.contains(&k);
        let kind = match event.kind {
            WatchType::Deleted => {
                self.shown.remove(&k);
                if !(matches || was_shown) {
                    return None;
                }
                WatchType::Deleted
            }
            _ if !matches => {
                if !self.shown.remove(&k) {
                    return None;
                }
                WatchType::Deleted
            }
            WatchType::Modified if self.selectors.is_empty() || was_shown => {
                self.shown.insert(k);
                WatchType::Modified
            }
            // Created, or modified into matching: new to this watcher.
            _ => {
                self.shown.insert(k);
                if event.kind == WatchType::Modified && !was_shown && !self.selectors.is_empty() {
                    WatchType::Added
                } else {
                    event.kind
                }
            }
        };
        Some((kind, event.object))
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

    fn event(kind: WatchType, object: Value) -> ObjectEvent {
        ObjectEvent {
            kind,
            object,
            revision: 1,
        }
    }

    fn filter(labels: &str) -> Filter {
        let pods = by_kind("v1", "Pod").unwrap();
        Filter::new(Selectors::parse(pods, labels, "").unwrap(), false)
    }

    fn kind_of(f: &mut Filter, kind: WatchType, object: Value) -> Option<WatchType> {
        f.decide(event(kind, object)).map(|(k, _)| k)
    }

    #[test]
    fn objects_entering_and_leaving_the_selection_are_added_and_deleted() {
        let mut f = filter("app=web");
        assert!(f.initial(&pod("a", "web")));
        assert!(!f.initial(&pod("b", "db")));
        assert_eq!(
            kind_of(&mut f, WatchType::Modified, pod("a", "web")),
            Some(WatchType::Modified)
        );
        assert_eq!(
            kind_of(&mut f, WatchType::Modified, pod("a", "db")),
            Some(WatchType::Deleted)
        );
        assert_eq!(kind_of(&mut f, WatchType::Modified, pod("a", "db")), None);
        assert_eq!(
            kind_of(&mut f, WatchType::Modified, pod("b", "web")),
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
        assert_eq!(
            kind_of(&mut f, WatchType::Deleted, pod("b", "db")),
            Some(WatchType::Deleted),
            "was shown"
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
