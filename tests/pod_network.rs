//! Pod networks and memory limits end to end: `navarch up` as root gives each pod its own network namespace and
//! IP from the node's pod CIDR, and OOM-kills a container over its memory limit; the real kubectl shows both.
//! Without root the test prints why and passes (pods then share the host's network).

#![allow(clippy::disallowed_methods)]

mod util;

use std::net::Ipv4Addr;
use std::path::Path;

use util::*;

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The bridge `navarch up` made for `cidr` (`nvbr-` and the network address in hex).
fn bridge_for(cidr: &str) -> String {
    let network: Ipv4Addr = cidr
        .split('/')
        .next()
        .and_then(|ip| ip.parse().ok())
        .expect("podCIDR is an IPv4 CIDR");
    format!("nvbr-{:08x}", u32::from(network))
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

fn netns_exists(pod_uid: &str) -> bool {
    Path::new("/run/netns")
        .join(format!("navarch-{pod_uid}"))
        .exists()
}

/// Removes the bridge and namespaces should the test fail before `navarch up` removed them.
struct Leftovers {
    bridge: Option<String>,
    pod_uids: Vec<String>,
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        for uid in &self.pod_uids {
            if netns_exists(uid) {
                let _ = std::process::Command::new("ip")
                    .args(["netns", "del", &format!("navarch-{uid}")])
                    .status();
            }
        }
        if let Some(bridge) = self.bridge.as_deref().filter(|b| link_exists(b)) {
            let _ = std::process::Command::new("ip")
                .args(["link", "del", bridge])
                .status();
        }
    }
}

fn server(name: &str, dir: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  containers:
  - name: web
    image: python
    workingDir: {dir}
    command: ["python3", "-m", "http.server", "8080", "--bind", "0.0.0.0"]
"#
    )
}

const CLIENT: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: client
spec:
  restartPolicy: Never
  containers:
  - name: fetch
    image: python
    env:
    - name: TARGET
      value: "http://TARGET_IP:8080/hello.txt"
    command:
    - python3
    - -c
    - |
      import os, time, urllib.request
      for _ in range(150):
          try:
              print("answer:", urllib.request.urlopen(os.environ["TARGET"], timeout=2).read().decode().strip(), flush=True)
              break
          except Exception as e:
              print("retrying:", e, flush=True)
              time.sleep(0.2)
"#;

const HOG: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: hog
spec:
  restartPolicy: Never
  containers:
  - name: hog
    image: python
    resources:
      limits:
        memory: 32Mi
        cpu: 500m
    command: ["python3", "-c", "b = bytearray(100 * 1024 * 1024); import time; time.sleep(30)"]
"#;

fn uid_of(k: &Kubectl, pod: &str) -> String {
    k.ok(&["get", "pod", pod, "-o", "jsonpath={.metadata.uid}"])
        .trim()
        .to_string()
}

#[test]
fn pods_get_their_own_ips_and_an_oom_kill_shows_as_oomkilled() {
    if !running_as_root() {
        println!("skipping: pod networks and cgroup limits need root");
        return;
    }
    let mut up = start_up(&[]);
    let k = Kubectl::new(&up.kubeconfig);
    let mut leftovers = Leftovers {
        bridge: None,
        pod_uids: vec![],
    };

    let cidr = wait_for("the node to show its podCIDR", || {
        let out = k.run(&["get", "nodes", "-o", "jsonpath={.items[0].spec.podCIDR}"]);
        let cidr = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (!cidr.is_empty()).then_some(cidr)
    });
    let bridge = bridge_for(&cidr);
    leftovers.bridge = Some(bridge.clone());
    assert!(link_exists(&bridge), "no bridge {bridge} for {cidr}");

    let www = up.dir.path().join("www");
    std::fs::create_dir(&www).unwrap();
    std::fs::write(www.join("hello.txt"), "hello from web-a\n").unwrap();
    let www = www.to_str().unwrap();
    let servers = format!("{}---\n{}", server("web-a", www), server("web-b", www));
    let out = k.apply_stdin(&["apply", "-f", "-"], &servers);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let ip_of = |pod: &str| {
        wait_for(&format!("{pod} to run with a pod IP"), || {
            let out = k.run(&[
                "get",
                "pod",
                pod,
                "-o",
                "jsonpath={.status.phase} {.status.podIP} {.status.hostIP}",
            ]);
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            let mut words = text.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some("Running"), Some(ip), Some(host)) if ip != host => Some(ip.to_string()),
                _ => None,
            }
        })
    };
    let (ip_a, ip_b) = (ip_of("web-a"), ip_of("web-b"));
    leftovers.pod_uids = vec![uid_of(&k, "web-a"), uid_of(&k, "web-b")];
    assert_ne!(ip_a, ip_b);
    let prefix = cidr.rsplit_once('.').map(|(p, _)| format!("{p}.")).unwrap();
    assert!(
        ip_a.starts_with(&prefix) && ip_b.starts_with(&prefix),
        "{ip_a} {ip_b} not in {cidr}"
    );
    for uid in &leftovers.pod_uids {
        assert!(netns_exists(uid), "no network namespace for pod {uid}");
    }

    let out = k.apply_stdin(&["apply", "-f", "-"], &CLIENT.replace("TARGET_IP", &ip_a));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let logs = wait_for("the client to print web-a's answer", || {
        let out = k.run(&["logs", "client"]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        text.contains("answer:").then_some(text)
    });
    assert!(logs.contains("answer: hello from web-a"), "{logs}");
    // Both servers bound 8080, each in its own namespace, and both still run.
    for pod in ["web-a", "web-b"] {
        let ready = k.ok(&[
            "get",
            "pod",
            pod,
            "-o",
            "jsonpath={.status.containerStatuses[0].ready}",
        ]);
        assert_eq!(ready.trim(), "true", "{pod}");
    }

    let out = k.apply_stdin(&["apply", "-f", "-"], HOG);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let terminated = wait_for("the hog to be OOM-killed", || {
        let out = k.run(&[
            "get",
            "pod",
            "hog",
            "-o",
            "jsonpath={.status.containerStatuses[0].state.terminated.reason} {.status.containerStatuses[0].state.terminated.exitCode}",
        ]);
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (!text.is_empty()).then_some(text)
    });
    assert_eq!(terminated, "OOMKilled 137");
    let table = k.ok(&["get", "pod", "hog"]);
    assert!(table.contains("OOMKilled"), "{table}");
    let hog_uid = uid_of(&k, "hog");
    leftovers.pod_uids.push(hog_uid.clone());

    // Deleting a pod removes its namespace and cgroups.
    k.ok(&["delete", "pod", "web-a", "hog", "--wait=true"]);
    wait_for("web-a's namespace to go", || {
        (!netns_exists(&leftovers.pod_uids[0])).then_some(())
    });
    wait_for("the hog's cgroups to go", || {
        let gone = ["memory", "cpu"].iter().all(|c| {
            !Path::new("/sys/fs/cgroup")
                .join(c)
                .join("navarch")
                .join(&hog_uid)
                .exists()
        });
        gone.then_some(())
    });
    assert!(
        netns_exists(&leftovers.pod_uids[1]),
        "web-b's namespace went too"
    );

    // Stopping `navarch up` removes the rest: namespaces, veths, the bridge.
    let status = up.proc.terminate();
    assert!(status.success(), "navarch up exited with {status}");
    for uid in &leftovers.pod_uids {
        assert!(!netns_exists(uid), "namespace of {uid} left behind");
    }
    assert!(!link_exists(&bridge), "bridge {bridge} left behind");
    let links: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    for ip in [&ip_a, &ip_b] {
        let ip: Ipv4Addr = ip.parse().unwrap();
        let veth = format!("nvh{:08x}", u32::from(ip));
        assert!(!links.contains(&veth), "veth {veth} left behind");
    }
}
