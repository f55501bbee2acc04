//! Facts about the host a node agent runs on (CPUs, memory, kernel, OS, IP), read once at start. Reading never
//! fails: a fact that cannot be read gets a neutral value. The parsers are pure.

use std::net::{IpAddr, Ipv4Addr, UdpSocket};

/// What the node reports about its host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    /// The host name, lowercased.
    pub hostname: String,
    /// `uname -r`.
    pub kernel_version: String,
    /// `PRETTY_NAME` of `/etc/os-release`.
    pub os_image: String,
    /// `/etc/machine-id`.
    pub machine_id: String,
    /// `/proc/sys/kernel/random/boot_id`.
    pub boot_id: String,
    /// Architecture in Kubernetes' spelling (`amd64`, `arm64`).
    pub architecture: String,
    /// Logical CPUs.
    pub cpus: u64,
    /// Total memory in bytes.
    pub memory_bytes: u64,
    /// The node's address.
    pub ip: IpAddr,
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

impl HostFacts {
    /// Reads the facts of this host; `ip` overrides the detected address.
    pub fn read(ip: Option<IpAddr>) -> Self {
        Self {
            hostname: hostname(),
            kernel_version: read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_default(),
            os_image: std::fs::read_to_string("/etc/os-release")
                .ok()
                .and_then(|t| parse_os_release(&t))
                .unwrap_or_else(|| "Linux".into()),
            machine_id: read_trimmed("/etc/machine-id").unwrap_or_default(),
            boot_id: read_trimmed("/proc/sys/kernel/random/boot_id").unwrap_or_default(),
            architecture: kube_arch(std::env::consts::ARCH).to_string(),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
            memory_bytes: std::fs::read_to_string("/proc/meminfo")
                .ok()
                .and_then(|t| parse_meminfo(&t))
                .unwrap_or(0),
            ip: ip.unwrap_or_else(detect_ip),
        }
    }
}

/// The host name, lowercased (node names are lowercase), or `localhost` if it cannot be read.
pub fn hostname() -> String {
    read_trimmed("/proc/sys/kernel/hostname")
        .map(|h| h.to_lowercase())
        .unwrap_or_else(|| "localhost".into())
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
pub fn parse_meminfo(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut parts = line.split_whitespace().skip(1);
    let value: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") => value.checked_mul(1024),
        None => Some(value),
        Some(_) => None,
    }
}

/// `PRETTY_NAME` of an os-release file.
pub fn parse_os_release(text: &str) -> Option<String> {
    let value = text
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))?
        .trim();
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    (!value.is_empty()).then(|| value.to_string())
}

/// Rust's architecture name in Kubernetes' (GOARCH) spelling.
pub fn kube_arch(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// The address of the interface the default route leaves by (a UDP "connect" sends nothing); 127.0.0.1 when
/// there is no route.
fn detect_ip() -> IpAddr {
    let local = || -> std::io::Result<IpAddr> {
        let socket = UdpSocket::bind("0.0.0.0:0")?;
        socket.connect("192.0.2.1:9")?; // TEST-NET-1: routable, never answered
        Ok(socket.local_addr()?.ip())
    };
    local()
        .ok()
        .filter(|ip| !ip.is_unspecified())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_meminfo_and_os_release() {
        let meminfo = "MemTotal:       24576000 kB\nMemFree:        1000 kB\n";
        assert_eq!(parse_meminfo(meminfo), Some(24_576_000 * 1024));
        assert_eq!(parse_meminfo("garbage"), None);
        assert_eq!(parse_meminfo("MemTotal: lots kB"), None);
        let os = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n";
        assert_eq!(
            parse_os_release(os).as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        assert_eq!(
            parse_os_release("PRETTY_NAME=Alpine").as_deref(),
            Some("Alpine")
        );
        assert_eq!(parse_os_release(""), None);
    }

    #[test]
    fn architectures_use_kubernetes_names() {
        assert_eq!(kube_arch("x86_64"), "amd64");
        assert_eq!(kube_arch("aarch64"), "arm64");
        assert_eq!(kube_arch("riscv64"), "riscv64");
    }

    #[test]
    fn reading_this_host_gives_plausible_facts() {
        let facts = HostFacts::read(None);
        assert!(facts.cpus >= 1);
        assert!(facts.memory_bytes > 0);
        assert!(!facts.hostname.is_empty());
        let fixed = HostFacts::read(Some("10.1.2.3".parse().unwrap()));
        assert_eq!(fixed.ip.to_string(), "10.1.2.3");
    }
}
