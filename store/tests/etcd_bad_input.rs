//! Bad input through the etcd API gets etcd's errors and leaves the member serving: oversized requests, garbage
//! bytes on the port, undecodable gRPC messages, unknown services, and requests this store cannot express.

#[path = "util/etcdctl.rs"]
mod etcdctl;
mod util;

use std::time::Duration;

use etcdctl::Etcdctl;
use navarch_bus::Bus;
use navarch_store::etcd::proto::etcdserverpb::{self as pb, kv_client::KvClient, request_op};
use navarch_store::Shutdown;
use rand::{RngCore, SeedableRng};
use tokio::io::AsyncWriteExt;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic::{Code, Status};

/// Sends and receives raw bytes as gRPC messages, to put garbage where a protobuf message belongs.
#[derive(Debug, Clone, Copy, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let len = bytes::Buf::remaining(src);
        Ok(Some(bytes::Buf::copy_to_bytes(src, len).to_vec()))
    }
}

async fn raw_call(channel: &Channel, path: &'static str, body: Vec<u8>) -> Result<Vec<u8>, Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone()).max_encoding_message_size(usize::MAX);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(path);
    Ok(grpc
        .unary(tonic::Request::new(body), path, Raw)
        .await?
        .into_inner())
}

#[test]
fn bad_input_is_refused_and_the_member_keeps_serving() -> anyhow::Result<()> {
    let seed: u64 = std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("seed {seed} (rerun with SEED={seed})");
    util::run(async move {
        let dir = tempfile::tempdir()?;
        let bus = Bus::embedded("etcd-bad").await?;
        let (member, address) = etcdctl::start_member(&bus, dir.path(), 1, &[1]).await?;
        let etcdctl = Etcdctl::new(&[address]);
        let limit = Duration::from_secs(30);

        // Requests over 1.5 MiB get etcd's error; just under it they are written.
        let run = etcdctl
            .run_with(&["put", "big"], &vec![b'x'; 1_600_000], limit)
            .await?;
        assert!(
            !run.success && run.stderr.contains("etcdserver: request is too large"),
            "{run:?}"
        );
        let run = etcdctl
            .run_with(&["put", "big"], &vec![b'y'; 1_500_000], limit)
            .await?;
        assert!(run.success, "{run:?}");
        let refused = etcdctl.fails(&["put", "", "x"]).await?;
        assert!(refused.contains("key is not provided"), "{refused}");

        // Garbage on the port: random bytes, HTTP/1, an HTTP/2 preface followed by junk; seeded.
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        let mut junk = vec![0_u8; 64 * 1024];
        rng.fill_bytes(&mut junk);
        preface.extend_from_slice(&junk[..4096]);
        for garbage in [
            junk.clone(),
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            preface,
            Vec::new(),
        ] {
            let mut stream = tokio::net::TcpStream::connect(address).await?;
            let _ = stream.write_all(&garbage).await;
            let _ = stream.shutdown().await;
        }

        // Undecodable messages inside well-formed gRPC calls, a huge message, an unknown service.
        let channel = Channel::from_shared(format!("http://{address}"))?
            .connect()
            .await?;
        for _ in 0..20 {
            let len = usize::try_from(rng.next_u32() % 512)?;
            let mut body = vec![0_u8; len];
            rng.fill_bytes(&mut body);
            let answer = raw_call(&channel, "/etcdserverpb.KV/Range", body.clone()).await;
            // Random bytes occasionally decode as a valid (odd) request; either way there is an answer.
            if let Err(status) = answer {
                assert_ne!(status.code(), Code::Unavailable, "{status:?}");
            }
            let _ = raw_call(&channel, "/etcdserverpb.KV/Txn", body).await;
        }
        let huge = raw_call(&channel, "/etcdserverpb.KV/Put", vec![0x0a; 8 << 20]).await;
        assert!(huge.is_err(), "an 8 MiB message was accepted");
        let unknown = raw_call(&channel, "/etcdserverpb.Auth/Authenticate", Vec::new()).await;
        assert_eq!(unknown.map_err(|s| s.code()), Err(Code::Unimplemented));

        // What etcd serves but this store cannot express is refused clearly.
        let mut kv = KvClient::new(channel.clone());
        let nested = pb::TxnRequest {
            success: vec![pb::RequestOp {
                request: Some(request_op::Request::RequestTxn(pb::TxnRequest::default())),
            }],
            ..Default::default()
        };
        let refused = kv.txn(nested).await.expect_err("nested txn");
        assert_eq!(refused.code(), Code::InvalidArgument);
        assert!(refused.message().contains("not supported"), "{refused:?}");
        let refused = kv
            .put(pb::PutRequest {
                key: b"big".to_vec(),
                ignore_value: true,
                ..Default::default()
            })
            .await
            .expect_err("ignore_value");
        assert_eq!(refused.code(), Code::InvalidArgument);

        // Still serving.
        assert_eq!(etcdctl.ok(&["put", "after", "garbage"]).await?, "OK\n");
        assert_eq!(etcdctl.ok(&["get", "after"]).await?, "after\ngarbage\n");
        let big = etcdctl.ok(&["get", "big", "--print-value-only"]).await?;
        assert_eq!(big.trim_end().len(), 1_500_000);

        member.send(Shutdown).await??;
        Ok(())
    })
}

#[test]
fn range_options_etcd_applies_after_reading() -> anyhow::Result<()> {
    util::run(async {
        let dir = tempfile::tempdir()?;
        let bus = Bus::embedded("etcd-range").await?;
        let (member, address) = etcdctl::start_member(&bus, dir.path(), 1, &[1]).await?;
        let mut kv = KvClient::new(
            Channel::from_shared(format!("http://{address}"))?
                .connect()
                .await?,
        );
        let put = |key: &str, value: &str| pb::PutRequest {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        };
        // Revisions 2..=5: a=3, b=1, c=2, then a again.
        for (key, value) in [("a", "3"), ("b", "1"), ("c", "2"), ("a", "4")] {
            kv.put(put(key, value)).await?;
        }
        let all = |f: fn(&mut pb::RangeRequest)| {
            let mut request = pb::RangeRequest {
                key: b"a".to_vec(),
                range_end: b"z".to_vec(),
                ..Default::default()
            };
            f(&mut request);
            request
        };
        let keys = |r: &pb::RangeResponse| {
            r.kvs
                .iter()
                .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
                .collect::<Vec<_>>()
        };

        let counted = kv.range(all(|r| r.count_only = true)).await?.into_inner();
        assert_eq!(
            (counted.count, counted.kvs.len(), counted.more),
            (3, 0, false)
        );
        let by_value = kv
            .range(all(|r| {
                r.sort_target = pb::range_request::SortTarget::Value as i32
            }))
            .await?
            .into_inner();
        assert_eq!(keys(&by_value), ["b", "c", "a"]);
        let newest_first = kv
            .range(all(|r| {
                r.sort_target = pb::range_request::SortTarget::Mod as i32;
                r.sort_order = pb::range_request::SortOrder::Descend as i32;
                r.limit = 2;
            }))
            .await?
            .into_inner();
        assert_eq!(keys(&newest_first), ["a", "c"]);
        assert_eq!((newest_first.more, newest_first.count), (true, 3));
        let created_late = kv
            .range(all(|r| r.min_create_revision = 3))
            .await?
            .into_inner();
        assert_eq!(keys(&created_late), ["b", "c"]);
        let modified_early = kv
            .range(all(|r| r.max_mod_revision = 4))
            .await?
            .into_inner();
        assert_eq!(keys(&modified_early), ["b", "c"]);
        // An inverted range is empty, as in etcd, not an error.
        let inverted = kv
            .range(pb::RangeRequest {
                key: b"z".to_vec(),
                range_end: b"a".to_vec(),
                ..Default::default()
            })
            .await?
            .into_inner();
        assert_eq!((inverted.count, inverted.kvs.len()), (0, 0));
        let header = inverted.header.unwrap_or_default();
        assert_eq!((header.revision, header.member_id), (5, 1));

        member.send(Shutdown).await??;
        Ok(())
    })
}
