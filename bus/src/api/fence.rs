//! Fencing of an elected leader's writes: a [`Fence`] makes every write of an [`Objects`] carry one more compare, so
//! that once another process has acquired the leader Lease no write of the deposed leader lands, even one that was
//! already on its way to the store.
//!
//! Each leader Lease `<namespace>/<name>` has a fence key, `/navarch/fences/<namespace>/<name>`, outside the
//! `/registry/` tree (it is no API object). An acquisition of the Lease, the write that makes a process leader,
//! puts the fence key in the same store transaction ([`Objects::write_acquiring`]); renewals leave it alone. The
//! leader's [`Fence`] holds the revision of its acquisition, which is the fence key's mod revision for as long as no
//! other process acquires the Lease, and every write of a fenced [`Objects`] compares it in its own transaction. A
//! new leader's acquisition moves the fence key, so from that revision on every write of the old one fails (with
//! [`fenced`], a 403 whose cause says so, never silently). Fencing on the Lease key itself would also fence the
//! leader's own writes racing each of its renewals, which change that key every retry period.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use serde_json::Value;

use super::admission::{self, Admitted, FieldValidation, Part};
use super::allocation::Claims;
use super::error::{ApiError, Cause, Details, Reason};
use super::meta;
use super::objects::{context, Objects};
use super::resource::ResourceInfo;
use crate::store::{Compare, PutRequest, RangeRequest, TxnOp, TxnOpResponse, TxnResponse};

/// The `reason` of the [`Cause`] a fenced write's error carries.
pub const FENCED_CAUSE: &str = "LeaderFenced";

/// Where the fence key of the Lease `namespace`/`name` lives.
pub fn fence_key(namespace: &str, name: &str) -> String {
    format!("/navarch/fences/{namespace}/{name}")
}

/// The fence of one leader Lease in one process. Cheap to clone: clones share the revision, so the elector updates
/// it and every [`Objects`] fenced by it sees the change at once.
#[derive(Clone)]
pub struct Fence {
    namespace: Arc<str>,
    name: Arc<str>,
    key: Arc<str>,
    /// The revision of this process's acquisition while it leads; 0 while it does not (its writes are refused
    /// without asking the store).
    revision: Arc<AtomicI64>,
}

impl fmt::Debug for Fence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fence")
            .field("lease", &format_args!("{}/{}", self.namespace, self.name))
            .field("revision", &self.revision())
            .finish()
    }
}

/// Two fences are the same when they share their revision (clones of one another).
impl PartialEq for Fence {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.revision, &other.revision)
    }
}

impl Eq for Fence {}

impl Fence {
    /// The fence of the Lease `namespace`/`name`, not held yet.
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            key: fence_key(namespace, name).into(),
            revision: Arc::new(AtomicI64::new(0)),
        }
    }

    /// The fence key in the store.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The revision of the acquisition this process leads by, or None while it does not lead.
    pub fn revision(&self) -> Option<i64> {
        Some(self.revision.load(Ordering::SeqCst)).filter(|r| *r > 0)
    }

    /// This process leads since `revision`, the revision of its acquisition.
    pub fn hold(&self, revision: i64) {
        self.revision.store(revision.max(0), Ordering::SeqCst);
    }

    /// This process no longer leads: every later write is refused.
    pub fn release(&self) {
        self.revision.store(0, Ordering::SeqCst);
    }

    /// The error of a write refused because this process does not lead (`moved_to`: the revision of the other
    /// process's acquisition, when known).
    pub fn fenced(&self, moved_to: Option<i64>) -> ApiError {
        let lease = format!("{}/{}", self.namespace, self.name);
        let message = match moved_to {
            Some(r) => format!("write fenced: this process lost the leader lease {lease} (acquired by another at revision {r})"),
            None => format!("write fenced: this process does not hold the leader lease {lease}"),
        };
        ApiError::with_details(
            Reason::Forbidden,
            message.clone(),
            Details {
                name: Some(self.name.to_string()),
                group: Some("coordination.k8s.io".into()),
                kind: Some("leases".into()),
                causes: vec![Cause {
                    reason: FENCED_CAUSE.into(),
                    field: String::new(),
                    message,
                }],
                retry_after_seconds: None,
            },
        )
    }

    /// The compare a fenced write adds to its transaction, and the read its failure branch makes (to tell a fenced
    /// write from an ordinary conflict). Refused at once while this process does not lead.
    pub(super) fn guard(&self) -> Result<(Compare, TxnOp), ApiError> {
        let revision = self.revision().ok_or_else(|| self.fenced(None))?;
        let read = TxnOp::Range(RangeRequest {
            key: self.key.as_bytes().to_vec(),
            keys_only: true,
            ..Default::default()
        });
        Ok((Compare::mod_revision(self.key.as_bytes(), revision), read))
    }

    /// For a transaction with [`Fence::guard`] whose compares failed: the fenced error when the fence key moved
    /// (another process acquired the Lease), Ok when the failure was the write's own compare.
    pub(super) fn check(&self, response: &TxnResponse, guarded: i64) -> Result<(), ApiError> {
        let current = response
            .responses
            .iter()
            .find_map(|r| match r {
                TxnOpResponse::Range(range) => Some(
                    range
                        .kvs
                        .iter()
                        .find(|kv| kv.key == self.key.as_bytes())
                        .map_or(0, |kv| kv.mod_revision),
                ),
                _ => None,
            })
            .unwrap_or(0);
        if current == guarded {
            Ok(())
        } else {
            // Nothing this process writes under this fence can land any more.
            let _ = self
                .revision
                .compare_exchange(guarded, 0, Ordering::SeqCst, Ordering::SeqCst);
            Err(self.fenced(Some(current)))
        }
    }
}

/// Whether `error` is a write refused by a [`Fence`].
pub fn is_fenced(error: &ApiError) -> bool {
    error.reason == Reason::Forbidden && error.causes().iter().any(|c| c.reason == FENCED_CAUSE)
}

impl Objects {
    /// Writes the leader Lease `object` as an acquisition: created when `resource_version` is None (the Lease must
    /// not exist), else replaced if still at that version; in the same transaction the fence key of `fence` is
    /// put, which fences every other holder's writes from this revision on. Returns the stored Lease (its
    /// `resourceVersion` is the revision of the acquisition, to [`Fence::hold`]), or None when the Lease changed
    /// meanwhile (another process got in first). Goes through admission like any write.
    pub async fn write_acquiring(
        &self,
        info: &ResourceInfo,
        object: Value,
        resource_version: Option<i64>,
        fence: &Fence,
    ) -> Result<Option<Value>, ApiError> {
        let namespace = meta::namespace(&object).map(str::to_string);
        let name = meta::name(&object).unwrap_or_default().to_string();
        let key = info.key(namespace.as_deref(), &name);
        let ctx = context(namespace.as_deref(), FieldValidation::Strict);
        let (admitted, compare) = match resource_version {
            None => (
                admission::create(info, object, &ctx)?,
                Compare::absent(key.clone()),
            ),
            Some(revision) => {
                let old = match self.get(info, namespace.as_deref(), &name).await {
                    Ok(old) => old,
                    Err(e) if e.reason == Reason::NotFound => return Ok(None),
                    Err(e) => return Err(e),
                };
                (
                    admission::update(info, &old, object, Part::Main, &ctx)?,
                    Compare::mod_revision(key.clone(), revision),
                )
            }
        };
        let Admitted { object, .. } = admitted;
        let holder = object["spec"]["holderIdentity"]
            .as_str()
            .unwrap_or_default();
        let claims = Claims {
            compares: vec![],
            puts: vec![TxnOp::Put(PutRequest {
                key: fence.key.as_bytes().to_vec(),
                value: holder.as_bytes().to_vec(),
                ..Default::default()
            })],
        };
        self.put_claiming(compare, claims, key, object).await
    }
}
