//! etcd's Lease service: Grant, Revoke, KeepAlive (a bidirectional stream, one store renewal per request),
//! TimeToLive and Leases.

use std::sync::Arc;

use futures::StreamExt;
use navarch_bus::store::{
    LeaseGrantRequest, LeaseId, LeaseTimeToLiveRequest, StoreError, StoreRequest,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::proto::etcdserverpb::{self as pb, lease_server};
use super::{errors, expect_answer, Api};

/// The Lease service of one member.
pub(crate) struct LeaseService(pub(crate) Arc<Api>);

/// Renewals answered but not yet taken by the client; a client that stops reading stops being served.
const KEEP_ALIVE_BACKLOG: usize = 16;

/// Answers one keep-alive: etcd answers an unknown or expired lease with TTL 0 rather than an error.
async fn keep_alive(api: &Api, id: i64) -> Result<pb::LeaseKeepAliveResponse, Status> {
    match api
        .service
        .execute(StoreRequest::LeaseKeepAlive(LeaseId(id)), false)
        .await
    {
        Ok(answer) => {
            let lease = expect_answer!(answer, Lease)?;
            Ok(pb::LeaseKeepAliveResponse {
                header: api.stamp.header(&lease.header),
                id: lease.id,
                ttl: lease.ttl,
            })
        }
        Err(StoreError::LeaseNotFound { .. }) => Ok(pb::LeaseKeepAliveResponse {
            header: api.stamp.at(0, 0),
            id,
            ttl: 0,
        }),
        Err(e) => Err(errors::status(e)),
    }
}

#[tonic::async_trait]
impl lease_server::Lease for LeaseService {
    async fn lease_grant(
        &self,
        request: Request<pb::LeaseGrantRequest>,
    ) -> Result<Response<pb::LeaseGrantResponse>, Status> {
        let api = &self.0;
        let request = request.into_inner();
        let grant = LeaseGrantRequest {
            ttl: request.ttl,
            id: request.id,
        };
        let lease = expect_answer!(api.call(StoreRequest::LeaseGrant(grant)).await?, Lease)?;
        Ok(Response::new(pb::LeaseGrantResponse {
            header: api.stamp.header(&lease.header),
            id: lease.id,
            ttl: lease.ttl,
            error: String::new(),
        }))
    }

    async fn lease_revoke(
        &self,
        request: Request<pb::LeaseRevokeRequest>,
    ) -> Result<Response<pb::LeaseRevokeResponse>, Status> {
        let api = &self.0;
        let id = LeaseId(request.get_ref().id);
        let header = expect_answer!(api.call(StoreRequest::LeaseRevoke(id)).await?, LeaseRevoke)?;
        Ok(Response::new(pb::LeaseRevokeResponse {
            header: api.stamp.header(&header),
        }))
    }

    type LeaseKeepAliveStream = ReceiverStream<Result<pb::LeaseKeepAliveResponse, Status>>;

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<pb::LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let api = self.0.clone();
        let mut requests = request.into_inner();
        let (tx, rx) = mpsc::channel(KEEP_ALIVE_BACKLOG);
        tokio::spawn(async move {
            // Ends when the client closes its side, sends something undecodable, or stops reading.
            while let Some(request) = requests.next().await {
                let answer = match request {
                    Ok(request) => keep_alive(&api, request.id).await,
                    Err(status) => Err(status),
                };
                let failed = answer.is_err();
                if tx.send(answer).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<pb::LeaseTimeToLiveRequest>,
    ) -> Result<Response<pb::LeaseTimeToLiveResponse>, Status> {
        let api = &self.0;
        let request = request.into_inner();
        let ask = StoreRequest::LeaseTimeToLive(LeaseTimeToLiveRequest {
            id: request.id,
            keys: request.keys,
        });
        let answer = match api.service.execute(ask, false).await {
            Ok(answer) => {
                let lease = expect_answer!(answer, LeaseTimeToLive)?;
                pb::LeaseTimeToLiveResponse {
                    header: api.stamp.header(&lease.header),
                    id: lease.id,
                    ttl: lease.ttl,
                    granted_ttl: lease.granted_ttl,
                    keys: lease.keys,
                }
            }
            // etcd answers a lease that is gone with TTL -1.
            Err(StoreError::LeaseNotFound { .. }) => pb::LeaseTimeToLiveResponse {
                header: api.stamp.at(0, 0),
                id: request.id,
                ttl: -1,
                ..Default::default()
            },
            Err(e) => return Err(errors::status(e)),
        };
        Ok(Response::new(answer))
    }

    async fn lease_leases(
        &self,
        _: Request<pb::LeaseLeasesRequest>,
    ) -> Result<Response<pb::LeaseLeasesResponse>, Status> {
        let api = &self.0;
        let answer = expect_answer!(api.call(StoreRequest::LeaseLeases).await?, LeaseLeases)?;
        Ok(Response::new(pb::LeaseLeasesResponse {
            header: api.stamp.header(&answer.header),
            leases: answer
                .leases
                .into_iter()
                .map(|id| pb::LeaseStatus { id })
                .collect(),
        }))
    }
}
