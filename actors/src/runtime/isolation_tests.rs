//! Tests of the process runtime's pod networks and cgroup limits with real processes, namespaces and cgroups.
//! They need root; without it they print why and pass.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::runtime::netns::{bridge_name, netns_name, NETNS_DIR};
use crate::runtime::Limits;

fn skip_unless_root(test: &str) -> bool {
    if running_as_root() {
        return false;
    }
    println!("skipping {test}: needs root (namespaces, veths, cgroups)");
    true
}

fn spec(dir: &Path, pod_uid: &str, container: &str, command: &[&str]) -> ContainerSpec {
    ContainerSpec {
        id: ContainerId {
            pod_uid: pod_uid.into(),
            container: container.into(),
            attempt: 0,
        },
        pod_namespace: "demo".into(),
        pod_name: pod_uid.into(),
        image: "busybox".into(),
        pull_policy: crate::runtime::PullPolicy::Never,
        command: command.iter().map(|s| s.to_string()).collect(),
        args: vec![],
        env: vec![],
        working_dir: Some(dir.to_path_buf()),
        limits: Limits::default(),
        mounts: vec![],
    }
}

fn log_of(dir: &Path, s: &ContainerSpec) -> String {
    crate::runtime::read_log_text(&log_path(
        dir,
        &s.pod_namespace,
        &s.pod_name,
        &s.id.pod_uid,
        &s.id.container,
    ))
    .unwrap_or_default()
}

/// Deletes what a test's pods and bridge may have left, even when the test fails half-way.
struct NetworkLeftovers {
    pods: Vec<String>,
    bridge: Option<String>,
}

impl Drop for NetworkLeftovers {
    fn drop(&mut self) {
        let ip = netns::find_tool("ip").unwrap_or_else(|| "ip".into());
        for pod in &self.pods {
            if Path::new(NETNS_DIR).join(netns_name(pod)).exists() {
                let _ = std::process::Command::new(&ip)
                    .args(["netns", "del", &netns_name(pod)])
                    .status();
            }
        }
        if let Some(bridge) = &self.bridge {
            if Path::new("/sys/class/net").join(bridge).exists() {
                let _ = std::process::Command::new(&ip)
                    .args(["link", "del", bridge])
                    .status();
            }
            if let Some(iptables) = netns::find_tool("iptables") {
                for rule in netns::forward_rules(bridge) {
                    let _ = std::process::Command::new(&iptables)
                        .arg("-D")
                        .args(&rule)
                        .output();
                }
            }
            if let (Some(nft), Some(hex)) = (netns::find_tool("nft"), bridge.strip_prefix("nvbr-"))
            {
                let _ = std::process::Command::new(nft)
                    .args(["delete", "table", "ip", &format!("navarch_{hex}")])
                    .output();
            }
        }
    }
}

#[tokio::test]
async fn a_container_over_its_memory_limit_is_oom_killed() {
    if skip_unless_root("a_container_over_its_memory_limit_is_oom_killed") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let rt = ProcessRuntime::new(dir.path());
    let uid = format!("oom-{}", std::process::id());
    let mut hog = spec(
        dir.path(),
        &uid,
        "hog",
        &[
            "python3",
            "-c",
            "b = bytearray(100 * 1024 * 1024); print('allocated', flush=True); import time; time.sleep(30)",
        ],
    );
    hog.limits = Limits::from_quantities(Some("32Mi"), Some("500m"));
    rt.start(&hog).await.unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(60), rt.wait(&hog.id))
        .await
        .expect("the hog was not killed")
        .unwrap();
    assert!(
        exit.oom_killed,
        "{exit:?}; log: {}",
        log_of(dir.path(), &hog)
    );
    assert_eq!(exit.signal, Some(9));
    assert_eq!(exit.exit_code(), 137);
    assert!(!log_of(dir.path(), &hog).contains("allocated"));

    // The limits were written where the host keeps them (v1 here; v2 hosts keep them in one directory).
    let v1 = Path::new("/sys/fs/cgroup/memory/navarch").join(&uid);
    if v1.exists() {
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap().trim().to_string();
        assert_eq!(read(v1.join("hog-0/memory.limit_in_bytes")), "33554432");
        let cpu = Path::new("/sys/fs/cgroup/cpu/navarch")
            .join(&uid)
            .join("hog-0");
        assert_eq!(read(cpu.join("cpu.cfs_quota_us")), "50000");
        assert_eq!(read(cpu.join("cpu.cfs_period_us")), "100000");
    }

    // Within its limit, a container runs, from its first instruction inside its cgroup; a plain exit is no OOM
    // kill.
    let mut modest = spec(
        dir.path(),
        &uid,
        "modest",
        &[
            "python3",
            "-c",
            "b = bytearray(4 * 1024 * 1024); print('allocated'); print(open('/proc/self/cgroup').read())",
        ],
    );
    modest.limits = Limits::from_quantities(Some("64Mi"), None);
    rt.start(&modest).await.unwrap();
    let exit = rt.wait(&modest.id).await.unwrap();
    let log = log_of(dir.path(), &modest);
    assert_eq!(exit.exit_code(), 0, "log: {log}");
    assert!(!exit.oom_killed);
    assert!(log.contains("allocated"), "{log}");
    assert!(log.contains(&format!("/navarch/{uid}/modest-0")), "{log}");

    // Removing the containers and releasing the pod removes their cgroups.
    rt.remove(&hog.id).await.unwrap();
    rt.remove(&modest.id).await.unwrap();
    rt.release_pod(&uid).await;
    assert!(!v1.exists());
    assert!(!Path::new("/sys/fs/cgroup/cpu/navarch").join(&uid).exists());
}

#[tokio::test]
async fn pods_listen_on_the_same_port_and_reach_each_other_by_pod_ip() {
    if skip_unless_root("pods_listen_on_the_same_port_and_reach_each_other_by_pod_ip") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        format!("net-a-{}", std::process::id()),
        format!("net-b-{}", std::process::id()),
    );
    let mut leftovers = NetworkLeftovers {
        pods: vec![a.clone(), b.clone()],
        bridge: None,
    };
    let rt = ProcessRuntime::with_pod_network(dir.path(), netns::PodCidr::Auto)
        .await
        .unwrap();
    let cidr: netns::Cidr = rt.pod_cidr().unwrap().parse().unwrap();
    leftovers.bridge = Some(bridge_name(&cidr));

    // A container of a pod without a network is refused.
    let early = spec(dir.path(), &a, "early", &["true"]);
    assert!(matches!(
        rt.start(&early).await,
        Err(RuntimeError::Network(_))
    ));

    let ip_a = rt.prepare_pod(&a).await.unwrap().ip.unwrap();
    let ip_b = rt.prepare_pod(&b).await.unwrap().ip.unwrap();
    assert_ne!(ip_a, ip_b);
    assert_eq!(
        rt.prepare_pod(&a).await.unwrap().ip,
        Some(ip_a),
        "same pod, same IP"
    );
    for ip in [ip_a, ip_b] {
        let std::net::IpAddr::V4(v4) = ip else {
            panic!("{ip}")
        };
        assert!(cidr.contains(v4));
    }
    // The addresses are on disk for an agent restart.
    let state = std::fs::read_to_string(dir.path().join(netns::STATE_FILE)).unwrap();
    assert!(
        state.contains(&ip_a.to_string()) && state.contains(&a),
        "{state}"
    );

    let www = dir.path().join("www");
    std::fs::create_dir(&www).unwrap();
    std::fs::write(www.join("index.html"), "hello from pod a\n").unwrap();
    let serve = |pod: &str| {
        spec(
            &www,
            pod,
            "web",
            &["busybox", "httpd", "-f", "-p", "8080", "-h", "."],
        )
    };
    let (web_a, web_b) = (serve(&a), serve(&b));
    rt.start(&web_a).await.unwrap();
    rt.start(&web_b).await.unwrap();

    // Both bound 8080, each in its own namespace: the client in b fetches from a by a's IP.
    let url = format!("http://{ip_a}:8080/index.html");
    let script = format!(
        "for i in $(seq 1 100); do python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())' {url} && ip addr show eth0 && exit 0; sleep 0.2; done; exit 1"
    );
    let client = spec(dir.path(), &b, "client", &["sh", "-c", &script]);
    rt.start(&client).await.unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(60), rt.wait(&client.id))
        .await
        .unwrap()
        .unwrap();
    let log = log_of(dir.path(), &client);
    assert_eq!(exit.exit_code(), 0, "client log: {log}");
    assert!(log.contains("hello from pod a"), "{log}");
    assert!(
        log.contains(&format!("inet {ip_b}/")),
        "the client runs in b's namespace: {log}"
    );
    for s in [&web_a, &web_b] {
        let info = rt.status(&s.id).await.unwrap();
        assert_eq!(
            info.state,
            ContainerState::Running,
            "{}: {}",
            s.id,
            log_of(dir.path(), s)
        );
    }

    rt.stop_all(Duration::from_secs(5)).await;
    for s in [&web_a, &web_b, &client] {
        rt.remove(&s.id).await.unwrap();
    }
    rt.release_pod(&a).await;
    assert!(!Path::new(NETNS_DIR).join(netns_name(&a)).exists());
    assert!(Path::new(NETNS_DIR).join(netns_name(&b)).exists());
    rt.release_all_pods().await;
    assert!(!Path::new(NETNS_DIR).join(netns_name(&b)).exists());
    let bridge = bridge_name(&cidr);
    assert!(!Path::new("/sys/class/net").join(&bridge).exists());
    assert!(!dir.path().join(netns::STATE_FILE).exists());
    let links = std::fs::read_dir("/sys/class/net").unwrap();
    let veths: Vec<String> = links
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| {
            [ip_a, ip_b].iter().any(|ip| {
                let std::net::IpAddr::V4(v4) = ip else {
                    return false;
                };
                *n == netns::host_veth(*v4)
            })
        })
        .collect();
    assert!(veths.is_empty(), "{veths:?}");
}
