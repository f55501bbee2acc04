//! How the deployment controller carries out one [`Action`]: ReplicaSet writes with the checks Kubernetes makes
//! (uid, controller, resourceVersion preconditions; a name collision counted in `status.collisionCount`), the
//! Deployment's revision annotation and status, and the `ScalingReplicaSet` Events.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::ObjectReference;
use navarch_bus::api::admission::{FieldValidation, Part};
use navarch_bus::api::{meta, resource, ApiError, DeleteOptions, Objects, Reason};
use serde_json::{json, Value};

use super::replicasets::{self, equal_ignore_hash};
use super::Action;
use crate::controllers::expectations::Expectation;
use crate::controllers::replicaset::pods::{controlled_by, controller_ref};
use crate::error::Error;
use crate::events::{EventRecorder, EventType};
use crate::informer::ObjectKey;

/// Why the actions of a reconcile stopped.
pub(super) enum Halt {
    Conflict,
    Failed(Error),
}

impl From<ApiError> for Halt {
    fn from(e: ApiError) -> Self {
        if matches!(e.reason, Reason::Conflict | Reason::NotFound) {
            Halt::Conflict
        } else {
            Halt::Failed(e.into())
        }
    }
}

pub(super) struct Work<'a> {
    pub objects: &'a Objects,
    pub events: &'a EventRecorder,
    pub key: &'a ObjectKey,
    /// What the ReplicaSet cache must show after these writes.
    pub rs_expectation: Expectation,
    /// What the Deployment cache must show after these writes.
    pub own_expectation: Expectation,
}

fn revision_of(object: &Value) -> i64 {
    meta::resource_version(object)
        .and_then(|rv| rv.parse().ok())
        .unwrap_or(0)
}

fn reference(d: &Deployment) -> ObjectReference {
    ObjectReference {
        api_version: Some("apps/v1".into()),
        kind: Some("Deployment".into()),
        namespace: d.metadata.namespace.clone(),
        name: d.metadata.name.clone(),
        uid: d.metadata.uid.clone(),
        resource_version: d.metadata.resource_version.clone(),
        ..Default::default()
    }
}

impl Work<'_> {
    /// Records an event in the background: an event is never worth delaying or failing a reconcile for.
    fn record(&self, d: &Deployment, type_: EventType, reason: &'static str, message: String) {
        let events = self.events.clone();
        let regarding = reference(d);
        actix::spawn(async move {
            if let Err(e) = events.record(&regarding, type_, reason, &message).await {
                tracing::debug!(error = %e, reason, "could not record an event");
            }
        });
    }

    fn scaled(&self, d: &Deployment, name: &str, from: i32, to: i32) {
        if from != to {
            let direction = if to > from { "up" } else { "down" };
            self.record(
                d,
                EventType::Normal,
                "ScalingReplicaSet",
                format!("Scaled {direction} replica set {name} from {from} to {to}"),
            );
        }
    }

    /// Carries out one action; a conflict (a newer object than decided on) stops the reconcile quietly.
    pub async fn carry_out(&mut self, d: &Deployment, action: Action) -> Result<(), Halt> {
        let rs_info = resource::of::<ReplicaSet>();
        match action {
            Action::AdoptReplicaSet { key, uid } => {
                let owner = serde_json::to_value(controller_ref(&d.metadata, "Deployment"))
                    .map_err(|e| Halt::Failed(ApiError::internal(e).into()))?;
                let done = self
                    .objects
                    .update_with(rs_info, key.namespace(), &key.name, Part::Main, |mut rs| {
                        if meta::uid(&rs) != Some(uid.as_str()) || meta::is_deleting(&rs) {
                            return Err(ApiError::new(Reason::Conflict, "the ReplicaSet changed"));
                        }
                        let refs = meta::metadata_mut(&mut rs)
                            .entry("ownerReferences")
                            .or_insert_with(|| json!([]));
                        if refs
                            .as_array()
                            .is_some_and(|l| l.iter().any(|r| r["controller"] == true))
                        {
                            return Err(ApiError::new(
                                Reason::Conflict,
                                "the ReplicaSet has a controller",
                            ));
                        }
                        if let Some(list) = refs.as_array_mut() {
                            list.push(owner.clone());
                        }
                        Ok(rs)
                    })
                    .await?;
                self.rs_expectation.merge(Expectation {
                    revision: revision_of(&done),
                    gone: vec![],
                });
            }
            Action::ReleaseReplicaSet { key, uid } => {
                let owner = d.metadata.uid.clone().unwrap_or_default();
                let done = self
                    .objects
                    .update_with(rs_info, key.namespace(), &key.name, Part::Main, |mut rs| {
                        if meta::uid(&rs) != Some(uid.as_str()) {
                            return Err(ApiError::new(
                                Reason::Conflict,
                                "the ReplicaSet was replaced",
                            ));
                        }
                        if let Some(list) = meta::metadata_mut(&mut rs)
                            .get_mut("ownerReferences")
                            .and_then(Value::as_array_mut)
                        {
                            list.retain(|r| r["uid"] != owner.as_str());
                        }
                        Ok(rs)
                    })
                    .await?;
                self.rs_expectation.merge(Expectation {
                    revision: revision_of(&done),
                    gone: vec![],
                });
            }
            Action::CreateReplicaSet(rs) => self.create(d, *rs).await?,
            Action::UpdateReplicaSet { replica_set, from } => {
                let name = replica_set.metadata.name.clone().unwrap_or_default();
                let to = replicasets::replicas(&replica_set);
                let value = serde_json::to_value(&*replica_set)
                    .map_err(|e| Halt::Failed(ApiError::internal(e).into()))?;
                let done = self
                    .objects
                    .update(
                        rs_info,
                        self.key.namespace(),
                        &name,
                        value,
                        Part::Main,
                        FieldValidation::Ignore,
                    )
                    .await?;
                self.rs_expectation.merge(Expectation {
                    revision: revision_of(&done.object),
                    gone: vec![],
                });
                self.scaled(d, &name, from, to);
            }
            Action::DeleteReplicaSet { key, uid } => {
                let options = DeleteOptions {
                    uid: Some(uid.clone()),
                    ..Default::default()
                };
                match self
                    .objects
                    .delete(rs_info, key.namespace(), &key.name, &options)
                    .await
                {
                    Ok(last) if meta::is_deleting(&last) => {
                        self.rs_expectation.merge(Expectation {
                            revision: revision_of(&last),
                            gone: vec![],
                        })
                    }
                    Ok(_) => self.rs_expectation.merge(Expectation {
                        revision: 0,
                        gone: vec![(key, uid)],
                    }),
                    Err(e) if matches!(e.reason, Reason::NotFound | Reason::Conflict) => {}
                    Err(e) => return Err(Halt::Failed(e.into())),
                }
            }
            Action::SetRevision(revision) => {
                let done = self
                    .update_deployment(d, Part::Main, |current| {
                        let annotations = meta::metadata_mut(current)
                            .entry("annotations")
                            .or_insert_with(|| json!({}));
                        annotations[replicasets::REVISION] = json!(revision);
                    })
                    .await?;
                self.own_expectation.merge(Expectation {
                    revision: revision_of(&done),
                    gone: vec![],
                });
            }
            Action::UpdateStatus(status) => {
                let status = serde_json::to_value(*status)
                    .map_err(|e| Halt::Failed(ApiError::internal(e).into()))?;
                let done = self
                    .update_deployment(d, Part::Status, |current| {
                        current["status"] = status.clone();
                    })
                    .await?;
                self.own_expectation.merge(Expectation {
                    revision: revision_of(&done),
                    gone: vec![],
                });
            }
        }
        Ok(())
    }

    /// Changes `part` of the Deployment with `change` (retried on conflicts), refused as a Conflict if the stored
    /// Deployment is no longer `d` (deleted and recreated under the same name).
    async fn update_deployment(
        &self,
        d: &Deployment,
        part: Part,
        mut change: impl FnMut(&mut Value),
    ) -> Result<Value, ApiError> {
        let uid = d.metadata.uid.as_deref().unwrap_or_default();
        self.objects
            .update_with(
                resource::of::<Deployment>(),
                self.key.namespace(),
                &self.key.name,
                part,
                |mut current| {
                    if meta::uid(&current) != Some(uid) {
                        return Err(ApiError::new(
                            Reason::Conflict,
                            "the Deployment was replaced",
                        ));
                    }
                    change(&mut current);
                    Ok(current)
                },
            )
            .await
    }

    /// Creates the new ReplicaSet. One of that name already there is the Deployment's own when it controls it with
    /// the same template (a stale cache); any other is a hash collision, counted in `status.collisionCount` so the
    /// next reconcile hashes differently (Kubernetes' `getNewReplicaSet`).
    async fn create(&mut self, d: &Deployment, rs: ReplicaSet) -> Result<(), Halt> {
        let name = rs.metadata.name.clone().unwrap_or_default();
        let replicas = replicasets::replicas(&rs);
        match self.objects.create_as(&rs).await {
            Ok(created) => {
                self.rs_expectation.merge(Expectation {
                    revision: created
                        .metadata
                        .resource_version
                        .as_deref()
                        .and_then(|rv| rv.parse().ok())
                        .unwrap_or(0),
                    gone: vec![],
                });
                self.scaled(d, &name, 0, replicas);
                Ok(())
            }
            Err(e) if e.reason == Reason::AlreadyExists => {
                let existing: ReplicaSet = self.objects.get_as(self.key.namespace(), &name).await?;
                let ours = controlled_by(
                    &existing.metadata,
                    d.metadata.uid.as_deref().unwrap_or_default(),
                );
                let same = match (
                    d.spec.as_ref().map(|s| &s.template),
                    existing.spec.as_ref().and_then(|s| s.template.as_ref()),
                ) {
                    (Some(a), Some(b)) => equal_ignore_hash(a, b),
                    _ => false,
                };
                if ours && same {
                    // The cache had not shown it yet; the next reconcile will.
                    return Err(Halt::Conflict);
                }
                self.update_deployment(d, Part::Status, |current| {
                    let count = current["status"]["collisionCount"].as_i64().unwrap_or(0);
                    current["status"]["collisionCount"] = json!(count + 1);
                })
                .await?;
                Err(Halt::Failed(e.into()))
            }
            Err(e) => {
                self.record(
                    d,
                    EventType::Warning,
                    "ReplicaSetCreateError",
                    format!("Failed to create new replica set \"{name}\": {}", e.message),
                );
                Err(Halt::from(e))
            }
        }
    }
}
