//! [`Objects`]: API objects in the store. Every write goes through [`super::admission`]; every compare-and-swap is
//! on the key's mod revision, which is the object's `resourceVersion`. Values of the resources that are encrypted
//! at rest (Secrets) are sealed on every write and opened on every read, here and nowhere else.

use std::collections::VecDeque;

use rand::Rng;
use serde::{de::DeserializeOwned, Serialize};
use serde_json::{json, Value};

use super::admission::{self, Admitted, Context, FieldValidation, Part};
use super::allocation::{Claims, ServiceCidr};
use super::deletion::{self, Deletion, Propagation};
use super::encryption::{self, EncryptionKeys};
use super::error::{ApiError, Reason};
use super::fence::Fence;
use super::meta;
use super::resource::{self, ResourceInfo};
use crate::store::{
    Compare, CompareTarget, DeleteRequest, EventKind, KeyValue, PutRequest, StoreClient, TxnOp,
    TxnRequest, WatchEvent, WatchStream,
};

/// How many times a read-modify-write is retried when another writer got in between.
const MAX_CONFLICT_RETRIES: usize = 32;

/// Options of a delete (Kubernetes' `DeleteOptions`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteOptions {
    /// Seconds the object's owner (a node agent, for pods) gets to clean up; 0 deletes at once. None: the
    /// object's own default (a pod's `terminationGracePeriodSeconds`).
    pub grace_period_seconds: Option<i64>,
    /// Delete only if the object still has this uid.
    pub uid: Option<String>,
    /// Delete only if the object still has this resourceVersion.
    pub resource_version: Option<String>,
    /// What happens to the object's dependents; None: what its GC finalizers say, else Background.
    pub propagation: Option<Propagation>,
}

/// Kind of a watch event, as Kubernetes names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchType {
    /// The object was created.
    Added,
    /// The object changed.
    Modified,
    /// The object is gone (the event carries its last state, with the deletion's resourceVersion).
    Deleted,
    /// Everything up to the event's resourceVersion has been sent.
    Bookmark,
}

impl WatchType {
    /// `ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK`.
    pub fn as_str(self) -> &'static str {
        match self {
            WatchType::Added => "ADDED",
            WatchType::Modified => "MODIFIED",
            WatchType::Deleted => "DELETED",
            WatchType::Bookmark => "BOOKMARK",
        }
    }
}

/// One change of one object.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectEvent {
    /// What happened.
    pub kind: WatchType,
    /// The object after the change (for `Deleted`: before it; for `Bookmark`: only `metadata.resourceVersion`).
    pub object: Value,
    /// For `Modified`: the object before the change (so a selector can tell an object entering or leaving it).
    pub previous: Option<Value>,
    /// The revision of the change.
    pub revision: i64,
}

/// A watch on objects of one kind; dropping it stops it.
pub struct ObjectWatch {
    inner: WatchStream,
    info: &'static ResourceInfo,
    keys: Option<EncryptionKeys>,
    queued: VecDeque<ObjectEvent>,
}

impl ObjectWatch {
    /// The next event. `Err` ends the watch (410 Expired when its revision was compacted).
    pub async fn next(&mut self) -> Option<Result<ObjectEvent, ApiError>> {
        loop {
            if let Some(e) = self.queued.pop_front() {
                return Some(Ok(e));
            }
            match self.inner.next().await? {
                Err(e) => return Some(Err(e.into())),
                Ok(WatchEvent::Progress { revision }) => {
                    let mut object = json!({"kind": self.info.kind, "apiVersion": self.info.api_version(), "metadata": {}});
                    meta::set_resource_version(&mut object, revision);
                    return Some(Ok(ObjectEvent {
                        kind: WatchType::Bookmark,
                        object,
                        previous: None,
                        revision,
                    }));
                }
                Ok(WatchEvent::Changes { revision, events }) => {
                    for event in events {
                        match event_to_object(
                            self.keys.as_ref(),
                            event.kind,
                            &event.kv,
                            event.prev_kv.as_ref(),
                        ) {
                            Ok(Some(e)) => self.queued.push_back(e),
                            Ok(None) => {}
                            // As kube-apiserver's watch: a value that does not decrypt ends the watch with the
                            // error, rather than leaving a watcher believing it saw every change.
                            Err(DecodeError::Sealed(e)) => return Some(Err(e)),
                            Err(DecodeError::NotJson(e)) => {
                                tracing::warn!(revision, error = %e, "undecodable object in the store; skipped")
                            }
                        }
                    }
                }
            }
        }
    }

    /// The revision after which this watch delivers every change.
    pub fn start_revision(&self) -> i64 {
        self.inner.start_revision()
    }
}

fn event_to_object(
    keys: Option<&EncryptionKeys>,
    kind: EventKind,
    kv: &KeyValue,
    prev: Option<&KeyValue>,
) -> Result<Option<ObjectEvent>, DecodeError> {
    Ok(Some(match kind {
        EventKind::Put => ObjectEvent {
            kind: if kv.version == 1 {
                WatchType::Added
            } else {
                WatchType::Modified
            },
            object: decode(keys, kv)?,
            previous: match prev {
                Some(p) if kv.version > 1 => Some(decode(keys, p)?),
                _ => None,
            },
            revision: kv.mod_revision,
        },
        EventKind::Delete => {
            let Some(prev) = prev else { return Ok(None) };
            let mut object = decode(keys, prev)?;
            meta::set_resource_version(&mut object, kv.mod_revision);
            ObjectEvent {
                kind: WatchType::Deleted,
                object,
                previous: None,
                revision: kv.mod_revision,
            }
        }
    }))
}

/// Why a stored value is not an object.
pub(super) enum DecodeError {
    /// It is encrypted and does not decrypt (unknown key, altered): reads fail rather than skip it.
    Sealed(ApiError),
    /// Its plaintext is not JSON: lists and watches skip it, as they always have.
    NotJson(ApiError),
}

impl From<DecodeError> for ApiError {
    fn from(e: DecodeError) -> Self {
        match e {
            DecodeError::Sealed(e) | DecodeError::NotJson(e) => e,
        }
    }
}

/// An object as stored, decrypted if it was encrypted, with its resourceVersion set.
pub(super) fn decode(keys: Option<&EncryptionKeys>, kv: &KeyValue) -> Result<Value, DecodeError> {
    let plain = encryption::open(keys, &kv.key, &kv.value)
        .map_err(|e| DecodeError::Sealed(ApiError::internal(e)))?;
    let mut object: Value = serde_json::from_slice(&plain).map_err(|e| {
        DecodeError::NotJson(ApiError::internal(format!(
            "object at {} is not JSON: {e}",
            String::from_utf8_lossy(&kv.key)
        )))
    })?;
    meta::set_resource_version(&mut object, kv.mod_revision);
    Ok(object)
}

/// The value to store at `key`: the object's JSON without its resourceVersion, encrypted when `keys` are given and
/// the key's resource is one encrypted at rest.
fn encode(keys: Option<&EncryptionKeys>, key: &str, object: &Value) -> Result<Vec<u8>, ApiError> {
    let mut object = object.clone();
    meta::metadata_mut(&mut object).remove("resourceVersion");
    let json = serde_json::to_vec(&object).map_err(ApiError::internal)?;
    match keys {
        Some(keys) if encryption::applies_to(key.as_bytes()) => {
            keys.seal(key.as_bytes(), &json).map_err(ApiError::internal)
        }
        _ => Ok(json),
    }
}

fn random_suffix() -> String {
    // Kubernetes' alphabet for generated names: no vowels (no words), no look-alikes.
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

pub(super) fn context(namespace: Option<&str>, validation: FieldValidation) -> Context<'_> {
    Context {
        namespace,
        validation,
        now: meta::now(),
        uid: uuid::Uuid::new_v4().to_string(),
        name_suffix: random_suffix(),
    }
}

/// API objects in the store. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Objects {
    store: StoreClient,
    pub(super) keys: Option<EncryptionKeys>,
    /// `dryRun=All`: every write is checked (admission, preconditions, the store's compare) but not made.
    dry_run: bool,
    /// Where Services' cluster IPs come from (see [`super::allocation`]).
    service_cidr: ServiceCidr,
    /// An elected leader's fence: every write also compares it, and fails once another process leads (see
    /// [`super::fence`]).
    fence: Option<Fence>,
}

impl Objects {
    /// Objects in the store reached through `store`, with no encryption keys: Secrets are written in plain JSON and
    /// an encrypted one cannot be read (fine for roles that never touch Secrets).
    pub fn new(store: StoreClient) -> Self {
        Self {
            store,
            keys: None,
            dry_run: false,
            service_cidr: ServiceCidr::default(),
            fence: None,
        }
    }

    /// The same, with every write fenced by `fence` (see [`super::fence`]): refused while this process does not
    /// lead, failing with [`super::fence::is_fenced`] once another process acquired the lease. None: unfenced.
    pub fn with_fence(mut self, fence: Option<Fence>) -> Self {
        self.fence = fence;
        self
    }

    /// The fence of this process's writes, if any.
    pub fn fence(&self) -> Option<&Fence> {
        self.fence.as_ref()
    }

    /// Adds the fence's compare to `compares`; the failure branch's read that tells a fenced write apart, and the
    /// revision compared (none when unfenced).
    fn fence_guard(&self, compares: &mut Vec<Compare>) -> Result<(Vec<TxnOp>, i64), ApiError> {
        let Some(fence) = &self.fence else {
            return Ok((vec![], 0));
        };
        let (compare, read) = fence.guard()?;
        let CompareTarget::ModRevision(revision) = compare.target else {
            return Err(ApiError::internal("a fence compares a mod revision"));
        };
        compares.push(compare);
        Ok((vec![read], revision))
    }

    /// After a failed transaction with [`Objects::fence_guard`]: the fenced error if the fence moved.
    fn fence_check(
        &self,
        response: &crate::store::TxnResponse,
        guarded: i64,
    ) -> Result<(), ApiError> {
        match &self.fence {
            Some(fence) if !response.succeeded => fence.check(response, guarded),
            _ => Ok(()),
        }
    }

    /// The same, giving Services cluster IPs from `cidr` (default 10.96.0.0/16).
    pub fn with_service_cidr(mut self, cidr: ServiceCidr) -> Self {
        self.service_cidr = cidr;
        self
    }

    /// Where Services' cluster IPs come from.
    pub fn service_cidr(&self) -> ServiceCidr {
        self.service_cidr
    }

    /// The same objects in dry-run mode (`dryRun=All`): creates, updates and deletes run admission, check their
    /// preconditions against the store (AlreadyExists, Conflict, NotFound) and answer what they would have
    /// stored, but write nothing. Reads are unchanged.
    pub fn dry_run(mut self) -> Self {
        self.dry_run = true;
        self
    }

    /// The same, encrypting Secrets with `keys` (see [`super::encryption`]); None writes them in plain JSON.
    pub fn with_encryption(mut self, keys: Option<EncryptionKeys>) -> Self {
        self.keys = keys;
        self
    }

    /// The encryption keys, if any.
    pub fn encryption(&self) -> Option<&EncryptionKeys> {
        self.keys.as_ref()
    }

    /// The underlying store client.
    pub fn store(&self) -> &StoreClient {
        &self.store
    }

    async fn read(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<KeyValue, ApiError> {
        self.store
            .get(info.key(namespace, name).as_bytes())
            .await?
            .ok_or_else(|| ApiError::not_found(info, name))
    }

    /// One object.
    pub async fn get(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        Ok(decode(
            self.keys.as_ref(),
            &self.read(info, namespace, name).await?,
        )?)
    }

    /// Every object of the kind (in `namespace`, or in all namespaces), and the revision of the read.
    pub async fn list(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
    ) -> Result<(Vec<Value>, i64), ApiError> {
        let response = self.store.list(info.prefix(namespace).as_bytes()).await?;
        let mut items = Vec::with_capacity(response.kvs.len());
        for kv in &response.kvs {
            match decode(self.keys.as_ref(), kv) {
                Ok(o) => items.push(o),
                // As kube-apiserver: a list that silently left out a Secret it cannot decrypt would be worse.
                Err(DecodeError::Sealed(e)) => return Err(e),
                Err(DecodeError::NotJson(e)) => {
                    tracing::warn!(error = %e, "undecodable object in the store; skipped")
                }
            }
        }
        Ok((items, response.header.revision))
    }

    /// Creates an object; refuses one that exists (409) or whose namespace does not (404).
    pub async fn create(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
        object: Value,
        validation: FieldValidation,
    ) -> Result<Admitted, ApiError> {
        let Admitted { object, warnings } =
            admission::create(info, object, &context(namespace, validation))?;
        if info.namespaced {
            self.check_namespace_open(namespace.unwrap_or_default())
                .await?;
        }
        let name = meta::name(&object).unwrap_or_default().to_string();
        let key = info.key(namespace, &name);
        if info.kind == "Service" {
            // Its addresses are allocated and committed with it (see `super::allocation`).
            let object = self.create_service(info, &name, key, object).await?;
            return Ok(Admitted { object, warnings });
        }
        match self
            .put_if(Compare::absent(key.clone()), key, object)
            .await?
        {
            Some(object) => Ok(Admitted { object, warnings }),
            None => Err(ApiError::already_exists(info, &name)),
        }
    }

    /// Writes `object` at `key` if `compare` holds: the object with its new resourceVersion, or None.
    async fn put_if(
        &self,
        compare: Compare,
        key: String,
        object: Value,
    ) -> Result<Option<Value>, ApiError> {
        self.put_claiming(compare, Claims::default(), key, object)
            .await
    }

    /// Writes `object` at `key` if `compare` holds, with `claims` (a Service's allocated addresses) in the same
    /// transaction under their own compares: the object with its new resourceVersion, or None.
    pub(super) async fn put_claiming(
        &self,
        compare: Compare,
        claims: Claims,
        key: String,
        mut object: Value,
    ) -> Result<Option<Value>, ApiError> {
        let value = encode(self.keys.as_ref(), &key, &object)?;
        let mut compares = vec![compare.clone()];
        compares.extend(claims.compares);
        if self.dry_run {
            // The compare alone, as a transaction with nothing to do: linearizable, and it writes nothing.
            let read_at = match compare.target {
                CompareTarget::ModRevision(revision) => Some(revision),
                _ => None,
            };
            let response = self
                .store
                .txn(TxnRequest {
                    compare: compares,
                    success: vec![],
                    failure: vec![],
                })
                .await?;
            if !response.succeeded {
                return Ok(None);
            }
            // Nothing was stored: the answer keeps the resourceVersion it was read at (none for a create), as
            // kube-apiserver answers a dry run.
            match read_at {
                Some(revision) => meta::set_resource_version(&mut object, revision),
                None => {
                    meta::metadata_mut(&mut object).remove("resourceVersion");
                }
            }
            return Ok(Some(object));
        }
        let mut success = vec![TxnOp::Put(PutRequest {
            value,
            key: key.into_bytes(),
            ..Default::default()
        })];
        success.extend(claims.puts);
        let (failure, guarded) = self.fence_guard(&mut compares)?;
        let response = self
            .store
            .txn(TxnRequest {
                compare: compares,
                success,
                failure,
            })
            .await?;
        self.fence_check(&response, guarded)?;
        if !response.succeeded {
            return Ok(None);
        }
        meta::set_resource_version(&mut object, response.header.revision);
        Ok(Some(object))
    }

    async fn check_namespace_open(&self, namespace: &str) -> Result<(), ApiError> {
        let ns_info = resource::by_kind("v1", "Namespace")
            .ok_or_else(|| ApiError::internal("no Namespace kind"))?;
        let ns = self.get(ns_info, None, namespace).await?;
        if meta::is_deleting(&ns) || ns["status"]["phase"] == "Terminating" {
            return Err(ApiError::new(
                Reason::Forbidden,
                format!("unable to create new content in namespace {namespace} because it is being terminated"),
            ));
        }
        Ok(())
    }

    /// Replaces an object (or its status). With a `resourceVersion` in `object` the write happens only if the object
    /// is still at that version (409 Conflict otherwise); without one it applies to whatever version is current.
    pub async fn update(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        object: Value,
        part: Part,
        validation: FieldValidation,
    ) -> Result<Admitted, ApiError> {
        let expected = match meta::resource_version(&object) {
            Some(rv) => meta::parse_resource_version(rv).map_err(ApiError::bad_request)?,
            None => None,
        };
        for _ in 0..MAX_CONFLICT_RETRIES {
            let current = self.read(info, namespace, name).await?;
            if expected.is_some_and(|rv| rv != current.mod_revision) {
                return Err(ApiError::conflict(info, name));
            }
            let old = decode(self.keys.as_ref(), &current)?;
            let admitted = admission::update(
                info,
                &old,
                object.clone(),
                part,
                &context(namespace, validation),
            )?;
            match self
                .swap(info, namespace, name, &current, admitted.object)
                .await?
            {
                Some(object) => {
                    return Ok(Admitted {
                        object,
                        warnings: admitted.warnings,
                    })
                }
                None if expected.is_some() => return Err(ApiError::conflict(info, name)),
                None => continue,
            }
        }
        Err(ApiError::conflict(info, name))
    }

    /// Replaces an object starting from a copy the caller already holds (an informer's, with its resourceVersion),
    /// without reading it first: `wanted` is admitted against `old` once per part of `parts`, in order, so one
    /// write can change the object and its status together (as kube-apiserver's `pods/binding` sets `spec.nodeName`
    /// and the PodScheduled condition), and it is stored only if the object is still at `old`'s resourceVersion:
    /// 409 Conflict otherwise (the copy was stale: read again and decide again). Services go through [`Self::update`]
    /// (their port claims are checked against the stored object).
    pub async fn update_from(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        old: &Value,
        wanted: Value,
        parts: &[Part],
    ) -> Result<Admitted, ApiError> {
        let revision = meta::resource_version(old)
            .map(meta::parse_resource_version)
            .transpose()
            .map_err(ApiError::bad_request)?
            .flatten()
            .ok_or_else(|| {
                ApiError::bad_request("update_from needs the resourceVersion of the copy")
            })?;
        if info.kind == "Service" {
            let mut wanted = wanted;
            meta::set_resource_version(&mut wanted, revision);
            return self
                .update(
                    info,
                    namespace,
                    name,
                    wanted,
                    Part::Main,
                    FieldValidation::Ignore,
                )
                .await;
        }
        let cx = context(namespace, FieldValidation::Ignore);
        let mut next = old.clone();
        let mut warnings = Vec::new();
        for &part in parts {
            let admitted = admission::update(info, &next, wanted.clone(), part, &cx)?;
            warnings.extend(admitted.warnings);
            next = admitted.object;
            meta::set_resource_version(&mut next, revision);
        }
        let key = info.key(namespace, name);
        let written = if !self.dry_run && deletion::deletes_on_update(info, &next) {
            self.delete_at(key, revision).await?.map(|deleted| {
                meta::set_resource_version(&mut next, deleted);
                next
            })
        } else {
            meta::metadata_mut(&mut next).remove("resourceVersion");
            let compare = Compare::mod_revision(key.clone(), revision);
            self.put_claiming(compare, Claims::default(), key, next)
                .await?
        };
        match written {
            Some(object) => Ok(Admitted { object, warnings }),
            None => Err(ApiError::conflict(info, name)),
        }
    }

    /// Read-modify-write: `change` gets the current object and returns the next one (or an error to stop); retried
    /// on conflicts. A change that alters nothing writes nothing.
    pub async fn update_with<F>(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        part: Part,
        mut change: F,
    ) -> Result<Value, ApiError>
    where
        F: FnMut(Value) -> Result<Value, ApiError>,
    {
        for _ in 0..MAX_CONFLICT_RETRIES {
            let current = self.read(info, namespace, name).await?;
            let old = decode(self.keys.as_ref(), &current)?;
            let next = change(old.clone())?;
            if next == old {
                return Ok(old);
            }
            let admitted = admission::update(
                info,
                &old,
                next,
                part,
                &context(namespace, FieldValidation::Ignore),
            )?;
            if admitted.object == without_rv(&old) {
                return Ok(old);
            }
            if let Some(object) = self
                .swap(info, namespace, name, &current, admitted.object)
                .await?
            {
                return Ok(object);
            }
        }
        Err(ApiError::conflict(info, name))
    }

    /// Writes `object` if the key is still at `current`'s revision; None when it moved on. An object whose deletion
    /// this write completes (being deleted, no grace left, its last finalizer removed) is deleted instead, as
    /// kube-apiserver does; the answer is then its last state, with the revision of its deletion.
    async fn swap(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        current: &KeyValue,
        mut object: Value,
    ) -> Result<Option<Value>, ApiError> {
        let key = info.key(namespace, name);
        if !self.dry_run && deletion::deletes_on_update(info, &object) {
            return Ok(self
                .delete_at(key, current.mod_revision)
                .await?
                .map(|revision| {
                    let mut object = object;
                    meta::set_resource_version(&mut object, revision);
                    object
                }));
        }
        // A Service changed to a type with node ports, or given ports, gets them here (see `super::allocation`).
        let claims = if info.kind == "Service" {
            let old = decode(self.keys.as_ref(), current)?;
            self.allocate(info, &mut object, Some(&old)).await?
        } else {
            Claims::default()
        };
        self.put_claiming(
            Compare::mod_revision(key.clone(), current.mod_revision),
            claims,
            key,
            object,
        )
        .await
    }

    /// Deletes `key` if it is still at `revision`: the revision of the deletion, or None when the key moved on.
    async fn delete_at(&self, key: String, revision: i64) -> Result<Option<i64>, ApiError> {
        let mut compare = vec![Compare::mod_revision(key.clone(), revision)];
        let (failure, guarded) = self.fence_guard(&mut compare)?;
        let response = self
            .store
            .txn(TxnRequest {
                compare,
                success: vec![TxnOp::Delete(DeleteRequest {
                    key: key.into_bytes(),
                    ..Default::default()
                })],
                failure,
            })
            .await?;
        self.fence_check(&response, guarded)?;
        Ok(response.succeeded.then_some(response.header.revision))
    }

    /// Deletes an object. Some deletions are deferred, as in Kubernetes ([`deletion::plan`]): a pod bound to a node
    /// gets a `deletionTimestamp` and stays until its node agent has stopped it and deletes it with grace 0; a
    /// namespace whose `spec.finalizers` is not empty becomes Terminating until the namespace controller has emptied
    /// it; an object with `metadata.finalizers` (among them the `orphan` and `foregroundDeletion` that
    /// `options.propagation` asks for) stays until they are removed, and the update removing the last one deletes it.
    /// Returns the object as it was deleted (or as it now is, while deletion is pending).
    pub async fn delete(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Value, ApiError> {
        if options.grace_period_seconds.is_some_and(|g| g < 0) {
            return Err(ApiError::bad_request(
                "gracePeriodSeconds must not be negative",
            ));
        }
        for _ in 0..MAX_CONFLICT_RETRIES {
            let current = self.read(info, namespace, name).await?;
            let object = decode(self.keys.as_ref(), &current)?;
            if let Some(uid) = &options.uid {
                if meta::uid(&object) != Some(uid.as_str()) {
                    return Err(ApiError::new(
                        Reason::Conflict,
                        format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {}", meta::uid(&object).unwrap_or_default()),
                    ));
                }
            }
            if let Some(rv) = &options.resource_version {
                if meta::resource_version(&object) != Some(rv.as_str()) {
                    return Err(ApiError::conflict(info, name));
                }
            }
            let plan = deletion::plan(
                info,
                &object,
                options.grace_period_seconds,
                options.propagation,
                meta::now(),
            );
            if self.dry_run {
                // What the deletion would leave: the pending object when it is deferred, else the object.
                return Ok(match plan {
                    Deletion::Pending(pending) => pending,
                    Deletion::Now => object,
                });
            }
            match plan {
                Deletion::Pending(pending) if pending == object => return Ok(object),
                Deletion::Pending(pending) => {
                    match self.swap(info, namespace, name, &current, pending).await? {
                        Some(o) => return Ok(o),
                        None => continue,
                    }
                }
                Deletion::Now => {
                    let key = info.key(namespace, name);
                    if let Some(revision) = self.delete_at(key, current.mod_revision).await? {
                        // As in the watch's DELETED event: the object carries the revision of its deletion.
                        let mut object = object;
                        meta::set_resource_version(&mut object, revision);
                        return Ok(object);
                    }
                }
            }
        }
        Err(ApiError::conflict(info, name))
    }

    /// Watches objects of the kind (in `namespace`, or all) changed after `revision` (0: from now on).
    pub async fn watch(
        &self,
        info: &'static ResourceInfo,
        namespace: Option<&str>,
        revision: i64,
    ) -> Result<ObjectWatch, ApiError> {
        self.watch_prefix(info.prefix(namespace).as_bytes(), info, revision)
            .await
    }

    /// Watches every object of every kind changed after `revision` (0: from now on), in revision order: one store
    /// watch over `/registry/`. Values there that are not API objects (such as allocation records) come through as
    /// objects without `kind`; callers skip them.
    pub async fn watch_all(&self, revision: i64) -> Result<ObjectWatch, ApiError> {
        // `info` only names bookmarks, and a watch across streams sends none.
        self.watch_prefix(b"/registry/", &super::RESOURCES[0], revision)
            .await
    }

    /// Watches every key under `prefix` changed after `revision` (0: from now on), as objects of `info`.
    async fn watch_prefix(
        &self,
        prefix: &[u8],
        info: &'static ResourceInfo,
        revision: i64,
    ) -> Result<ObjectWatch, ApiError> {
        let start = if revision == 0 {
            0
        } else {
            revision.saturating_add(1)
        };
        let inner = self.store.watch_prefix(prefix, start).await?;
        Ok(ObjectWatch {
            inner,
            info,
            keys: self.keys.clone(),
            queued: VecDeque::new(),
        })
    }

    /// One object as its k8s-openapi type.
    pub async fn get_as<K>(&self, namespace: Option<&str>, name: &str) -> Result<K, ApiError>
    where
        K: k8s_openapi::Resource + DeserializeOwned,
    {
        from_value(self.get(resource::of::<K>(), namespace, name).await?)
    }

    /// Every object of a k8s-openapi type, and the revision of the read.
    pub async fn list_as<K>(&self, namespace: Option<&str>) -> Result<(Vec<K>, i64), ApiError>
    where
        K: k8s_openapi::Resource + DeserializeOwned,
    {
        let (items, revision) = self.list(resource::of::<K>(), namespace).await?;
        Ok((
            items
                .into_iter()
                .filter_map(|o| from_value(o).ok())
                .collect(),
            revision,
        ))
    }

    /// Creates an object given as its k8s-openapi type.
    pub async fn create_as<K>(&self, object: &K) -> Result<K, ApiError>
    where
        K: k8s_openapi::Resource
            + k8s_openapi::Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>
            + Serialize
            + DeserializeOwned,
    {
        let namespace = object.metadata().namespace.clone();
        let value = serde_json::to_value(object).map_err(ApiError::internal)?;
        let admitted = self
            .create(
                resource::of::<K>(),
                namespace.as_deref(),
                value,
                FieldValidation::Strict,
            )
            .await?;
        from_value(admitted.object)
    }
}

fn without_rv(object: &Value) -> Value {
    let mut o = object.clone();
    meta::metadata_mut(&mut o).remove("resourceVersion");
    o
}

/// Decodes a stored object into its k8s-openapi type.
pub fn from_value<K: DeserializeOwned>(object: Value) -> Result<K, ApiError> {
    serde_json::from_value(object)
        .map_err(|e| ApiError::internal(format!("stored object does not decode: {e}")))
}
