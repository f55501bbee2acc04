//! Linearizable reads on a member that does not lead (ReadIndex): it asks the leader for a read index, which the
//! leader gives once a heartbeat round confirmed its leadership, waits until its own state machine has applied
//! that index, then reads locally. The leader itself uses openraft's `ensure_linearizable`.

use navarch_bus::store::StoreError;

use super::service::{Failure, Service};
use crate::network::{self, RaftMessage, RaftReply};
use crate::types::NodeId;

impl Service {
    /// Waits until a read on this member's state machine is linearizable, given that `leader` leads (as this
    /// member knows). Without a leader, or when the leader cannot give an index (an older version), the request
    /// is redirected to it instead.
    pub(super) async fn read_index(&self, leader: Option<NodeId>) -> Result<(), Failure> {
        let Some(leader) = leader.filter(|leader| *leader != self.id) else {
            return Err(Failure::Redirect(leader));
        };
        let deadline = tokio::time::Instant::now() + self.timeout;
        let index = match network::call(&self.bus, leader, &RaftMessage::ReadIndex, self.timeout)
            .await
        {
            Ok(RaftReply::ReadIndex(Ok(Some(index)))) => index,
            Ok(RaftReply::ReadIndex(Ok(None))) => return Ok(()),
            Ok(RaftReply::ReadIndex(Err(StoreError::NotLeader { leader }))) => {
                return Err(Failure::Redirect(leader))
            }
            Ok(RaftReply::ReadIndex(Err(e))) => return Err(Failure::Store(e)),
            Ok(other) => {
                tracing::debug!(leader, reply = ?other, "the leader gives no read index; forwarding the read");
                return Err(Failure::Redirect(Some(leader)));
            }
            Err(navarch_bus::Error::NoResponders { .. }) => {
                return Err(Failure::Redirect(Some(leader)))
            }
            Err(e) => {
                return Err(Failure::Store(StoreError::Unavailable(format!(
                    "no read index from leader {leader}: {e}"
                ))))
            }
        };
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        self.raft
            .wait(Some(left))
            .applied_index_at_least(Some(index), "the read index is applied")
            .await
            .map(drop)
            .map_err(|e| {
                Failure::Store(StoreError::Unavailable(format!(
                    "this member did not apply up to the read index {index} in time: {e}"
                )))
            })
    }
}
