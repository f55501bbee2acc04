//! Services through the node agents' proxy and cluster DNS, end to end (root only): two agents on this host, each
//! with its own pod bridge, a NodePort Service over two backends (one per node), and the real kubectl. Connections
//! from the host and from pods to the cluster IP (TCP and UDP), and from the host to a node port, reach both
//! backends and follow them when one is deleted and another added; a pod reaches the Service by its DNS names (the
//! full one and the short one through its search path) and through itself (hairpin); a Service without endpoints
//! refuses connections at once. Without root the test prints why and passes.

#![allow(clippy::disallowed_methods)]

mod util;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::time::Duration;

use util::*;

const CLUSTER: &str = "service-proxy";
const NODES: [&str; 2] = ["proxy-a", "proxy-b"];

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn nft_tables() -> String {
    let out = std::process::Command::new("nft")
        .args(["list", "tables", "ip"])
        .output()
        .expect("nft");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Removes what the agents would have removed had the test not failed first: proxy tables, bridges, pod
/// namespaces (found by name, only this test's).
struct Leftovers {
    bridges: Vec<String>,
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        for node in NODES {
            let table = format!("navarch_proxy_{node}");
            if nft_tables().contains(&table) {
                let _ = std::process::Command::new("nft")
                    .args(["delete", "table", "ip", &table])
                    .status();
            }
        }
        for bridge in &self.bridges {
            if Path::new("/sys/class/net").join(bridge).exists() {
                let _ = std::process::Command::new("ip")
                    .args(["link", "del", bridge])
                    .status();
            }
        }
    }
}

/// A backend pod on `node`: busybox httpd answering its own name on 8080, and a UDP echo of its name on 9090.
fn backend(name: &str, node: &str, dir: &Path) -> String {
    let dir = dir.display();
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: demo
  labels: {{app: web}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 2
  containers:
  - name: http
    image: busybox
    command: ["sh", "-c", "mkdir -p {dir}/$HOSTNAME && echo $HOSTNAME > {dir}/$HOSTNAME/index.html && exec busybox httpd -f -p 8080 -h {dir}/$HOSTNAME"]
    ports: [{{containerPort: 8080}}]
    readinessProbe:
      tcpSocket: {{port: 8080}}
      periodSeconds: 1
  - name: udp
    image: python
    command: ["python3", "-c", "import os, socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(('0.0.0.0', 9090))\nwhile True:\n    _, peer = s.recvfrom(100)\n    s.sendto(os.environ['HOSTNAME'].encode(), peer)\n"]
  - name: self
    image: busybox
    command: ["sh", "{dir}/client.sh"]
"#
    )
}

/// What pods run to reach the Service: their resolv.conf once, then every half second, by its full DNS name (wget), its short name (curl) and
/// its cluster IP, each answer on a line of the container's log.
fn client_script(cluster_ip: &str) -> String {
    format!(
        "cat /etc/resolv.conf\nwhile true; do\n  echo \"full: $(wget -qO- -T 3 http://web.demo.svc.cluster.local:8080/ 2>&1)\"\n  \
         echo \"short: $(curl -s -m 3 http://web:8080/ 2>&1)\"\n  \
         echo \"ip: $(wget -qO- -T 3 http://{cluster_ip}:8080/ 2>&1)\"\n  sleep 0.5\ndone\n"
    )
}

fn client(dir: &Path) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: client
  namespace: demo
spec:
  nodeName: {}
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    command: ["sh", "{}/client.sh"]
"#,
        NODES[0],
        dir.display()
    )
}

const SERVICES: &str = r#"apiVersion: v1
kind: Namespace
metadata: {name: demo}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: demo}
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - {name: http, port: 8080, targetPort: 8080}
  - {name: echo, port: 9090, targetPort: 9090, protocol: UDP}
---
apiVersion: v1
kind: Service
metadata: {name: empty, namespace: demo}
spec:
  selector: {app: nothing}
  ports:
  - {port: 80}
"#;

/// One HTTP GET to `to`; the body's last line (a backend's name).
fn http_get(to: SocketAddr) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&to, Duration::from_secs(3)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: web\r\n\r\n")
        .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let name = answer.lines().last()?.trim().to_string();
    answer.starts_with("HTTP/1.").then_some(name)
}

/// One UDP round trip to `to`; the backend's name.
fn udp_echo(to: SocketAddr) -> Option<String> {
    let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    socket.send_to(b"who", to).ok()?;
    let mut buf = [0u8; 100];
    let (len, _) = socket.recv_from(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..len]).into_owned())
}

/// Asks `ask` until every name of `want` answered (and nothing else did); panics on an unexpected name.
fn reaches_all(what: &str, want: &[&str], mut ask: impl FnMut() -> Option<String>) {
    let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
    let mut seen = BTreeSet::new();
    wait_for(&format!("{what} to reach {want:?}"), || {
        if let Some(name) = ask() {
            assert!(
                want.contains(&name),
                "{what} reached {name:?}, not one of {want:?}"
            );
            seen.insert(name);
        }
        (seen == want).then_some(())
    });
}

/// Waits until 20 answers in a row come from `only`.
fn reaches_only(what: &str, only: &str, mut ask: impl FnMut() -> Option<String>) {
    wait_for(&format!("{what} to reach only {only}"), || {
        (0..20)
            .all(|_| ask().as_deref() == Some(only))
            .then_some(())
    });
}

fn ready_endpoints(k: &Kubectl) -> BTreeSet<String> {
    let out = k.run(&[
        "get",
        "endpoints",
        "web",
        "-n",
        "demo",
        "-o",
        "jsonpath={.subsets[*].addresses[*].targetRef.name}",
    ]);
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(String::from)
        .collect()
}

fn wait_endpoints(k: &Kubectl, names: &[&str]) {
    let want: BTreeSet<String> = names.iter().map(|s| s.to_string()).collect();
    wait_for(&format!("endpoints {want:?}"), || {
        (ready_endpoints(k) == want).then_some(())
    });
}

/// The lines of a container's log starting with `prefix`, as the backend names they carry.
fn answers(k: &Kubectl, pod: &str, container: &str, prefix: &str) -> BTreeSet<String> {
    let out = k.run(&["logs", pod, "-n", "demo", "-c", container, "--tail", "400"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .map(|s| s.trim().to_string())
        .collect()
}

#[test]
fn services_are_routed_and_named_for_pods_and_the_host() {
    if !running_as_root() {
        println!("skipping: the service proxy and cluster DNS need root (nftables, pod networks)");
        return;
    }
    let (nats, nats_url) = start_nats();
    let dir = tempfile::tempdir().expect("temp dir");
    let plane = ControlPlane::start((&nats_url, CLUSTER), dir.path());
    let (_scheduler, _) = spawn_role("scheduler", (&nats_url, CLUSTER), &["scheduler"]);
    let (_controllers, _) = spawn_role("controllers", (&nats_url, CLUSTER), &["controllers"]);
    plane.wait_ready();
    let k = plane.kubectl();
    let mut leftovers = Leftovers { bridges: vec![] };
    let mut pod_networks: Vec<Ipv4Addr> = vec![];
    let mut agents: Vec<Proc> = NODES
        .iter()
        .map(|node| {
            let data = dir.path().join(node);
            let args = [
                "agent",
                "--node-name",
                node,
                "--data-dir",
                data.to_str().expect("utf-8"),
                "--pod-cidr",
                "auto",
            ];
            spawn_role(node, (&nats_url, CLUSTER), &args).0
        })
        .collect();
    for node in NODES {
        let cidr = wait_for(&format!("node {node} with a podCIDR"), || {
            let out = k.run(&["get", "node", node, "-o", "jsonpath={.spec.podCIDR}"]);
            let cidr = String::from_utf8_lossy(&out.stdout).trim().to_string();
            (!cidr.is_empty()).then_some(cidr)
        });
        let network: Ipv4Addr = cidr.split('/').next().unwrap().parse().unwrap();
        leftovers
            .bridges
            .push(format!("nvbr-{:08x}", u32::from(network)));
        pod_networks.push(network);
    }

    let out = k.apply_stdin(&["apply", "-f", "-"], SERVICES);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let svc = k.json(&["get", "svc", "web", "-n", "demo"]);
    let cluster_ip: Ipv4Addr = svc["spec"]["clusterIP"].as_str().unwrap().parse().unwrap();
    let node_port = svc["spec"]["ports"][0]["nodePort"].as_u64().unwrap() as u16;
    let empty_ip: Ipv4Addr = k.json(&["get", "svc", "empty", "-n", "demo"])["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    std::fs::write(
        dir.path().join("client.sh"),
        client_script(&cluster_ip.to_string()),
    )
    .unwrap();

    let pods = [
        backend("web-a", NODES[0], dir.path()),
        backend("web-b", NODES[1], dir.path()),
        client(dir.path()),
    ]
    .join("---\n");
    let out = k.apply_stdin(&["apply", "-f", "-"], &pods);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_endpoints(&k, &["web-a", "web-b"]);

    // Every agent has its own table.
    let tables = nft_tables();
    for node in NODES {
        assert!(
            tables.contains(&format!("navarch_proxy_{node}")),
            "{tables}"
        );
    }

    // From the host: cluster IP over TCP and UDP, node port on the node's address.
    let http = SocketAddr::from((cluster_ip, 8080));
    reaches_all(
        "the host (TCP to the cluster IP)",
        &["web-a", "web-b"],
        || http_get(http),
    );
    let udp = SocketAddr::from((cluster_ip, 9090));
    reaches_all(
        "the host (UDP to the cluster IP)",
        &["web-a", "web-b"],
        || udp_echo(udp),
    );
    // Any local address but loopback takes node ports: the second node's bridge address keeps the test's traffic
    // on addresses it made itself.
    let local = Ipv4Addr::from(u32::from(pod_networks[1]) + 1);
    let node_port_addr = SocketAddr::from((local, node_port));
    reaches_all("the host (node port)", &["web-a", "web-b"], || {
        http_get(node_port_addr)
    });

    // A Service without endpoints refuses at once rather than letting the connection time out.
    let refused =
        TcpStream::connect_timeout(&SocketAddr::from((empty_ip, 80)), Duration::from_secs(10));
    assert_eq!(
        refused.map_err(|e| e.kind()).err(),
        Some(std::io::ErrorKind::ConnectionRefused)
    );

    // From a pod on the first node: by DNS names (full, and short through the search path) and by cluster IP,
    // reaching the backend on its own bridge and the one on the other node's.
    let both = BTreeSet::from(["web-a".to_string(), "web-b".to_string()]);
    for prefix in ["full:", "short:", "ip:"] {
        wait_for(
            &format!("the client pod to reach both backends ({prefix})"),
            || {
                let seen = answers(&k, "client", "main", prefix);
                println!("client {prefix} {seen:?}");
                both.iter().all(|b| seen.contains(b)).then_some(())
            },
        );
    }
    // A backend reaching its own Service lands on itself too (hairpin).
    wait_for("web-a to reach itself through the Service", || {
        answers(&k, "web-a", "self", "full:")
            .contains("web-a")
            .then_some(())
    });

    // The pod's resolv.conf names the cluster DNS on its node's bridge, with the kubelet's search path.
    let log = k.ok(&["logs", "client", "-n", "demo"]);
    let gateway = Ipv4Addr::from(u32::from(pod_networks[0]) + 1);
    assert!(log.contains(&format!("nameserver {gateway}\n")), "{log}");
    assert!(
        log.contains("search demo.svc.cluster.local svc.cluster.local cluster.local")
            && log.contains("options ndots:5"),
        "{log}"
    );

    // Traffic follows the endpoints: one backend deleted, then another added on the other node.
    k.ok(&["delete", "pod", "web-b", "-n", "demo", "--wait=false"]);
    wait_endpoints(&k, &["web-a"]);
    reaches_only("the host (TCP to the cluster IP)", "web-a", || {
        http_get(http)
    });
    reaches_only("the host (node port)", "web-a", || http_get(node_port_addr));
    let out = k.apply_stdin(
        &["apply", "-f", "-"],
        &backend("web-c", NODES[1], dir.path()),
    );
    assert!(out.status.success());
    wait_endpoints(&k, &["web-a", "web-c"]);
    reaches_all(
        "the host (TCP to the cluster IP)",
        &["web-a", "web-c"],
        || http_get(http),
    );
    reaches_all(
        "the host (UDP to the cluster IP)",
        &["web-a", "web-c"],
        || udp_echo(udp),
    );

    // A clean stop removes each agent's table.
    for agent in &mut agents {
        agent.terminate();
    }
    let tables = nft_tables();
    for node in NODES {
        assert!(
            !tables.contains(&format!("navarch_proxy_{node}")),
            "{tables}"
        );
    }
    drop(leftovers);
    drop(plane);
    drop(nats);
}
