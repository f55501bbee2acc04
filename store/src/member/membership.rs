//! The pure core of membership changes: what a member list shows, and whether an add, a promotion or a removal
//! may go ahead given the membership and which voters answered a probe. No Raft, no bus, no clock.

use std::collections::BTreeSet;

use navarch_bus::store::{Member, MemberAddRequest, StoreError};

use crate::types::{default_name, Membership, Node, NodeId};

/// Every member, voters and learners, by id.
pub fn members(membership: &Membership) -> Vec<Member> {
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    membership
        .nodes()
        .map(|(id, node)| Member {
            id: *id,
            name: node.name_or_default(*id),
            is_learner: !voters.contains(id),
            client_urls: node.client_urls.clone(),
            peer_urls: vec![node.addr.clone()],
        })
        .collect()
}

/// Refuses a change while another one is half done (a joint configuration).
pub fn check_idle(membership: &Membership) -> Result<(), StoreError> {
    if membership.get_joint_config().len() > 1 {
        return Err(StoreError::Unhealthy(
            "another membership change is in progress".into(),
        ));
    }
    Ok(())
}

/// The id and node of a member to add: `request.id`, or (0) the next id after the highest; named `member-<id>`
/// unless named. `addr_of` gives a member's Raft address.
pub fn plan_add(
    membership: &Membership,
    request: &MemberAddRequest,
    addr_of: impl Fn(NodeId) -> String,
) -> Result<(NodeId, Node), StoreError> {
    check_idle(membership)?;
    let id = match request.id {
        0 => membership
            .nodes()
            .map(|(id, _)| *id)
            .max()
            .unwrap_or(0)
            .checked_add(1)
            .ok_or_else(|| StoreError::InvalidArgument("no member id left".into()))?,
        id => id,
    };
    if membership.get_node(&id).is_some() {
        return Err(StoreError::MemberExists { id });
    }
    let name = if request.name.is_empty() {
        default_name(id)
    } else {
        request.name.clone()
    };
    Ok((id, Node::new(addr_of(id), name)))
}

/// Checks that learner `id` may become a voter: it exists, is a learner, and trails the leader by at most
/// `max_lag` entries (`lag` is unknown when the leader has not heard from it). Returns the voters afterwards.
pub fn plan_promote(
    membership: &Membership,
    id: NodeId,
    lag: Option<u64>,
    max_lag: u64,
) -> Result<BTreeSet<NodeId>, StoreError> {
    check_idle(membership)?;
    if membership.get_node(&id).is_none() {
        return Err(StoreError::MemberNotFound { id });
    }
    let mut voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    if voters.contains(&id) {
        return Err(StoreError::InvalidArgument(format!(
            "member {id} is a voter already; only a learner can be promoted"
        )));
    }
    match lag {
        Some(lag) if lag <= max_lag => {}
        Some(lag) => {
            return Err(StoreError::Unhealthy(format!(
                "learner {id} is {lag} entries behind the leader; it can be promoted once in sync"
            )))
        }
        None => {
            return Err(StoreError::Unhealthy(format!(
                "learner {id} has not caught up with the leader (is it running?); it can be promoted once in sync"
            )))
        }
    }
    voters.insert(id);
    Ok(voters)
}

/// What removing a member changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// It is a learner: the quorum does not change.
    Learner,
    /// It is a voter: the quorum shrinks.
    Voter,
}

/// Checks that member `id` may be removed: it exists, and unless it is a learner, the voters left are not empty
/// and a quorum of them is `healthy` (answered a probe).
pub fn plan_remove(
    membership: &Membership,
    id: NodeId,
    healthy: &BTreeSet<NodeId>,
) -> Result<Removal, StoreError> {
    check_idle(membership)?;
    if membership.get_node(&id).is_none() {
        return Err(StoreError::MemberNotFound { id });
    }
    let mut voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    if !voters.remove(&id) {
        return Ok(Removal::Learner);
    }
    if voters.is_empty() {
        return Err(StoreError::Unhealthy(format!(
            "member {id} is the last voter; removing it would leave no cluster"
        )));
    }
    check_quorum(&voters, healthy)?;
    Ok(Removal::Voter)
}

/// Refuses a configuration whose `voters` would not have a quorum among the `healthy` members.
pub fn check_quorum(
    voters: &BTreeSet<NodeId>,
    healthy: &BTreeSet<NodeId>,
) -> Result<(), StoreError> {
    let up = voters.intersection(healthy).count();
    let quorum = voters.len() / 2 + 1;
    if up < quorum {
        return Err(StoreError::Unhealthy(format!(
            "only {up} of the {} voters afterwards answer; a quorum needs {quorum}",
            voters.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn membership(voters: &[NodeId], learners: &[NodeId]) -> Membership {
        let nodes: BTreeMap<NodeId, Node> = voters
            .iter()
            .chain(learners)
            .map(|id| (*id, Node::new(format!("raft.{id}"), "")))
            .collect();
        Membership::new(vec![voters.iter().copied().collect()], nodes)
    }

    fn set(ids: &[NodeId]) -> BTreeSet<NodeId> {
        ids.iter().copied().collect()
    }

    #[test]
    fn the_list_names_every_member_and_its_role() {
        let mut m = membership(&[1, 2], &[4]);
        m = Membership::new(
            vec![set(&[1, 2])],
            m.nodes()
                .map(|(id, node)| {
                    let mut node = node.clone();
                    if *id == 2 {
                        node.name = "east".into();
                        node.client_urls = vec!["http://10.0.0.2:2379".into()];
                    }
                    (*id, node)
                })
                .collect::<BTreeMap<_, _>>(),
        );
        let list = members(&m);
        let ids: Vec<_> = list
            .iter()
            .map(|m| (m.id, m.name.as_str(), m.is_learner))
            .collect();
        assert_eq!(
            ids,
            vec![
                (1, "member-1", false),
                (2, "east", false),
                (4, "member-4", true)
            ]
        );
        assert_eq!(
            list[1].client_urls,
            vec!["http://10.0.0.2:2379".to_string()]
        );
        assert_eq!(list[2].peer_urls, vec!["raft.4".to_string()]);
    }

    #[test]
    fn adding_picks_or_checks_the_id() {
        let m = membership(&[1, 2, 3], &[]);
        let addr = |id| format!("raft.{id}");
        let auto = MemberAddRequest::default();
        assert_eq!(
            plan_add(&m, &auto, addr),
            Ok((4, Node::new("raft.4", "member-4")))
        );
        let named = MemberAddRequest {
            id: 7,
            name: "west".into(),
            is_learner: true,
        };
        assert_eq!(
            plan_add(&m, &named, addr),
            Ok((7, Node::new("raft.7", "west")))
        );
        let taken = MemberAddRequest {
            id: 2,
            ..Default::default()
        };
        assert_eq!(
            plan_add(&m, &taken, addr),
            Err(StoreError::MemberExists { id: 2 })
        );
        let max = membership(&[u64::MAX], &[]);
        assert!(matches!(
            plan_add(&max, &auto, addr),
            Err(StoreError::InvalidArgument(_))
        ));
    }

    #[test]
    fn only_a_learner_in_sync_is_promoted() {
        let m = membership(&[1, 2, 3], &[4]);
        assert_eq!(plan_promote(&m, 4, Some(3), 100), Ok(set(&[1, 2, 3, 4])));
        assert!(matches!(
            plan_promote(&m, 4, Some(101), 100),
            Err(StoreError::Unhealthy(_))
        ));
        assert!(matches!(
            plan_promote(&m, 4, None, 100),
            Err(StoreError::Unhealthy(_))
        ));
        assert!(matches!(
            plan_promote(&m, 2, Some(0), 100),
            Err(StoreError::InvalidArgument(_))
        ));
        assert_eq!(
            plan_promote(&m, 9, Some(0), 100),
            Err(StoreError::MemberNotFound { id: 9 })
        );
    }

    #[test]
    fn removing_keeps_a_quorum_and_a_voter() {
        let m = membership(&[1, 2, 3], &[4]);
        let all = set(&[1, 2, 3, 4]);
        assert_eq!(plan_remove(&m, 4, &set(&[1])), Ok(Removal::Learner));
        assert_eq!(plan_remove(&m, 3, &all), Ok(Removal::Voter));
        // 3 is down: removing it leaves {1, 2}, both up.
        assert_eq!(plan_remove(&m, 3, &set(&[1, 2])), Ok(Removal::Voter));
        // 3 is down: removing 2 would leave {1, 3} with only 1 up.
        assert!(matches!(
            plan_remove(&m, 2, &set(&[1, 2])),
            Err(StoreError::Unhealthy(_))
        ));
        assert_eq!(
            plan_remove(&m, 5, &all),
            Err(StoreError::MemberNotFound { id: 5 })
        );
        let lone = membership(&[1], &[]);
        assert!(matches!(
            plan_remove(&lone, 1, &set(&[1])),
            Err(StoreError::Unhealthy(_))
        ));
    }

    #[test]
    fn nothing_changes_while_a_change_is_half_done() {
        let nodes: BTreeMap<NodeId, Node> =
            [1, 2, 3].iter().map(|id| (*id, Node::default())).collect();
        let joint = Membership::new(vec![set(&[1, 2, 3]), set(&[1, 2])], nodes);
        assert!(matches!(
            plan_remove(&joint, 1, &set(&[1, 2, 3])),
            Err(StoreError::Unhealthy(_))
        ));
        assert!(matches!(
            plan_add(&joint, &MemberAddRequest::default(), |id| id.to_string()),
            Err(StoreError::Unhealthy(_))
        ));
    }

    #[test]
    fn quorum_counts_only_voters() {
        assert!(check_quorum(&set(&[1, 2, 3, 4]), &set(&[1, 2, 3])).is_ok());
        assert!(check_quorum(&set(&[1, 2, 3, 4]), &set(&[1, 2, 9])).is_err());
    }
}
