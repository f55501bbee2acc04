//! Raft between members over the bus: each member answers requests on `subjects.raft(id)`; [`Network`] sends
//! them. The same subject carries what members ask one another besides Raft: client requests a follower forwards
//! to the leader, read indexes for linearizable reads on followers, liveness probes and membership notices.
//!
//! Every message is one [`RaftMessage`] answered by one [`RaftReply`], encoded with the bus codec. New variants go
//! last, so members of the previous version still decode the ones they know.

mod client;
mod server;

use navarch_bus::store::{StoreError, StoreReply, StoreRequest};
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};

pub use client::{call, forward, Network, Peer};
pub use server::serve;

use crate::types::{LogId, Node, NodeId, TypeConfig};

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
    /// A member asks the leader for a read index (ReadIndex): the leader confirms its leadership with a round of
    /// heartbeats and answers the log index a read must see applied to be linearizable.
    ReadIndex,
    /// Is the member running? A leader asks before a membership change that needs a quorum afterwards.
    Ping,
    /// The leader tells a member that the cluster has removed it: it stops serving.
    Removed {
        /// The leader that removed it.
        by: NodeId,
    },
    /// A member asks the leader to record what it knows of itself (its client URLs) in the membership.
    SetNode {
        /// The member.
        id: NodeId,
        /// What to record.
        node: Node,
    },
    /// A member asks the leader whether it is still in the cluster (a learner removed while it was down is never
    /// told otherwise: it does not stand for election). Answered with [`RaftReply::Removed`] or
    /// [`RaftReply::Done`] (`NotLeader` when asked of another member).
    CheckMember {
        /// The member.
        id: NodeId,
        /// Where in the log the newest membership it knows is (at most its last entry, which is what the
        /// leader's check needs: see `server::member_removed`).
        membership_log_id: Option<LogId>,
    },
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
    /// To [`RaftMessage::ReadIndex`]: the log index to wait for (`None`: nothing to wait for), or why the member
    /// cannot give one (`NotLeader`, `Unavailable`).
    ReadIndex(Result<Option<u64>, StoreError>),
    /// To [`RaftMessage::Ping`]: the member's id.
    Pong(NodeId),
    /// To a vote request or [`RaftMessage::CheckMember`] from a member the leader's membership does not hold,
    /// whose log ends before that membership: the member has been removed and should stop.
    Removed,
    /// To [`RaftMessage::Removed`] and [`RaftMessage::SetNode`].
    Done(Result<(), StoreError>),
}
