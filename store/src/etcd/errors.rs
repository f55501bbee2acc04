//! Store errors as the gRPC statuses etcd answers with: etcd's codes and, where etcd's text is fixed, its exact
//! message, so etcd clients recognize the error (`rpctypes` in etcd's client).

use navarch_bus::store::StoreError;
use tonic::{Code, Status};

/// etcd's answer to a request larger than `--max-request-bytes`.
pub fn too_large() -> Status {
    Status::invalid_argument("etcdserver: request is too large")
}

/// A refusal of something etcd serves but this store cannot express.
pub fn unsupported(what: &str) -> Status {
    Status::invalid_argument(format!(
        "etcdserver: {what} is not supported by Navarch's store"
    ))
}

/// The status etcd answers a store error with.
pub fn status(error: StoreError) -> Status {
    match error {
        StoreError::Compacted { .. } => {
            Status::out_of_range("etcdserver: mvcc: required revision has been compacted")
        }
        StoreError::FutureRevision { .. } => {
            Status::out_of_range("etcdserver: mvcc: required revision is a future revision")
        }
        StoreError::RequestTooLarge { .. } => too_large(),
        StoreError::InvalidArgument(message) => {
            Status::invalid_argument(format!("etcdserver: {message}"))
        }
        StoreError::NotLeader { leader: None } => Status::unavailable("etcdserver: no leader"),
        StoreError::NotLeader { leader: Some(_) } => {
            Status::unavailable("etcdserver: leader changed")
        }
        StoreError::Unavailable(message) => Status::unavailable(format!("etcdserver: {message}")),
        StoreError::NoSpace => {
            Status::resource_exhausted("etcdserver: mvcc: database space exceeded")
        }
        StoreError::LeaseNotFound { .. } => {
            Status::not_found("etcdserver: requested lease not found")
        }
        StoreError::LeaseExists { .. } => {
            Status::failed_precondition("etcdserver: lease already exists")
        }
        StoreError::MemberNotFound { .. } => Status::not_found("etcdserver: member not found"),
        StoreError::MemberExists { .. } => {
            Status::failed_precondition("etcdserver: member ID already exist")
        }
        StoreError::Unhealthy(message) => {
            Status::unavailable(format!("etcdserver: unhealthy cluster: {message}"))
        }
        StoreError::Internal(message) => {
            Status::new(Code::Internal, format!("etcdserver: {message}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_become_etcds_statuses() {
        let cases = [
            (
                StoreError::Compacted {
                    requested: 1,
                    compact_revision: 5,
                },
                Code::OutOfRange,
                "etcdserver: mvcc: required revision has been compacted",
            ),
            (
                StoreError::FutureRevision {
                    requested: 9,
                    current: 5,
                },
                Code::OutOfRange,
                "etcdserver: mvcc: required revision is a future revision",
            ),
            (
                StoreError::RequestTooLarge { size: 9, max: 1 },
                Code::InvalidArgument,
                "etcdserver: request is too large",
            ),
            (
                StoreError::NoSpace,
                Code::ResourceExhausted,
                "etcdserver: mvcc: database space exceeded",
            ),
            (
                StoreError::LeaseNotFound { id: 1 },
                Code::NotFound,
                "etcdserver: requested lease not found",
            ),
            (
                StoreError::InvalidArgument("key is not provided".into()),
                Code::InvalidArgument,
                "etcdserver: key is not provided",
            ),
            (
                StoreError::NotLeader { leader: None },
                Code::Unavailable,
                "etcdserver: no leader",
            ),
            (
                StoreError::MemberNotFound { id: 4 },
                Code::NotFound,
                "etcdserver: member not found",
            ),
        ];
        for (error, code, message) in cases {
            let status = status(error);
            assert_eq!((status.code(), status.message()), (code, message));
        }
    }
}
