//! Trusted gateways (PROTOCOL.md sections 3 and 7): the sources whose filled path block
//! the server believes.
//!
//! An entry is an address or a CIDR range, IPv4 or IPv6, optionally limited to one
//! source port:
//!
//! | text | means |
//! |---|---|
//! | `10.0.0.5` | that address, any port |
//! | `10.0.0.0/8` | that range, any port |
//! | `10.0.0.5:7000` | that address, source port 7000 only |
//! | `10.0.0.0/8:7000` | that range, source port 7000 only |
//! | `::1`, `2001:db8::/32` | IPv6 address or range, any port |
//! | `[2001:db8::1]:7000`, `[2001:db8::/32]:7000` | IPv6 with a port: brackets are required |
//!
//! Everything is matched in the IPv6 space, IPv4 being `::ffff:a.b.c.d` (an IPv4 `/n` is
//! the IPv6 `/96+n`). So an IPv4-mapped source (what a dual-stack socket reports for an
//! IPv4 client) matches an IPv4 entry, `::ffff:10.0.0.0/104` is the same entry as
//! `10.0.0.0/8`, `0.0.0.0/0` matches every IPv4 source, and `::/0` matches every source
//! of both families.
//!
//! An entry whose address has bits set past its prefix (`10.0.0.5/8`) is refused rather
//! than silently widened: in a trust list that is more likely a typo than a wish.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

/// Why one trusted gateway entry is not valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TrustErrorKind {
    /// The entry is empty (or only whitespace).
    #[error("empty entry")]
    Empty,
    /// The address part is not an IPv4 or IPv6 address (or an IPv6 address with a port
    /// lacks its brackets, or an IPv4 address has them).
    #[error("not an IPv4 or IPv6 address (an IPv6 address with a port needs brackets: [2001:db8::1]:7000)")]
    BadAddress,
    /// The prefix length after `/` is not a decimal number.
    #[error("prefix length is not a decimal number")]
    BadPrefix,
    /// The prefix length is longer than the address.
    #[error("prefix length /{len} is longer than the {max} bits of the address")]
    PrefixTooLong {
        /// The prefix length given.
        len: u32,
        /// The address's bit length: 32 or 128.
        max: u8,
    },
    /// The address has bits set past the prefix, e.g. `10.0.0.5/8`.
    #[error("address has bits set past the /{len} prefix; the range is {network}/{len}")]
    HostBitsSet {
        /// The prefix length given.
        len: u8,
        /// The network address the entry probably meant.
        network: IpAddr,
    },
    /// The port is not a decimal number from 1 to 65535.
    #[error("port is not a number from 1 to 65535")]
    BadPort,
}

/// A trusted gateway entry that does not parse: names the entry and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad trusted gateway entry {entry:?}: {kind}")]
pub struct TrustParseError {
    /// The entry as given.
    pub entry: String,
    /// What is wrong with it.
    pub kind: TrustErrorKind,
}

/// One trusted gateway: an address or CIDR range, optionally one source port.
///
/// 24 bytes; [`contains`](Self::contains) is a mask and two compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TrustedGateway {
    /// Network address in the IPv6 space (IPv4 as `::ffff:a.b.c.d`), host bits zero.
    net: u128,
    /// Prefix length in the IPv6 space (IPv4 `/n` is `96 + n`), 0..=128.
    prefix: u8,
    /// The one source port it is limited to, if any.
    port: Option<u16>,
}

/// The top `prefix` bits set (prefix 0..=128).
fn mask(prefix: u8) -> u128 {
    match prefix {
        0 => 0,
        p => u128::MAX << (128 - u32::from(p.min(128))),
    }
}

/// An address in the IPv6 space: IPv4 becomes `::ffff:a.b.c.d`.
fn to_v6_bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// Whether bits in the IPv6 space with this prefix lie wholly in `::ffff:0:0/96`.
fn is_mapped(net: u128, prefix: u8) -> bool {
    prefix >= 96 && net >> 32 == 0xffff
}

impl TrustedGateway {
    /// The range `addr/prefix_len` (`prefix_len` up to 32 for IPv4, 128 for IPv6), any
    /// source port. Refuses a prefix longer than the address and an address with bits set
    /// past the prefix. O(1).
    pub fn new(addr: IpAddr, prefix_len: u8) -> Result<Self, TrustErrorKind> {
        let (max, offset) = match addr {
            IpAddr::V4(_) => (32, 96),
            IpAddr::V6(_) => (128, 0),
        };
        if prefix_len > max {
            return Err(TrustErrorKind::PrefixTooLong {
                len: u32::from(prefix_len),
                max,
            });
        }
        let bits = to_v6_bits(addr);
        let prefix = prefix_len + offset;
        let net = bits & mask(prefix);
        if net != bits {
            let network = match addr {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(net as u32)),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(net)),
            };
            return Err(TrustErrorKind::HostBitsSet {
                len: prefix_len,
                network,
            });
        }
        Ok(Self {
            net,
            prefix,
            port: None,
        })
    }

    /// One address, any source port. O(1).
    pub fn host(addr: IpAddr) -> Self {
        Self {
            net: to_v6_bits(addr),
            prefix: 128,
            port: None,
        }
    }

    /// The same range limited to source port `port` (0 would match nothing a UDP socket
    /// reports, but is accepted here). O(1).
    pub fn with_port(self, port: u16) -> Self {
        Self {
            port: Some(port),
            ..self
        }
    }

    /// The network address: IPv4 for an IPv4 entry (including one written as
    /// `::ffff:a.b.c.d/n` with n >= 96), else IPv6. O(1).
    pub fn network(&self) -> IpAddr {
        if is_mapped(self.net, self.prefix) {
            IpAddr::V4(Ipv4Addr::from(self.net as u32))
        } else {
            IpAddr::V6(Ipv6Addr::from(self.net))
        }
    }

    /// The prefix length in the family of [`network`](Self::network): 0..=32 for IPv4,
    /// 0..=128 for IPv6. O(1).
    pub fn prefix_len(&self) -> u8 {
        if is_mapped(self.net, self.prefix) {
            self.prefix - 96
        } else {
            self.prefix
        }
    }

    /// The source port the entry is limited to, if any. O(1).
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// Whether `source` is inside this entry: its IP in the range (an IPv4-mapped IPv6
    /// source counts as IPv4) and, if the entry names a port, the same port. The IPv6
    /// flow info and scope id are ignored. O(1).
    pub fn contains(&self, source: &SocketAddr) -> bool {
        to_v6_bits(source.ip()) & mask(self.prefix) == self.net
            && self.port.is_none_or(|p| p == source.port())
    }
}

/// Digits only (no sign, no spaces), at least one.
fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn parse_port(s: &str) -> Result<u16, TrustErrorKind> {
    if !all_digits(s) {
        return Err(TrustErrorKind::BadPort);
    }
    match s.parse::<u16>() {
        Ok(0) | Err(_) => Err(TrustErrorKind::BadPort),
        Ok(p) => Ok(p),
    }
}

fn parse_entry(s: &str) -> Result<TrustedGateway, TrustErrorKind> {
    let s = s.trim();
    if s.is_empty() {
        return Err(TrustErrorKind::Empty);
    }
    // Split off the port: `[v6 or v6/len]:port`, `[v6]`, `v4[/len]:port`.
    let (body, port, bracketed) = if let Some(rest) = s.strip_prefix('[') {
        let (body, after) = rest.split_once(']').ok_or(TrustErrorKind::BadAddress)?;
        let port = match after {
            "" => None,
            _ => Some(parse_port(
                after.strip_prefix(':').ok_or(TrustErrorKind::BadAddress)?,
            )?),
        };
        (body, port, true)
    } else if s.matches(':').count() == 1 {
        let (body, port) = s.split_once(':').ok_or(TrustErrorKind::BadAddress)?;
        (body, Some(parse_port(port)?), false)
    } else {
        (s, None, false)
    };
    let (addr, prefix) = match body.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (body, None),
    };
    let addr: IpAddr = addr.parse().map_err(|_| TrustErrorKind::BadAddress)?;
    if bracketed && addr.is_ipv4() {
        return Err(TrustErrorKind::BadAddress);
    }
    let max: u8 = if addr.is_ipv4() { 32 } else { 128 };
    let prefix_len = match prefix {
        None => max,
        Some(p) if all_digits(p) => {
            let len = p.parse::<u32>().map_err(|_| TrustErrorKind::BadPrefix)?;
            u8::try_from(len)
                .ok()
                .filter(|l| *l <= max)
                .ok_or(TrustErrorKind::PrefixTooLong { len, max })?
        }
        Some(_) => return Err(TrustErrorKind::BadPrefix),
    };
    let entry = TrustedGateway::new(addr, prefix_len)?;
    Ok(match port {
        Some(p) => entry.with_port(p),
        None => entry,
    })
}

impl FromStr for TrustedGateway {
    type Err = TrustParseError;

    /// Parses one entry in the forms of the [module docs](self); surrounding whitespace
    /// is ignored. O(length).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_entry(s).map_err(|kind| TrustParseError {
            entry: s.to_owned(),
            kind,
        })
    }
}

impl fmt::Display for TrustedGateway {
    /// Writes the entry so that it parses back to itself: the prefix is left out for a
    /// single address, IPv6 is bracketed when a port follows.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ip = self.network();
        let len = self.prefix_len();
        let host = len == if ip.is_ipv4() { 32 } else { 128 };
        let bracket = ip.is_ipv6() && self.port.is_some();
        if bracket {
            f.write_str("[")?;
        }
        write!(f, "{ip}")?;
        if !host {
            write!(f, "/{len}")?;
        }
        if bracket {
            f.write_str("]")?;
        }
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

/// The set of trusted gateways of an endpoint.
///
/// Lookup is a linear scan over the entries, a few nanoseconds each: meant for a
/// handful (tens) of gateways, not for thousands. Empty by default (nobody is trusted).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedGateways {
    entries: Vec<TrustedGateway>,
}

impl TrustedGateways {
    /// An empty set: no source is trusted. O(1), no allocation.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses each string as one entry; the first bad one is the error. O(total length).
    pub fn parse_list<I, S>(entries: I) -> Result<Self, TrustParseError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        entries
            .into_iter()
            .map(|s| s.as_ref().parse())
            .collect::<Result<Vec<_>, _>>()
            .map(|entries| Self { entries })
    }

    /// Adds one entry (duplicates are harmless). Amortised O(1).
    pub fn push(&mut self, entry: TrustedGateway) {
        self.entries.push(entry);
    }

    /// Whether `source` is inside any entry (see [`TrustedGateway::contains`]).
    /// O(number of entries).
    pub fn contains(&self, source: &SocketAddr) -> bool {
        self.entries.iter().any(|e| e.contains(source))
    }

    /// The entries in the order given. O(1).
    pub fn entries(&self) -> &[TrustedGateway] {
        &self.entries
    }

    /// Number of entries. O(1).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries (nobody is trusted). O(1).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl FromStr for TrustedGateways {
    type Err = TrustParseError;

    /// Parses entries separated by commas and/or whitespace, e.g.
    /// `"10.0.0.0/8, [2001:db8::1]:7000"`; an empty string is the empty set.
    /// O(length).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_list(
            s.split(|c: char| c == ',' || c.is_whitespace())
                .filter(|e| !e.is_empty()),
        )
    }
}

impl FromIterator<TrustedGateway> for TrustedGateways {
    fn from_iter<I: IntoIterator<Item = TrustedGateway>>(iter: I) -> Self {
        Self {
            entries: iter.into_iter().collect(),
        }
    }
}

impl Extend<TrustedGateway> for TrustedGateways {
    fn extend<I: IntoIterator<Item = TrustedGateway>>(&mut self, iter: I) {
        self.entries.extend(iter);
    }
}

impl fmt::Display for TrustedGateways {
    /// The entries separated by `", "`; parses back to the same set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.entries.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn gw(s: &str) -> TrustedGateway {
        s.parse().unwrap()
    }

    fn kind(s: &str) -> TrustErrorKind {
        s.parse::<TrustedGateway>().unwrap_err().kind
    }

    #[test]
    fn single_v4_address_any_port() {
        let g = gw("10.0.0.5");
        assert!(g.contains(&sa("10.0.0.5:1")));
        assert!(g.contains(&sa("10.0.0.5:65535")));
        assert!(!g.contains(&sa("10.0.0.4:1")));
        assert!(!g.contains(&sa("10.0.0.6:1")));
        assert_eq!(g.prefix_len(), 32);
        assert_eq!(g.port(), None);
    }

    #[test]
    fn v4_range_edges() {
        let g = gw("10.1.2.0/24");
        assert!(g.contains(&sa("10.1.2.0:9")));
        assert!(g.contains(&sa("10.1.2.255:9")));
        assert!(!g.contains(&sa("10.1.1.255:9")));
        assert!(!g.contains(&sa("10.1.3.0:9")));
        let g = gw("10.0.0.0/8");
        assert!(g.contains(&sa("10.255.255.255:1")));
        assert!(!g.contains(&sa("11.0.0.0:1")));
        assert!(!g.contains(&sa("9.255.255.255:1")));
        // An odd prefix: /31 holds exactly two addresses.
        let g = gw("192.168.0.4/31");
        assert!(g.contains(&sa("192.168.0.4:1")));
        assert!(g.contains(&sa("192.168.0.5:1")));
        assert!(!g.contains(&sa("192.168.0.3:1")));
        assert!(!g.contains(&sa("192.168.0.6:1")));
    }

    #[test]
    fn v4_slash_0_and_32() {
        let all = gw("0.0.0.0/0");
        assert!(all.contains(&sa("0.0.0.0:1")));
        assert!(all.contains(&sa("255.255.255.255:1")));
        assert!(all.contains(&sa("[::ffff:1.2.3.4]:1")));
        assert!(
            !all.contains(&sa("[::1]:1")),
            "an IPv4 /0 is not all of IPv6"
        );
        assert!(!all.contains(&sa("[2001:db8::1]:1")));
        let one = gw("1.2.3.4/32");
        assert_eq!(one, gw("1.2.3.4"));
        assert!(one.contains(&sa("1.2.3.4:5")));
        assert!(!one.contains(&sa("1.2.3.5:5")));
    }

    #[test]
    fn v6_ranges_and_edges() {
        let g = gw("2001:db8::/32");
        assert!(g.contains(&sa("[2001:db8::]:1")));
        assert!(g.contains(&sa("[2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]:1")));
        assert!(!g.contains(&sa("[2001:db9::]:1")));
        assert!(!g.contains(&sa("[2001:db7:ffff:ffff:ffff:ffff:ffff:ffff]:1")));
        let lo = gw("::1");
        assert_eq!(lo.prefix_len(), 128);
        assert!(lo.contains(&sa("[::1]:80")));
        assert!(!lo.contains(&sa("[::2]:80")));
        assert!(!lo.contains(&sa("[::]:80")));
        assert!(!lo.contains(&sa("127.0.0.1:80")));
        assert_eq!(gw("::1/128"), lo);
        // /127 edge.
        let g = gw("2001:db8::2/127");
        assert!(g.contains(&sa("[2001:db8::2]:1")));
        assert!(g.contains(&sa("[2001:db8::3]:1")));
        assert!(!g.contains(&sa("[2001:db8::1]:1")));
        assert!(!g.contains(&sa("[2001:db8::4]:1")));
    }

    #[test]
    fn v6_slash_0_matches_everything() {
        let g = gw("::/0");
        assert!(g.contains(&sa("[::]:1")));
        assert!(g.contains(&sa("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:1")));
        assert!(g.contains(&sa("1.2.3.4:1")), "IPv4 lives in ::ffff:0:0/96");
    }

    #[test]
    fn ports() {
        let g = gw("10.0.0.5:7000");
        assert_eq!(g.port(), Some(7000));
        assert!(g.contains(&sa("10.0.0.5:7000")));
        assert!(!g.contains(&sa("10.0.0.5:7001")));
        assert!(!g.contains(&sa("10.0.0.6:7000")));
        let g = gw("10.0.0.0/8:53");
        assert!(g.contains(&sa("10.9.9.9:53")));
        assert!(!g.contains(&sa("10.9.9.9:54")));
        let g = gw("[2001:db8::1]:7000");
        assert!(g.contains(&sa("[2001:db8::1]:7000")));
        assert!(!g.contains(&sa("[2001:db8::1]:7001")));
        let g = gw("[2001:db8::/32]:443");
        assert!(g.contains(&sa("[2001:db8:1::9]:443")));
        assert!(!g.contains(&sa("[2001:db8:1::9]:444")));
        let g = gw("[::1]");
        assert_eq!(g.port(), None);
        assert!(g.contains(&sa("[::1]:9")));
        // A v4 entry with a port matches the mapped form with that port.
        let g = gw("10.0.0.5:7000");
        assert!(g.contains(&sa("[::ffff:10.0.0.5]:7000")));
        assert!(!g.contains(&sa("[::ffff:10.0.0.5]:7001")));
    }

    #[test]
    fn mapped_sources_match_v4_entries() {
        let g = gw("10.0.0.0/8");
        assert!(g.contains(&sa("[::ffff:10.1.2.3]:5000")));
        assert!(!g.contains(&sa("[::ffff:11.1.2.3]:5000")));
        // IPv4-compatible (deprecated) and NAT64 forms are not IPv4.
        assert!(!g.contains(&sa("[::10.1.2.3]:5000")));
        assert!(!g.contains(&sa("[64:ff9b::10.1.2.3]:5000")));
        let h = gw("192.0.2.1");
        assert!(h.contains(&sa("[::ffff:192.0.2.1]:1")));
        assert!(!h.contains(&sa("[::ffff:192.0.2.2]:1")));
    }

    #[test]
    fn mapped_entries_are_v4_entries() {
        let g = gw("::ffff:10.0.0.0/104");
        assert_eq!(g, gw("10.0.0.0/8"));
        assert_eq!(g.network(), "10.0.0.0".parse::<IpAddr>().unwrap());
        assert_eq!(g.prefix_len(), 8);
        assert!(g.contains(&sa("10.3.3.3:1")));
        assert_eq!(gw("::ffff:0:0/96"), gw("0.0.0.0/0"));
        assert_eq!(gw("::ffff:1.2.3.4"), gw("1.2.3.4"));
        // Shorter than /96: an IPv6 range that happens to contain IPv4.
        let wide = gw("::/95");
        assert!(wide.network().is_ipv6());
        assert!(!wide.contains(&sa("1.2.3.4:1")));
        assert!(gw("::/80").contains(&sa("1.2.3.4:1")));
    }

    #[test]
    fn flowinfo_and_scope_are_ignored() {
        let g = gw("fe80::/10");
        let src = SocketAddr::V6(std::net::SocketAddrV6::new(
            "fe80::1".parse().unwrap(),
            9,
            0x12345,
            3,
        ));
        assert!(g.contains(&src));
    }

    #[test]
    fn parse_errors_name_entry_and_reason() {
        let e = "10.0.0.0/33".parse::<TrustedGateway>().unwrap_err();
        assert_eq!(e.entry, "10.0.0.0/33");
        assert_eq!(e.kind, TrustErrorKind::PrefixTooLong { len: 33, max: 32 });
        let msg = e.to_string();
        assert!(msg.contains("10.0.0.0/33") && msg.contains("/33"), "{msg}");

        assert_eq!(
            kind("::/129"),
            TrustErrorKind::PrefixTooLong { len: 129, max: 128 }
        );
        assert_eq!(
            kind("10.0.0.0/4294967296"),
            TrustErrorKind::BadPrefix,
            "beyond u32"
        );
        assert_eq!(
            kind("10.0.0.0/300"),
            TrustErrorKind::PrefixTooLong { len: 300, max: 32 }
        );
        assert_eq!(kind(""), TrustErrorKind::Empty);
        assert_eq!(kind("   "), TrustErrorKind::Empty);
        assert_eq!(kind("10.0.0"), TrustErrorKind::BadAddress);
        assert_eq!(kind("10.0.0.256"), TrustErrorKind::BadAddress);
        assert_eq!(kind("example.com"), TrustErrorKind::BadAddress);
        assert_eq!(kind("10.0.0.0/"), TrustErrorKind::BadPrefix);
        assert_eq!(kind("10.0.0.0/+8"), TrustErrorKind::BadPrefix);
        assert_eq!(kind("10.0.0.0/-1"), TrustErrorKind::BadPrefix);
        assert_eq!(kind("10.0.0.0/8/8"), TrustErrorKind::BadPrefix);
        assert_eq!(kind("10.0.0.0/ 8"), TrustErrorKind::BadPrefix);
        assert_eq!(kind("10.0.0.5:0"), TrustErrorKind::BadPort);
        assert_eq!(kind("10.0.0.5:65536"), TrustErrorKind::BadPort);
        assert_eq!(kind("10.0.0.5:"), TrustErrorKind::BadPort);
        assert_eq!(kind("10.0.0.5:+80"), TrustErrorKind::BadPort);
        assert_eq!(kind("[::1]:"), TrustErrorKind::BadPort);
        assert_eq!(kind("[::1]x"), TrustErrorKind::BadAddress);
        assert_eq!(kind("[::1"), TrustErrorKind::BadAddress);
        assert_eq!(kind("[10.0.0.1]:80"), TrustErrorKind::BadAddress);
        assert_eq!(kind("fe80::1%eth0"), TrustErrorKind::BadAddress);
        assert_eq!(
            kind("10.0.0.5/8"),
            TrustErrorKind::HostBitsSet {
                len: 8,
                network: "10.0.0.0".parse().unwrap()
            }
        );
        assert_eq!(
            kind("2001:db8::1/32"),
            TrustErrorKind::HostBitsSet {
                len: 32,
                network: "2001:db8::".parse().unwrap()
            }
        );
        // Without brackets, a trailing `:7000` is part of the IPv6 address.
        assert_eq!(gw("2001:db8::1:7000").port(), None);
    }

    #[test]
    fn constructors_refuse_bad_ranges() {
        let v4: IpAddr = "10.0.0.0".parse().unwrap();
        assert!(TrustedGateway::new(v4, 8).is_ok());
        assert_eq!(
            TrustedGateway::new(v4, 33),
            Err(TrustErrorKind::PrefixTooLong { len: 33, max: 32 })
        );
        assert_eq!(
            TrustedGateway::new(v4, 255),
            Err(TrustErrorKind::PrefixTooLong { len: 255, max: 32 })
        );
        let host = TrustedGateway::host("10.0.0.1".parse().unwrap()).with_port(9);
        assert_eq!(host, gw("10.0.0.1:9"));
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "10.0.0.5",
            "10.0.0.0/8",
            "10.0.0.5:7000",
            "10.0.0.0/8:7000",
            "0.0.0.0/0",
            "::1",
            "::/0",
            "2001:db8::/32",
            "[2001:db8::1]:7000",
            "[2001:db8::/32]:7000",
        ] {
            let g = gw(s);
            assert_eq!(g.to_string(), s);
            assert_eq!(gw(&g.to_string()), g);
        }
        assert_eq!(gw(" 1.2.3.4/32 ").to_string(), "1.2.3.4");
        assert_eq!(gw("::ffff:10.0.0.0/104").to_string(), "10.0.0.0/8");
    }

    #[test]
    fn set_parses_lists_and_matches_any() {
        let set: TrustedGateways = "10.0.0.0/8, [2001:db8::1]:7000\n192.168.1.1:53"
            .parse()
            .unwrap();
        assert_eq!(set.len(), 3);
        assert!(set.contains(&sa("10.2.3.4:1")));
        assert!(set.contains(&sa("[2001:db8::1]:7000")));
        assert!(!set.contains(&sa("[2001:db8::1]:7001")));
        assert!(set.contains(&sa("192.168.1.1:53")));
        assert!(!set.contains(&sa("192.168.1.1:54")));
        assert!(!set.contains(&sa("172.16.0.1:1")));
        assert_eq!(set.to_string().parse::<TrustedGateways>().unwrap(), set);

        let empty: TrustedGateways = "".parse().unwrap();
        assert!(empty.is_empty());
        assert!(!empty.contains(&sa("10.0.0.1:1")));

        let e = TrustedGateways::parse_list(["10.0.0.1", "10.0.0.300", "bad"]).unwrap_err();
        assert_eq!(e.entry, "10.0.0.300");
        assert_eq!(e.kind, TrustErrorKind::BadAddress);

        let mut set = TrustedGateways::new();
        set.push(gw("::1"));
        set.extend([gw("127.0.0.1")]);
        assert!(set.contains(&sa("127.0.0.1:1")));
        assert_eq!(set.entries().len(), 2);
    }

    #[test]
    fn arbitrary_strings_never_panic() {
        use rand::{Rng, SeedableRng};
        let alphabet = b"0123456789abcdefABCDEF:./[]% ,-+xffff";
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        for _ in 0..20_000 {
            let n = rng.random_range(0..24);
            let s: String = (0..n)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
                .collect();
            if let Ok(g) = s.parse::<TrustedGateway>() {
                assert_eq!(gw(&g.to_string()), g, "{s:?}");
            }
            let _ = s.parse::<TrustedGateways>();
        }
    }
}
