//! IPv4/IPv6 arithmetic for subnets and port addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A parsed CIDR: network address (as a number), prefix length, IP version.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cidr {
    pub net: u128,
    pub prefix: u8,
    pub v6: bool,
}

fn bits(v6: bool) -> u8 {
    if v6 { 128 } else { 32 }
}

pub fn to_num(ip: IpAddr) -> (u128, bool) {
    match ip {
        IpAddr::V4(a) => (u32::from(a) as u128, false),
        IpAddr::V6(a) => (u128::from(a), true),
    }
}

pub fn from_num(n: u128, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(n))
    } else {
        IpAddr::V4(Ipv4Addr::from(n as u32))
    }
}

pub fn parse_ip(s: &str) -> Option<(u128, bool)> {
    s.trim().parse::<IpAddr>().ok().map(to_num)
}

impl Cidr {
    /// Parse `a.b.c.d/n`; `Err(Some(normal))` when the address has host bits set.
    pub fn parse(s: &str) -> Result<Cidr, Option<String>> {
        let (ip, prefix) = s.trim().split_once('/').ok_or(None)?;
        let (n, v6) = parse_ip(ip).ok_or(None)?;
        let prefix: u8 = prefix.parse().map_err(|_| None)?;
        if prefix > bits(v6) {
            return Err(None);
        }
        let c = Cidr {
            net: n & Self::mask(prefix, v6),
            prefix,
            v6,
        };
        if c.net != n {
            return Err(Some(c.to_string()));
        }
        Ok(c)
    }

    fn mask(prefix: u8, v6: bool) -> u128 {
        let total = bits(v6);
        if prefix == 0 {
            return 0;
        }
        let all: u128 = if v6 { u128::MAX } else { u32::MAX as u128 };
        (all >> (total - prefix)) << (total - prefix)
    }

    pub fn size(&self) -> u128 {
        let host_bits = bits(self.v6) - self.prefix;
        if host_bits >= 128 {
            u128::MAX
        } else {
            1u128 << host_bits
        }
    }

    pub fn last(&self) -> u128 {
        self.net.saturating_add(self.size() - 1)
    }

    pub fn contains(&self, n: u128) -> bool {
        n >= self.net && n <= self.last()
    }

    pub fn overlaps(&self, o: &Cidr) -> bool {
        self.v6 == o.v6 && self.net <= o.last() && o.net <= self.last()
    }

    /// The usable host range: without network and broadcast addresses for IPv4.
    pub fn hosts(&self) -> (u128, u128) {
        if self.v6 {
            (self.net + 1, self.last())
        } else if self.prefix >= 31 {
            (self.net, self.last())
        } else {
            (self.net + 1, self.last() - 1)
        }
    }

    pub fn ip(&self, n: u128) -> String {
        from_num(n, self.v6).to_string()
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", from_num(self.net, self.v6), self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        let c = Cidr::parse("10.0.0.0/24").expect("cidr");
        assert_eq!(c.hosts(), (c.net + 1, c.net + 254));
        assert_eq!(c.ip(c.net + 1), "10.0.0.1");
        assert_eq!(Cidr::parse("10.0.0.5/24"), Err(Some("10.0.0.0/24".into())));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        let d = Cidr::parse("10.0.0.128/25").expect("cidr");
        assert!(c.overlaps(&d));
        let v6 = Cidr::parse("fd00::/64").expect("v6");
        assert!(!v6.overlaps(&c));
        assert_eq!(v6.ip(v6.net + 1), "fd00::1");
    }
}
