//! The [`EdgeNetwork`] contract.

use crate::ports::EdgeNetwork;

/// Runs the suite: the edge publishes at least one range, each an address
/// and a prefix length that fit its family.
pub async fn run(edge: &dyn EdgeNetwork) {
    let ranges = edge.source_ranges().await.expect("source_ranges");
    assert!(!ranges.all().is_empty(), "the edge publishes at least one range");
    for (family, list, max) in [("IPv4", &ranges.ipv4, 32u8), ("IPv6", &ranges.ipv6, 128u8)] {
        for cidr in list {
            let (addr, len) = cidr.split_once('/').unwrap_or_else(|| panic!("{cidr:?} has no prefix length"));
            let addr: std::net::IpAddr = addr.parse().unwrap_or_else(|_| panic!("{cidr:?} is no address"));
            assert_eq!(addr.is_ipv4(), family == "IPv4", "{cidr:?} listed as {family}");
            let len: u8 = len.parse().unwrap_or_else(|_| panic!("{cidr:?} has no prefix length"));
            assert!(len <= max, "{cidr:?}: prefix longer than {max}");
        }
    }
}
