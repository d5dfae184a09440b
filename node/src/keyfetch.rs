//! The node's HTTPS client for outside keys: Web Key Directories and keyservers
//! (`service::outside_keys` decides what to ask and what to keep; this only fetches).
//!
//! Bounded in every way an outside server could abuse: HTTPS only, no redirects, one deadline
//! for the whole exchange (connecting, TLS, the answer's last byte, so a server trickling bytes
//! is cut off), at most `delivery.max_key_bytes` read. Extra CA roots (`delivery.wkd_ca_file`)
//! and fixed addresses for host names (`delivery.resolve`) come from the configuration.
//!
//! Any user can make the node look up `openpgpkey.DOMAIN` for a domain of their choosing, whose
//! DNS may point into the organisation's own network: names are resolved to public addresses
//! only ([`is_public`]); a private or local address is reached only when the administrator
//! names it in `delivery.resolve`.

use std::sync::OnceLock;
use std::time::Duration;

use async_trait::async_trait;

use crate::config::DeliveryConfig;

/// Fetching a key over HTTPS, as `service::outside_keys` needs it (a trait, so that the
/// service layer holds no HTTP client type).
#[async_trait]
pub trait KeyFetch: Send + Sync + 'static {
    /// The body of a `GET` of `url`, if the server answers 200 within the bounds.
    async fn get(&self, url: &str) -> Result<Vec<u8>, FetchError>;
}

/// Why a fetch gave nothing: for the look-up, "not found there", in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    #[error("not found (404)")]
    NotFound,
    #[error("answered {0}")]
    Status(u16),
    #[error("no answer within the time allowed")]
    Timeout,
    #[error("the answer is larger than {max} bytes")]
    TooLarge { max: usize },
    #[error("unreachable: {0}")]
    Unreachable(String),
    #[error("not set up: {0}")]
    Setup(String),
}

pub struct HttpKeyFetch {
    config: DeliveryConfig,
    client: OnceLock<Result<reqwest::Client, String>>,
}

impl HttpKeyFetch {
    pub fn new(config: &DeliveryConfig) -> HttpKeyFetch {
        HttpKeyFetch {
            config: config.clone(),
            client: OnceLock::new(),
        }
    }

    fn client(&self) -> Result<&reqwest::Client, FetchError> {
        self.client
            .get_or_init(|| build(&self.config))
            .as_ref()
            .map_err(|e| FetchError::Setup(e.clone()))
    }
}

fn build(c: &DeliveryConfig) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .https_only(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(c.lookup_timeout_secs))
        .connect_timeout(Duration::from_secs(c.lookup_timeout_secs))
        .user_agent(concat!("sealpost/", env!("CARGO_PKG_VERSION")));
    if !c.wkd_ca_file.is_empty() {
        let pem = std::fs::read(&c.wkd_ca_file)
            .map_err(|e| format!("delivery.wkd_ca_file: reading {}: {e}", c.wkd_ca_file))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("delivery.wkd_ca_file: {e}"))?;
        if certs.is_empty() {
            return Err(format!(
                "delivery.wkd_ca_file: no PEM certificate in {}",
                c.wkd_ca_file
            ));
        }
        for cert in certs {
            b = b.add_root_certificate(cert);
        }
    }
    // The overrides are consulted before this resolver, so `resolve` may name any address.
    b = b.dns_resolver(PublicOnly);
    for (host, addr) in &c.resolve {
        b = b.resolve(host, *addr);
    }
    b.build().map_err(|e| format!("the HTTPS client: {e}"))
}

/// The system's resolver, keeping public addresses only.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let public: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| is_public(a.ip()))
                .collect();
            if public.is_empty() {
                return Err(format!(
                    "{host} has no public address (a private or local one is reached only \
                     through delivery.resolve)"
                )
                .into());
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Whether `ip` is an address of the public internet: not loopback, private (RFC 1918, IPv6
/// unique local), link-local, shared (RFC 6598), documentation, benchmarking, multicast,
/// broadcast, unspecified or reserved; an IPv4-mapped IPv6 address as its IPv4 address.
pub fn is_public(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_unspecified()
                || v4.is_multicast()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && c == 0)
                || (a == 198 && (18..20).contains(&b)))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || v6.is_unique_local()
                || v6.is_unicast_link_local()
                || (first == 0x2001 && v6.segments()[1] == 0x0db8)
                || first == 0x0064)
        }
    }
}

/// An error in words, with its causes (reqwest's own message is often only "error sending
/// request").
fn words(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

#[async_trait]
impl KeyFetch for HttpKeyFetch {
    async fn get(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        let client = self.client()?;
        let max = self.config.max_key_bytes;
        let fail = |e: reqwest::Error| {
            if e.is_timeout() {
                FetchError::Timeout
            } else {
                FetchError::Unreachable(words(&e))
            }
        };
        let mut resp = client.get(url).send().await.map_err(fail)?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(FetchError::NotFound);
        }
        if !status.is_success() {
            return Err(FetchError::Status(status.as_u16()));
        }
        if resp.content_length().is_some_and(|n| n > max as u64) {
            return Err(FetchError::TooLarge { max });
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(fail)? {
            if body.len().saturating_add(chunk.len()) > max {
                return Err(FetchError::TooLarge { max });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::is_public;

    #[test]
    fn only_public_addresses_are_public() {
        for (ip, public) in [
            ("8.8.8.8", true),
            ("1.1.1.1", true),
            ("2a00:1450:4001:80b::200e", true),
            ("127.0.0.1", false),
            ("10.1.2.3", false),
            ("172.16.0.1", false),
            ("192.168.1.1", false),
            ("169.254.169.254", false),
            ("100.64.0.1", false),
            ("0.0.0.0", false),
            ("0.1.2.3", false),
            ("192.0.0.8", false),
            ("192.0.2.1", false),
            ("198.18.0.1", false),
            ("224.0.0.1", false),
            ("255.255.255.255", false),
            ("240.0.0.1", false),
            ("::1", false),
            ("::", false),
            ("fd00::1", false),
            ("fe80::1", false),
            ("ff02::1", false),
            ("2001:db8::1", false),
            ("::ffff:127.0.0.1", false),
            ("::ffff:8.8.8.8", true),
            ("64:ff9b::7f00:1", false),
        ] {
            assert_eq!(is_public(ip.parse().unwrap()), public, "{ip}");
        }
    }
}
