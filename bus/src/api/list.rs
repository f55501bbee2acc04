//! Lists in pages: [`Objects::list_page`] reads the objects of a kind at one revision, from a key on, through a
//! filter, until a page is full, the way kube-apiserver's etcd3 store serves a list with `limit` and `continue`.

use serde_json::Value;

use super::error::ApiError;
use super::objects::{decode, DecodeError, Objects};
use super::resource::ResourceInfo;
use crate::store::{prefix_end, RangeRequest};

/// Most keys asked of the store in one read while a filter keeps dropping objects (kube-apiserver's `maxLimit`).
const MAX_KEYS_PER_READ: i64 = 10_000;

/// Which page of a list to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageRequest {
    /// Read as of this revision (0: the latest, linearizable). Every page of one list reads at the same one, so
    /// the pages form one consistent snapshot.
    pub revision: i64,
    /// Where the page starts: a key relative to the kind's prefix (empty: at the beginning).
    pub start: String,
    /// At most this many objects (0: every one, in a single page).
    pub limit: usize,
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The objects the filter kept, in key order, with their resourceVersion set.
    pub items: Vec<Value>,
    /// The revision the page was read at.
    pub revision: i64,
    /// When objects remain after the page: where the next page starts, relative to the kind's prefix.
    pub next: Option<String>,
    /// How many objects follow the page, whether the filter would keep them or not (0 when `next` is None).
    pub remaining: i64,
}

impl Objects {
    /// Reads one page of the objects of kind `info` (in `namespace`, or in all) that `keep` accepts.
    ///
    /// Asks the store for `limit` keys at a time. When the filter drops some and the page is not full yet, it reads
    /// on from the last key examined at the same revision, doubling what it asks for (up to 10,000 keys), as
    /// kube-apiserver does. A revision below the store's compaction point is 410 Expired; one above its current
    /// revision is 504 Too large resource version.
    pub async fn list_page(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
        request: &PageRequest,
        mut keep: impl FnMut(&Value) -> bool,
    ) -> Result<Page, ApiError> {
        let prefix = info.prefix(namespace);
        let range_end = prefix_end(prefix.as_bytes());
        let mut key = format!("{prefix}{}", request.start).into_bytes();
        let mut revision = request.revision;
        let limit = request.limit;
        let mut keys_per_read = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut items = Vec::new();
        loop {
            let response = self
                .store()
                .range(RangeRequest {
                    key: key.clone(),
                    range_end: range_end.clone(),
                    limit: keys_per_read,
                    revision,
                    ..Default::default()
                })
                .await?;
            // The header tells the store's current revision; the first read fixes the list's for the next ones.
            if revision == 0 {
                revision = response.header.revision;
            }
            let returned = response.kvs.len();
            let mut examined = 0usize;
            let mut last_key = None;
            for kv in response.kvs {
                if limit > 0 && items.len() >= limit {
                    break;
                }
                examined += 1;
                match decode(self.keys.as_ref(), &kv) {
                    Ok(object) if keep(&object) => items.push(object),
                    Ok(_) => {}
                    // As in `list`: a page that silently left out a Secret it cannot decrypt would be worse.
                    Err(DecodeError::Sealed(e)) => return Err(e),
                    Err(DecodeError::NotJson(e)) => {
                        tracing::warn!(error = %e, "undecodable object in the store; skipped")
                    }
                }
                last_key = Some(kv.key);
            }
            if !response.more && examined == returned {
                return Ok(Page {
                    items,
                    revision,
                    next: None,
                    remaining: 0,
                });
            }
            let Some(mut next_key) = last_key else {
                return Err(ApiError::internal(
                    "no results were found, but the store indicated there were more values remaining",
                ));
            };
            // The smallest key after the last one examined.
            next_key.push(0);
            if limit > 0 && items.len() >= limit {
                let next = next_key
                    .get(prefix.len()..)
                    .map(|rest| String::from_utf8_lossy(rest).into_owned())
                    .unwrap_or_default();
                let remaining = response.count.saturating_sub(examined as i64).max(0);
                return Ok(Page {
                    items,
                    revision,
                    next: Some(next),
                    remaining,
                });
            }
            key = next_key;
            if limit > 0 && keys_per_read < MAX_KEYS_PER_READ {
                keys_per_read = keys_per_read.saturating_mul(2).min(MAX_KEYS_PER_READ);
            }
        }
    }

    /// The store's current revision (a linearizable read of a key that never exists).
    pub async fn current_revision(&self) -> Result<i64, ApiError> {
        let response = self
            .store()
            .range(RangeRequest {
                key: b"/registry/".to_vec(),
                count_only: true,
                ..Default::default()
            })
            .await?;
        Ok(response.header.revision)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::json;

    use super::*;
    use crate::api::resource::by_kind;
    use crate::store::{
        in_range, KeyValue, RangeResponse, ResponseHeader, StoreClient, StoreError, StoreReply,
        StoreRequest, StoreResponse,
    };
    use crate::Bus;

    /// A store that holds config maps at one revision and answers ranges like the real one (limit, count, more).
    /// It records the limit of every read.
    async fn fake_store(names: &[&str], revision: i64) -> (Objects, Arc<Mutex<Vec<i64>>>) {
        let bus = Bus::embedded("list-tests").await.unwrap();
        let mut requests = bus.subscribe(&bus.subjects().store_rpc()).await.unwrap();
        let kvs: Vec<KeyValue> = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let labels = if i % 3 == 0 {
                    json!({"pick": "yes"})
                } else {
                    json!({})
                };
                KeyValue {
                    key: format!("/registry/configmaps/default/{name}").into_bytes(),
                    value: serde_json::to_vec(
                        &json!({"metadata": {"name": name, "labels": labels}}),
                    )
                    .unwrap(),
                    mod_revision: 1 + i as i64,
                    create_revision: 1 + i as i64,
                    version: 1,
                    lease: 0,
                }
            })
            .collect();
        let limits = Arc::new(Mutex::new(Vec::new()));
        let seen = limits.clone();
        let responder = bus.clone();
        tokio::spawn(async move {
            while let Some(message) = requests.next().await {
                let Ok(StoreRequest::Range(r)) = crate::codec::decode(&message.payload) else {
                    continue;
                };
                seen.lock().unwrap().push(r.limit);
                let reply: StoreReply = if r.revision > revision {
                    Err(StoreError::FutureRevision {
                        requested: r.revision,
                        current: revision,
                    })
                } else {
                    let matching: Vec<KeyValue> = kvs
                        .iter()
                        .filter(|kv| in_range(&kv.key, &r.key, &r.range_end))
                        .cloned()
                        .collect();
                    let count = matching.len() as i64;
                    let taken: Vec<KeyValue> = match r.limit {
                        0 => matching,
                        n => matching.into_iter().take(n as usize).collect(),
                    };
                    Ok(StoreResponse::Range(RangeResponse {
                        header: ResponseHeader {
                            revision,
                            ..Default::default()
                        },
                        more: (taken.len() as i64) < count,
                        kvs: if r.count_only { Vec::new() } else { taken },
                        count,
                    }))
                };
                let _ = responder.respond_encoded(&message, &reply).await;
            }
        });
        (Objects::new(StoreClient::new(bus)), limits)
    }

    fn names(page: &Page) -> Vec<&str> {
        page.items
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap_or_default())
            .collect()
    }

    const NAMES: [&str; 7] = ["a", "b", "c", "d", "e", "f", "g"];

    #[tokio::test]
    async fn pages_follow_each_other_at_one_revision() {
        let (objects, _) = fake_store(&NAMES, 40).await;
        let cms = by_kind("v1", "ConfigMap").unwrap();
        let mut request = PageRequest {
            limit: 3,
            ..Default::default()
        };
        let first = objects
            .list_page(cms, Some("default"), &request, |_| true)
            .await
            .unwrap();
        assert_eq!(names(&first), ["a", "b", "c"]);
        assert_eq!(first.revision, 40);
        assert_eq!(first.next.as_deref(), Some("c\0"));
        assert_eq!(first.remaining, 4);
        assert_eq!(first.items[0]["metadata"]["resourceVersion"], "1");

        request.start = first.next.unwrap();
        request.revision = first.revision;
        let second = objects
            .list_page(cms, Some("default"), &request, |_| true)
            .await
            .unwrap();
        assert_eq!(names(&second), ["d", "e", "f"]);
        assert_eq!(second.remaining, 1);

        request.start = second.next.unwrap();
        let last = objects
            .list_page(cms, Some("default"), &request, |_| true)
            .await
            .unwrap();
        assert_eq!(names(&last), ["g"]);
        assert_eq!((last.next, last.remaining), (None, 0));
    }

    #[tokio::test]
    async fn a_page_that_fills_exactly_at_the_end_has_no_next() {
        let (objects, _) = fake_store(&NAMES, 40).await;
        let cms = by_kind("v1", "ConfigMap").unwrap();
        let request = PageRequest {
            limit: 7,
            ..Default::default()
        };
        let page = objects
            .list_page(cms, Some("default"), &request, |_| true)
            .await
            .unwrap();
        assert_eq!(page.items.len(), 7);
        assert_eq!(page.next, None);
        let everything = PageRequest::default();
        let page = objects
            .list_page(cms, None, &everything, |_| true)
            .await
            .unwrap();
        assert_eq!((page.items.len(), page.next), (7, None));
    }

    #[tokio::test]
    async fn a_filter_reads_on_with_doubling_reads_until_the_page_is_full() {
        let (objects, limits) = fake_store(&NAMES, 40).await;
        let cms = by_kind("v1", "ConfigMap").unwrap();
        // Every third object carries the label: a, d, g.
        let picked = |o: &Value| o["metadata"]["labels"]["pick"] == "yes";
        let request = PageRequest {
            limit: 2,
            ..Default::default()
        };
        let page = objects
            .list_page(cms, Some("default"), &request, picked)
            .await
            .unwrap();
        assert_eq!(names(&page), ["a", "d"]);
        assert_eq!(page.next.as_deref(), Some("d\0"));
        assert_eq!(*limits.lock().unwrap(), [2, 4]);
        let rest = PageRequest {
            start: page.next.unwrap(),
            revision: page.revision,
            limit: 2,
        };
        let page = objects
            .list_page(cms, Some("default"), &rest, picked)
            .await
            .unwrap();
        assert_eq!(names(&page), ["g"]);
        assert_eq!(page.next, None);
    }

    #[tokio::test]
    async fn a_revision_ahead_of_the_store_is_too_large() {
        let (objects, _) = fake_store(&NAMES, 40).await;
        let cms = by_kind("v1", "ConfigMap").unwrap();
        let request = PageRequest {
            revision: 41,
            ..Default::default()
        };
        let e = objects
            .list_page(cms, None, &request, |_| true)
            .await
            .unwrap_err();
        assert_eq!(e.code(), 504);
        assert_eq!(objects.current_revision().await.unwrap(), 40);
    }
}
