//! The proxy's nftables ruleset, as text for `nft -f -`, from what it routes: a pure function modelled on
//! kube-proxy's nftables mode, so the whole table is replaced in one atomic transaction.
//!
//! Shape (one `ip` table per agent, named by [`table_name`]):
//! - `service-ips` maps `cluster IP . protocol . port` and `service-nodeports` maps `protocol . node port` (on any
//!   local address but loopback) to a per-port chain; `services` looks both up from `prerouting` (pods, other hosts)
//!   and `output` (the host's own processes), both nat chains at dstnat priority;
//! - each per-port chain `svc-…` picks an endpoint with `numgen random mod N` and jumps to its `ep-…` chain, which
//!   DNATs to it; node-port traffic first passes `ext-…`, which marks it for masquerade (the endpoint may answer
//!   through another path than the one the client used);
//! - a connection from an endpoint to itself through its Service (hairpin) is marked for masquerade, and so is any
//!   DNATed connection that enters and leaves this agent's pod bridge (a pod reaching another pod on the same bridge
//!   through a Service): without it the answer would go straight back over the bridge, never un-NATed, unless the
//!   host has `br_netfilter`; `postrouting` masquerades what is marked;
//! - `no-endpoint-services` and `no-endpoint-nodeports` list ports with no ready endpoint: new connections to them are
//!   rejected (TCP reset, else ICMP port unreachable) from filter chains at priority -110, before any DNAT, as
//!   kube-proxy does, so clients fail at once instead of timing out.

use std::fmt::Write as _;

use super::model::ProxiedPort;

/// The packet mark bit meaning "masquerade this connection" (kube-proxy's `0x4000`).
pub const MASQUERADE_MARK: u32 = 0x4000;

/// The prefix of every proxy table's name (see [`table_name`]).
pub const TABLE_PREFIX: &str = "navarch_proxy_";

/// Where the ruleset applies: this agent's table and pod bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The nftables table (see [`table_name`]).
    pub table: String,
    /// The node's pod bridge (same-bridge connections through a Service are masqueraded).
    pub bridge: String,
    /// The table's comment: who owns it (the agent's pid goes there, so a later agent can tell a table left by a
    /// killed one; see [`owner_pid`]).
    pub comment: String,
}

/// The table of node `node`'s proxy. One table per agent: several agents on one host (tests run two or three) each
/// keep their own and never rewrite another's.
pub fn table_name(node: &str) -> String {
    format!("{TABLE_PREFIX}{node}")
}

/// The comment naming the agent process that owns a table.
pub fn owner_comment(node: &str, pid: u32) -> String {
    format!("navarch service proxy of node {node}, agent pid {pid}")
}

/// The owner's pid from a table's listing (`nft list table ...`), as [`owner_comment`] wrote it.
pub fn owner_pid(listing: &str) -> Option<u32> {
    let (_, after) = listing.split_once("agent pid ")?;
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The chain of one Service port: `<prefix>-<namespace>/<service>/<protocol>/<port>` (namespace and name are DNS
/// labels, so the name is an nft identifier and unique).
fn port_chain(prefix: &str, p: &ProxiedPort) -> String {
    format!(
        "{prefix}-{}/{}/{}/{}",
        p.namespace,
        p.service,
        p.protocol.nft(),
        p.port
    )
}

fn endpoint_chain(p: &ProxiedPort, ip: std::net::Ipv4Addr, port: u16) -> String {
    format!("{}/{ip}/{port}", port_chain("ep", p))
}

/// The commands that replace `scope.table` with the rules for `ports` in one transaction (the first line creates
/// the table if it is missing, so that the delete never fails).
pub fn ruleset(scope: &Scope, ports: &[ProxiedPort]) -> String {
    let mut ports: Vec<&ProxiedPort> = ports.iter().collect();
    ports.sort();
    ports.dedup_by(|a, b| (a.cluster_ip, a.protocol, a.port) == (b.cluster_ip, b.protocol, b.port));
    let table = &scope.table;
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(
        w,
        "table ip {table}\ndelete table ip {table}\ntable ip {table} {{"
    );
    let _ = writeln!(w, "  comment \"{}\"", scope.comment.replace('"', "'"));

    let served = |p: &&&ProxiedPort| !p.endpoints.is_empty();
    let service_ips: Vec<String> = ports
        .iter()
        .filter(served)
        .map(|p| {
            format!(
                "{} . {} . {} : goto {}",
                p.cluster_ip,
                p.protocol.nft(),
                p.port,
                port_chain("svc", p)
            )
        })
        .collect();
    let node_ports: Vec<String> = ports
        .iter()
        .filter(served)
        .filter_map(|p| {
            let node_port = p.node_port?;
            Some(format!(
                "{} . {node_port} : goto {}",
                p.protocol.nft(),
                port_chain("ext", p)
            ))
        })
        .collect();
    let no_endpoints: Vec<String> = ports
        .iter()
        .filter(|p| p.endpoints.is_empty())
        .map(|p| format!("{} . {} . {}", p.cluster_ip, p.protocol.nft(), p.port))
        .collect();
    let no_endpoint_node_ports: Vec<String> = ports
        .iter()
        .filter(|p| p.endpoints.is_empty())
        .filter_map(|p| Some(format!("{} . {}", p.protocol.nft(), p.node_port?)))
        .collect();
    collection(
        w,
        "map service-ips",
        "ipv4_addr . inet_proto . inet_service : verdict",
        &service_ips,
    );
    collection(
        w,
        "map service-nodeports",
        "inet_proto . inet_service : verdict",
        &node_ports,
    );
    collection(
        w,
        "set no-endpoint-services",
        "ipv4_addr . inet_proto . inet_service",
        &no_endpoints,
    );
    collection(
        w,
        "set no-endpoint-nodeports",
        "inet_proto . inet_service",
        &no_endpoint_node_ports,
    );

    let bridge = &scope.bridge;
    let mark = MASQUERADE_MARK;
    let local = "fib daddr type local ip daddr != 127.0.0.0/8";
    chain(
        w,
        "prerouting",
        &[
            "type nat hook prerouting priority -100; policy accept;",
            "jump services",
        ],
    );
    chain(
        w,
        "output",
        &[
            "type nat hook output priority -100; policy accept;",
            "jump services",
        ],
    );
    chain(
        w,
        "postrouting",
        &[
            "type nat hook postrouting priority 100; policy accept;",
            &format!(
                "meta mark & {mark:#x} == {mark:#x} meta mark set meta mark ^ {mark:#x} masquerade"
            ),
            &format!("ct status dnat iifname \"{bridge}\" oifname \"{bridge}\" masquerade"),
        ],
    );
    for hook in ["input", "forward", "output"] {
        chain(
            w,
            &format!("filter-{hook}"),
            &[
                &format!("type filter hook {hook} priority -110; policy accept;"),
                "ct state new jump endpoints-check",
            ],
        );
    }
    chain(
        w,
        "endpoints-check",
        &[
            "ip daddr . meta l4proto . th dport @no-endpoint-services goto reject-no-endpoints",
            &format!(
                "{local} meta l4proto . th dport @no-endpoint-nodeports goto reject-no-endpoints"
            ),
        ],
    );
    chain(
        w,
        "reject-no-endpoints",
        &["meta l4proto tcp reject with tcp reset", "reject"],
    );
    chain(
        w,
        "services",
        &[
            "ip daddr . meta l4proto . th dport vmap @service-ips",
            &format!("{local} meta l4proto . th dport vmap @service-nodeports"),
        ],
    );
    chain(
        w,
        "mark-for-masquerade",
        &[&format!("meta mark set meta mark | {mark:#x}")],
    );

    for p in ports.iter().filter(served) {
        let svc = port_chain("svc", p);
        if p.node_port.is_some() {
            chain(
                w,
                &port_chain("ext", p),
                &["jump mark-for-masquerade", &format!("goto {svc}")],
            );
        }
        let picks: Vec<String> = p
            .endpoints
            .iter()
            .enumerate()
            .map(|(i, (ip, port))| format!("{i} : goto {}", endpoint_chain(p, *ip, *port)))
            .collect();
        let pick = format!(
            "numgen random mod {} vmap {{ {} }}",
            picks.len(),
            picks.join(", ")
        );
        chain(w, &svc, &[&pick]);
        for (ip, port) in &p.endpoints {
            chain(
                w,
                &endpoint_chain(p, *ip, *port),
                &[
                    &format!("ip saddr {ip} jump mark-for-masquerade"),
                    &format!("meta l4proto {} dnat to {ip}:{port}", p.protocol.nft()),
                ],
            );
        }
    }
    out.push_str("}\n");
    out
}

/// The commands that remove the table (agent shutdown).
pub fn removal(table: &str) -> String {
    format!("table ip {table}\ndelete table ip {table}\n")
}

fn collection(w: &mut String, head: &str, type_: &str, elements: &[String]) {
    let _ = writeln!(w, "  {head} {{\n    type {type_}");
    if !elements.is_empty() {
        let _ = writeln!(w, "    elements = {{ {} }}", elements.join(", "));
    }
    w.push_str("  }\n");
}

fn chain(w: &mut String, name: &str, lines: &[&str]) {
    let _ = writeln!(w, "  chain {name} {{");
    for line in lines {
        let _ = writeln!(w, "    {line}");
    }
    w.push_str("  }\n");
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
