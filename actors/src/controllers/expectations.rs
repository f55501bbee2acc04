//! What a controller waits to see in its cache after its own writes, so that it never decides twice on the same
//! stale view (which would create a pod, or a ReplicaSet, twice). Pure.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::informer::{Cache, Keyed, ObjectKey};

/// The cache state a key's next reconcile needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expectation {
    /// The pod cache must have reached this revision (that of the last create or graceful delete).
    pub revision: i64,
    /// These pods (key and uid) were deleted at once; the cache must no longer show them alive. (A delete that
    /// removes an object at once does not report the revision it committed at.)
    pub gone: Vec<(ObjectKey, String)>,
}

impl Expectation {
    /// Whether there is nothing to wait for.
    pub fn is_empty(&self) -> bool {
        self.revision == 0 && self.gone.is_empty()
    }

    /// Adds what another write waits for.
    pub fn merge(&mut self, other: Expectation) {
        self.revision = self.revision.max(other.revision);
        self.gone.extend(other.gone);
    }

    /// Whether `cache` shows every write this expectation waits for.
    pub fn is_met<K>(&self, cache: &Cache<K>) -> bool
    where
        K: Keyed + k8s_openapi::Metadata<Ty = ObjectMeta>,
    {
        cache.revision() >= self.revision
            && self.gone.iter().all(|(key, uid)| {
                cache.get(key).is_none_or(|p| {
                    let meta = p.metadata();
                    meta.uid.as_deref() != Some(uid.as_str()) || meta.deletion_timestamp.is_some()
                })
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    fn pod(name: &str, uid: &str) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": "demo", "uid": uid}}))
            .unwrap()
    }

    #[test]
    fn met_once_the_cache_shows_the_writes() {
        let cache = Cache::<Pod>::new();
        cache.replace(vec![pod("a", "u1")], 10);
        let mut e = Expectation::default();
        assert!(e.is_empty() && e.is_met(&cache));
        e.merge(Expectation {
            revision: 12,
            gone: vec![(ObjectKey::new("demo", "a"), "u1".into())],
        });
        assert!(!e.is_met(&cache));
        cache.advance(12);
        assert!(!e.is_met(&cache), "the deleted pod is still shown");
        cache.remove(&ObjectKey::new("demo", "a"), 13);
        assert!(e.is_met(&cache));
        // A new pod of the same name is another pod.
        cache.apply(pod("a", "u2"), 14);
        assert!(e.is_met(&cache));
    }
}
