//! etcd's KV service: Range, Put, DeleteRange, Txn and Compact, each one store request (a range the store answers
//! in several pages is read page by page at one revision, since etcd answers a range whole).

use std::sync::Arc;

use navarch_bus::store::StoreRequest;
use tonic::{Request, Response, Status};

use super::convert::{self, RangePlan};
use super::proto::etcdserverpb::{self as pb, kv_server::Kv};
use super::{expect_answer, Api};

/// The KV service of one member.
pub(crate) struct KvService(pub(crate) Arc<Api>);

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(
        &self,
        request: Request<pb::RangeRequest>,
    ) -> Result<Response<pb::RangeResponse>, Status> {
        let (plan, request) = RangePlan::new(request.get_ref())?;
        let api = &self.0;
        let mut answer =
            expect_answer!(api.call(StoreRequest::Range(request.clone())).await?, Range)?;
        while let Some(next) = RangePlan::next_page(&request, &answer) {
            let page = expect_answer!(api.call(StoreRequest::Range(next)).await?, Range)?;
            answer.kvs.extend(page.kvs);
            answer.more = page.more;
        }
        Ok(Response::new(plan.finish(answer, &api.stamp)))
    }

    async fn put(
        &self,
        request: Request<pb::PutRequest>,
    ) -> Result<Response<pb::PutResponse>, Status> {
        let api = &self.0;
        api.check_size(request.get_ref())?;
        let put = convert::put(request.into_inner())?;
        let answer = expect_answer!(api.call(StoreRequest::Put(put)).await?, Put)?;
        Ok(Response::new(convert::put_response(answer, &api.stamp)))
    }

    async fn delete_range(
        &self,
        request: Request<pb::DeleteRangeRequest>,
    ) -> Result<Response<pb::DeleteRangeResponse>, Status> {
        let api = &self.0;
        api.check_size(request.get_ref())?;
        let delete = convert::delete(request.into_inner())?;
        let answer = expect_answer!(api.call(StoreRequest::Delete(delete)).await?, Delete)?;
        Ok(Response::new(convert::delete_response(answer, &api.stamp)))
    }

    async fn txn(
        &self,
        request: Request<pb::TxnRequest>,
    ) -> Result<Response<pb::TxnResponse>, Status> {
        let api = &self.0;
        api.check_size(request.get_ref())?;
        let (plan, txn) = convert::txn(request.into_inner())?;
        let answer = expect_answer!(api.call(StoreRequest::Txn(txn)).await?, Txn)?;
        Ok(Response::new(plan.finish(answer, &api.stamp)))
    }

    async fn compact(
        &self,
        request: Request<pb::CompactionRequest>,
    ) -> Result<Response<pb::CompactionResponse>, Status> {
        let api = &self.0;
        let revision = request.get_ref().revision;
        let header = expect_answer!(api.call(StoreRequest::Compact(revision)).await?, Compact)?;
        Ok(Response::new(pb::CompactionResponse {
            header: api.stamp.header(&header),
        }))
    }
}
