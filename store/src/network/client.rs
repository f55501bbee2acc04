//! [`Network`]: openraft's network factory over the bus, and [`Peer`], the way to one member: request/reply on
//! the member's Raft subject with openraft's deadline.

use std::sync::Arc;
use std::time::Duration;

use navarch_bus::store::{StoreReply, StoreRequest};
use navarch_bus::{codec, Bus, Headers};
use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, Timeout,
    Unreachable,
};
use openraft::network::{RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};

use tokio::sync::watch;

use super::{RaftMessage, RaftReply};
use crate::types::{Node, NodeId, TypeConfig};

/// Room for headers (trace context) in a Raft request, as the bus keeps for reply chunks.
const HEADER_ROOM: usize = 16 * 1024;

/// Creates a [`Peer`] for each member openraft talks to.
#[derive(Clone)]
pub struct Network {
    bus: Bus,
    id: NodeId,
    removed: Arc<watch::Sender<bool>>,
}

impl Network {
    /// The network of member `id` on `bus`. When the leader answers one of its vote requests with
    /// [`RaftReply::Removed`], it sets `removed`.
    pub fn new(bus: Bus, id: NodeId, removed: Arc<watch::Sender<bool>>) -> Self {
        Self { bus, id, removed }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, _node: &Node) -> Peer {
        Peer {
            subject: self.bus.subjects().raft(target),
            bus: self.bus.clone(),
            id: self.id,
            target,
            removed: self.removed.clone(),
        }
    }
}

/// The way from one member to another.
pub struct Peer {
    bus: Bus,
    id: NodeId,
    target: NodeId,
    subject: String,
    removed: Arc<watch::Sender<bool>>,
}

/// Sends `message` to member `target` and returns its answer.
pub async fn call(
    bus: &Bus,
    target: NodeId,
    message: &RaftMessage,
    timeout: Duration,
) -> Result<RaftReply, navarch_bus::Error> {
    let subject = bus.subjects().raft(target);
    let payload = codec::encode(message)?;
    let reply = bus
        .request(&subject, Headers::new(), payload.into(), timeout)
        .await?;
    codec::decode(&reply.payload)
}

/// Sends a client request to `leader` and returns its answer.
pub async fn forward(
    bus: &Bus,
    leader: NodeId,
    request: StoreRequest,
    timeout: Duration,
) -> Result<StoreReply, navarch_bus::Error> {
    match call(bus, leader, &RaftMessage::Forward(request), timeout).await? {
        RaftReply::Forward(reply) => Ok(reply),
        other => Err(navarch_bus::Error::Codec(format!(
            "member {leader} answered a forwarded request with {other:?}"
        ))),
    }
}

impl Peer {
    /// Sends `message` and decodes the reply; a request too large for one bus message is refused before sending.
    async fn call(&self, message: &RaftMessage, timeout: Duration) -> Result<RaftReply, CallError> {
        let payload = codec::encode(message).map_err(CallError::Bus)?;
        if payload.len() + HEADER_ROOM > self.bus.max_payload() {
            return Err(CallError::TooLarge(payload.len()));
        }
        let reply = self
            .bus
            .request(&self.subject, Headers::new(), payload.into(), timeout)
            .await
            .map_err(CallError::Bus)?;
        codec::decode(&reply.payload).map_err(CallError::Bus)
    }

    /// openraft's error for a failed call.
    fn rpc_error<E: std::error::Error>(
        &self,
        e: CallError,
        action: RPCTypes,
    ) -> RPCError<NodeId, Node, E> {
        match e {
            CallError::Bus(e @ navarch_bus::Error::NoResponders { .. })
            | CallError::Bus(e @ navarch_bus::Error::Connection(_)) => {
                RPCError::Unreachable(Unreachable::new(&e))
            }
            CallError::Bus(navarch_bus::Error::Timeout { timeout, .. }) => {
                RPCError::Timeout(Timeout {
                    action,
                    id: self.id,
                    target: self.target,
                    timeout,
                })
            }
            CallError::Bus(e) => RPCError::Network(NetworkError::new(&e)),
            // One entry or chunk larger than a message: retrying cannot help, so back off like an unreachable
            // peer and say why. Requests are capped below this size, so only a misconfiguration gets here.
            e @ CallError::TooLarge(_) => {
                tracing::error!(target = self.target, error = %e, "raft message does not fit the bus");
                RPCError::Unreachable(Unreachable::new(&e))
            }
            e @ CallError::Mismatch(_) => RPCError::Network(NetworkError::new(&e)),
            e @ CallError::Removed => RPCError::Unreachable(Unreachable::new(&e)),
        }
    }
}

/// Why a call to a peer failed.
#[derive(Debug, thiserror::Error)]
enum CallError {
    /// The bus could not carry the request or its reply.
    #[error(transparent)]
    Bus(navarch_bus::Error),
    /// The encoded request is larger than a bus message.
    #[error("raft message of {0} bytes exceeds the bus payload limit")]
    TooLarge(usize),
    /// The peer answered with another kind of reply.
    #[error("peer answered with {0}")]
    Mismatch(String),
    /// The leader answered a vote request: this member is no longer in the cluster.
    #[error("this member has been removed from the cluster")]
    Removed,
}

fn mismatch(reply: &RaftReply) -> CallError {
    CallError::Mismatch(format!("{reply:?}").chars().take(120).collect())
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        let entries = rpc.entries.len();
        let action = RPCTypes::AppendEntries;
        match self
            .call(&RaftMessage::AppendEntries(rpc), option.hard_ttl())
            .await
        {
            Ok(RaftReply::AppendEntries(Ok(response))) => Ok(response),
            Ok(RaftReply::AppendEntries(Err(e))) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(other) => Err(self.rpc_error(mismatch(&other), action)),
            // Too many entries for one message: openraft retries with fewer.
            Err(CallError::TooLarge(_)) if entries > 1 => Err(RPCError::PayloadTooLarge(
                PayloadTooLarge::new_entries_hint((entries / 2) as u64),
            )),
            Err(e) => Err(self.rpc_error(e, action)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, Node, RaftError<NodeId, InstallSnapshotError>>,
    > {
        let action = RPCTypes::InstallSnapshot;
        match self
            .call(&RaftMessage::InstallSnapshot(rpc), option.hard_ttl())
            .await
        {
            Ok(RaftReply::InstallSnapshot(Ok(response))) => Ok(response),
            Ok(RaftReply::InstallSnapshot(Err(e))) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(other) => Err(self.rpc_error(mismatch(&other), action)),
            Err(e) => Err(self.rpc_error(e, action)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        let action = RPCTypes::Vote;
        match self.call(&RaftMessage::Vote(rpc), option.hard_ttl()).await {
            Ok(RaftReply::Vote(Ok(response))) => Ok(response),
            Ok(RaftReply::Removed) => {
                tracing::warn!(
                    leader = self.target,
                    "the leader says this member has been removed from the cluster"
                );
                self.removed.send_replace(true);
                Err(self.rpc_error(CallError::Removed, action))
            }
            Ok(RaftReply::Vote(Err(e))) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(other) => Err(self.rpc_error(mismatch(&other), action)),
            Err(e) => Err(self.rpc_error(e, action)),
        }
    }
}
