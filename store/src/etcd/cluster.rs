//! etcd's Cluster service: MemberList, MemberAdd, MemberRemove and MemberPromote as the store's membership
//! requests; MemberUpdate is answered `Unimplemented` (members reach each other by id over the bus, so there are no
//! peer URLs to change).

use std::sync::Arc;

use navarch_bus::store::{MemberAddRequest, MemberId, MemberListResponse, StoreRequest};
use tonic::{Request, Response, Status};

use super::convert;
use super::proto::etcdserverpb::{self as pb, cluster_server};
use super::{expect_answer, Api};

/// The Cluster service of one member.
pub(crate) struct ClusterService(pub(crate) Arc<Api>);

impl ClusterService {
    /// Sends a membership request; the answer's members with this member's etcd URL filled in when the store does
    /// not know it.
    async fn members(
        &self,
        request: StoreRequest,
    ) -> Result<
        (
            Option<pb::ResponseHeader>,
            Option<pb::Member>,
            Vec<pb::Member>,
        ),
        Status,
    > {
        let api = &self.0;
        let answer: MemberListResponse = expect_answer!(api.call(request).await?, Members)?;
        let complete = |mut member: pb::Member| {
            if member.id == api.service.id && member.client_ur_ls.is_empty() {
                member.client_ur_ls = vec![api.client_url.clone()];
            }
            member
        };
        Ok((
            api.stamp.header(&answer.header),
            answer.member.map(convert::member).map(complete),
            answer
                .members
                .into_iter()
                .map(convert::member)
                .map(complete)
                .collect(),
        ))
    }
}

/// The member id a peer URL names. Navarch members reach each other at their Raft subject,
/// `navarch.<cluster>.store.raft.<id>`, by id; etcdctl insists on an `http(s)://host:port` URL, so `member add` names
/// the new member as `--peer-urls=http://member-<id>:2380` (or with the Raft subject as the host; the port is
/// ignored). Any other URL lets the store pick the id.
fn id_in(peer_urls: &[String]) -> u64 {
    peer_urls
        .iter()
        .find_map(|url| {
            let rest = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
            let host = rest.split(['/', ':']).next().unwrap_or_default();
            let id = match host.rsplit_once(".store.raft.") {
                Some((_, id)) => id,
                None => host.strip_prefix("member-")?,
            };
            id.parse().ok()
        })
        .unwrap_or(0)
}

#[tonic::async_trait]
impl cluster_server::Cluster for ClusterService {
    async fn member_add(
        &self,
        request: Request<pb::MemberAddRequest>,
    ) -> Result<Response<pb::MemberAddResponse>, Status> {
        let request = request.into_inner();
        let add = MemberAddRequest {
            id: id_in(&request.peer_ur_ls),
            name: String::new(),
            is_learner: request.is_learner,
        };
        let (header, member, members) = self.members(StoreRequest::MemberAdd(add)).await?;
        Ok(Response::new(pb::MemberAddResponse {
            header,
            member,
            members,
        }))
    }

    async fn member_remove(
        &self,
        request: Request<pb::MemberRemoveRequest>,
    ) -> Result<Response<pb::MemberRemoveResponse>, Status> {
        let id = MemberId(request.get_ref().id);
        let (header, _, members) = self.members(StoreRequest::MemberRemove(id)).await?;
        Ok(Response::new(pb::MemberRemoveResponse { header, members }))
    }

    async fn member_update(
        &self,
        _: Request<pb::MemberUpdateRequest>,
    ) -> Result<Response<pb::MemberUpdateResponse>, Status> {
        Err(Status::unimplemented(
            "etcdserver: member update is not served by Navarch's store: members reach each other by id over \
             the bus, there are no peer URLs to change",
        ))
    }

    async fn member_list(
        &self,
        _: Request<pb::MemberListRequest>,
    ) -> Result<Response<pb::MemberListResponse>, Status> {
        let (header, _, members) = self.members(StoreRequest::MemberList).await?;
        Ok(Response::new(pb::MemberListResponse { header, members }))
    }

    async fn member_promote(
        &self,
        request: Request<pb::MemberPromoteRequest>,
    ) -> Result<Response<pb::MemberPromoteResponse>, Status> {
        let id = MemberId(request.get_ref().id);
        let (header, _, members) = self.members(StoreRequest::MemberPromote(id)).await?;
        Ok(Response::new(pb::MemberPromoteResponse { header, members }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_urls_may_name_the_member_id() {
        assert_eq!(id_in(&["navarch.default.store.raft.4".into()]), 4);
        assert_eq!(
            id_in(&[
                "http://10.0.0.1:2380".into(),
                "navarch.x.store.raft.12/".into()
            ]),
            12
        );
        assert_eq!(id_in(&["http://10.0.0.1:2380".into()]), 0);
        assert_eq!(id_in(&[]), 0);
    }
}
