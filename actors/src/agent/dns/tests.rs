//! DNS answers, exactly, and the server over UDP and TCP with a fake upstream on loopback.

use std::net::{Ipv4Addr, SocketAddr};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Pod, PodSpec, Service, ServicePort,
    ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::*;

fn meta(namespace: &str, name: &str) -> ObjectMeta {
    ObjectMeta {
        namespace: Some(namespace.into()),
        name: Some(name.into()),
        ..Default::default()
    }
}

fn service(name: &str, cluster_ip: &str) -> Service {
    Service {
        metadata: meta("demo", name),
        spec: Some(ServiceSpec {
            cluster_ip: Some(cluster_ip.into()),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 8080,
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn endpoints(name: &str, ips: &[&str]) -> Endpoints {
    Endpoints {
        metadata: meta("demo", name),
        subsets: Some(vec![EndpointSubset {
            addresses: Some(
                ips.iter()
                    .map(|ip| EndpointAddress {
                        ip: ip.to_string(),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ports: Some(vec![EndpointPort {
                name: Some("http".into()),
                port: 80,
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }]),
    }
}

fn records() -> Records {
    let web = service("web", "10.96.0.20");
    let db = service("db", "None");
    let db_ep = endpoints("db", &["10.88.0.9", "10.88.0.4"]);
    let mut ext = service("ext", "");
    if let Some(spec) = ext.spec.as_mut() {
        spec.type_ = Some("ExternalName".into());
        spec.external_name = Some("example.org".into());
    }
    Records::from_objects([(&web, None), (&db, Some(&db_ep)), (&ext, None)])
}

fn query(name: &str, t: RecordType) -> Message {
    let mut m = Message::new(4711, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
    m
}

fn answered(reply: Reply) -> Message {
    match reply {
        Reply::Answer(m) => *m,
        Reply::Forward => panic!("forwarded"),
    }
}

fn a(name: &str, ip: [u8; 4]) -> Record {
    Record::from_rdata(
        Name::from_ascii(name).unwrap(),
        TTL,
        RData::A(A(Ipv4Addr::from(ip))),
    )
}

#[test]
fn a_service_name_is_its_cluster_ip() {
    let q = query("web.demo.svc.cluster.local.", RecordType::A);
    let m = answered(answer(&q, &records(), true));
    assert_eq!(m.metadata.id, 4711);
    assert_eq!(m.metadata.message_type, MessageType::Response);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(
        m.metadata.authoritative && m.metadata.recursion_desired && m.metadata.recursion_available
    );
    assert_eq!(m.queries, q.queries);
    assert_eq!(
        m.answers,
        vec![a("web.demo.svc.cluster.local.", [10, 96, 0, 20])]
    );
}

#[test]
fn names_are_case_insensitive_and_the_answer_keeps_the_asked_spelling() {
    let q = query("WEB.Demo.svc.cluster.local.", RecordType::A);
    let m = answered(answer(&q, &records(), false));
    assert_eq!(
        m.answers,
        vec![a("WEB.Demo.svc.cluster.local.", [10, 96, 0, 20])]
    );
}

#[test]
fn a_headless_service_is_its_ready_endpoints() {
    let q = query("db.demo.svc.cluster.local.", RecordType::A);
    let m = answered(answer(&q, &records(), true));
    assert_eq!(
        m.answers,
        vec![
            a("db.demo.svc.cluster.local.", [10, 88, 0, 4]),
            a("db.demo.svc.cluster.local.", [10, 88, 0, 9])
        ]
    );
}

#[test]
fn an_external_name_service_is_a_cname() {
    let q = query("ext.demo.svc.cluster.local.", RecordType::A);
    let m = answered(answer(&q, &records(), true));
    assert_eq!(m.answers.len(), 1);
    assert_eq!(
        m.answers[0].data,
        RData::CNAME(hickory_proto::rr::rdata::CNAME(
            Name::from_ascii("example.org.").unwrap()
        ))
    );
}

#[test]
fn unknown_names_in_the_zone_are_nxdomain_and_other_types_are_empty() {
    let r = records();
    for name in [
        "nope.demo.svc.cluster.local.",
        "web.other.svc.cluster.local.",
        "web.demo.svc.cluster.local.demo.svc.cluster.local.",
        "web.demo.pod.cluster.local.",
    ] {
        let m = answered(answer(&query(name, RecordType::A), &r, true));
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{name}");
        assert!(m.answers.is_empty());
    }
    for (name, t) in [
        ("web.demo.svc.cluster.local.", RecordType::AAAA),
        ("demo.svc.cluster.local.", RecordType::A),
        ("cluster.local.", RecordType::SOA),
    ] {
        let m = answered(answer(&query(name, t), &r, true));
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{name}");
        assert!(m.answers.is_empty(), "{name}");
    }
}

#[test]
fn named_ports_have_srv_records() {
    let q = query("_http._tcp.web.demo.svc.cluster.local.", RecordType::SRV);
    let m = answered(answer(&q, &records(), true));
    let target = Name::from_ascii("web.demo.svc.cluster.local.").unwrap();
    assert_eq!(
        m.answers,
        vec![Record::from_rdata(
            Name::from_ascii("_http._tcp.web.demo.svc.cluster.local.").unwrap(),
            TTL,
            RData::SRV(SRV::new(0, 100, 8080, target))
        )]
    );
    assert_eq!(
        m.additionals,
        vec![a("web.demo.svc.cluster.local.", [10, 96, 0, 20])]
    );
    let q = query("_http._udp.web.demo.svc.cluster.local.", RecordType::SRV);
    let m = answered(answer(&q, &records(), true));
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
}

#[test]
fn other_names_are_forwarded_or_refused_without_upstreams() {
    let q = query("example.org.", RecordType::A);
    assert_eq!(answer(&q, &records(), true), Reply::Forward);
    let m = answered(answer(&q, &records(), false));
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    // Not the cluster domain, only a name ending like it.
    let q = query("notcluster.local.", RecordType::A);
    assert_eq!(answer(&q, &records(), true), Reply::Forward);
}

#[test]
fn malformed_queries_get_format_errors() {
    let mut q = query("web.demo.svc.cluster.local.", RecordType::A);
    q.add_query(Query::query(Name::from_ascii("x.").unwrap(), RecordType::A));
    let m = answered(answer(&q, &records(), true));
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    let mut q = query("web.demo.svc.cluster.local.", RecordType::A);
    q.metadata.op_code = OpCode::Update;
    let m = answered(answer(&q, &records(), true));
    assert_eq!(m.metadata.response_code, ResponseCode::NotImp);
}

fn pod(policy: Option<&str>, host_network: bool) -> Pod {
    Pod {
        metadata: meta("demo", "p"),
        spec: Some(PodSpec {
            dns_policy: policy.map(Into::into),
            host_network: Some(host_network),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn pods_get_a_resolv_conf_by_their_dns_policy() {
    let host = "nameserver 10.255.255.53\nsearch corp.example\noptions edns0\n";
    let ns = Ipv4Addr::new(10, 88, 0, 1);
    let expected = "nameserver 10.88.0.1\nsearch demo.svc.cluster.local svc.cluster.local cluster.local corp.example\noptions ndots:5\n";
    assert_eq!(
        resolv_conf(&pod(None, false), ns, host).as_deref(),
        Some(expected)
    );
    assert_eq!(
        resolv_conf(&pod(Some("ClusterFirst"), false), ns, host).as_deref(),
        Some(expected)
    );
    assert_eq!(
        resolv_conf(&pod(Some("ClusterFirstWithHostNet"), true), ns, host).as_deref(),
        Some(expected)
    );
    assert_eq!(
        resolv_conf(&pod(Some("ClusterFirst"), true), ns, host),
        None
    );
    assert_eq!(resolv_conf(&pod(Some("Default"), false), ns, host), None);
    assert_eq!(
        nameservers(host),
        vec![std::net::IpAddr::from([10, 255, 255, 53])]
    );
}

/// A fake upstream on loopback answering every UDP query with one A record 192.0.2.7.
async fn fake_upstream() -> SocketAddr {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let address = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok((len, from)) = socket.recv_from(&mut buf).await {
            let q = Message::from_vec(&buf[..len]).unwrap();
            let mut m = Message::response(q.metadata.id, q.metadata.op_code);
            m.add_queries(q.queries.clone());
            m.add_answer(Record::from_rdata(
                q.queries[0].name().clone(),
                60,
                RData::A(A(Ipv4Addr::new(192, 0, 2, 7))),
            ));
            let _ = socket.send_to(&m.to_vec().unwrap(), from).await;
        }
    });
    address
}

async fn ask_udp(server: SocketAddr, q: &Message) -> Message {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(&q.to_vec().unwrap(), server).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let (len, _) = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        socket.recv_from(&mut buf),
    )
    .await
    .expect("an answer")
    .unwrap();
    Message::from_vec(&buf[..len]).unwrap()
}

#[tokio::test]
async fn the_server_answers_over_udp_and_tcp_and_forwards_the_rest() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let upstream = fake_upstream().await;
    let shared = SharedRecords::default();
    shared.replace(records());
    let server = start(
        "127.0.0.1:0".parse().unwrap(),
        shared.clone(),
        vec![upstream.ip()],
        upstream.port(),
    )
    .await
    .unwrap();

    let m = ask_udp(
        server.address(),
        &query("web.demo.svc.cluster.local.", RecordType::A),
    )
    .await;
    assert_eq!(
        m.answers,
        vec![a("web.demo.svc.cluster.local.", [10, 96, 0, 20])]
    );
    let m = ask_udp(server.address(), &query("example.org.", RecordType::A)).await;
    assert_eq!(m.answers.len(), 1, "{m:?}");
    assert_eq!(m.answers[0].data, RData::A(A(Ipv4Addr::new(192, 0, 2, 7))));

    // Records replaced are answered at once.
    shared.replace(Records::default());
    let m = ask_udp(
        server.address(),
        &query("web.demo.svc.cluster.local.", RecordType::A),
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    shared.replace(records());

    let mut stream = tokio::net::TcpStream::connect(server.address())
        .await
        .unwrap();
    for _ in 0..2 {
        let bytes = query("db.demo.svc.cluster.local.", RecordType::A)
            .to_vec()
            .unwrap();
        stream.write_u16(bytes.len() as u16).await.unwrap();
        stream.write_all(&bytes).await.unwrap();
        let len = stream.read_u16().await.unwrap();
        let mut buf = vec![0u8; usize::from(len)];
        stream.read_exact(&mut buf).await.unwrap();
        let m = Message::from_vec(&buf).unwrap();
        assert_eq!(m.answers.len(), 2);
    }
}
