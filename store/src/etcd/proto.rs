//! The etcd v3 API's messages and services, generated from `store/proto/` by `build.rs`.

/// etcd's `mvccpb` package: key-values and watch events.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod mvccpb {
    tonic::include_proto!("mvccpb");
}

/// etcd's `etcdserverpb` package: the KV, Watch, Lease, Cluster and Maintenance services.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
}
