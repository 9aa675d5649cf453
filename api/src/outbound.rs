//! Requests the node makes on a customer's behalf (notification webhooks)
//! reach the public internet only.
//!
//! A webhook URL is chosen by a customer and fetched by a group leader inside
//! the cluster's network, so without a check it would let anyone make the
//! leader POST to loopback, to a cloud metadata service (169.254.169.254) or
//! to private services, and read the delivery error back as a port scanner.
//! Unless the operator turns on `allow_private_webhooks` (the demo and the
//! tests, whose receivers listen on loopback):
//!
//! - the URL must be `https` and must not name an IP address outside the
//!   public unicast ranges, nor `localhost` (checked when the customer sets
//!   it, [`check_webhook_url`], and again before each delivery);
//! - every connection resolves the host through [`PublicResolver`], which
//!   drops every non-public address; a name with no public address fails. The
//!   check is made at connect time, each time, so a name that resolved to a
//!   public address when it was set and to a private one later (DNS rebinding)
//!   is refused then;
//! - redirects are not followed and no proxy is used, so neither can lead the
//!   request elsewhere.
//!
//! Errors a customer can read (`/notices`) name a category, never what the
//! far side answered or which address refused: the details go to the log.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// Whether `ip` is a public unicast address (not loopback, private,
/// link-local, shared, documentation, benchmarking, multicast or reserved).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let private = a == 0
        || a == 10
        || a == 127
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 169 && b == 254) // link-local, cloud metadata
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // TEST-NET-1
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 192 && b == 168)
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // TEST-NET-3
        || a >= 224; // multicast, reserved, broadcast
    !private
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    // NAT64 (64:ff9b::/96) carries an IPv4 address in its last 32 bits.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        let [a, b] = s[6].to_be_bytes();
        let [c, d] = s[7].to_be_bytes();
        return is_public_v4(Ipv4Addr::new(a, b, c, d));
    }
    let private = ip.is_unspecified()
        || ip.is_loopback()
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s[0] & 0xff00) == 0xff00 // multicast
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]) // discard
        || s[0..6] == [0, 0, 0, 0, 0, 0]; // IPv4-compatible, deprecated
    !private
}

/// Why `url` may not be a webhook target, if it may not. With
/// `allow_private`, only the shape is checked (http or https).
pub fn check_webhook_url(url: &str, allow_private: bool) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("webhook_url is not a URL: {e}"))?;
    match parsed.scheme() {
        "https" => {}
        "http" if allow_private => {}
        "http" => return Err("webhook_url must use https".to_owned()),
        other => return Err(format!("webhook_url must use https, not {other}")),
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("webhook_url must not carry credentials".to_owned());
    }
    if allow_private {
        return Ok(());
    }
    match parsed.host() {
        None => Err("webhook_url needs a host".to_owned()),
        Some(url::Host::Ipv4(ip)) if !is_public_v4(ip) => {
            Err("webhook_url must reach a public address".to_owned())
        }
        Some(url::Host::Ipv6(ip)) if !is_public_v6(ip) => {
            Err("webhook_url must reach a public address".to_owned())
        }
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if name == "localhost" || name.ends_with(".localhost") || !name.contains('.') {
                Err("webhook_url must name a public host".to_owned())
            } else {
                Ok(())
            }
        }
        Some(_) => Ok(()),
    }
}

/// Resolves names to their public addresses only (see the module doc).
#[derive(Debug, Clone, Copy, Default)]
pub struct PublicResolver;

impl reqwest::dns::Resolve for PublicResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = all.into_iter().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err(format!("{host} has no public address").into());
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The HTTP client of customer webhooks.
pub fn webhook_client(allow_private: bool, timeout: Duration) -> reqwest::Result<reqwest::Client> {
    transport::tls::install_crypto_provider();
    let builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(3))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy();
    if allow_private {
        builder.build()
    } else {
        builder
            .https_only(true)
            .dns_resolver(std::sync::Arc::new(PublicResolver))
            .build()
    }
}

/// The customer-facing category of a failed webhook delivery.
pub fn delivery_error(error: &reqwest::Error) -> &'static str {
    if error.is_timeout() {
        "webhook: no answer in time"
    } else if error.is_connect() {
        "webhook: could not connect"
    } else if error.is_builder() || error.is_request() {
        "webhook: the request could not be sent"
    } else {
        "webhook: delivery failed"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "198.18.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2001:db8::1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip} counted as public");
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "172.32.0.1",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip} counted as private");
        }
    }

    #[test]
    fn webhook_urls_must_be_https_and_public_unless_allowed() {
        assert!(check_webhook_url("https://hooks.example.org/boxoffice", false).is_ok());
        for bad in [
            "http://hooks.example.org/x",
            "https://127.0.0.1/x",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]:8080/x",
            "https://localhost/x",
            "https://intranet/x",
            "https://user:pw@hooks.example.org/x",
            "ftp://hooks.example.org/x",
            "not a url",
        ] {
            assert!(check_webhook_url(bad, false).is_err(), "{bad} accepted");
        }
        assert!(check_webhook_url("http://127.0.0.1:9000/hook", true).is_ok());
        assert!(check_webhook_url("ftp://127.0.0.1/x", true).is_err());
    }

    #[tokio::test]
    async fn the_resolver_drops_private_answers() {
        use reqwest::dns::Resolve;
        let refused = PublicResolver.resolve("localhost".parse().unwrap()).await;
        assert!(refused.is_err(), "localhost resolved to a public address");
    }
}
