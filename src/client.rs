//! The caller's address ([`ClientIp`], taken from each request by `transport::extract`), for
//! throttling and per-client limits. Behind a reverse proxy every connection comes from the
//! proxy, so with `AGORA_TRUST_FORWARDED_FOR` the address is the one the proxy appended last to
//! `X-Forwarded-For` (a client can forge the entries before it, never that one).

use std::net::IpAddr;

use axum::http::HeaderMap;

/// The address of the caller: of the connection, or the one a trusted proxy reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// The unit limits count by: an IPv4 address, or the /64 network of an IPv6 one (one
/// subscriber's whole network, so rotating addresses inside it gets around nothing).
pub fn network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

/// The last address of the last `X-Forwarded-For` header.
pub fn forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    let last = headers.get_all("x-forwarded-for").iter().next_back()?.to_str().ok()?;
    last.rsplit(',').next()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proxy_appended_address_wins() {
        let mut headers = HeaderMap::new();
        assert_eq!(forwarded_for(&headers), None);
        headers.append("x-forwarded-for", "6.6.6.6, 10.0.0.7".parse().unwrap());
        assert_eq!(forwarded_for(&headers), Some("10.0.0.7".parse().unwrap()));
        headers.append("x-forwarded-for", "203.0.113.9".parse().unwrap());
        assert_eq!(forwarded_for(&headers), Some("203.0.113.9".parse().unwrap()));
        headers.insert("x-forwarded-for", "not an address".parse().unwrap());
        assert_eq!(forwarded_for(&headers), None);
    }
}
