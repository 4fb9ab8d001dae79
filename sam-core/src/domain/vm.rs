//! VM sizes and how they map onto a provider's live catalogue of server types.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{LocationCode, ValidationError};

/// The size a user picks. Providers map it to one of their server types with
/// [`choose_server_type`], from the live list, so retired type names never
/// break provisioning.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VmSize {
    /// At least 2 cores and 4 GB memory.
    Small,
    /// At least 4 cores and 8 GB memory.
    Medium,
    /// At least 8 cores and 16 GB memory.
    Large,
}

impl VmSize {
    /// Every size, smallest first.
    pub const ALL: [VmSize; 3] = [VmSize::Small, VmSize::Medium, VmSize::Large];

    /// The wire name (`small`, `medium`, `large`).
    pub const fn as_str(self) -> &'static str {
        match self {
            VmSize::Small => "small",
            VmSize::Medium => "medium",
            VmSize::Large => "large",
        }
    }

    /// Minimum (cores, memory in GB) a server type needs to count as this size.
    pub const fn minimum(self) -> (u32, f64) {
        match self {
            VmSize::Small => (2, 4.0),
            VmSize::Medium => (4, 8.0),
            VmSize::Large => (8, 16.0),
        }
    }
}

impl fmt::Display for VmSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for VmSize {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "small" => Ok(VmSize::Small),
            "medium" => Ok(VmSize::Medium),
            "large" => Ok(VmSize::Large),
            _ => Err(ValidationError::new("vmSize", "must be small, medium or large")),
        }
    }
}

/// One server type as a provider offers it (Hetzner: an entry of `/server_types`).
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerTypeOffer {
    /// Provider's name of the type, e.g. `cx23`.
    pub name: String,
    /// Virtual cores.
    pub cores: u32,
    /// Memory in GB.
    pub memory_gb: f64,
    /// Disk in GB.
    pub disk_gb: u32,
    /// CPU architecture (`x86` or `arm`); the agent binary must match.
    pub architecture: String,
    /// Whether the provider announced the type's retirement.
    pub deprecated: bool,
    /// Prices in the locations where the type is offered.
    pub prices: Vec<LocationPrice>,
}

/// The price of a server type in one location.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocationPrice {
    /// Location code.
    pub location: String,
    /// Gross price per hour, in the currency of the account (Hetzner: EUR), as text
    /// to keep the provider's precision.
    pub hourly: String,
    /// Gross price per month.
    pub monthly: String,
}

/// A location a provider offers.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Location {
    /// Code such as `fsn1`.
    pub code: LocationCode,
    /// Human description, e.g. "Falkenstein DC Park 1".
    pub description: String,
    /// Country code, e.g. `DE`.
    pub country: String,
    /// City.
    pub city: String,
}

/// CPU architectures of server types, as Hetzner names them.
pub mod arch {
    /// x86-64 (the agent's `amd64` build).
    pub const X86: &str = "x86";
    /// 64-bit Arm (the agent's `arm64` build; Hetzner's CAX types).
    pub const ARM: &str = "arm";
    /// x86 only: where no arm64 agent is served.
    pub const X86_ONLY: &[&str] = &[X86];
    /// Either: the cheaper wins, x86 on a tie.
    pub const ANY: &[&str] = &[X86, ARM];
}

/// Picks the server type for `size` in `location`: the cheapest non-deprecated
/// x86 type offered there that meets the size's minimum cores and memory (ties
/// broken by fewer cores, then name, so the choice is stable).
///
/// ```
/// use sam_core::domain::{choose_server_type, LocationPrice, ServerTypeOffer, VmSize};
/// let offer = |name: &str, cores, mem, price: &str, deprecated| ServerTypeOffer {
///     name: name.into(), cores, memory_gb: mem, disk_gb: 40, architecture: "x86".into(),
///     deprecated,
///     prices: vec![LocationPrice { location: "fsn1".into(), hourly: price.into(), monthly: "0".into() }],
/// };
/// let types = [offer("cx22", 2, 4.0, "0.0050", true), offer("cx23", 2, 4.0, "0.0060", false)];
/// let chosen = choose_server_type(VmSize::Small, "fsn1", &types).unwrap();
/// assert_eq!(chosen.name, "cx23"); // the deprecated type is skipped even though cheaper
/// ```
pub fn choose_server_type<'a>(
    size: VmSize,
    location: &str,
    offers: &'a [ServerTypeOffer],
) -> Option<&'a ServerTypeOffer> {
    choose_server_type_of(size, location, offers, arch::X86_ONLY)
}

/// [`choose_server_type`] among the types of `architectures` (see
/// [`arch`]): with [`arch::ANY`], an Arm type where the location offers one
/// that is cheaper for the same size; on equal prices the one listed first
/// in `architectures` wins (x86: every image and tool has it).
///
/// ```
/// use sam_core::domain::{arch, choose_server_type_of, LocationPrice, ServerTypeOffer, VmSize};
/// let offer = |name: &str, architecture: &str, price: &str| ServerTypeOffer {
///     name: name.into(), cores: 2, memory_gb: 4.0, disk_gb: 40, architecture: architecture.into(),
///     deprecated: false,
///     prices: vec![LocationPrice { location: "fsn1".into(), hourly: price.into(), monthly: "0".into() }],
/// };
/// let types = [offer("cx23", "x86", "0.0080"), offer("cax11", "arm", "0.0072")];
/// assert_eq!(choose_server_type_of(VmSize::Small, "fsn1", &types, arch::ANY).unwrap().name, "cax11");
/// assert_eq!(choose_server_type_of(VmSize::Small, "fsn1", &types, arch::X86_ONLY).unwrap().name, "cx23");
/// ```
pub fn choose_server_type_of<'a>(
    size: VmSize,
    location: &str,
    offers: &'a [ServerTypeOffer],
    architectures: &[&str],
) -> Option<&'a ServerTypeOffer> {
    let (min_cores, min_memory) = size.minimum();
    let rank = |o: &ServerTypeOffer| architectures.iter().position(|a| *a == o.architecture);
    offers
        .iter()
        .filter(|o| !o.deprecated && rank(o).is_some())
        .filter(|o| o.cores >= min_cores && o.memory_gb >= min_memory)
        .filter_map(|o| {
            let price = o.prices.iter().find(|p| p.location == location)?;
            let hourly: f64 = price.hourly.parse().ok()?;
            Some((hourly, o))
        })
        .min_by(|(pa, a), (pb, b)| {
            pa.total_cmp(pb).then(rank(a).cmp(&rank(b))).then(a.cores.cmp(&b.cores)).then(a.name.cmp(&b.name))
        })
        .map(|(_, o)| o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(
        name: &str,
        cores: u32,
        mem: f64,
        arch: &str,
        deprecated: bool,
        prices: &[(&str, &str)],
    ) -> ServerTypeOffer {
        ServerTypeOffer {
            name: name.into(),
            cores,
            memory_gb: mem,
            disk_gb: 40,
            architecture: arch.into(),
            deprecated,
            prices: prices
                .iter()
                .map(|(l, p)| LocationPrice { location: (*l).into(), hourly: (*p).into(), monthly: "0".into() })
                .collect(),
        }
    }

    #[test]
    fn picks_cheapest_adequate_type_in_location() {
        let types = vec![
            offer("cx23", 2, 4.0, "x86", false, &[("fsn1", "0.0080"), ("hel1", "0.0080")]),
            offer("cpx21", 3, 4.0, "x86", false, &[("fsn1", "0.0120")]),
            offer("cx33", 4, 8.0, "x86", false, &[("fsn1", "0.0130")]),
            offer("cax21", 4, 8.0, "arm", false, &[("fsn1", "0.0100")]),
            offer("cx43", 8, 16.0, "x86", false, &[("fsn1", "0.0250")]),
            offer("cx42", 8, 16.0, "x86", true, &[("fsn1", "0.0200")]),
        ];
        assert_eq!(choose_server_type(VmSize::Small, "fsn1", &types).unwrap().name, "cx23");
        assert_eq!(choose_server_type(VmSize::Medium, "fsn1", &types).unwrap().name, "cx33");
        assert_eq!(choose_server_type(VmSize::Large, "fsn1", &types).unwrap().name, "cx43");
        assert!(choose_server_type(VmSize::Medium, "hel1", &types).is_none());
        assert!(choose_server_type(VmSize::Small, "ash", &types).is_none());
    }

    #[test]
    fn arm_types_win_where_offered_and_cheaper() {
        let types = vec![
            offer("cx23", 2, 4.0, "x86", false, &[("fsn1", "0.0080"), ("ash", "0.0080")]),
            offer("cax11", 2, 4.0, "arm", false, &[("fsn1", "0.0072")]),
            offer("cx33", 4, 8.0, "x86", false, &[("fsn1", "0.0128")]),
            offer("cax21", 4, 8.0, "arm", false, &[("fsn1", "0.0128")]),
        ];
        let pick = |size, location, arches| choose_server_type_of(size, location, &types, arches).map(|o| &*o.name);
        assert_eq!(pick(VmSize::Small, "fsn1", arch::ANY), Some("cax11"), "cheaper");
        assert_eq!(pick(VmSize::Small, "ash", arch::ANY), Some("cx23"), "no Arm type there");
        assert_eq!(pick(VmSize::Medium, "fsn1", arch::ANY), Some("cx33"), "a tie goes to x86");
        assert_eq!(pick(VmSize::Small, "fsn1", arch::X86_ONLY), Some("cx23"), "no arm64 agent");
        assert_eq!(pick(VmSize::Small, "fsn1", &[arch::ARM]), Some("cax11"));
    }

    #[test]
    fn sizes_parse_from_wire_names() {
        for size in VmSize::ALL {
            assert_eq!(size.as_str().parse::<VmSize>().unwrap(), size);
        }
        assert!("huge".parse::<VmSize>().is_err());
    }
}
