//! Request and response types of the store, as they travel on `store.rpc` (bincode-encoded).

use serde::{Deserialize, Serialize};

/// Largest request the store accepts, as etcd's `--max-request-bytes` default.
pub const MAX_REQUEST_BYTES: usize = 1536 * 1024;

/// A key and its value with etcd's bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct KeyValue {
    /// The key.
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// Revision of the put that created the key (since its last deletion).
    pub create_revision: i64,
    /// Revision of the last put (or, in a delete event, of the deletion).
    pub mod_revision: i64,
    /// Number of puts since creation; 1 after the first. A deleted key has version 0.
    pub version: i64,
    /// The value (empty in a delete event and with `keys_only`).
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
    /// Lease the key is attached to (0: none).
    pub lease: i64,
}

/// Facts about the store at the moment it answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ResponseHeader {
    /// The store's revision after the request (for writes: the revision the write committed at).
    pub revision: i64,
    /// Raft term of the answering member.
    pub raft_term: u64,
    /// Id of the answering member.
    pub member_id: u64,
}

/// Reads keys: one key (`range_end` empty), a range `[key, range_end)`, or every key from `key` on
/// (`range_end == [0]`). Use [`prefix_end`] for all keys with a prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RangeRequest {
    /// First key.
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// End of the range (exclusive); see the type's docs.
    #[serde(with = "serde_bytes")]
    pub range_end: Vec<u8>,
    /// Most keys to return (0: no limit). `more` tells whether some were left out.
    pub limit: i64,
    /// Read as of this revision (0: the current one). Revisions before the compaction point are refused.
    pub revision: i64,
    /// Return keys without values.
    pub keys_only: bool,
    /// Return only the count.
    pub count_only: bool,
    /// Allow a possibly stale read from the answering member instead of a linearizable one.
    pub serializable: bool,
}

/// Answer to a [`RangeRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RangeResponse {
    /// Store state at the read.
    pub header: ResponseHeader,
    /// The keys, in key order.
    pub kvs: Vec<KeyValue>,
    /// Whether `limit` left keys out.
    pub more: bool,
    /// How many keys the range holds in all.
    pub count: i64,
}

/// Writes one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PutRequest {
    /// The key.
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// Its new value.
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
    /// Lease to attach (0: none).
    pub lease: i64,
    /// Return the previous key-value.
    pub prev_kv: bool,
}

/// Answer to a [`PutRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PutResponse {
    /// The revision the put committed at.
    pub header: ResponseHeader,
    /// The previous key-value, when asked for and present.
    pub prev_kv: Option<KeyValue>,
}

/// Deletes one key or a range (same range rules as [`RangeRequest`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DeleteRequest {
    /// First key.
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// End of the range (empty: just `key`).
    #[serde(with = "serde_bytes")]
    pub range_end: Vec<u8>,
    /// Return the deleted key-values.
    pub prev_kv: bool,
}

/// Answer to a [`DeleteRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DeleteResponse {
    /// The revision the delete committed at (unchanged when nothing was deleted).
    pub header: ResponseHeader,
    /// Number of keys deleted.
    pub deleted: i64,
    /// The deleted key-values, when asked for.
    pub prev_kvs: Vec<KeyValue>,
}

/// What a [`Compare`] looks at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareTarget {
    /// The key's version (0 when absent).
    Version(i64),
    /// The key's create revision (0 when absent).
    CreateRevision(i64),
    /// The key's mod revision (0 when absent).
    ModRevision(i64),
    /// The key's value (an absent key never compares equal).
    Value(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The lease the key is attached to (0 when absent or attached to none). Last, so entries encoded before it
    /// existed still decode.
    Lease(i64),
}

/// How a [`Compare`] compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareResult {
    /// `actual == target`
    Equal,
    /// `actual != target`
    NotEqual,
    /// `actual > target`
    Greater,
    /// `actual < target`
    Less,
}

/// One condition of a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compare {
    /// The key compared.
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// The comparison.
    pub result: CompareResult,
    /// What is compared, and with which value.
    pub target: CompareTarget,
}

impl Compare {
    /// `key`'s mod revision equals `revision` (0: the key does not exist).
    pub fn mod_revision(key: impl Into<Vec<u8>>, revision: i64) -> Self {
        Self {
            key: key.into(),
            result: CompareResult::Equal,
            target: CompareTarget::ModRevision(revision),
        }
    }

    /// `key` does not exist.
    pub fn absent(key: impl Into<Vec<u8>>) -> Self {
        Self {
            key: key.into(),
            result: CompareResult::Equal,
            target: CompareTarget::CreateRevision(0),
        }
    }
}

/// One operation of a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnOp {
    /// A read, at the transaction's revision.
    Range(RangeRequest),
    /// A write.
    Put(PutRequest),
    /// A delete.
    Delete(DeleteRequest),
}

/// etcd's transaction: if every compare holds, run `success`, else `failure`; atomically, at one revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TxnRequest {
    /// Conditions, all of which must hold.
    pub compare: Vec<Compare>,
    /// Operations when they hold.
    pub success: Vec<TxnOp>,
    /// Operations when one does not.
    pub failure: Vec<TxnOp>,
}

/// Result of one [`TxnOp`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnOpResponse {
    /// Result of a read.
    Range(RangeResponse),
    /// Result of a write.
    Put(PutResponse),
    /// Result of a delete.
    Delete(DeleteResponse),
}

/// Answer to a [`TxnRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TxnResponse {
    /// The revision after the transaction (it grows by one when the transaction wrote anything).
    pub header: ResponseHeader,
    /// Whether the compares held (and `success` ran).
    pub succeeded: bool,
    /// One result per operation that ran.
    pub responses: Vec<TxnOpResponse>,
}

/// Kind of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// The key was created or updated.
    Put,
    /// The key was deleted.
    Delete,
}

/// One key's change at one revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// The key after the change; for a delete, the key with `mod_revision` = the deletion's revision, version 0 and
    /// no value.
    pub kv: KeyValue,
    /// The key before the change, when it existed.
    pub prev_kv: Option<KeyValue>,
}

/// Every change of one stream at one revision, as published on `store.events.<stream>` inside
/// [`StreamMessage::Changes`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeBatch {
    /// The revision of these changes.
    pub revision: i64,
    /// The previous revision that changed this stream (0: none since the store began). A watcher that has not seen
    /// `prev` lost a message.
    pub prev: i64,
    /// The stream these changes belong to.
    pub stream: String,
    /// The changes, in the order the transaction made them.
    pub events: Vec<Event>,
}

/// Published periodically on every `store.events.<stream>` (ordered with that stream's batches): every change of
/// the stream up to `revision` has been published, the last at `last`. A watcher whose last batch was lost sees
/// `last` above what it has and rereads history; otherwise it may treat `revision` as delivered (a bookmark).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct StreamProgress {
    /// The stream.
    pub stream: String,
    /// The store's revision when this was published.
    pub revision: i64,
    /// The last revision that changed this stream (0: none).
    pub last: i64,
}

/// A message on `store.events.<stream>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StreamMessage {
    /// Changes at one revision.
    Changes(ChangeBatch),
    /// The stream is complete up to a revision.
    Progress(StreamProgress),
}

/// Asks for the committed changes of a range from `start_revision` on (a watch's catch-up).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct HistoryRequest {
    /// First key (range rules as [`RangeRequest`]).
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// End of the range.
    #[serde(with = "serde_bytes")]
    pub range_end: Vec<u8>,
    /// First revision wanted (0: none, just report the current revision).
    pub start_revision: i64,
    /// Stop after this many revisions (0: the store's own limit); `more` tells when the answer was cut.
    pub limit: i64,
}

/// Answer to a [`HistoryRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct HistoryResponse {
    /// `header.revision`: the answer covers every revision up to this one (or up to the last batch when `more`).
    pub header: ResponseHeader,
    /// Changes within the range, one batch per revision that touched it, ascending (`prev` is 0 here).
    pub batches: Vec<ChangeBatch>,
    /// Whether the answer stopped early; ask again from the last batch's revision + 1.
    pub more: bool,
}

/// The answering member's view of the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct StatusResponse {
    /// Current revision and member.
    pub header: ResponseHeader,
    /// Id of the leader the member knows of (0: none).
    pub leader: u64,
    /// Last log index.
    pub raft_index: u64,
    /// Last applied log index.
    pub raft_applied_index: u64,
    /// Revisions below this are compacted.
    pub compact_revision: i64,
    /// Size of the data directory in bytes.
    pub db_size: u64,
    /// Bytes of kept data as the space quota counts them: every kept version of every key (key, value and a fixed
    /// overhead) and every lease (etcd's `dbSizeInUse`).
    pub db_size_in_use: u64,
    /// Number of keys.
    pub keys: u64,
}

/// A request to the store on `store.rpc`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoreRequest {
    /// Read keys.
    Range(RangeRequest),
    /// Write a key.
    Put(PutRequest),
    /// Delete keys.
    Delete(DeleteRequest),
    /// Compare, then write.
    Txn(TxnRequest),
    /// Past changes, for watches.
    History(HistoryRequest),
    /// Drop history below a revision.
    Compact(i64),
    /// Member status.
    Status,
    /// Grant a lease.
    LeaseGrant(LeaseGrantRequest),
    /// Revoke a lease, deleting the keys attached to it.
    LeaseRevoke(LeaseId),
    /// Renew a lease for its full TTL.
    LeaseKeepAlive(LeaseId),
    /// A lease's remaining time (and keys).
    LeaseTimeToLive(LeaseTimeToLiveRequest),
    /// Every live lease.
    LeaseLeases,
    /// The members of the cluster.
    MemberList,
    /// Add a member (as a learner, or as a voter).
    MemberAdd(MemberAddRequest),
    /// Remove a member.
    MemberRemove(MemberId),
    /// Make a learner a voter.
    MemberPromote(MemberId),
    /// The active alarms (e.g. NOSPACE); with `disarm`, clear them first where the cause is gone.
    Alarms {
        /// Clear the alarms whose cause is gone before answering.
        disarm: bool,
    },
}

/// A lease's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseId(pub i64);

/// A member's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberId(pub u64);

/// Grants a lease of `ttl` seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct LeaseGrantRequest {
    /// Time to live in seconds (etcd raises it to its minimum TTL).
    pub ttl: i64,
    /// The id wanted (0: the store picks one).
    pub id: i64,
}

/// A lease as granted or renewed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct LeaseResponse {
    /// Store state at the answer.
    pub header: ResponseHeader,
    /// The lease.
    pub id: i64,
    /// Its TTL in seconds (for a renewal: the full TTL it was renewed for).
    pub ttl: i64,
}

/// Asks for a lease's remaining time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct LeaseTimeToLiveRequest {
    /// The lease.
    pub id: i64,
    /// Also list the keys attached to it.
    pub keys: bool,
}

/// A lease's remaining time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct LeaseTimeToLiveResponse {
    /// Store state at the answer.
    pub header: ResponseHeader,
    /// The lease.
    pub id: i64,
    /// Seconds left (-1: the lease has expired or does not exist, as etcd answers).
    pub ttl: i64,
    /// The TTL it was granted with.
    pub granted_ttl: i64,
    /// Keys attached to it, when asked for.
    pub keys: Vec<Vec<u8>>,
}

/// Every live lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct LeaseLeasesResponse {
    /// Store state at the answer.
    pub header: ResponseHeader,
    /// Their ids.
    pub leases: Vec<i64>,
}

/// One member of the store cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Member {
    /// Its id (`navarch store --id`).
    pub id: u64,
    /// Its name (`member-<id>` unless given).
    pub name: String,
    /// Whether it only receives the log (a learner) rather than voting.
    pub is_learner: bool,
    /// Where it serves the etcd API, if it does.
    pub client_urls: Vec<String>,
    /// How other members reach it (its bus subject for Raft).
    pub peer_urls: Vec<String>,
}

/// Adds a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct MemberAddRequest {
    /// Its id (0: the store picks one).
    pub id: u64,
    /// Its name (empty: `member-<id>`).
    pub name: String,
    /// Add it as a learner (promote it once it has caught up).
    pub is_learner: bool,
}

/// The cluster's members after a membership request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct MemberListResponse {
    /// Store state at the answer.
    pub header: ResponseHeader,
    /// The member the request added (for [`StoreRequest::MemberAdd`]).
    pub member: Option<Member>,
    /// Every member.
    pub members: Vec<Member>,
}

/// An alarm raised by a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alarm {
    /// The member that raised it.
    pub member_id: u64,
    /// What it is about.
    pub kind: AlarmKind,
}

/// Kinds of alarm (etcd's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlarmKind {
    /// The space quota is exhausted: writes are refused until space is freed (compact, defragment) and disarmed.
    NoSpace,
    /// The member found its data corrupt.
    Corrupt,
}

/// Active alarms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AlarmResponse {
    /// Store state at the answer.
    pub header: ResponseHeader,
    /// The alarms.
    pub alarms: Vec<Alarm>,
}

/// The store's answer on `store.rpc`, paired with [`StoreRequest`] variant by variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoreResponse {
    /// To [`StoreRequest::Range`].
    Range(RangeResponse),
    /// To [`StoreRequest::Put`].
    Put(PutResponse),
    /// To [`StoreRequest::Delete`].
    Delete(DeleteResponse),
    /// To [`StoreRequest::Txn`].
    Txn(TxnResponse),
    /// To [`StoreRequest::History`].
    History(HistoryResponse),
    /// To [`StoreRequest::Compact`].
    Compact(ResponseHeader),
    /// To [`StoreRequest::Status`].
    Status(StatusResponse),
    /// To [`StoreRequest::LeaseGrant`] and [`StoreRequest::LeaseKeepAlive`].
    Lease(LeaseResponse),
    /// To [`StoreRequest::LeaseRevoke`].
    LeaseRevoke(ResponseHeader),
    /// To [`StoreRequest::LeaseTimeToLive`].
    LeaseTimeToLive(LeaseTimeToLiveResponse),
    /// To [`StoreRequest::LeaseLeases`].
    LeaseLeases(LeaseLeasesResponse),
    /// To [`StoreRequest::MemberList`], [`StoreRequest::MemberAdd`], [`StoreRequest::MemberRemove`] and
    /// [`StoreRequest::MemberPromote`].
    Members(MemberListResponse),
    /// To [`StoreRequest::Alarms`].
    Alarms(AlarmResponse),
}

/// What the store refuses or fails with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum StoreError {
    /// The revision asked for has been compacted away. Not retryable: start again from the current revision.
    #[error(
        "required revision {requested} has been compacted (compacted up to {compact_revision})"
    )]
    Compacted {
        /// The revision asked for.
        requested: i64,
        /// The oldest revision still kept.
        compact_revision: i64,
    },
    /// The revision asked for is in the future. Not retryable.
    #[error("required revision {requested} is a future revision (current {current})")]
    FutureRevision {
        /// The revision asked for.
        requested: i64,
        /// The current revision.
        current: i64,
    },
    /// The request is larger than [`MAX_REQUEST_BYTES`]. Not retryable.
    #[error("request is too large: {size} bytes (limit {max})")]
    RequestTooLarge {
        /// Size of the request.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The request is malformed (empty key, inverted range, bad revision...). Not retryable.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// This member cannot serve writes; `leader` is who can (when known). Retryable.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The leader's member id, when known.
        leader: Option<u64>,
    },
    /// The store cannot serve now (no quorum, shutting down). Retryable.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store is out of space and refuses writes until compacted (etcd's NOSPACE alarm). Not retryable as is.
    #[error("store space quota exceeded")]
    NoSpace,
    /// The lease does not exist (never granted, revoked, or expired). Not retryable.
    #[error("requested lease not found")]
    LeaseNotFound {
        /// The lease.
        id: i64,
    },
    /// A lease with the requested id exists already. Not retryable.
    #[error("lease already exists")]
    LeaseExists {
        /// The lease.
        id: i64,
    },
    /// No member has this id. Not retryable.
    #[error("member not found")]
    MemberNotFound {
        /// The member.
        id: u64,
    },
    /// A member with this id exists already. Not retryable.
    #[error("member ID already exist")]
    MemberExists {
        /// The member.
        id: u64,
    },
    /// The membership change would leave the cluster without quorum, or another change is in progress. Retryable
    /// once the cluster is healthy.
    #[error("unhealthy cluster: {0}")]
    Unhealthy(String),
    /// A bug or a disk failure on the member. Retryable on another member.
    #[error("store internal error: {0}")]
    Internal(String),
}

impl StoreError {
    /// Whether the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            StoreError::NotLeader { .. }
                | StoreError::Unavailable(_)
                | StoreError::Internal(_)
                | StoreError::Unhealthy(_)
        )
    }
}

/// The reply on `store.rpc`.
pub type StoreReply = Result<StoreResponse, StoreError>;

/// The `range_end` selecting every key that starts with `prefix` (etcd's `--prefix`).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte was 0xff (or the prefix was empty): the range runs to the end of the key space.
    vec![0]
}

/// Whether `key` falls in the range `[start, end)` with [`RangeRequest`]'s rules.
pub fn in_range(key: &[u8], start: &[u8], end: &[u8]) -> bool {
    if end.is_empty() {
        key == start
    } else if end == [0] {
        key >= start
    } else {
        key >= start && key < end
    }
}

/// Name of the change stream `key` belongs to: the resource segment of `/registry/<resource>/...`, else `_`.
pub fn stream_of(key: &[u8]) -> String {
    let Some(rest) = key.strip_prefix(b"/registry/") else {
        return "_".into();
    };
    let segment = rest.split(|b| *b == b'/').next().unwrap_or_default();
    if segment.is_empty() || rest.len() == segment.len() {
        return "_".into();
    }
    crate::subject::token(&String::from_utf8_lossy(segment))
}

/// The single stream every key of `[start, end)` belongs to, if there is one (else a watch must follow all streams).
pub fn single_stream(start: &[u8], end: &[u8]) -> Option<String> {
    let stream = stream_of(start);
    if stream == "_" {
        return None;
    }
    if end.is_empty() {
        return Some(stream);
    }
    let stream_prefix = format!("/registry/{stream}/").into_bytes();
    let within = start.starts_with(&stream_prefix)
        && end != [0]
        && end <= prefix_end(&stream_prefix).as_slice();
    within.then_some(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_etcds() {
        assert_eq!(prefix_end(b"/registry/pods/"), b"/registry/pods0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
        assert_eq!(prefix_end(b""), vec![0]);
    }

    #[test]
    fn ranges() {
        assert!(in_range(b"a", b"a", b""));
        assert!(!in_range(b"ab", b"a", b""));
        assert!(in_range(b"ab", b"a", &prefix_end(b"a")));
        assert!(!in_range(b"b", b"a", &prefix_end(b"a")));
        assert!(in_range(b"zzz", b"a", &[0]));
    }

    #[test]
    fn streams_follow_the_resource_segment() {
        assert_eq!(stream_of(b"/registry/pods/demo/web-1"), "pods");
        assert_eq!(stream_of(b"/registry/namespaces/demo"), "namespaces");
        assert_eq!(stream_of(b"/registry/pods"), "_");
        assert_eq!(stream_of(b"foo"), "_");
        let p = b"/registry/pods/demo/";
        assert_eq!(single_stream(p, &prefix_end(p)).as_deref(), Some("pods"));
        let all = b"/registry/pods/";
        assert_eq!(
            single_stream(all, &prefix_end(all)).as_deref(),
            Some("pods")
        );
        assert_eq!(
            single_stream(b"/registry/", &prefix_end(b"/registry/")),
            None
        );
        assert_eq!(single_stream(b"/registry/pods/a", b""), Some("pods".into()));
    }
}
