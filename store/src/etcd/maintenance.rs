//! etcd's Maintenance service: Status and Alarm (list, disarm); the rest is answered `Unimplemented` with the
//! reason.

use std::sync::Arc;

use navarch_bus::store::{Alarm, StoreRequest};
use tonic::{Request, Response, Status};

use super::convert;
use super::proto::etcdserverpb::{self as pb, alarm_request::AlarmAction, maintenance_server};
use super::{expect_answer, Api, VERSION};

/// The Maintenance service of one member.
pub(crate) struct MaintenanceService(pub(crate) Arc<Api>);

impl MaintenanceService {
    /// The store's active alarms. A store that does not serve alarms refuses the request as an invalid argument;
    /// it raises none, so the answer is the empty list (etcdctl's health check asks for alarms).
    async fn alarms(&self, disarm: bool) -> Result<(pb::ResponseHeader, Vec<Alarm>), Status> {
        let api = &self.0;
        match api.call(StoreRequest::Alarms { disarm }).await {
            Ok(answer) => {
                let answer = expect_answer!(answer, Alarms)?;
                let header = api.stamp.header(&answer.header).unwrap_or_default();
                Ok((header, answer.alarms))
            }
            Err(status) if status.code() == tonic::Code::InvalidArgument => {
                tracing::debug!(%status, "the store serves no alarms");
                Ok((api.stamp.at(0, 0).unwrap_or_default(), Vec::new()))
            }
            Err(status) => Err(status),
        }
    }
}

fn unimplemented(what: &str) -> Status {
    Status::unimplemented(format!(
        "etcdserver: {what} is not served by Navarch's store"
    ))
}

#[tonic::async_trait]
impl maintenance_server::Maintenance for MaintenanceService {
    async fn alarm(
        &self,
        request: Request<pb::AlarmRequest>,
    ) -> Result<Response<pb::AlarmResponse>, Status> {
        let request = request.into_inner();
        let (header, alarms) = match request.action() {
            AlarmAction::Get => self.alarms(false).await?,
            AlarmAction::Deactivate => {
                // etcd answers a disarm with the alarms it cleared.
                let (_, before) = self.alarms(false).await?;
                let (header, after) = self.alarms(true).await?;
                let wanted = |a: &Alarm| {
                    (request.member_id == 0 || a.member_id == request.member_id)
                        && (request.alarm == pb::AlarmType::None as i32
                            || convert::alarm(a.clone()).alarm == request.alarm)
                };
                let cleared = before
                    .into_iter()
                    .filter(|a| wanted(a) && !after.contains(a))
                    .collect();
                (header, cleared)
            }
            AlarmAction::Activate => {
                return Err(unimplemented(
                    "raising an alarm by request (the store raises its own)",
                ))
            }
        };
        Ok(Response::new(pb::AlarmResponse {
            header: Some(header),
            alarms: alarms.into_iter().map(convert::alarm).collect(),
        }))
    }

    async fn status(
        &self,
        _: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let api = &self.0;
        let status = expect_answer!(api.call(StoreRequest::Status).await?, Status)?;
        let (_, alarms) = self.alarms(false).await?;
        let is_learner = {
            let metrics = api.service.raft.metrics();
            let metrics = metrics.borrow();
            let membership = metrics.membership_config.membership();
            let learner = membership.learner_ids().any(|id| id == api.service.id);
            learner
        };
        let db_size = i64::try_from(status.db_size).unwrap_or(i64::MAX);
        Ok(Response::new(pb::StatusResponse {
            header: api.stamp.header(&status.header),
            version: VERSION.into(),
            db_size,
            leader: status.leader,
            raft_index: status.raft_index,
            raft_term: status.header.raft_term,
            raft_applied_index: status.raft_applied_index,
            errors: alarms
                .into_iter()
                .map(|a| {
                    let alarm = convert::alarm(a);
                    let kind =
                        pb::AlarmType::try_from(alarm.alarm).map_or("UNKNOWN", |t| t.as_str_name());
                    format!("memberID:{} alarm:{kind} ", alarm.member_id)
                })
                .collect(),
            db_size_in_use: db_size,
            is_learner,
        }))
    }

    async fn defragment(
        &self,
        _: Request<pb::DefragmentRequest>,
    ) -> Result<Response<pb::DefragmentResponse>, Status> {
        Err(unimplemented(
            "defragment (fjall reclaims space by its own compactions)",
        ))
    }

    async fn hash(
        &self,
        _: Request<pb::HashRequest>,
    ) -> Result<Response<pb::HashResponse>, Status> {
        Err(unimplemented("hash"))
    }

    async fn hash_kv(
        &self,
        _: Request<pb::HashKvRequest>,
    ) -> Result<Response<pb::HashKvResponse>, Status> {
        Err(unimplemented("hashkv"))
    }

    type SnapshotStream = futures::stream::Empty<Result<pb::SnapshotResponse, Status>>;

    async fn snapshot(
        &self,
        _: Request<pb::SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        Err(unimplemented("snapshot"))
    }

    async fn move_leader(
        &self,
        _: Request<pb::MoveLeaderRequest>,
    ) -> Result<Response<pb::MoveLeaderResponse>, Status> {
        Err(unimplemented("move-leader"))
    }
}
