//! The [`EdgeNetwork`] contract.

use crate::ports::{EdgeNetwork, is_cidr};

/// Runs the suite: the edge publishes at least one range, each an address
/// and a prefix length that fit its family.
pub async fn run(edge: &dyn EdgeNetwork) {
    let ranges = edge.source_ranges().await.expect("source_ranges");
    assert!(!ranges.all().is_empty(), "the edge publishes at least one range");
    for (family, list) in [("IPv4", &ranges.ipv4), ("IPv6", &ranges.ipv6)] {
        for cidr in list {
            assert!(is_cidr(cidr), "{cidr:?} is no address/prefix length");
            let addr = cidr.split_once('/').and_then(|(a, _)| a.parse::<std::net::IpAddr>().ok());
            assert_eq!(addr.map(|a| a.is_ipv4()), Some(family == "IPv4"), "{cidr:?} listed as {family}");
        }
    }
}
