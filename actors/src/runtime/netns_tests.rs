//! Tests of the pod network's pure parts: CIDRs, address allocation, names, free CIDRs, rules.

use super::*;

fn cidr(s: &str) -> Cidr {
    s.parse().unwrap()
}

#[test]
fn cidrs_parse_and_refuse_nonsense() {
    let c = cidr("10.88.3.0/24");
    assert_eq!(c.to_string(), "10.88.3.0/24");
    assert_eq!(c.gateway(), Ipv4Addr::new(10, 88, 3, 1));
    assert!(c.contains(Ipv4Addr::new(10, 88, 3, 200)));
    assert!(!c.contains(Ipv4Addr::new(10, 88, 4, 1)));
    for bad in [
        "10.88.3.1/24",
        "10.88.3.0",
        "10.88.3.0/31",
        "10.88.3.0/4",
        "x/24",
        "10.88.3.0/x",
        "",
    ] {
        assert!(bad.parse::<Cidr>().is_err(), "{bad:?} accepted");
    }
    assert_eq!("auto".parse::<PodCidr>().unwrap(), PodCidr::Auto);
    assert_eq!(
        "10.88.3.0/24".parse::<PodCidr>().unwrap(),
        PodCidr::Fixed(c)
    );
}

#[test]
fn addresses_are_the_lowest_free_ones_and_kept_per_pod() {
    let mut a = Allocations::new(cidr("10.88.0.0/29"));
    assert_eq!(a.allocate("a"), Some(Ipv4Addr::new(10, 88, 0, 2)));
    assert_eq!(a.allocate("b"), Some(Ipv4Addr::new(10, 88, 0, 3)));
    assert_eq!(
        a.allocate("a"),
        Some(Ipv4Addr::new(10, 88, 0, 2)),
        "a pod keeps its address"
    );
    assert_eq!(a.release("a"), Some(Ipv4Addr::new(10, 88, 0, 2)));
    assert_eq!(a.allocate("c"), Some(Ipv4Addr::new(10, 88, 0, 2)));
    // .4 .5 .6 left (.7 is the broadcast address).
    for uid in ["d", "e", "f"] {
        assert!(a.allocate(uid).is_some());
    }
    assert_eq!(a.allocate("g"), None, "full");
    assert!(a.pods.values().all(|ip| *ip != Ipv4Addr::new(10, 88, 0, 7)));
}

#[test]
fn allocations_survive_a_round_trip_through_the_state_file_format() {
    let mut a = Allocations::new(cidr("10.88.7.0/24"));
    a.allocate("pod-1");
    let json = serde_json::to_string(&a).unwrap();
    assert!(json.contains("\"10.88.7.0/24\""), "{json}");
    let back: Allocations = serde_json::from_str(&json).unwrap();
    assert_eq!(back, a);
    assert!(serde_json::from_str::<Allocations>(r#"{"cidr":"10.88.7.1/24","pods":{}}"#).is_err());
}

#[test]
fn interface_names_fit_linux_limits() {
    let c = cidr("10.88.255.0/24");
    assert_eq!(bridge_name(&c), "nvbr-0a58ff00");
    let ip = Ipv4Addr::new(10, 88, 255, 254);
    assert_eq!(host_veth(ip), "nvh0a58fffe");
    for name in [bridge_name(&c), host_veth(ip), peer_veth(ip)] {
        assert!(name.len() <= 15, "{name}");
    }
    assert_eq!(netns_name("u-1"), "navarch-u-1");
}

#[test]
fn automatic_cidrs_skip_routed_networks() {
    let routes = "default via 192.0.2.1 dev eth0\n\
                  10.88.0.0/24 dev nvbr-0a580000 proto kernel scope link src 10.88.0.1\n\
                  10.88.2.5 dev tun0\n\
                  172.17.0.0/16 dev docker0 proto kernel scope link src 172.17.0.1 linkdown\n";
    let routed = routed_networks(routes);
    assert_eq!(routed.len(), 3);
    let free = free_cidrs(&routed);
    assert_eq!(free[0], cidr("10.88.1.0/24"));
    assert_eq!(free[1], cidr("10.88.3.0/24"));
    assert_eq!(free.len(), 254);
    assert!(free_cidrs(&[cidr("10.0.0.0/8")]).is_empty());
}

#[test]
fn forwarding_is_allowed_in_and_out_of_the_bridge() {
    let [inbound, outbound] = forward_rules("nvbr-0a580300");
    assert_eq!(inbound.join(" "), "FORWARD -i nvbr-0a580300 -j ACCEPT");
    assert_eq!(outbound.join(" "), "FORWARD -o nvbr-0a580300 -j ACCEPT");
}

#[test]
fn masquerade_covers_traffic_leaving_the_cidr_only() {
    let rules = masquerade_rules("navarch_0a580300", &cidr("10.88.3.0/24"));
    assert!(rules.contains("table ip navarch_0a580300"));
    assert!(rules.contains("ip saddr 10.88.3.0/24 ip daddr != 10.88.3.0/24 masquerade"));
}
