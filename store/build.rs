//! Generates the etcd v3 API types and gRPC services from `proto/` with protox (a protobuf compiler in Rust, so
//! building needs no `protoc`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/mvccpb/kv.proto", "proto/etcdserverpb/rpc.proto"];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(protos, ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        // Clients for tests that speak the API directly; generic over the transport, so the library needs no
        // client transport.
        .build_client(true)
        .build_transport(false)
        .compile_fds(descriptors)?;
    Ok(())
}
