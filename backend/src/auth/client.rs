//! Who the client is: the address a request came from, or, behind a trusted proxy, the one
//! that proxy says it came from. The brute-force limit counts failures per client, and the
//! session cookie is `Secure` when the client used HTTPS.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, RwLock};

use axum::http::HeaderMap;

/// A network: an address and a prefix length, such as `10.0.0.0/8` (a bare address is a
/// network of one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    address: IpAddr,
    prefix: u8,
}

impl Network {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address
            .parse()
            .map_err(|_| format!("{text:?} is not an IP address or network (such as 10.0.0.0/8)"))?;
        let address = canonical(address);
        let bits = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= bits)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {bits}"))?,
        };
        Ok(Self { address, prefix })
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.address, canonical(address)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => same_prefix(
                u128::from(u32::from(net)) << 96,
                u128::from(u32::from(ip)) << 96,
                self.prefix,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => same_prefix(u128::from(net), u128::from(ip), self.prefix),
            _ => false,
        }
    }
}

fn same_prefix(a: u128, b: u128, prefix: u8) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
    a & mask == b & mask
}

/// An IPv4 address written as IPv6 (`::ffff:10.0.0.1`, as dual-stack sockets report them)
/// is the IPv4 address.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

/// The proxies whose `X-Forwarded-For` and `X-Forwarded-Proto` are believed
/// (`BOOKSTORE_TRUSTED_PROXIES`): addresses, networks, and host names (such as the compose
/// service `frontend`, whose address changes when it is recreated), which
/// [`TrustedProxies::resolve`] looks up again and again.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    networks: Vec<Network>,
    hosts: Vec<String>,
    /// The addresses the host names had when last looked up.
    resolved: Arc<RwLock<Vec<IpAddr>>>,
}

impl TrustedProxies {
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        let mut proxies = Self::default();
        for entry in entries
            .iter()
            .map(|e| e.as_ref().trim())
            .filter(|e| !e.is_empty())
        {
            match Network::parse(entry) {
                Ok(network) => proxies.networks.push(network),
                Err(_) if is_host_name(entry) => proxies.hosts.push(entry.to_ascii_lowercase()),
                Err(error) => return Err(format!("{error}, nor a host name")),
            }
        }
        Ok(proxies)
    }

    /// The host names among the entries.
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    /// Looks the host names up again; a name that does not resolve (its container is not up
    /// yet, say) trusts nobody until it does.
    pub async fn resolve(&self) {
        let mut addresses = Vec::new();
        for host in &self.hosts {
            match tokio::net::lookup_host((host.as_str(), 0)).await {
                Ok(found) => addresses.extend(found.map(|a| canonical(a.ip()))),
                Err(error) => {
                    tracing::debug!(host = %host, %error, "a trusted proxy's name does not resolve (yet)")
                }
            }
        }
        *self.resolved.write().unwrap_or_else(|e| e.into_inner()) = addresses;
    }

    fn trusts(&self, address: IpAddr) -> bool {
        self.networks.iter().any(|network| network.contains(address))
            || (!self.hosts.is_empty()
                && self
                    .resolved
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .contains(&address))
    }

    /// The client of a request that came from `peer`: `peer` itself, unless it is a trusted
    /// proxy; then, walking `X-Forwarded-For` from its end (each proxy appends the address
    /// it saw), the first address that is not a trusted proxy. Anything a client wrote
    /// there itself sits before the trusted proxies' entries and is never reached.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = canonical(peer);
        if !self.trusts(client) {
            return client;
        }
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .collect::<Vec<_>>();
        for entry in forwarded.iter().rev() {
            let Ok(address) = entry.trim().parse::<IpAddr>() else {
                // Not an address: whatever came before it cannot be vouched for either.
                break;
            };
            client = canonical(address);
            if !self.trusts(client) {
                break;
            }
        }
        client
    }

    /// Whether the client used HTTPS: only a trusted proxy can say so (`X-Forwarded-Proto`).
    pub fn forwarded_https(&self, peer: IpAddr, headers: &HeaderMap) -> bool {
        self.trusts(canonical(peer))
            && headers
                .get("x-forwarded-proto")
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.split(',').next())
                .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
    }

    /// The host the client asked for: `X-Forwarded-Host` from a trusted proxy, else `Host`.
    pub fn host<'a>(&self, peer: IpAddr, headers: &'a HeaderMap) -> Option<&'a str> {
        let forwarded = self
            .trusts(canonical(peer))
            .then(|| headers.get("x-forwarded-host"))
            .flatten();
        forwarded
            .or_else(|| headers.get(axum::http::header::HOST))
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(',').next())
            .map(str::trim)
    }
}

/// A DNS name: labels of letters, digits and hyphens, separated by dots.
fn is_host_name(text: &str) -> bool {
    text.len() <= 253
        && text.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// What failures are counted against: an IPv4 address, or an IPv6 /64 (one machine usually
/// has a whole /64, and could otherwise take a fresh address for every guess).
pub fn limit_key(client: IpAddr) -> IpAddr {
    match canonical(client) {
        IpAddr::V6(v6) => {
            let network = u128::from(v6) & (u128::MAX << 64);
            IpAddr::V6(Ipv6Addr::from(network))
        }
        v4 => v4,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A header map of `(name, value)` pairs, repeats kept.
    pub(in crate::auth) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn networks_contain_what_their_prefix_covers() {
        let net = Network::parse("10.1.0.0/16").unwrap();
        assert!(net.contains(ip("10.1.200.3")));
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(
            net.contains(ip("::ffff:10.1.0.9")),
            "an IPv4-mapped address is IPv4"
        );
        assert!(Network::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Network::parse("127.0.0.1").unwrap().contains(ip("127.0.0.1")));
        assert!(!Network::parse("127.0.0.1").unwrap().contains(ip("127.0.0.2")));
        assert!(Network::parse("fd00::/8").unwrap().contains(ip("fd12::1")));
        assert!(!Network::parse("fd00::/8").unwrap().contains(ip("10.0.0.1")));
        assert!(Network::parse("10.0.0.0/33").is_err());
        assert!(Network::parse("proxy.example").is_err());
    }

    #[test]
    fn forwarded_for_is_ignored_unless_the_peer_is_trusted() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8"]).unwrap();
        let spoofed = headers(&[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(proxies.client(ip("203.0.113.9"), &spoofed), ip("203.0.113.9"));
        assert_eq!(proxies.client(ip("10.0.0.2"), &spoofed), ip("1.2.3.4"));
        assert_eq!(
            TrustedProxies::default().client(ip("10.0.0.2"), &spoofed),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn the_client_is_the_last_address_a_trusted_proxy_added() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8", "192.168.1.1"]).unwrap();
        // The client wrote 6.6.6.6 itself; 198.51.100.7 is what the first proxy saw.
        let chain = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 192.168.1.1")]);
        assert_eq!(proxies.client(ip("10.0.0.2"), &chain), ip("198.51.100.7"));
        let split = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "198.51.100.7"),
        ]);
        assert_eq!(proxies.client(ip("10.0.0.2"), &split), ip("198.51.100.7"));
        let garbage = headers(&[("x-forwarded-for", "6.6.6.6, not-an-address, 10.9.9.9")]);
        assert_eq!(proxies.client(ip("10.0.0.2"), &garbage), ip("10.9.9.9"));
    }

    #[tokio::test]
    async fn a_host_name_is_trusted_at_the_addresses_it_resolves_to() {
        let proxies = TrustedProxies::parse(&["localhost", "10.0.0.0/8"]).unwrap();
        assert_eq!(proxies.hosts(), ["localhost"]);
        let forwarded = headers(&[("x-forwarded-for", "203.0.113.7")]);
        assert_eq!(
            proxies.client(ip("127.0.0.1"), &forwarded),
            ip("127.0.0.1"),
            "not looked up yet"
        );
        proxies.resolve().await;
        assert_eq!(proxies.client(ip("127.0.0.1"), &forwarded), ip("203.0.113.7"));
        assert_eq!(proxies.client(ip("127.0.0.2"), &forwarded), ip("127.0.0.2"));
        let unknown = TrustedProxies::parse(&["no-such-host.invalid"]).unwrap();
        unknown.resolve().await;
        assert_eq!(unknown.client(ip("127.0.0.1"), &forwarded), ip("127.0.0.1"));
        assert!(TrustedProxies::parse(&["not a host"]).is_err());
        assert!(TrustedProxies::parse(&["-bad-.example"]).is_err());
    }

    #[test]
    fn only_a_trusted_proxy_can_say_the_client_used_https() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8"]).unwrap();
        let https = headers(&[("x-forwarded-proto", "https")]);
        assert!(proxies.forwarded_https(ip("10.0.0.2"), &https));
        assert!(!proxies.forwarded_https(ip("203.0.113.9"), &https));
        assert!(!proxies.forwarded_https(ip("10.0.0.2"), &headers(&[("x-forwarded-proto", "http")])));
    }

    #[test]
    fn ipv6_clients_are_limited_by_their_64() {
        assert_eq!(limit_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(limit_key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
    }
}
