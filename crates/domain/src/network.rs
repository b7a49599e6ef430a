//! Networks (`ADDRESS/PREFIX`) and the push rule built on them: with
//! `push_networks` set, the server pushes only to hosts whose address is
//! an IP address inside one of them. A host's address is whatever an
//! operator or a registering node wrote, so without the rule the server
//! can be made to connect anywhere it can reach.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// A network: an address and how many leading bits of it count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    base: IpAddr,
    prefix: u8,
}

impl FromStr for Network {
    type Err = String;

    /// `10.20.0.0/16`, `fd00::/8`, or one address (`127.0.0.1`: all its bits).
    fn from_str(text: &str) -> Result<Self, String> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let base: IpAddr = address.trim().parse().map_err(|_| {
            format!("{text:?} is not a network: ADDRESS/PREFIX, for example 10.20.0.0/16")
        })?;
        let bits = width(base);
        let prefix = match prefix {
            None => bits,
            Some(prefix) => prefix
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| u32::from(*p) <= u32::from(bits))
                .ok_or_else(|| format!("{text:?}: the prefix must be 0 to {bits}"))?,
        };
        Ok(Self { base, prefix })
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

fn width(address: IpAddr) -> u8 {
    if address.is_ipv4() { 32 } else { 128 }
}

/// The leading `prefix` bits of an address `width` bits wide.
fn leading(bits: u128, width: u8, prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        bits >> (width - prefix)
    }
}

fn bits(address: IpAddr) -> u128 {
    match address {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

impl Network {
    /// Whether `address` is inside (an IPv4-mapped IPv6 address counts as
    /// its IPv4 address).
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = match address {
            IpAddr::V6(v6) if self.base.is_ipv4() => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => return false,
            },
            other => other,
        };
        if address.is_ipv4() != self.base.is_ipv4() {
            return false;
        }
        let w = width(address);
        leading(bits(address), w, self.prefix) == leading(bits(self.base), w, self.prefix)
    }
}

/// Whether the server may push to a host at `address` (as stored): yes
/// when no networks are set; otherwise only an IP address inside one of
/// them. A name is refused, for checking it would mean resolving it.
pub fn push_allowed(networks: &[Network], address: &str) -> Result<(), String> {
    if networks.is_empty() {
        return Ok(());
    }
    let Ok(ip) = address.parse::<IpAddr>() else {
        return Err(format!(
            "{address} is not an IP address, and push_networks allows only addresses"
        ));
    };
    if networks.iter().any(|n| n.contains(ip)) {
        Ok(())
    } else {
        Err(format!("{address} is outside push_networks"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> Network {
        text.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn networks_parse_and_show_as_written() {
        assert_eq!(net("127.20.0.0/16").to_string(), "127.20.0.0/16");
        assert_eq!(net("127.0.0.1").to_string(), "127.0.0.1/32");
        assert_eq!(net("::/120").to_string(), "::/120");
        assert_eq!(net("::1").to_string(), "::1/128");
        for bad in [
            "",
            "127.0.0.0/33",
            "::/129",
            "127.0.0/8",
            "a.example/8",
            "127.0.0.0/-1",
            "127.0.0.0/x",
        ] {
            assert!(bad.parse::<Network>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn an_address_is_inside_when_its_leading_bits_match() {
        let n = net("127.20.0.0/16");
        assert!(n.contains(ip("127.20.0.1")));
        assert!(n.contains(ip("127.20.255.255")));
        assert!(!n.contains(ip("127.21.0.1")));
        assert!(!n.contains(ip("::1")));
        assert!(n.contains(ip("::ffff:127.20.3.4")), "IPv4-mapped");
        assert!(net("0.0.0.0/0").contains(ip("127.9.9.9")));
        assert!(net("127.0.0.1").contains(ip("127.0.0.1")));
        assert!(!net("127.0.0.1").contains(ip("127.0.0.2")));
        let v6 = net("::/127");
        assert!(v6.contains(ip("::1")));
        assert!(!v6.contains(ip("::2")));
        assert!(!v6.contains(ip("127.0.0.1")));
    }

    #[test]
    fn pushes_go_anywhere_unless_networks_are_set_and_never_to_names_then() {
        assert!(push_allowed(&[], "agent.example").is_ok());
        assert!(push_allowed(&[], "127.30.0.1").is_ok());
        let networks = [net("127.0.0.0/16"), net("::1")];
        assert!(push_allowed(&networks, "127.0.0.5").is_ok());
        assert!(push_allowed(&networks, "::1").is_ok());
        let outside = push_allowed(&networks, "127.30.0.1").unwrap_err();
        assert!(outside.contains("outside push_networks"), "{outside}");
        let name = push_allowed(&networks, "localhost").unwrap_err();
        assert!(name.contains("not an IP address"), "{name}");
    }
}
