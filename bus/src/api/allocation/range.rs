//! The ranges Services draw their addresses from, and how a free one is picked. Pure.

use std::collections::HashSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 service CIDR (`--service-cluster-ip-range`). Its network and broadcast addresses are never handed out, as
/// in kube-apiserver; the first address after the network is the `kubernetes` Service's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceCidr {
    network: u32,
    prefix: u8,
}

/// Why a service CIDR does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid service CIDR {0:?}: expected an IPv4 network such as 10.96.0.0/16, with a prefix from 8 to 30")]
pub struct CidrError(String);

impl Default for ServiceCidr {
    /// 10.96.0.0/16: kubeadm's default `serviceSubnet`, hence most clusters'.
    fn default() -> Self {
        Self {
            network: u32::from(Ipv4Addr::new(10, 96, 0, 0)),
            prefix: 16,
        }
    }
}

impl FromStr for ServiceCidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, CidrError> {
        let bad = || CidrError(s.to_string());
        let (ip, prefix) = s.split_once('/').ok_or_else(bad)?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        // Wider than /8 would be millions of keys; narrower than /30 leaves no address besides `kubernetes`.
        if !(8..=30).contains(&prefix) {
            return Err(bad());
        }
        let mask = u32::MAX << (32 - prefix);
        let network = u32::from(ip);
        if network & !mask != 0 {
            return Err(bad());
        }
        Ok(Self { network, prefix })
    }
}

impl fmt::Display for ServiceCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.network), self.prefix)
    }
}

impl ServiceCidr {
    fn size(&self) -> u32 {
        1u32 << (32 - self.prefix)
    }

    /// The first address that can be handed out (network + 1): the `kubernetes` Service's.
    pub fn first(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.network + 1)
    }

    fn last(&self) -> u32 {
        self.network + self.size() - 2
    }

    /// Whether `ip` can be handed out (inside the range, neither its network nor its broadcast address).
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let ip = u32::from(ip);
        ip > self.network && ip <= self.last()
    }

    /// A free address, `random` choosing among them, or None when every address is `taken`. Like kube-apiserver
    /// (ServiceIPStaticSubrange), the lower band of the range (1/16 of it, 16 to 256 addresses) is left to explicit
    /// requests while the upper band has room.
    pub fn pick(&self, taken: &HashSet<Ipv4Addr>, random: u64) -> Option<Ipv4Addr> {
        let band = static_band(self.size(), 16, 256, 16);
        let taken: HashSet<u32> = taken.iter().map(|ip| u32::from(*ip)).collect();
        pick(self.network + 1, self.last(), band, &taken, random).map(Ipv4Addr::from)
    }
}

/// A free node port of `range`, `random` choosing among them, or None when every port is `taken`. As kube-apiserver
/// does, the lower band (1/32 of the range, 16 to 128 ports) is left to explicit requests while the upper has room.
pub fn pick_port(
    range: &std::ops::RangeInclusive<i32>,
    taken: &HashSet<i32>,
    random: u64,
) -> Option<i32> {
    let (first, last) = (
        u32::try_from(*range.start()).ok()?,
        u32::try_from(*range.end()).ok()?,
    );
    let band = static_band(last.saturating_sub(first) + 1, 16, 128, 32);
    let taken: HashSet<u32> = taken
        .iter()
        .filter_map(|p| u32::try_from(*p).ok())
        .collect();
    pick(first, last, band, &taken, random).and_then(|p| i32::try_from(p).ok())
}

/// kube-apiserver's `calculateRangeOffset`: the size of the band kept for explicit requests.
fn static_band(size: u32, min: u32, max: u32, step: u32) -> u32 {
    if size < min {
        0
    } else {
        (size / step).clamp(min, max)
    }
}

/// The first value not `taken` from a random start, in `[first + band, last]`, then in `[first, first + band)`.
fn pick(first: u32, last: u32, band: u32, taken: &HashSet<u32>, random: u64) -> Option<u32> {
    let split = first.saturating_add(band).min(last.saturating_add(1));
    for (lo, hi) in [(split, last), (first, split.saturating_sub(1))] {
        if lo > hi || hi < first {
            continue;
        }
        let n = u64::from(hi - lo) + 1;
        let start = random % n;
        for i in 0..n {
            let candidate = lo + u32::try_from((start + i) % n).ok()?;
            if !taken.contains(&candidate) {
                return Some(candidate);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs_parse_and_bound_what_they_hand_out() {
        let cidr: ServiceCidr = "10.96.0.0/16".parse().unwrap();
        assert_eq!(cidr, ServiceCidr::default());
        assert_eq!(cidr.to_string(), "10.96.0.0/16");
        assert_eq!(cidr.first(), ip("10.96.0.1"));
        assert!(cidr.contains(ip("10.96.255.254")));
        assert!(!cidr.contains(ip("10.96.255.255")), "broadcast");
        assert!(!cidr.contains(ip("10.96.0.0")), "network");
        assert!(!cidr.contains(ip("10.97.0.1")));
        for bad in [
            "10.96.0.0",
            "10.96.0.1/16",
            "10.96.0.0/31",
            "10.0.0.0/7",
            "x/16",
        ] {
            assert!(bad.parse::<ServiceCidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn dynamic_addresses_come_from_the_upper_band_until_it_is_full() {
        let cidr: ServiceCidr = "10.0.0.0/24".parse().unwrap();
        // /24: 256 addresses, band 16: .1-.16 kept for explicit requests.
        for random in [0, 7, 1000, u64::MAX] {
            let got = u32::from(cidr.pick(&HashSet::new(), random).unwrap()) & 0xff;
            assert!((17..=254).contains(&got), "{got}");
        }
        let upper: HashSet<Ipv4Addr> = (17..=254).map(|i| Ipv4Addr::new(10, 0, 0, i)).collect();
        let got = cidr.pick(&upper, 3).unwrap();
        assert_eq!(got, ip("10.0.0.4"), "the lower band once the upper is full");
        let mut all = upper;
        all.extend((1..=16).map(|i| Ipv4Addr::new(10, 0, 0, i)));
        assert_eq!(cidr.pick(&all, 3), None);
        all.remove(&ip("10.0.0.200"));
        assert_eq!(cidr.pick(&all, 3), Some(ip("10.0.0.200")));
    }

    #[test]
    fn node_ports_skip_taken_ones_and_run_out() {
        let range = 30000..=32767;
        let band = static_band(2768, 16, 128, 32);
        assert_eq!(band, 86);
        let first = pick_port(&range, &HashSet::new(), 0).unwrap();
        assert_eq!(first, 30086);
        let taken: HashSet<i32> = [30086, 30087].into();
        assert_eq!(pick_port(&range, &taken, 0), Some(30088));
        let small = 30000..=30001;
        let full: HashSet<i32> = [30000, 30001].into();
        assert_eq!(pick_port(&small, &full, 5), None);
        assert_eq!(pick_port(&small, &[30000].into(), 5), Some(30001));
    }
}
