//! How the ReplicaSet controller carries out its [`Action`]s: claims (owner-reference changes with the checks
//! Kubernetes makes), pod creates in slow-start batches, pod deletes with a uid precondition, the status with
//! `ReplicaFailure` after a failed write, and the Events on the ReplicaSet.

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use navarch_bus::api::admission::Part;
use navarch_bus::api::selector_matches as matches;
use navarch_bus::api::{meta, resource, ApiError, DeleteOptions, Objects, Reason};
use serde_json::Value;

use super::{pods, slow_start, status, Action};
use crate::controllers::expectations::Expectation;
use crate::error::Error;
use crate::events::{EventRecorder, EventType};
use crate::informer::ObjectKey;

fn reference(rs: &ReplicaSet) -> ObjectReference {
    ObjectReference {
        api_version: Some("apps/v1".into()),
        kind: Some("ReplicaSet".into()),
        namespace: rs.metadata.namespace.clone(),
        name: rs.metadata.name.clone(),
        uid: rs.metadata.uid.clone(),
        resource_version: rs.metadata.resource_version.clone(),
        ..Default::default()
    }
}

/// Records an event in the background: an event is never worth delaying or failing a reconcile for.
fn record(
    events: &EventRecorder,
    rs: &ReplicaSet,
    type_: EventType,
    reason: &'static str,
    message: String,
) {
    let events = events.clone();
    let regarding = reference(rs);
    actix::spawn(async move {
        if let Err(e) = events.record(&regarding, type_, reason, &message).await {
            tracing::debug!(error = %e, reason, "could not record an event");
        }
    });
}

/// The writes of one reconcile of a ReplicaSet.
pub(super) struct Work<'a> {
    pub objects: &'a Objects,
    pub events: &'a EventRecorder,
    pub rs: &'a ReplicaSet,
    /// What the pod cache must show after these writes.
    pub expectation: &'a mut Expectation,
}

impl Work<'_> {
    /// Carries out `actions`: claims, then pod creates or deletes, then the status (with `ReplicaFailure` set when
    /// a pod write failed). Returns the first failure.
    pub async fn carry_out(
        &mut self,
        actions: Vec<Action>,
        now: k8s_openapi::chrono::DateTime<k8s_openapi::chrono::Utc>,
    ) -> Result<(), Error> {
        let mut status = None;
        let mut failure: Option<(&str, Error)> = None;
        for action in actions {
            let result = match action {
                Action::UpdateStatus(s) => {
                    status = Some(*s);
                    continue;
                }
                Action::AdoptPod { key, uid } => self.adopt(&key, &uid).await,
                Action::ReleasePod { key, uid } => self.release(&key, &uid).await,
                Action::CreatePods { count, pod } => self
                    .create(count, &pod)
                    .await
                    .map_err(|e| ("FailedCreate", e)),
                Action::DeletePod { key, uid } => {
                    self.delete(key, uid).await.map_err(|e| ("FailedDelete", e))
                }
            };
            if let Err((reason, e)) = result {
                failure.get_or_insert((reason, e));
            }
        }
        let failed = failure
            .as_ref()
            .filter(|(reason, _)| reason.starts_with("Failed"))
            .map(|(reason, e)| (*reason, e.to_string()));
        let status = match (status, &failed) {
            (Some(s), _) => Some(status::with_failure(s, failed, now)),
            // The counts did not change, but the failure condition may have to.
            (None, Some(_)) => {
                let current = self.rs.status.clone().unwrap_or_default();
                let next = status::with_failure(current.clone(), failed, now);
                (next != current).then_some(next)
            }
            (None, None) => None,
        };
        if let Some(status) = status {
            self.write_status(status).await?;
        }
        match failure {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
    }

    /// Creates `count` pods in slow-start batches; stops after a batch with a failure.
    async fn create(&mut self, count: usize, pod: &Pod) -> Result<(), Error> {
        for batch in slow_start(count) {
            let results =
                futures::future::join_all((0..batch).map(|_| self.objects.create_as(pod))).await;
            let mut first_error = None;
            for result in results {
                match result {
                    Ok(created) => {
                        let name = created.metadata.name.clone().unwrap_or_default();
                        self.expectation.merge(Expectation {
                            revision: revision_of(created.metadata.resource_version.as_deref()),
                            gone: vec![],
                        });
                        record(
                            self.events,
                            self.rs,
                            EventType::Normal,
                            "SuccessfulCreate",
                            format!("Created pod: {name}"),
                        );
                    }
                    // A terminating namespace refuses every create: nothing to report (Kubernetes ignores it too).
                    Err(e)
                        if e.reason == Reason::Forbidden
                            && e.message.contains("being terminated") => {}
                    Err(e) => {
                        record(
                            self.events,
                            self.rs,
                            EventType::Warning,
                            "FailedCreate",
                            format!("Error creating: {}", e.message),
                        );
                        first_error.get_or_insert(e);
                    }
                }
            }
            if let Some(e) = first_error {
                return Err(e.into());
            }
        }
        Ok(())
    }

    async fn delete(&mut self, key: ObjectKey, uid: String) -> Result<(), Error> {
        let options = DeleteOptions {
            uid: Some(uid.clone()),
            ..Default::default()
        };
        match self
            .objects
            .delete(resource::of::<Pod>(), key.namespace(), &key.name, &options)
            .await
        {
            Ok(last) => {
                record(
                    self.events,
                    self.rs,
                    EventType::Normal,
                    "SuccessfulDelete",
                    format!("Deleted pod: {}", key.name),
                );
                if meta::is_deleting(&last) {
                    // Graceful: the pod now carries a deletionTimestamp at this revision.
                    self.expectation.merge(Expectation {
                        revision: revision_of(meta::resource_version(&last)),
                        gone: vec![],
                    });
                } else {
                    self.expectation.merge(Expectation {
                        revision: 0,
                        gone: vec![(key, uid)],
                    });
                }
                Ok(())
            }
            // Already gone, or another pod of the same name now: nothing left to do.
            Err(e) if matches!(e.reason, Reason::NotFound | Reason::Conflict) => Ok(()),
            Err(e) => {
                record(
                    self.events,
                    self.rs,
                    EventType::Warning,
                    "FailedDelete",
                    format!("Error deleting: {}", e.message),
                );
                Err(e.into())
            }
        }
    }

    /// Adds the ReplicaSet's controller reference to the pod if it is still an orphan the selector matches.
    async fn adopt(&mut self, key: &ObjectKey, uid: &str) -> Result<(), (&'static str, Error)> {
        let owner = serde_json::to_value(pods::controller_ref(&self.rs.metadata, "ReplicaSet"))
            .map_err(|e| ("Adopt", ApiError::internal(e).into()))?;
        let selector = self.rs.spec.as_ref().map(|s| s.selector.clone());
        self.change_pod(key, uid, |pod| {
            let typed: Pod = serde_json::from_value(pod.clone()).map_err(ApiError::internal)?;
            let selected = selector
                .as_ref()
                .is_some_and(|s| matches(s, &pods::labels(&typed.metadata)));
            if pods::controller_of(&typed.metadata).is_some()
                || !selected
                || pods::is_deleting(&typed)
            {
                return Ok(pod);
            }
            let mut pod = pod;
            let refs = meta::metadata_mut(&mut pod)
                .entry("ownerReferences")
                .or_insert_with(|| Value::Array(vec![]));
            if let Some(list) = refs.as_array_mut() {
                list.push(owner.clone());
            }
            Ok(pod)
        })
        .await
        .map_err(|e| ("Adopt", e))
    }

    /// Removes the ReplicaSet's owner reference from the pod.
    async fn release(&mut self, key: &ObjectKey, uid: &str) -> Result<(), (&'static str, Error)> {
        let owner = self.rs.metadata.uid.clone().unwrap_or_default();
        self.change_pod(key, uid, |mut pod| {
            if let Some(list) = meta::metadata_mut(&mut pod)
                .get_mut("ownerReferences")
                .and_then(Value::as_array_mut)
            {
                list.retain(|r| r["uid"] != owner.as_str());
            }
            Ok(pod)
        })
        .await
        .map_err(|e| ("Release", e))
    }

    async fn change_pod(
        &mut self,
        key: &ObjectKey,
        uid: &str,
        mut change: impl FnMut(Value) -> Result<Value, ApiError>,
    ) -> Result<(), Error> {
        let result = self
            .objects
            .update_with(
                resource::of::<Pod>(),
                key.namespace(),
                &key.name,
                Part::Main,
                |pod| {
                    if meta::uid(&pod) != Some(uid) {
                        return Err(ApiError::new(Reason::Conflict, "the pod was replaced"));
                    }
                    change(pod)
                },
            )
            .await;
        match result {
            Ok(pod) => {
                self.expectation.merge(Expectation {
                    revision: revision_of(meta::resource_version(&pod)),
                    gone: vec![],
                });
                Ok(())
            }
            Err(e) if matches!(e.reason, Reason::NotFound | Reason::Conflict) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn write_status(&self, status: ReplicaSetStatus) -> Result<(), Error> {
        let uid = self.rs.metadata.uid.clone().unwrap_or_default();
        let key = ObjectKey::of(&self.rs.metadata);
        let status = serde_json::to_value(status).map_err(ApiError::internal)?;
        let result = self
            .objects
            .update_with(
                resource::of::<ReplicaSet>(),
                key.namespace(),
                &key.name,
                Part::Status,
                |mut current| {
                    if meta::uid(&current) != Some(uid.as_str()) {
                        return Err(ApiError::new(
                            Reason::Conflict,
                            "the ReplicaSet was replaced",
                        ));
                    }
                    current["status"] = status.clone();
                    Ok(current)
                },
            )
            .await;
        match result {
            Ok(_) => Ok(()),
            // Gone or replaced meanwhile: the next reconcile of the key sees it.
            Err(e) if matches!(e.reason, Reason::NotFound | Reason::Conflict) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

fn revision_of(resource_version: Option<&str>) -> i64 {
    resource_version.and_then(|rv| rv.parse().ok()).unwrap_or(0)
}
