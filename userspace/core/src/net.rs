//! IP prefixes: the networks a config names (on-net ranges, servers), on the `ipnet` crate.
//!
//! Shared by the recording rules and the server table (`crate::servers`), which both match
//! addresses against them; it lives apart from both so that neither imports the other.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An IPv4 or IPv6 prefix, `10.0.0.0/8` or `2001:db8::/32`; a bare address is a /32 or /128.
/// The matching is the `ipnet` crate's; this adds what a config needs of it: a bare address,
/// host bits refused (`10.0.0.1/8` is a typo, not a network), errors that say which, and an
/// IPv4-mapped IPv6 address matched as the IPv4 address it carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNet(ipnet::IpNet);

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IpNetError {
    #[error("`{0}` is not an IP address")]
    Address(String),
    #[error("`{0}` is not a prefix length")]
    Prefix(String),
    #[error("prefix length {prefix} is longer than {max} bits")]
    TooLong { prefix: u8, max: u8 },
    #[error("{0} has host bits set beyond its prefix")]
    HostBits(String),
}

impl IpNet {
    pub fn new(addr: IpAddr, prefix: u8) -> Result<IpNet, IpNetError> {
        let max = max_prefix(addr);
        let net =
            ipnet::IpNet::new(addr, prefix).map_err(|_| IpNetError::TooLong { prefix, max })?;
        if net.trunc() != net {
            return Err(IpNetError::HostBits(format!("{addr}/{prefix}")));
        }
        Ok(IpNet(net))
    }

    pub fn addr(&self) -> IpAddr {
        self.0.addr()
    }

    pub fn prefix(&self) -> u8 {
        self.0.prefix_len()
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        // An IPv4-mapped IPv6 address is the IPv4 address it carries.
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            v4 => v4,
        };
        self.0.contains(&addr)
    }
}

fn max_prefix(addr: IpAddr) -> u8 {
    if addr.is_ipv4() { 32 } else { 128 }
}

impl FromStr for IpNet {
    type Err = IpNetError;

    fn from_str(s: &str) -> Result<IpNet, IpNetError> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| IpNetError::Address(addr.to_string()))?;
        let prefix = match prefix {
            Some(p) => p.parse().map_err(|_| IpNetError::Prefix(p.to_string()))?,
            None => max_prefix(addr),
        };
        IpNet::new(addr, prefix)
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr(), self.prefix())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_v4_and_v6() {
        let n: IpNet = "10.1.0.0/16".parse().unwrap();
        assert!(n.contains("10.1.200.3".parse().unwrap()));
        assert!(!n.contains("10.2.0.1".parse().unwrap()));
        assert!(n.contains("::ffff:10.1.0.9".parse().unwrap()));
        assert!(!n.contains("2001:db8::1".parse().unwrap()));
        let v6: IpNet = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(!v6.contains("2001:db9::1".parse().unwrap()));
        let all: IpNet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("192.0.2.1".parse().unwrap()));
        let host: IpNet = "192.0.2.7".parse().unwrap();
        assert_eq!(host.prefix(), 32);
        assert!(host.contains("192.0.2.7".parse().unwrap()));
        assert!(!host.contains("192.0.2.8".parse().unwrap()));
        assert_eq!(host.to_string(), "192.0.2.7/32");
    }

    #[test]
    fn cidr_errors() {
        assert!(matches!(
            "10.0.0/8".parse::<IpNet>(),
            Err(IpNetError::Address(_))
        ));
        assert!(matches!(
            "10.0.0.0/x".parse::<IpNet>(),
            Err(IpNetError::Prefix(_))
        ));
        assert!(matches!(
            "10.0.0.0/33".parse::<IpNet>(),
            Err(IpNetError::TooLong { .. })
        ));
        assert!(matches!(
            "10.0.0.1/8".parse::<IpNet>(),
            Err(IpNetError::HostBits(_))
        ));
        assert!("::/0".parse::<IpNet>().is_ok());
        assert!("2001:db8::/129".parse::<IpNet>().is_err());
    }
}
