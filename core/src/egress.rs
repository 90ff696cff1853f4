//! Which network addresses webhooks may be sent to (server-side request forgery protection).
//!
//! This module owns two things:
//!
//! * [`classify`], which sorts any IP address into an [`AddressClass`] with its own range
//!   checks (no unstable `std` methods). IPv6 addresses that carry an IPv4 address — IPv4-mapped
//!   (`::ffff:a.b.c.d`), IPv4-translated (`::ffff:0:a.b.c.d`), IPv4-compatible (`::a.b.c.d`),
//!   the NAT64 well-known prefix (`64:ff9b::/96`) and 6to4 (`2002::/16`) when its embedded
//!   address is not public — are classified by that IPv4 address, so `::ffff:127.0.0.1` is
//!   loopback, never public.
//! * [`EgressPolicy`], which decides whether one resolved address may be contacted. It is
//!   checked against every address a host name resolves to, right before connecting, so a DNS
//!   answer cannot smuggle a private address past a check done on the name.
//!
//! Guarantees: a [`AddressClass::Public`] address is always allowed; every other class is
//! refused unless the policy allows private addresses or one of its allowed networks contains
//! the address (or the IPv4 address embedded in it). Classifying never touches the network.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::error::{Error, Result};

/// The kind of an IP address, as far as egress is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AddressClass {
    /// A globally routable unicast address: the only class allowed by default.
    Public,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16`, deprecated IPv6 site-local
    /// `fec0::/10` and local-use NAT64 `64:ff9b:1::/48`.
    Private,
    /// `169.254.0.0/16`, `fe80::/10`.
    LinkLocal,
    /// IPv6 unique local addresses, `fc00::/7`.
    UniqueLocal,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `0.0.0.0/8`, `::`.
    Unspecified,
    /// The limited broadcast address `255.255.255.255`.
    Broadcast,
    /// A cloud instance-metadata service: `169.254.169.254`, `fd00:ec2::254` (AWS),
    /// `100.100.100.200` (Alibaba), `168.63.129.16` (Azure `WireServer`).
    Metadata,
    /// Reserved or special-purpose space that is not globally routable: `240.0.0.0/4`,
    /// benchmarking `198.18.0.0/15`, `192.0.0.0/24`, IPv6 outside `2000::/3`, Teredo, ...
    Reserved,
    /// Documentation ranges: `192.0.2.0/24`, `198.51.100.0/24`, `203.0.113.0/24`,
    /// `2001:db8::/32`, `3fff::/20`.
    Documentation,
    /// Shared address space for carrier-grade NAT, `100.64.0.0/10`.
    SharedCgnat,
}

impl AddressClass {
    /// A short, stable, machine-readable name: `public`, `loopback`, `private`, `link_local`,
    /// `unique_local`, `multicast`, `unspecified`, `broadcast`, `metadata`, `reserved`,
    /// `documentation`, `shared_cgnat`.
    pub fn as_str(self) -> &'static str {
        match self {
            AddressClass::Public => "public",
            AddressClass::Loopback => "loopback",
            AddressClass::Private => "private",
            AddressClass::LinkLocal => "link_local",
            AddressClass::UniqueLocal => "unique_local",
            AddressClass::Multicast => "multicast",
            AddressClass::Unspecified => "unspecified",
            AddressClass::Broadcast => "broadcast",
            AddressClass::Metadata => "metadata",
            AddressClass::Reserved => "reserved",
            AddressClass::Documentation => "documentation",
            AddressClass::SharedCgnat => "shared_cgnat",
        }
    }

    /// Whether this is [`AddressClass::Public`].
    pub fn is_public(self) -> bool {
        self == AddressClass::Public
    }
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressClass::Public => "public",
            AddressClass::Loopback => "loopback",
            AddressClass::Private => "private",
            AddressClass::LinkLocal => "link-local",
            AddressClass::UniqueLocal => "unique-local",
            AddressClass::Multicast => "multicast",
            AddressClass::Unspecified => "unspecified",
            AddressClass::Broadcast => "broadcast",
            AddressClass::Metadata => "a cloud metadata address",
            AddressClass::Reserved => "reserved",
            AddressClass::Documentation => "documentation-only",
            AddressClass::SharedCgnat => "shared (carrier-grade NAT) address space",
        })
    }
}

/// Classifies an address. IPv6 addresses that embed an IPv4 address are classified by the
/// IPv4 address (see the module docs).
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// The IPv4 address embedded in an IPv6 address by IPv4-mapping (`::ffff:0:0/96`),
/// IPv4-translation (`::ffff:0:0:0/96`), IPv4-compatibility (`::/96`, except `::` and `::1`)
/// or the NAT64 well-known prefix (`64:ff9b::/96`); `None` for everything else, IPv4
/// addresses included.
pub fn embedded_ipv4(ip: IpAddr) -> Option<Ipv4Addr> {
    let IpAddr::V6(v6) = ip else { return None };
    let o = v6.octets();
    let low = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    match v6.segments() {
        // ::ffff:a.b.c.d (mapped), ::ffff:0:a.b.c.d (translated, SIIT),
        // 64:ff9b::a.b.c.d (NAT64 well-known prefix)
        [0, 0, 0, 0, 0, 0xffff, _, _] | [0, 0, 0, 0, 0xffff, 0, _, _] | [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(low),
        // ::a.b.c.d (compatible, deprecated); :: and ::1 are themselves.
        [0, 0, 0, 0, 0, 0, hi, lo] if hi != 0 || lo > 1 => Some(low),
        _ => None,
    }
}

fn v4_in(ip: u32, net: [u8; 4], prefix: u32) -> bool {
    let net = u32::from_be_bytes(net);
    let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
    ip & mask == net & mask
}

fn v6_in(ip: u128, net: Ipv6Addr, prefix: u32) -> bool {
    let net = u128::from(net);
    let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - prefix) };
    ip & mask == net & mask
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    use AddressClass::*;
    let n = u32::from(ip);
    // Most specific first: single metadata addresses sit inside wider ranges.
    const METADATA: [[u8; 4]; 3] = [[169, 254, 169, 254], [100, 100, 100, 200], [168, 63, 129, 16]];
    if METADATA.iter().any(|m| n == u32::from_be_bytes(*m)) {
        return Metadata;
    }
    if n == u32::MAX {
        return Broadcast;
    }
    let table: [([u8; 4], u32, AddressClass); 17] = [
        ([0, 0, 0, 0], 8, Unspecified),
        ([10, 0, 0, 0], 8, Private),
        ([100, 64, 0, 0], 10, SharedCgnat),
        ([127, 0, 0, 0], 8, Loopback),
        ([169, 254, 0, 0], 16, LinkLocal),
        ([172, 16, 0, 0], 12, Private),
        ([192, 0, 0, 0], 24, Reserved),
        ([192, 0, 2, 0], 24, Documentation),
        ([192, 31, 196, 0], 24, Reserved),
        ([192, 52, 193, 0], 24, Reserved),
        ([192, 88, 99, 0], 24, Reserved),
        ([192, 168, 0, 0], 16, Private),
        ([198, 18, 0, 0], 15, Reserved),
        ([198, 51, 100, 0], 24, Documentation),
        ([203, 0, 113, 0], 24, Documentation),
        ([224, 0, 0, 0], 4, Multicast),
        ([240, 0, 0, 0], 4, Reserved),
    ];
    table.iter().find(|(net, prefix, _)| v4_in(n, *net, *prefix)).map_or(Public, |(_, _, class)| *class)
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    use AddressClass::*;
    let n = u128::from(ip);
    if n == 0 {
        return Unspecified;
    }
    if n == 1 {
        return Loopback;
    }
    if let Some(v4) = embedded_ipv4(IpAddr::V6(ip)) {
        return classify_v4(v4);
    }
    if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
        return Metadata;
    }
    // 6to4 (2002::/16) carries the IPv4 address of the relay site in bits 16..48: a non-public
    // embedded address makes the whole address non-public.
    if v6_in(n, Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16) {
        let o = ip.octets();
        return classify_v4(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    const fn a(s: [u16; 8]) -> Ipv6Addr {
        Ipv6Addr::new(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7])
    }
    // Globally reachable exceptions inside 2001::/23 (IANA special-purpose registry).
    let global_exceptions: [(Ipv6Addr, u32); 8] = [
        (a([0x2001, 1, 0, 0, 0, 0, 0, 1]), 128),        // PCP anycast
        (a([0x2001, 1, 0, 0, 0, 0, 0, 2]), 128),        // TURN anycast
        (a([0x2001, 1, 0, 0, 0, 0, 0, 3]), 128),        // DNS-SD SRP anycast
        (a([0x2001, 3, 0, 0, 0, 0, 0, 0]), 32),         // AMT
        (a([0x2001, 4, 0x112, 0, 0, 0, 0, 0]), 48),     // AS112-v6
        (a([0x2001, 0x20, 0, 0, 0, 0, 0, 0]), 28),      // ORCHIDv2
        (a([0x2001, 0x30, 0, 0, 0, 0, 0, 0]), 28),      // Drone remote ID
        (a([0x2620, 0x4f, 0x8000, 0, 0, 0, 0, 0]), 48), // AS112 direct delegation
    ];
    if global_exceptions.iter().any(|(net, p)| v6_in(n, *net, *p)) {
        return Public;
    }
    let table: [(Ipv6Addr, u32, AddressClass); 11] = [
        (a([0x64, 0xff9b, 1, 0, 0, 0, 0, 0]), 48, Private), // local-use NAT64
        (a([0x100, 0, 0, 0, 0, 0, 0, 0]), 64, Reserved),    // discard-only
        (a([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0]), 32, Documentation),
        (a([0x2001, 0, 0, 0, 0, 0, 0, 0]), 23, Reserved), // IETF protocol assignments, Teredo
        (a([0x3fff, 0, 0, 0, 0, 0, 0, 0]), 20, Documentation),
        (a([0x5f00, 0, 0, 0, 0, 0, 0, 0]), 16, Reserved), // SRv6 SIDs
        (a([0xfc00, 0, 0, 0, 0, 0, 0, 0]), 7, UniqueLocal),
        (a([0xfe80, 0, 0, 0, 0, 0, 0, 0]), 10, LinkLocal),
        (a([0xfec0, 0, 0, 0, 0, 0, 0, 0]), 10, Private), // deprecated site-local
        (a([0xff00, 0, 0, 0, 0, 0, 0, 0]), 8, Multicast),
        (a([0x2000, 0, 0, 0, 0, 0, 0, 0]), 3, Public), // global unicast
    ];
    table
        .iter()
        .find(|(net, prefix, _)| v6_in(n, *net, *prefix))
        // Everything outside 2000::/3 is unassigned or special: never treat it as public.
        .map_or(Reserved, |(_, _, class)| *class)
}

/// Which addresses outgoing webhook requests may connect to.
///
/// The default refuses every non-public address. Tests and trusted deployments either allow
/// all private addresses ([`EgressPolicy::allow_all_private`]) or name the networks they need
/// (`EgressPolicy::new(false, ["127.0.0.0/8"])`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EgressPolicy {
    allow_private: bool,
    allowed: Vec<IpNet>,
    show_addresses: bool,
}

impl EgressPolicy {
    /// A policy that allows every address, private, loopback and metadata included.
    pub fn allow_all_private() -> Self {
        EgressPolicy { allow_private: true, allowed: Vec::new(), show_addresses: false }
    }

    /// A policy from a flag and a list of networks that are allowed even when not public.
    ///
    /// Each entry is a CIDR network (`127.0.0.0/8`, `::1/128`) or a bare address (taken as
    /// `/32` or `/128`); surrounding whitespace is ignored and host bits are cleared.
    /// A malformed entry is [`Error::InvalidInput`] on field `allowed_networks`.
    pub fn new(allow_private: bool, allowed_networks: impl IntoIterator<Item = impl AsRef<str>>) -> Result<Self> {
        let mut allowed = Vec::new();
        for entry in allowed_networks {
            let text = entry.as_ref().trim();
            let net = match text.parse::<IpNet>() {
                Ok(net) => net,
                Err(_) => match text.parse::<IpAddr>() {
                    Ok(addr) => IpNet::from(addr),
                    Err(_) => {
                        return Err(Error::invalid(
                            "allowed_networks",
                            format!("{text:?} is not an IP address or a CIDR network"),
                        ));
                    }
                },
            };
            let net = net.trunc();
            if !allowed.contains(&net) {
                allowed.push(net);
            }
        }
        Ok(EgressPolicy { allow_private, allowed, show_addresses: false })
    }

    /// The same policy, with refusals naming the resolved address (a debugging aid). By default
    /// a refusal names only the class of address (loopback, private, metadata, ...): delivery
    /// errors are read by more people than those allowed to map internal host names to
    /// internal addresses.
    pub fn with_addresses_shown(mut self, show: bool) -> Self {
        self.show_addresses = show;
        self
    }

    /// Whether refusals name the resolved address ([`EgressPolicy::with_addresses_shown`]).
    pub fn shows_addresses(&self) -> bool {
        self.show_addresses
    }

    /// Whether every non-public address is allowed.
    pub fn allows_private(&self) -> bool {
        self.allow_private
    }

    /// The networks allowed even when not public (normalised, without duplicates).
    pub fn allowed_networks(&self) -> &[IpNet] {
        &self.allowed
    }

    /// Decides whether `ip` may be contacted.
    ///
    /// Public addresses always may; any other address only if the policy allows private
    /// addresses or an allowed network contains the address itself or the IPv4 address it
    /// embeds (so `127.0.0.0/8` also allows `::ffff:127.0.0.1`).
    pub fn check(&self, ip: IpAddr) -> std::result::Result<(), EgressRefused> {
        let class = classify(ip);
        if class == AddressClass::Public || self.allow_private {
            return Ok(());
        }
        let unmapped = embedded_ipv4(ip).map(IpAddr::V4);
        let listed = self.allowed.iter().any(|net| net.contains(&ip) || unmapped.is_some_and(|v4| net.contains(&v4)));
        if listed { Ok(()) } else { Err(EgressRefused { ip, class }) }
    }
}

/// An address refused by an [`EgressPolicy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EgressRefused {
    /// The refused address, as resolved.
    pub ip: IpAddr,
    /// Its class (never [`AddressClass::Public`]).
    pub class: AddressClass,
}

impl EgressRefused {
    /// The refusal in words: the class of address, and the address itself only when
    /// `with_address` (the policy's [`EgressPolicy::with_addresses_shown`]).
    pub fn describe(&self, with_address: bool) -> String {
        if with_address {
            format!("address {} is {} and refused by the egress policy", self.ip, self.class)
        } else {
            format!("the host resolves to a {} address, refused by the egress policy", self.class)
        }
    }
}

/// Names the class of address only, never the address: see [`EgressRefused::describe`].
impl fmt::Display for EgressRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe(false))
    }
}

impl std::error::Error for EgressRefused {}

impl From<EgressRefused> for Error {
    /// Maps to [`Error::Delivery`] with kind `egress_refused`.
    fn from(refused: EgressRefused) -> Self {
        Error::Delivery { kind: "egress_refused".to_owned(), reason: refused.to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AddressClass::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn classifies_ipv4_ranges() {
        let cases = [
            ("127.0.0.1", Loopback),
            ("127.255.255.254", Loopback),
            ("10.0.0.1", Private),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("172.32.0.1", Public),
            ("172.15.255.255", Public),
            ("192.168.1.1", Private),
            ("169.254.169.254", Metadata),
            ("169.254.1.1", LinkLocal),
            ("100.64.0.1", SharedCgnat),
            ("100.127.255.255", SharedCgnat),
            ("100.128.0.1", Public),
            ("100.63.255.255", Public),
            ("100.100.100.200", Metadata),
            ("0.0.0.0", Unspecified),
            ("0.1.2.3", Unspecified),
            ("240.0.0.1", Reserved),
            ("255.255.255.254", Reserved),
            ("255.255.255.255", Broadcast),
            ("224.0.0.1", Multicast),
            ("239.255.255.255", Multicast),
            ("192.0.2.7", Documentation),
            ("198.51.100.7", Documentation),
            ("203.0.113.7", Documentation),
            ("198.18.0.1", Reserved),
            ("198.19.255.255", Reserved),
            ("198.20.0.1", Public),
            ("192.0.0.8", Reserved),
            ("8.8.8.8", Public),
            ("1.1.1.1", Public),
            ("223.255.255.255", Public),
        ];
        for (addr, want) in cases {
            assert_eq!(classify(ip(addr)), want, "{addr}");
        }
    }

    #[test]
    fn classifies_ipv6_ranges() {
        let cases = [
            ("::1", Loopback),
            ("::", Unspecified),
            ("fe80::1", LinkLocal),
            ("febf:ffff::1", LinkLocal),
            ("fd00::1", UniqueLocal),
            ("fc00::1", UniqueLocal),
            ("fd00:ec2::254", Metadata),
            ("fd00:ec2::253", UniqueLocal),
            ("ff02::1", Multicast),
            ("ff0e::1", Multicast),
            ("2001:db8::1", Documentation),
            ("3fff::1", Documentation),
            ("2001::1", Reserved),
            ("2001:2::1", Reserved),
            ("2001:4:112::1", Public),
            ("100::1", Reserved),
            ("fec0::1", Private),
            ("64:ff9b:1::a00:1", Private),
            ("4000::1", Reserved),
            ("2606:4700::1111", Public),
            ("2a00:1450:4001::200e", Public),
        ];
        for (addr, want) in cases {
            assert_eq!(classify(ip(addr)), want, "{addr}");
        }
    }

    #[test]
    fn ipv6_with_embedded_ipv4_is_classified_by_the_ipv4() {
        let cases = [
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:10.1.2.3", Private),
            ("::ffff:169.254.169.254", Metadata),
            ("::ffff:8.8.8.8", Public),
            ("::ffff:0:10.0.0.1", Private),
            ("::127.0.0.1", Loopback),
            ("::10.0.0.1", Private),
            ("64:ff9b::a00:1", Private),
            ("64:ff9b::7f00:1", Loopback),
            ("64:ff9b::808:808", Public),
            ("2002:7f00:1::1", Loopback),
            ("2002:a9fe:a9fe::1", Metadata),
            ("2002:808:808::1", Public),
        ];
        for (addr, want) in cases {
            assert_eq!(classify(ip(addr)), want, "{addr}");
        }
        assert_eq!(embedded_ipv4(ip("::ffff:10.1.2.3")), Some(Ipv4Addr::new(10, 1, 2, 3)));
        assert_eq!(embedded_ipv4(ip("64:ff9b::a00:1")), Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(embedded_ipv4(ip("::1")), None);
        assert_eq!(embedded_ipv4(ip("::")), None);
        assert_eq!(embedded_ipv4(ip("10.0.0.1")), None);
        assert_eq!(embedded_ipv4(ip("2606:4700::1111")), None);
    }

    #[test]
    fn default_policy_refuses_everything_but_public() {
        let policy = EgressPolicy::default();
        assert!(!policy.allows_private());
        assert!(policy.allowed_networks().is_empty());
        for addr in [
            "127.0.0.1",
            "10.0.0.1",
            "169.254.169.254",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "64:ff9b::a00:1",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "fe80::1",
            "fd00::1",
            "fd00:ec2::254",
            "0.0.0.0",
            "::",
            "255.255.255.255",
        ] {
            let err = policy.check(ip(addr)).unwrap_err();
            assert_eq!(err.ip, ip(addr));
            assert_ne!(err.class, Public, "{addr}");
        }
        assert_eq!(policy.check(ip("8.8.8.8")), Ok(()));
        assert_eq!(policy.check(ip("2606:4700::1111")), Ok(()));
        assert_eq!(policy.check(ip("::ffff:8.8.8.8")), Ok(()));
    }

    #[test]
    fn refusal_message_names_the_class_and_the_address_only_when_asked() {
        let err = EgressPolicy::default().check(ip("10.0.0.1")).unwrap_err();
        assert_eq!(err.class, Private);
        assert_eq!(err.to_string(), "the host resolves to a private address, refused by the egress policy");
        assert_eq!(err.describe(true), "address 10.0.0.1 is private and refused by the egress policy");
        let err = EgressPolicy::default().check(ip("::1")).unwrap_err();
        assert!(!err.to_string().contains("::1"), "{err}");
        match Error::from(err) {
            Error::Delivery { kind, reason } => {
                assert_eq!(kind, "egress_refused");
                assert!(reason.contains("loopback") && !reason.contains("::1"), "{reason}");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(!EgressPolicy::default().shows_addresses());
        assert!(EgressPolicy::default().with_addresses_shown(true).shows_addresses());
    }

    #[test]
    fn allow_all_private_allows_everything() {
        let policy = EgressPolicy::allow_all_private();
        assert!(policy.allows_private());
        for addr in ["127.0.0.1", "10.0.0.1", "::1", "fd00::1", "169.254.169.254", "8.8.8.8"] {
            assert_eq!(policy.check(ip(addr)), Ok(()), "{addr}");
        }
    }

    #[test]
    fn allow_list_allows_only_listed_networks() {
        let policy = EgressPolicy::new(false, ["127.0.0.0/8", " ::1/128 ", "10.1.2.3"]).unwrap();
        assert_eq!(policy.allowed_networks().len(), 3);
        assert_eq!(policy.allowed_networks()[2].to_string(), "10.1.2.3/32");
        assert_eq!(policy.check(ip("127.0.0.1")), Ok(()));
        assert_eq!(policy.check(ip("127.9.9.9")), Ok(()));
        assert_eq!(policy.check(ip("::1")), Ok(()));
        assert_eq!(policy.check(ip("::ffff:127.0.0.1")), Ok(()), "mapped form is unmapped");
        assert_eq!(policy.check(ip("10.1.2.3")), Ok(()));
        assert_eq!(policy.check(ip("8.8.8.8")), Ok(()));
        assert_eq!(policy.check(ip("10.1.2.4")).unwrap_err().class, Private);
        assert_eq!(policy.check(ip("192.168.1.1")).unwrap_err().class, Private);
        assert_eq!(policy.check(ip("169.254.169.254")).unwrap_err().class, Metadata);
        assert_eq!(policy.check(ip("fe80::1")).unwrap_err().class, LinkLocal);

        let v6 = EgressPolicy::new(false, ["fd00::/8", "2001:db8::1"]).unwrap();
        assert_eq!(v6.check(ip("fd12:3456::1")), Ok(()));
        assert_eq!(v6.check(ip("2001:db8::1")), Ok(()));
        assert!(v6.check(ip("2001:db8::2")).is_err());
        assert!(v6.check(ip("127.0.0.1")).is_err());
    }

    #[test]
    fn allow_list_normalises_and_dedups() {
        let a = EgressPolicy::new(false, ["10.1.2.3/8", "10.0.0.0/8"]).unwrap();
        assert_eq!(a.allowed_networks().len(), 1);
        assert_eq!(a.allowed_networks()[0].to_string(), "10.0.0.0/8");
        assert_eq!(a, EgressPolicy::new(false, vec![String::from("10.0.0.0/8")]).unwrap());
        assert_ne!(a, EgressPolicy::new(true, ["10.0.0.0/8"]).unwrap());
        let empty: [&str; 0] = [];
        assert_eq!(EgressPolicy::new(false, empty).unwrap(), EgressPolicy::default());
    }

    #[test]
    fn malformed_networks_are_invalid_input() {
        for bad in ["", "10.0.0.0/33", "::1/129", "localhost", "10.0.0", "1.2.3.4/-1", "fe80::1%eth0"] {
            match EgressPolicy::new(false, ["127.0.0.0/8", bad]) {
                Err(Error::InvalidInput { field, .. }) => assert_eq!(field, "allowed_networks"),
                other => panic!("{bad:?}: unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn class_names_are_stable() {
        assert_eq!(SharedCgnat.as_str(), "shared_cgnat");
        assert_eq!(Metadata.as_str(), "metadata");
        assert!(Public.is_public());
        assert!(!Loopback.is_public());
    }
}
