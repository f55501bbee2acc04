//! Pod networking for the process runtime: a bridge per node, a named network namespace per pod joined to it by a
//! veth pair, pod IPs allocated from the node's pod CIDR and kept on disk, and a masquerade rule for egress.
//!
//! The decisions (CIDR arithmetic, which IP a pod gets, interface names, which CIDR is free) are pure functions;
//! [`NodeNetwork`] carries them out with `ip` (iproute2) and `nft`, which must be on the host and run as root.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

/// The file in the agent's data dir that keeps the node's pod CIDR and which pod has which IP, so that an agent
/// restart neither reuses a live pod's IP nor forgets its bridge.
pub const STATE_FILE: &str = "pod-network.json";

/// Where `ip netns add` puts named namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// Why pod networking failed.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// A CIDR that does not parse or is unusable. Not retryable.
    #[error("bad pod CIDR {0:?}: expected an IPv4 network such as 10.88.0.0/24 (prefix 8 to 29)")]
    BadCidr(String),
    /// Every candidate CIDR is in use on this host. Not retryable until one is freed.
    #[error("no free pod CIDR: every 10.88.N.0/24 overlaps a route or another agent's bridge")]
    NoFreeCidr,
    /// Every address of the CIDR is taken. Retryable once a pod goes.
    #[error("pod CIDR {0} has no free address left")]
    Exhausted(Cidr),
    /// A tool (`ip`, `nft`) failed. Usually not retryable without a fix on the host.
    #[error("`{command}` failed: {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// What it said.
        stderr: String,
    },
    /// A file could not be read or written. Retryable once the disk is fixed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was tried.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// An IPv4 network: its first address and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cidr {
    network: Ipv4Addr,
    prefix: u8,
}

impl Cidr {
    /// The network `network/prefix`; None unless the prefix leaves room for a gateway and a pod (8 to 29) and the
    /// host bits of `network` are zero.
    pub fn new(network: Ipv4Addr, prefix: u8) -> Option<Self> {
        if !(8..=29).contains(&prefix) || u32::from(network) & !mask(prefix) != 0 {
            return None;
        }
        Some(Self { network, prefix })
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The first address after the network's: the bridge's, and every pod's default gateway.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }

    /// Whether `ip` lies in the network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == u32::from(self.network)
    }

    /// Whether the two networks share an address.
    pub fn overlaps(&self, other: &Cidr) -> bool {
        let shorter = self.prefix.min(other.prefix);
        u32::from(self.network) & mask(shorter) == u32::from(other.network) & mask(shorter)
    }

    /// The addresses pods may get: all but the network, the gateway and the broadcast address.
    fn pod_addresses(&self) -> impl Iterator<Item = Ipv4Addr> {
        let first = u32::from(self.network) + 2;
        let broadcast = u32::from(self.network) | !mask(self.prefix);
        (first..broadcast).map(Ipv4Addr::from)
    }
}

fn mask(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = NetworkError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || NetworkError::BadCidr(s.to_string());
        let (ip, prefix) = s.trim().split_once('/').ok_or_else(bad)?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        Cidr::new(ip, prefix).ok_or_else(bad)
    }
}

impl TryFrom<String> for Cidr {
    type Error = NetworkError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Cidr> for String {
    fn from(c: Cidr) -> Self {
        c.to_string()
    }
}

/// Which pod CIDR a node uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodCidr {
    /// This one.
    Fixed(Cidr),
    /// The one this agent used before (kept in its data dir), else the first `10.88.N.0/24` that overlaps no route
    /// of the host and no other agent's bridge (what `navarch up` asks for as root).
    Auto,
}

impl FromStr for PodCidr {
    type Err = NetworkError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "auto" {
            Ok(PodCidr::Auto)
        } else {
            s.parse().map(PodCidr::Fixed)
        }
    }
}

/// The node's pod CIDR and which pod (by uid) holds which address; what [`STATE_FILE`] holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocations {
    /// The node's pod CIDR.
    pub cidr: Cidr,
    /// Pod uid to its address.
    pub pods: BTreeMap<String, Ipv4Addr>,
}

impl Allocations {
    /// No pod has an address yet.
    pub fn new(cidr: Cidr) -> Self {
        Self {
            cidr,
            pods: BTreeMap::new(),
        }
    }

    /// The pod's address: the one it holds, else the lowest free one (so the choice is deterministic); None when
    /// the CIDR is full.
    pub fn allocate(&mut self, pod_uid: &str) -> Option<Ipv4Addr> {
        if let Some(ip) = self.pods.get(pod_uid) {
            return Some(*ip);
        }
        let taken: std::collections::BTreeSet<Ipv4Addr> = self.pods.values().copied().collect();
        let ip = self.cidr.pod_addresses().find(|ip| !taken.contains(ip))?;
        self.pods.insert(pod_uid.to_string(), ip);
        Some(ip)
    }

    /// Frees the pod's address.
    pub fn release(&mut self, pod_uid: &str) -> Option<Ipv4Addr> {
        self.pods.remove(pod_uid)
    }
}

/// The node bridge's name for `cidr`: `nvbr-` and the network address in hex (13 characters; Linux allows 15), so
/// that agents with different CIDRs on one host never share a bridge.
pub fn bridge_name(cidr: &Cidr) -> String {
    format!("nvbr-{:08x}", u32::from(cidr.network))
}

/// The host end of the veth pair of the pod holding `ip` (unique while the pod holds it).
pub fn host_veth(ip: Ipv4Addr) -> String {
    format!("nvh{:08x}", u32::from(ip))
}

/// The pod end's name until it is moved into the pod's namespace and renamed `eth0`.
fn peer_veth(ip: Ipv4Addr) -> String {
    format!("nvp{:08x}", u32::from(ip))
}

/// The name of the pod's network namespace (`/run/netns/<name>`).
pub fn netns_name(pod_uid: &str) -> String {
    format!("navarch-{pod_uid}")
}

/// The IPv4 networks the host routes to, from `ip -4 route show` (the first word of each line; `default` is
/// skipped, a lone address is a /32).
pub fn routed_networks(routes: &str) -> Vec<Cidr> {
    routes
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter_map(|dest| {
            let (ip, prefix) = dest.split_once('/').unwrap_or((dest, "32"));
            let ip: Ipv4Addr = ip.parse().ok()?;
            let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32)?;
            Some(Cidr {
                network: Ipv4Addr::from(u32::from(ip) & mask(prefix)),
                prefix,
            })
        })
        .collect()
}

/// The candidates for [`PodCidr::Auto`], in order: each `10.88.N.0/24` that overlaps none of `routed` (which
/// includes other agents' bridges, as each bridge's address adds a route).
pub fn free_cidrs(routed: &[Cidr]) -> Vec<Cidr> {
    (0..=255u8)
        .filter_map(|n| Cidr::new(Ipv4Addr::new(10, 88, n, 0), 24))
        .filter(|c| !routed.iter().any(|r| r.overlaps(c)))
        .collect()
}

/// The `iptables` rules (after `-C`, `-I` or `-D`) letting the pods' traffic through the host's `filter FORWARD`
/// chain: where that chain drops by default (Docker sets it so, and with `br_netfilter` even traffic between two
/// ports of one bridge passes it), pods could otherwise reach neither each other nor the world. An accept in a
/// table of our own would not help: a drop in any chain of the hook is final.
pub fn forward_rules(bridge: &str) -> [[String; 5]; 2] {
    let rule = |dir: &str| {
        [
            "FORWARD".to_string(),
            dir.to_string(),
            bridge.to_string(),
            "-j".to_string(),
            "ACCEPT".to_string(),
        ]
    };
    [rule("-i"), rule("-o")]
}

/// The nftables table masquerading the pods' traffic leaving the CIDR (so pods reach beyond the node).
pub fn masquerade_rules(table: &str, cidr: &Cidr) -> String {
    format!(
        "table ip {table} {{\n  chain postrouting {{\n    type nat hook postrouting priority srcnat; policy accept;\n    \
         ip saddr {cidr} ip daddr != {cidr} masquerade\n  }}\n}}\n"
    )
}

/// The node's pod network: its bridge, the pods' namespaces and addresses. Every change goes through `ip` and
/// `nft`; the allocations are written to [`STATE_FILE`] before a pod's network is built.
#[derive(Debug)]
pub struct NodeNetwork {
    ip: PathBuf,
    state_file: PathBuf,
    bridge: String,
    table: String,
    allocations: Mutex<Allocations>,
    /// Serializes the `ip` commands of pod set-ups and tear-downs.
    busy: tokio::sync::Mutex<()>,
}

impl NodeNetwork {
    /// Sets up the node's bridge (re-using it if it is there), IP forwarding and the masquerade rule, and reads
    /// the pods' addresses kept in `data_dir`.
    pub async fn setup(data_dir: &Path, cidr: PodCidr) -> Result<Self, NetworkError> {
        let ip = find_tool("ip").ok_or_else(|| NetworkError::Command {
            command: "ip".into(),
            stderr: "iproute2's `ip` is not installed (looked in /usr/sbin, /sbin, /usr/bin, /bin)"
                .into(),
        })?;
        let state_file = data_dir.join(STATE_FILE);
        let kept = read_state(&state_file)?;
        let cidr = match (cidr, &kept) {
            (PodCidr::Fixed(c), _) => c,
            (PodCidr::Auto, Some(kept)) => kept.cidr,
            (PodCidr::Auto, None) => claim_cidr(&ip).await?,
        };
        let allocations = match kept {
            Some(kept) if kept.cidr == cidr => kept,
            _ => Allocations::new(cidr),
        };
        let bridge = bridge_name(&cidr);
        if !link_exists(&bridge) {
            run_ignoring(
                &ip,
                &["link", "add", &bridge, "type", "bridge"],
                "File exists",
            )
            .await?;
        }
        let address = format!("{}/{}", cidr.gateway(), cidr.prefix);
        // Already there when an earlier agent was killed rather than stopped (its pods may still run on it); newer
        // kernels say "Address already assigned" rather than "File exists".
        match run(&ip, &["addr", "add", &address, "dev", &bridge]).await {
            Err(NetworkError::Command { stderr, .. })
                if stderr.contains("File exists") || stderr.contains("already assigned") => {}
            other => other?,
        }
        run(&ip, &["link", "set", &bridge, "up"]).await?;
        let table = format!("navarch_{:08x}", u32::from(cidr.network));
        enable_egress(&table, &cidr).await;
        allow_forwarding(&bridge).await;
        let network = Self {
            ip,
            state_file,
            bridge,
            table,
            allocations: Mutex::new(allocations),
            busy: tokio::sync::Mutex::new(()),
        };
        network.save()?;
        tracing::info!(%cidr, bridge = %network.bridge, "pod network ready");
        Ok(network)
    }

    /// The node's pod CIDR.
    pub fn cidr(&self) -> Cidr {
        self.allocations().cidr
    }

    /// The `ip` binary.
    pub fn ip_tool(&self) -> &Path {
        &self.ip
    }

    /// The pod's address, if it has one.
    pub fn ip_of(&self, pod_uid: &str) -> Option<Ipv4Addr> {
        self.allocations().pods.get(pod_uid).copied()
    }

    fn allocations(&self) -> MutexGuard<'_, Allocations> {
        self.allocations.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn save(&self) -> Result<(), NetworkError> {
        let body =
            serde_json::to_vec_pretty(&*self.allocations()).map_err(|e| NetworkError::Io {
                action: "encode",
                path: self.state_file.clone(),
                source: std::io::Error::other(e),
            })?;
        let tmp = self.state_file.with_extension("json.tmp");
        let io = |action, source| NetworkError::Io {
            action,
            path: self.state_file.clone(),
            source,
        };
        std::fs::write(&tmp, body).map_err(|e| io("write", e))?;
        std::fs::rename(&tmp, &self.state_file).map_err(|e| io("replace", e))
    }

    /// Gives the pod an address and builds its namespace: `eth0` (one end of a veth pair whose other end is on the
    /// bridge) with the address, `lo` up, a default route via the bridge. A namespace left from an earlier run of
    /// the agent is rebuilt with the pod's kept address.
    pub async fn prepare(&self, pod_uid: &str) -> Result<Ipv4Addr, NetworkError> {
        let _busy = self.busy.lock().await;
        let (ip, cidr) = {
            let mut allocations = self.allocations();
            let cidr = allocations.cidr;
            (
                allocations
                    .allocate(pod_uid)
                    .ok_or(NetworkError::Exhausted(cidr))?,
                cidr,
            )
        };
        if let Err(e) = self.save() {
            self.allocations().release(pod_uid);
            return Err(e);
        }
        self.remove_namespace(pod_uid, ip).await;
        if let Err(e) = self.build_namespace(pod_uid, ip, &cidr).await {
            self.remove_namespace(pod_uid, ip).await;
            self.allocations().release(pod_uid);
            let _ = self.save();
            return Err(e);
        }
        Ok(ip)
    }

    async fn build_namespace(
        &self,
        pod_uid: &str,
        ip: Ipv4Addr,
        cidr: &Cidr,
    ) -> Result<(), NetworkError> {
        let (ns, host, peer) = (netns_name(pod_uid), host_veth(ip), peer_veth(ip));
        let tool = &self.ip;
        let address = format!("{ip}/{}", cidr.prefix);
        let gateway = cidr.gateway().to_string();
        run(tool, &["netns", "add", &ns]).await?;
        run(
            tool,
            &["link", "add", &host, "type", "veth", "peer", "name", &peer],
        )
        .await?;
        run(tool, &["link", "set", &peer, "netns", &ns]).await?;
        run(tool, &["link", "set", &host, "master", &self.bridge, "up"]).await?;
        // A pod reaching itself through a Service's cluster IP (hairpin): with `br_netfilter` the DNATed frame is
        // bridged back out of the port it came in by, which a bridge refuses unless the port allows it (the
        // kubelet's `--hairpin-mode=hairpin-veth` does the same).
        run(
            tool,
            &[
                "link",
                "set",
                &host,
                "type",
                "bridge_slave",
                "hairpin",
                "on",
            ],
        )
        .await?;
        run(tool, &["-n", &ns, "link", "set", &peer, "name", "eth0"]).await?;
        run(tool, &["-n", &ns, "addr", "add", &address, "dev", "eth0"]).await?;
        run(tool, &["-n", &ns, "link", "set", "eth0", "up"]).await?;
        run(tool, &["-n", &ns, "link", "set", "lo", "up"]).await?;
        run(
            tool,
            &["-n", &ns, "route", "add", "default", "via", &gateway],
        )
        .await
    }

    /// Deletes the pod's namespace (its veth pair goes with it) and frees its address.
    pub async fn release(&self, pod_uid: &str) {
        let _busy = self.busy.lock().await;
        let Some(ip) = self.ip_of(pod_uid) else {
            return;
        };
        self.remove_namespace(pod_uid, ip).await;
        self.allocations().release(pod_uid);
        if let Err(e) = self.save() {
            tracing::warn!(error = %e, "cannot record a freed pod address");
        }
    }

    async fn remove_namespace(&self, pod_uid: &str, ip: Ipv4Addr) {
        let ns = netns_name(pod_uid);
        if Path::new(NETNS_DIR).join(&ns).exists() {
            if let Err(e) = run(&self.ip, &["netns", "del", &ns]).await {
                tracing::warn!(netns = %ns, error = %e, "cannot delete pod network namespace");
            }
        }
        // Gone with the namespace unless the pair was never moved into it.
        let host = host_veth(ip);
        if link_exists(&host) {
            let _ = run(&self.ip, &["link", "del", &host]).await;
        }
    }

    /// Tears everything down: every pod's namespace, the bridge, the masquerade rule and the state file (agent
    /// shutdown: no pod of this node runs any more).
    pub async fn teardown(&self) {
        let pods: Vec<String> = self.allocations().pods.keys().cloned().collect();
        for uid in pods {
            self.release(&uid).await;
        }
        let _busy = self.busy.lock().await;
        if link_exists(&self.bridge) {
            if let Err(e) = run(&self.ip, &["link", "del", &self.bridge]).await {
                tracing::warn!(bridge = %self.bridge, error = %e, "cannot delete the pod bridge");
            }
        }
        if let Some(nft) = find_tool("nft") {
            let _ = run(&nft, &["delete", "table", "ip", &self.table]).await;
        }
        if let Some(iptables) = find_tool("iptables") {
            for rule in forward_rules(&self.bridge) {
                let mut args = vec!["-D"];
                args.extend(rule.iter().map(String::as_str));
                while run(&iptables, &args).await.is_ok() {}
            }
        }
        if let Err(e) = std::fs::remove_file(&self.state_file) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(error = %e, "cannot remove the pod network state file");
            }
        }
        tracing::info!(bridge = %self.bridge, "pod network torn down");
    }
}

/// Claims the first free `10.88.N.0/24` by creating its bridge: `ip link add` fails for a bridge another agent
/// just created, so two agents starting at once never get the same CIDR.
async fn claim_cidr(ip: &Path) -> Result<Cidr, NetworkError> {
    let routes = output(ip, &["-4", "route", "show"]).await?;
    for cidr in free_cidrs(&routed_networks(&routes)) {
        match run(ip, &["link", "add", &bridge_name(&cidr), "type", "bridge"]).await {
            Ok(()) => return Ok(cidr),
            Err(NetworkError::Command { stderr, .. }) if stderr.contains("File exists") => {}
            Err(e) => return Err(e),
        }
    }
    Err(NetworkError::NoFreeCidr)
}

/// IP forwarding and masquerading for the CIDR, so pods reach beyond the node. Best effort: without them pods
/// still reach each other and the node.
async fn enable_egress(table: &str, cidr: &Cidr) {
    if let Err(e) = std::fs::write("/proc/sys/net/ipv4/ip_forward", "1") {
        tracing::warn!(error = %e, "cannot enable IP forwarding; pods reach only this node");
    }
    let Some(nft) = find_tool("nft") else {
        tracing::warn!("nft is not installed; pod traffic leaving the node is not masqueraded");
        return;
    };
    let _ = run(&nft, &["delete", "table", "ip", table]).await;
    let rules = masquerade_rules(table, cidr);
    let mut command = tokio::process::Command::new(&nft);
    command
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let result = async {
        let mut child = command.spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            use tokio::io::AsyncWriteExt;
            stdin.write_all(rules.as_bytes()).await?;
        }
        child.wait_with_output().await
    }
    .await;
    match result {
        Ok(out) if out.status.success() => {}
        Ok(out) => tracing::warn!(
            stderr = %String::from_utf8_lossy(&out.stderr).trim(),
            "cannot add the masquerade rule; pod traffic leaving the node is not masqueraded"
        ),
        Err(e) => tracing::warn!(error = %e, "cannot run nft"),
    }
}

/// Adds [`forward_rules`] unless they are there. Best effort: a host without `iptables` has no such chain to pass.
async fn allow_forwarding(bridge: &str) {
    let Some(iptables) = find_tool("iptables") else {
        return;
    };
    for rule in forward_rules(bridge) {
        let rule: Vec<&str> = rule.iter().map(String::as_str).collect();
        let check: Vec<&str> = ["-C"].into_iter().chain(rule.iter().copied()).collect();
        if run(&iptables, &check).await.is_ok() {
            continue;
        }
        let insert: Vec<&str> = ["-I"].into_iter().chain(rule.iter().copied()).collect();
        if let Err(e) = run(&iptables, &insert).await {
            tracing::warn!(error = %e, "cannot let pod traffic through the FORWARD chain; pods may not reach each other");
        }
    }
}

fn read_state(path: &Path) -> Result<Option<Allocations>, NetworkError> {
    match std::fs::read(path) {
        Ok(body) => match serde_json::from_slice(&body) {
            Ok(state) => Ok(Some(state)),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "unreadable pod network state; starting afresh");
                Ok(None)
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(NetworkError::Io {
            action: "read",
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Where a system tool is, looked up in the usual directories (the agent's own PATH may lack the sbin ones).
pub fn find_tool(name: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin", "/usr/local/sbin"]
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file())
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

async fn output(tool: &Path, args: &[&str]) -> Result<String, NetworkError> {
    let command_line = || format!("{} {}", tool.display(), args.join(" "));
    let out = tokio::process::Command::new(tool)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| NetworkError::Command {
            command: command_line(),
            stderr: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(NetworkError::Command {
            command: command_line(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

async fn run(tool: &Path, args: &[&str]) -> Result<(), NetworkError> {
    output(tool, args).await.map(|_| ())
}

/// Runs the command; an error whose message holds `harmless` (e.g. "File exists") counts as success.
async fn run_ignoring(tool: &Path, args: &[&str], harmless: &str) -> Result<(), NetworkError> {
    match run(tool, args).await {
        Err(NetworkError::Command { stderr, .. }) if stderr.contains(harmless) => Ok(()),
        other => other,
    }
}

#[cfg(test)]
#[path = "netns_tests.rs"]
mod tests;
