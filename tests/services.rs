//! Services end to end with the real kubectl against `navarch up`: cluster IPs and node ports allocated at create
//! (explicit ones honoured, taken ones refused with 422, freed on delete), the `kubernetes` Service, and Endpoints
//! that follow the ready pods a Service selects.

#![allow(clippy::disallowed_methods)]

mod util;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use serde_json::Value;
use util::*;

/// A command no other test uses.
const SLEEP: &str = "3611";

fn manifest() -> String {
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata:
  name: svcs
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: svcs
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: main
        image: busybox
        command: ["sleep", "{SLEEP}"]
        ports:
        - name: http
          containerPort: 8080
        readinessProbe:
          exec:
            command: ["true"]
          periodSeconds: 1
---
apiVersion: v1
kind: Pod
metadata:
  name: never-ready
  namespace: svcs
  labels:
    app: web
spec:
  containers:
  - name: main
    image: busybox
    command: ["sleep", "{SLEEP}"]
    ports:
    - name: http
      containerPort: 8080
    readinessProbe:
      exec:
        command: ["false"]
      periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: svcs
spec:
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: http
"#
    )
}

/// A Service of `svcs` selecting nothing, port 80, with `extra` lines of spec.
fn service(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: svcs\nspec:\n  selector:\n    app: none\n{extra}"
    )
}

const PORT_80: &str = "  ports:\n  - port: 80\n";

/// The ready and not-ready IPs of the Endpoints `name`, and the ports of its first subset.
fn endpoints(k: &Kubectl, name: &str) -> Option<(BTreeSet<String>, BTreeSet<String>, Value)> {
    let out = k.run(&["get", "endpoints", name, "-n", "svcs", "-o", "json"]);
    if !out.status.success() {
        return None;
    }
    let ep: Value = serde_json::from_slice(&out.stdout).ok()?;
    let ips = |list: &str| -> BTreeSet<String> {
        ep["subsets"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|s| s[list].as_array().cloned().unwrap_or_default())
            .filter_map(|a| a["ip"].as_str().map(String::from))
            .collect()
    };
    Some((
        ips("addresses"),
        ips("notReadyAddresses"),
        ep["subsets"][0]["ports"].clone(),
    ))
}

/// The IPs of the Deployment's pods that are Ready, and of the never-ready pod, once they have IPs.
fn pod_ips(k: &Kubectl) -> (BTreeSet<String>, Option<String>) {
    let pods = k.json(&["get", "pods", "-n", "svcs"]);
    let mut ready = BTreeSet::new();
    let mut never = None;
    for p in pods["items"].as_array().into_iter().flatten() {
        let Some(ip) = p["status"]["podIP"].as_str() else {
            continue;
        };
        let is_ready = p["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        if p["metadata"]["name"] == "never-ready" {
            never = Some(ip.to_string());
        } else if is_ready && p["metadata"]["deletionTimestamp"].is_null() {
            ready.insert(ip.to_string());
        }
    }
    (ready, never)
}

/// Waits until the Endpoints `web` list exactly the `n` ready pods (and the never-ready pod apart); returns them.
fn wait_for_endpoints(k: &Kubectl, n: usize) -> BTreeSet<String> {
    wait_for(&format!("Endpoints web listing {n} ready pods"), || {
        let (ready, never) = pod_ips(k);
        let (addresses, not_ready, ports) = endpoints(k, "web")?;
        println!(
            "ready pods {ready:?}, never-ready {never:?}; endpoints {addresses:?} / {not_ready:?}"
        );
        let never = never?;
        (ready.len() == n
            && addresses == ready
            && not_ready == BTreeSet::from([never])
            && ports[0]["port"] == 8080
            && ports[0]["name"] == "http")
            .then_some(addresses)
    })
}

#[test]
fn services_get_addresses_and_endpoints_follow_ready_pods() {
    let up = start_up(&[]);
    let k = Kubectl::new(&up.kubeconfig);

    // The API's own Service, made at start.
    let kubernetes = k.json(&["get", "svc", "kubernetes"]);
    assert_eq!(kubernetes["spec"]["clusterIP"], "10.96.0.1");
    assert_eq!(kubernetes["spec"]["ports"][0]["port"], 443);
    let api_port: u16 = up.api.rsplit(':').next().unwrap().parse().unwrap();
    let ep = k.json(&["get", "endpoints", "kubernetes"]);
    assert_eq!(ep["subsets"][0]["ports"][0]["port"], api_port, "{ep}");

    let out = k.apply_stdin(&["apply", "-f", "-"], &manifest());
    assert!(out.status.success());
    let web = k.json(&["get", "svc", "web", "-n", "svcs"]);
    let ip: Ipv4Addr = web["spec"]["clusterIP"].as_str().unwrap().parse().unwrap();
    assert_eq!(ip.octets()[..2], [10, 96], "{ip} is in 10.96.0.0/16");
    assert_ne!(ip, Ipv4Addr::new(10, 96, 0, 1));
    assert_eq!(web["spec"]["clusterIPs"][0], ip.to_string());
    assert_eq!(web["spec"]["ipFamilies"][0], "IPv4");
    let table = k.ok(&["get", "svc", "web", "-n", "svcs"]);
    assert!(
        table.contains(&ip.to_string()) && table.contains("80/TCP"),
        "{table}"
    );

    let addresses = wait_for_endpoints(&k, 2);
    let table = k.ok(&["get", "endpoints", "web", "-n", "svcs"]);
    for a in &addresses {
        assert!(table.contains(&format!("{a}:8080")), "{table}");
    }

    k.ok(&["scale", "deployment", "web", "-n", "svcs", "--replicas=3"]);
    wait_for_endpoints(&k, 3);

    // An address in use, or outside the range, is refused.
    let taken = service("taken", &format!("  clusterIP: {ip}\n{PORT_80}"));
    let out = k.apply_stdin(&["create", "-f", "-"], &taken);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("is invalid") && stderr.contains("provided IP is already allocated"),
        "{stderr}"
    );
    let outside = service("outside", &format!("  clusterIP: 10.0.0.5\n{PORT_80}"));
    let out = k.apply_stdin(&["create", "-f", "-"], &outside);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is not in the valid range"), "{stderr}");

    // Racing for one address: exactly one create wins, whatever the interleaving.
    let outcomes: Vec<bool> = std::thread::scope(|scope| {
        let racers: Vec<_> = (0..4)
            .map(|i| {
                let k = &k;
                scope.spawn(move || {
                    let racer = service(
                        &format!("racer-{i}"),
                        &format!("  clusterIP: 10.96.0.50\n{PORT_80}"),
                    );
                    k.apply_stdin(&["create", "-f", "-"], &racer)
                        .status
                        .success()
                })
            })
            .collect();
        racers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    assert_eq!(
        outcomes.iter().filter(|won| **won).count(),
        1,
        "{outcomes:?}"
    );

    // Node ports: one from the range, shown as port:nodePort; the same one again is refused.
    let np = service("np", &format!("  type: NodePort\n{PORT_80}"));
    assert!(k.apply_stdin(&["create", "-f", "-"], &np).status.success());
    let node_port = k.json(&["get", "svc", "np", "-n", "svcs"])["spec"]["ports"][0]["nodePort"]
        .as_i64()
        .unwrap();
    assert!((30000..=32767).contains(&node_port), "{node_port}");
    let table = k.ok(&["get", "svc", "np", "-n", "svcs"]);
    assert!(table.contains(&format!("80:{node_port}/TCP")), "{table}");
    let clash = service(
        "np2",
        &format!("  type: NodePort\n{PORT_80}    nodePort: {node_port}\n"),
    );
    let out = k.apply_stdin(&["create", "-f", "-"], &clash);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("provided port is already allocated"),
        "{stderr}"
    );

    // The cluster IP may not change.
    let out = k.run(&[
        "patch",
        "svc",
        "web",
        "-n",
        "svcs",
        "-p",
        r#"{"spec":{"clusterIP":"10.96.0.77"}}"#,
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("may not change once set"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Deleting the Service deletes its Endpoints and frees its address and the node port.
    k.ok(&["delete", "svc", "web", "np", "-n", "svcs"]);
    wait_for("the Endpoints of web to go", || {
        endpoints(&k, "web").is_none().then_some(())
    });
    let again = service("again", &format!("  clusterIP: {ip}\n{PORT_80}"));
    let out = k.apply_stdin(&["create", "-f", "-"], &again);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(k
        .apply_stdin(&["create", "-f", "-"], &clash)
        .status
        .success());
    // A Service that exists is AlreadyExists, even though its address is taken (by itself).
    let out = k.apply_stdin(&["create", "-f", "-"], &again);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("AlreadyExists"), "{stderr}");

    // Changing the type to NodePort allocates a node port on the update.
    k.ok(&[
        "patch",
        "svc",
        "again",
        "-n",
        "svcs",
        "-p",
        r#"{"spec":{"type":"NodePort"}}"#,
    ]);
    let again = k.json(&["get", "svc", "again", "-n", "svcs"]);
    let node_port = again["spec"]["ports"][0]["nodePort"].as_i64().unwrap_or(0);
    assert!((30000..=32767).contains(&node_port), "{again}");
    assert_eq!(again["spec"]["clusterIP"], ip.to_string());
}

#[test]
fn the_service_range_is_an_option_of_up() {
    let up = start_up(&["--service-cluster-ip-range", "10.100.7.0/24"]);
    let k = Kubectl::new(&up.kubeconfig);
    let kubernetes = k.json(&["get", "svc", "kubernetes"]);
    assert_eq!(kubernetes["spec"]["clusterIP"], "10.100.7.1");
    let svc =
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: other\nspec:\n  ports:\n  - port: 80\n";
    assert!(k.apply_stdin(&["create", "-f", "-"], svc).status.success());
    let ip: Ipv4Addr = k.json(&["get", "svc", "other"])["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(ip.octets()[..3], [10, 100, 7], "{ip}");
    let outside = svc
        .replace("name: other", "name: outside")
        .replace("spec:\n", "spec:\n  clusterIP: 10.96.0.10\n");
    let out = k.apply_stdin(&["create", "-f", "-"], &outside);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("The range of valid IPs is 10.100.7.0/24"),
        "{stderr}"
    );
}

/// The repair loop's core, against a real store in-process: keys of addresses whose Service is gone or no longer
/// needs them are removed; keys still held stay.
#[test]
fn addresses_no_longer_held_are_removed_from_the_store() {
    use navarch_bus::api::admission::FieldValidation;
    use navarch_bus::api::{resource, DeleteOptions, Objects};
    use navarch_bus::store::StoreClient;
    use navarch_bus::transport::embedded::Embedded;
    use navarch_bus::Bus;
    use serde_json::json;
    use std::sync::Arc;

    let dir = tempfile::tempdir().expect("temp dir");
    run_in_system(async move {
        let router = Arc::new(Embedded::new());
        let config = navarch_store::StoreConfig {
            data_dir: dir.path().join("store"),
            ..Default::default()
        };
        let store = navarch_store::StoreMember::start(
            Bus::new(router.clone(), "repair").await.unwrap(),
            config,
        )
        .await
        .unwrap();
        let client = StoreClient::new(Bus::new(router, "repair").await.unwrap());
        let objects = Objects::new(client.clone());
        let namespaces = resource::by_kind("v1", "Namespace").unwrap();
        let services = resource::by_kind("v1", "Service").unwrap();
        wait_for_async(|| async {
            objects
                .create(
                    namespaces,
                    None,
                    json!({"metadata": {"name": "default"}}),
                    FieldValidation::Strict,
                )
                .await
                .ok()
        })
        .await;
        let svc = |name: &str, ip: &str, spec: serde_json::Value| {
            let mut s = json!({"metadata": {"name": name},
                               "spec": {"clusterIP": ip, "ports": [{"port": 80}]}});
            for (k, v) in spec.as_object().unwrap() {
                s["spec"][k] = v.clone();
            }
            s
        };
        for s in [
            svc("gone", "10.96.0.20", json!({})),
            svc("kept", "10.96.0.21", json!({})),
            svc(
                "was-np",
                "10.96.0.22",
                json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30500}]}),
            ),
        ] {
            objects
                .create(services, Some("default"), s, FieldValidation::Strict)
                .await
                .unwrap();
        }
        let key = |k: &str| {
            let client = client.clone();
            let k = k.to_string();
            async move { client.get(k.as_bytes()).await.unwrap().is_some() }
        };
        assert!(key("/registry/ranges/servicenodeports/30500").await);
        objects
            .delete(services, Some("default"), "gone", &DeleteOptions::default())
            .await
            .unwrap();
        objects
            .update_with(
                services,
                Some("default"),
                "was-np",
                navarch_bus::api::admission::Part::Main,
                |mut s| {
                    s["spec"]["type"] = json!("ClusterIP");
                    s["spec"]["ports"][0]
                        .as_object_mut()
                        .unwrap()
                        .remove("nodePort");
                    Ok(s)
                },
            )
            .await
            .unwrap();
        assert!(
            key("/registry/ranges/serviceips/10.96.0.20").await,
            "release is lazy"
        );
        assert_eq!(objects.release_unheld().await.unwrap(), 2);
        assert!(!key("/registry/ranges/serviceips/10.96.0.20").await);
        assert!(!key("/registry/ranges/servicenodeports/30500").await);
        assert!(key("/registry/ranges/serviceips/10.96.0.21").await);
        assert!(key("/registry/ranges/serviceips/10.96.0.22").await);
        assert_eq!(objects.release_unheld().await.unwrap(), 0);
        let _ = store.send(navarch_store::Shutdown).await;
    });
}

async fn wait_for_async<T, F, Fut>(mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..600 {
        if let Some(v) = check().await {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the store did not answer within a minute");
}
