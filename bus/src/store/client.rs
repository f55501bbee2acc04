//! [`StoreClient`]: typed calls to the store over the bus.

use std::time::Duration;

use super::protocol::*;
use super::watch::{self, WatchStream};
use crate::client::Bus;

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bus could not carry the request or its reply (see [`crate::Error::is_retryable`]).
    #[error(transparent)]
    Bus(#[from] crate::Error),
    /// The store refused or failed the request.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store answered with a response of another kind than asked: a version mismatch. Not retryable.
    #[error("store answered a {asked} request with {got}")]
    Mismatch {
        /// Kind of request.
        asked: &'static str,
        /// What came back.
        got: String,
    },
}

impl Error {
    /// Whether trying again later can succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Bus(e) => e.is_retryable(),
            Error::Store(e) => e.is_retryable(),
            Error::Mismatch { .. } => false,
        }
    }
}

/// Talks to the store. Cheap to clone.
#[derive(Clone, Debug)]
pub struct StoreClient {
    bus: Bus,
    timeout: Duration,
}

macro_rules! expect {
    ($reply:expr, $variant:ident) => {
        match $reply {
            StoreResponse::$variant(r) => Ok(r),
            other => Err(Error::Mismatch {
                asked: stringify!($variant),
                got: format!("{other:?}").chars().take(80).collect(),
            }),
        }
    };
}

impl StoreClient {
    /// A client on `bus` whose calls give up after 10 s (etcd clients' default dial/request scale).
    pub fn new(bus: Bus) -> Self {
        Self {
            bus,
            timeout: Duration::from_secs(10),
        }
    }

    /// The same client with another per-call deadline.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The bus this client talks over.
    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// Sends one request. A request nobody received (no store member subscribed yet) or that a member refused
    /// without running it (not the leader) is resent until the deadline; a request that may have been applied is
    /// never resent.
    pub async fn call(&self, request: &StoreRequest) -> Result<StoreResponse, Error> {
        let subject = self.bus.subjects().store_rpc();
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut backoff = Duration::from_millis(20);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self
                .bus
                .request_encoded::<_, StoreReply>(&subject, request, left)
                .await
            {
                Ok(Err(StoreError::NotLeader { .. }))
                    if tokio::time::Instant::now() + backoff < deadline =>
                {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                }
                Ok(reply) => return Ok(reply?),
                Err(crate::Error::NoResponders { .. })
                    if tokio::time::Instant::now() + backoff < deadline =>
                {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Reads a range.
    pub async fn range(&self, request: RangeRequest) -> Result<RangeResponse, Error> {
        expect!(self.call(&StoreRequest::Range(request)).await?, Range)
    }

    /// Reads one key (linearizable).
    pub async fn get(&self, key: &[u8]) -> Result<Option<KeyValue>, Error> {
        let response = self
            .range(RangeRequest {
                key: key.to_vec(),
                ..Default::default()
            })
            .await?;
        Ok(response.kvs.into_iter().next())
    }

    /// Reads every key with `prefix` (linearizable), following `more` until the whole range is read at one revision.
    pub async fn list(&self, prefix: &[u8]) -> Result<RangeResponse, Error> {
        let end = prefix_end(prefix);
        let mut first = self
            .range(RangeRequest {
                key: prefix.to_vec(),
                range_end: end.clone(),
                ..Default::default()
            })
            .await?;
        // The store caps one answer's size; continue at the same revision after the last key.
        while first.more {
            let Some(last) = first.kvs.last() else { break };
            let mut next_key = last.key.clone();
            next_key.push(0);
            let page = self
                .range(RangeRequest {
                    key: next_key,
                    range_end: end.clone(),
                    revision: first.header.revision,
                    ..Default::default()
                })
                .await?;
            first.kvs.extend(page.kvs);
            first.more = page.more;
        }
        Ok(first)
    }

    /// Writes one key.
    pub async fn put(&self, request: PutRequest) -> Result<PutResponse, Error> {
        expect!(self.call(&StoreRequest::Put(request)).await?, Put)
    }

    /// Deletes keys.
    pub async fn delete(&self, request: DeleteRequest) -> Result<DeleteResponse, Error> {
        expect!(self.call(&StoreRequest::Delete(request)).await?, Delete)
    }

    /// Runs a transaction.
    pub async fn txn(&self, request: TxnRequest) -> Result<TxnResponse, Error> {
        expect!(self.call(&StoreRequest::Txn(request)).await?, Txn)
    }

    /// Reads past changes.
    pub async fn history(&self, request: HistoryRequest) -> Result<HistoryResponse, Error> {
        expect!(self.call(&StoreRequest::History(request)).await?, History)
    }

    /// Drops history below `revision`.
    pub async fn compact(&self, revision: i64) -> Result<ResponseHeader, Error> {
        expect!(self.call(&StoreRequest::Compact(revision)).await?, Compact)
    }

    /// The answering member's status.
    pub async fn status(&self) -> Result<StatusResponse, Error> {
        expect!(self.call(&StoreRequest::Status).await?, Status)
    }

    /// Grants a lease of `ttl` seconds (`id` 0: the store picks the id).
    pub async fn lease_grant(&self, ttl: i64, id: i64) -> Result<LeaseResponse, Error> {
        expect!(
            self.call(&StoreRequest::LeaseGrant(LeaseGrantRequest { ttl, id }))
                .await?,
            Lease
        )
    }

    /// Revokes a lease: the keys attached to it are deleted.
    pub async fn lease_revoke(&self, id: i64) -> Result<ResponseHeader, Error> {
        expect!(
            self.call(&StoreRequest::LeaseRevoke(LeaseId(id))).await?,
            LeaseRevoke
        )
    }

    /// Renews a lease for its full TTL.
    pub async fn lease_keep_alive(&self, id: i64) -> Result<LeaseResponse, Error> {
        expect!(
            self.call(&StoreRequest::LeaseKeepAlive(LeaseId(id)))
                .await?,
            Lease
        )
    }

    /// A lease's remaining time, and its keys when `keys`.
    pub async fn lease_time_to_live(
        &self,
        id: i64,
        keys: bool,
    ) -> Result<LeaseTimeToLiveResponse, Error> {
        let request = StoreRequest::LeaseTimeToLive(LeaseTimeToLiveRequest { id, keys });
        expect!(self.call(&request).await?, LeaseTimeToLive)
    }

    /// Every live lease.
    pub async fn lease_leases(&self) -> Result<LeaseLeasesResponse, Error> {
        expect!(self.call(&StoreRequest::LeaseLeases).await?, LeaseLeases)
    }

    /// The cluster's members.
    pub async fn member_list(&self) -> Result<MemberListResponse, Error> {
        expect!(self.call(&StoreRequest::MemberList).await?, Members)
    }

    /// Adds a member.
    pub async fn member_add(&self, request: MemberAddRequest) -> Result<MemberListResponse, Error> {
        expect!(self.call(&StoreRequest::MemberAdd(request)).await?, Members)
    }

    /// Removes a member.
    pub async fn member_remove(&self, id: u64) -> Result<MemberListResponse, Error> {
        expect!(
            self.call(&StoreRequest::MemberRemove(MemberId(id))).await?,
            Members
        )
    }

    /// Makes a learner a voter.
    pub async fn member_promote(&self, id: u64) -> Result<MemberListResponse, Error> {
        expect!(
            self.call(&StoreRequest::MemberPromote(MemberId(id)))
                .await?,
            Members
        )
    }

    /// The active alarms; with `disarm`, clears those whose cause is gone first.
    pub async fn alarms(&self, disarm: bool) -> Result<AlarmResponse, Error> {
        expect!(self.call(&StoreRequest::Alarms { disarm }).await?, Alarms)
    }

    /// Watches `[key, range_end)` from `start_revision` (0: from now on). See [`WatchStream`].
    pub async fn watch(
        &self,
        key: &[u8],
        range_end: &[u8],
        start_revision: i64,
    ) -> Result<WatchStream, Error> {
        watch::start(
            self.clone(),
            key.to_vec(),
            range_end.to_vec(),
            start_revision,
        )
        .await
    }

    /// Watches every key with `prefix` from `start_revision` (0: from now on).
    pub async fn watch_prefix(
        &self,
        prefix: &[u8],
        start_revision: i64,
    ) -> Result<WatchStream, Error> {
        self.watch(prefix, &prefix_end(prefix), start_revision)
            .await
    }
}
