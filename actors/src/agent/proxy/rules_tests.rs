//! The ruleset, exactly, for Services with and without endpoints.

use std::net::Ipv4Addr;

use super::*;
use crate::agent::proxy::model::Protocol;

fn scope() -> Scope {
    Scope {
        table: table_name("node-1"),
        bridge: "nvbr-0a580000".into(),
        comment: owner_comment("node-1", 42),
    }
}

fn web() -> ProxiedPort {
    ProxiedPort {
        namespace: "demo".into(),
        service: "web".into(),
        protocol: Protocol::Tcp,
        cluster_ip: Ipv4Addr::new(10, 96, 0, 20),
        port: 8080,
        node_port: Some(30080),
        endpoints: vec![
            (Ipv4Addr::new(10, 88, 0, 2), 80),
            (Ipv4Addr::new(10, 88, 1, 3), 80),
        ],
    }
}

fn dns_without_endpoints() -> ProxiedPort {
    ProxiedPort {
        namespace: "kube-system".into(),
        service: "dns".into(),
        protocol: Protocol::Udp,
        cluster_ip: Ipv4Addr::new(10, 96, 0, 10),
        port: 53,
        node_port: Some(30053),
        endpoints: vec![],
    }
}

const COMMON_CHAINS: &str = r#"  chain prerouting {
    type nat hook prerouting priority -100; policy accept;
    jump services
  }
  chain output {
    type nat hook output priority -100; policy accept;
    jump services
  }
  chain postrouting {
    type nat hook postrouting priority 100; policy accept;
    meta mark & 0x4000 == 0x4000 meta mark set meta mark ^ 0x4000 masquerade
    ct status dnat iifname "nvbr-0a580000" oifname "nvbr-0a580000" masquerade
  }
  chain filter-input {
    type filter hook input priority -110; policy accept;
    ct state new jump endpoints-check
  }
  chain filter-forward {
    type filter hook forward priority -110; policy accept;
    ct state new jump endpoints-check
  }
  chain filter-output {
    type filter hook output priority -110; policy accept;
    ct state new jump endpoints-check
  }
  chain endpoints-check {
    ip daddr . meta l4proto . th dport @no-endpoint-services goto reject-no-endpoints
    fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport @no-endpoint-nodeports goto reject-no-endpoints
  }
  chain reject-no-endpoints {
    meta l4proto tcp reject with tcp reset
    reject
  }
  chain services {
    ip daddr . meta l4proto . th dport vmap @service-ips
    fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports
  }
  chain mark-for-masquerade {
    meta mark set meta mark | 0x4000
  }
"#;

#[test]
fn a_service_with_endpoints_and_one_without() {
    let text = ruleset(&scope(), &[web(), dns_without_endpoints()]);
    let expected = String::new()
        + "table ip navarch_proxy_node-1\n"
        + "delete table ip navarch_proxy_node-1\n"
        + "table ip navarch_proxy_node-1 {\n"
        + "  comment \"navarch service proxy of node node-1, agent pid 42\"\n"
        + "  map service-ips {\n"
        + "    type ipv4_addr . inet_proto . inet_service : verdict\n"
        + "    elements = { 10.96.0.20 . tcp . 8080 : goto svc-demo/web/tcp/8080 }\n"
        + "  }\n"
        + "  map service-nodeports {\n"
        + "    type inet_proto . inet_service : verdict\n"
        + "    elements = { tcp . 30080 : goto ext-demo/web/tcp/8080 }\n"
        + "  }\n"
        + "  set no-endpoint-services {\n"
        + "    type ipv4_addr . inet_proto . inet_service\n"
        + "    elements = { 10.96.0.10 . udp . 53 }\n"
        + "  }\n"
        + "  set no-endpoint-nodeports {\n"
        + "    type inet_proto . inet_service\n"
        + "    elements = { udp . 30053 }\n"
        + "  }\n"
        + COMMON_CHAINS
        + "  chain ext-demo/web/tcp/8080 {\n"
        + "    jump mark-for-masquerade\n"
        + "    goto svc-demo/web/tcp/8080\n"
        + "  }\n"
        + "  chain svc-demo/web/tcp/8080 {\n"
        + "    numgen random mod 2 vmap { 0 : goto ep-demo/web/tcp/8080/10.88.0.2/80, 1 : goto ep-demo/web/tcp/8080/10.88.1.3/80 }\n"
        + "  }\n"
        + "  chain ep-demo/web/tcp/8080/10.88.0.2/80 {\n"
        + "    ip saddr 10.88.0.2 jump mark-for-masquerade\n"
        + "    meta l4proto tcp dnat to 10.88.0.2:80\n"
        + "  }\n"
        + "  chain ep-demo/web/tcp/8080/10.88.1.3/80 {\n"
        + "    ip saddr 10.88.1.3 jump mark-for-masquerade\n"
        + "    meta l4proto tcp dnat to 10.88.1.3:80\n"
        + "  }\n"
        + "}\n";
    assert_eq!(text, expected, "got:\n{text}");
}

#[test]
fn nothing_to_route_still_makes_the_table_with_empty_maps() {
    let text = ruleset(&scope(), &[]);
    let expected = String::new()
        + "table ip navarch_proxy_node-1\n"
        + "delete table ip navarch_proxy_node-1\n"
        + "table ip navarch_proxy_node-1 {\n"
        + "  comment \"navarch service proxy of node node-1, agent pid 42\"\n"
        + "  map service-ips {\n"
        + "    type ipv4_addr . inet_proto . inet_service : verdict\n"
        + "  }\n"
        + "  map service-nodeports {\n"
        + "    type inet_proto . inet_service : verdict\n"
        + "  }\n"
        + "  set no-endpoint-services {\n"
        + "    type ipv4_addr . inet_proto . inet_service\n"
        + "  }\n"
        + "  set no-endpoint-nodeports {\n"
        + "    type inet_proto . inet_service\n"
        + "  }\n"
        + COMMON_CHAINS
        + "}\n";
    assert_eq!(text, expected, "got:\n{text}");
}

#[test]
fn a_single_udp_endpoint_without_node_port_gets_no_ext_chain() {
    let port = ProxiedPort {
        node_port: None,
        endpoints: vec![(Ipv4Addr::new(10, 88, 0, 7), 5353)],
        ..dns_without_endpoints()
    };
    let text = ruleset(&scope(), &[port]);
    assert!(
        text.contains("elements = { 10.96.0.10 . udp . 53 : goto svc-kube-system/dns/udp/53 }\n")
    );
    assert!(text.contains(
        "  chain svc-kube-system/dns/udp/53 {\n    numgen random mod 1 vmap { 0 : goto ep-kube-system/dns/udp/53/10.88.0.7/5353 }\n  }\n"
    ));
    assert!(text.contains("    meta l4proto udp dnat to 10.88.0.7:5353\n"));
    assert!(!text.contains("chain ext-"));
    assert!(!text.contains("elements = { udp"));
}

#[test]
fn the_order_of_services_does_not_change_the_text() {
    let a = ruleset(&scope(), &[web(), dns_without_endpoints()]);
    let b = ruleset(&scope(), &[dns_without_endpoints(), web()]);
    assert_eq!(a, b);
}

#[test]
fn removal_never_fails_on_a_missing_table_and_owners_are_read_back() {
    assert_eq!(
        removal("navarch_proxy_n"),
        "table ip navarch_proxy_n\ndelete table ip navarch_proxy_n\n"
    );
    let listing = "table ip navarch_proxy_n {\n\tcomment \"navarch service proxy of node n, agent pid 4242\"\n}";
    assert_eq!(owner_pid(listing), Some(4242));
    assert_eq!(owner_pid("table ip other {\n}"), None);
}

#[test]
fn nft_accepts_the_ruleset() {
    let Some(nft) = crate::runtime::netns::find_tool("nft") else {
        println!("skipping: nft is not installed");
        return;
    };
    if !crate::runtime::running_as_root() {
        println!("skipping: checking a ruleset with nft needs root");
        return;
    }
    for ports in [vec![], vec![web(), dns_without_endpoints()]] {
        let text = ruleset(&scope(), &ports);
        // `-c`: parsed and checked by the kernel in a transaction that is then aborted; nothing is changed.
        let mut child = std::process::Command::new(&nft)
            .args(["-c", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), text.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
