//! Raft between members over the bus: each member answers requests on `subjects.raft(id)`; [`Network`] sends
//! them. The same subject carries client requests a follower forwards to the leader.
//!
//! Every message is one [`RaftMessage`] answered by one [`RaftReply`], encoded with the bus codec.

mod client;
mod server;

use navarch_bus::store::{StoreReply, StoreRequest};
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};

pub use client::{forward, Network, Peer};
pub use server::serve;

use crate::types::{NodeId, TypeConfig};

/// A request on a member's Raft subject.
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftMessage {
    /// Replicate entries, or a heartbeat.
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    /// Ask for a vote.
    Vote(VoteRequest<NodeId>),
    /// One chunk of a snapshot.
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// A client request a follower passes to the leader; the leader serves it and never forwards it again.
    Forward(StoreRequest),
}

/// The answer on a member's Raft subject, variant by variant.
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftReply {
    /// To [`RaftMessage::AppendEntries`].
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    /// To [`RaftMessage::Vote`].
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    /// To [`RaftMessage::InstallSnapshot`].
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
    /// To [`RaftMessage::Forward`].
    Forward(StoreReply),
    /// The message did not decode (another version of Navarch?).
    Undecodable(String),
}
