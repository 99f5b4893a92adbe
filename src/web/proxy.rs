//! Who the client is behind a reverse proxy: [`ClientAddr`], the address a request came
//! from. The TCP peer, unless the peer is one of `web.trusted_proxies`; then the hops
//! its `Forwarded` (RFC 7239) or, without one, `X-Forwarded-For` header lists are read
//! from the right, skipping trusted proxies, and the first address that is not one is
//! the client. Anything a client wrote further left is never believed: a client can put
//! whatever it likes in those headers, and only the hops our own proxies appended are
//! true.

use super::page::WebError;
use super::WebState;
use crate::config::TrustedProxy;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use std::net::{IpAddr, SocketAddr};

/// The client's address, as far as this server can know it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl FromRequestParts<WebState> for ClientAddr {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, WebError> {
        let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() else {
            return Err(WebError::Internal("the server was started without peer addresses".into()));
        };
        Ok(Self(client_ip(peer.ip(), &parts.headers, &state.app.config.web.trusted_proxies)))
    }
}

/// The client's address: `peer` itself unless it is a trusted proxy; else the right-most
/// forwarded hop that is not a trusted proxy. A hop that is not an address (`unknown`,
/// an obfuscated name) stops the walk at the proxy that reported it: all such clients
/// then share that proxy's address, which throttles them together rather than not at all.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[TrustedProxy]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|t| t.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let mut client = peer;
    for hop in forwarded_hops(headers).iter().rev() {
        match hop {
            Some(ip) => {
                client = *ip;
                if !is_trusted(*ip) {
                    break;
                }
            }
            None => break,
        }
    }
    client
}

/// The hops of the `Forwarded` headers (their `for=` values), else of the
/// `X-Forwarded-For` headers, left to right; `None` for a hop that is not an address.
fn forwarded_hops(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let values = |name: &str| -> Vec<String> {
        headers.get_all(name).iter().map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).collect()
    };
    let forwarded = values("forwarded");
    if !forwarded.is_empty() {
        return forwarded
            .iter()
            .flat_map(|v| v.split(','))
            .map(|element| {
                element
                    .split(';')
                    .filter_map(|pair| pair.split_once('='))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("for"))
                    .and_then(|(_, v)| parse_hop(v))
            })
            .collect();
    }
    values("x-forwarded-for").iter().flat_map(|v| v.split(',')).map(parse_hop).collect()
}

/// `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`, `[2001:db8::1]:4711`, quoted or not.
fn parse_hop(text: &str) -> Option<IpAddr> {
    let text = text.trim().trim_matches('"');
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sock) = text.parse::<SocketAddr>() {
        return Some(sock.ip());
    }
    text.strip_prefix('[').and_then(|t| t.split_once(']')).and_then(|(ip, _)| ip.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().expect("header"));
        }
        h
    }

    fn trusted(list: &[&str]) -> Vec<TrustedProxy> {
        list.iter().map(|t| t.parse().expect("proxy")).collect()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let h = headers(&[("x-forwarded-for", "1.2.3.4"), ("forwarded", "for=5.6.7.8")]);
        assert_eq!(client_ip(ip("203.0.113.7"), &h, &trusted(&["127.0.0.1"])), ip("203.0.113.7"));
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &[]), ip("127.0.0.1"), "no proxies configured");
    }

    #[test]
    fn behind_trusted_proxies_the_right_most_untrusted_hop_is_the_client() {
        let t = trusted(&["127.0.0.1", "10.0.0.0/8"]);
        // The client prepended a fake hop; our proxies appended the real one and themselves.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.4, 10.0.0.2")]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &t), ip("198.51.100.4"));
        // Several header lines are one list.
        let h = headers(&[("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", "198.51.100.4:5555")]);
        assert_eq!(client_ip(ip("10.9.9.9"), &h, &t), ip("198.51.100.4"));
        // Forwarded wins over X-Forwarded-For, with quoted IPv6 and ports.
        let h = headers(&[
            ("forwarded", r#"for=6.6.6.6, for="[2001:db8:cafe::17]:4711";proto=https;by=10.0.0.1"#),
            ("x-forwarded-for", "192.0.2.1"),
        ]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &t), ip("2001:db8:cafe::17"));
        // Every hop trusted (a client on the proxy's own network): the left-most.
        let h = headers(&[("x-forwarded-for", "10.1.1.1, 10.0.0.2")]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &t), ip("10.1.1.1"));
        // A hop that is no address stops at the proxy that reported it.
        let h = headers(&[("forwarded", "for=unknown, for=10.0.0.3")]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &t), ip("10.0.0.3"));
        // No header: the proxy itself.
        assert_eq!(client_ip(ip("127.0.0.1"), &HeaderMap::new(), &t), ip("127.0.0.1"));
    }
}
