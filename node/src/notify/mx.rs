//! Direct delivery's I/O (`[relay] route = "direct"`): DNS look-ups through hickory-resolver
//! (`[relay] resolver`, else the system's), the MTA-STS policy over HTTPS, and the
//! connection to a domain's mail server with STARTTLS. Every decision is `direct.rs`'s or
//! `mta_sts.rs`'s; this module only asks and connects.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, Certificate, TlsParameters, TlsVersion,
};
use lettre::transport::smtp::extension::ClientId;

use super::direct::{self, Need, Sts, TlsSeen};
use super::mta_sts;
use super::relay::{Session, attempt, pem_certificates};
use super::schedule::{Attempt, Hop, Step};
use crate::config::{Config, RelayConfig};
use crate::storage::notify::TlsPolicy;

/// How the node reaches recipient domains' mail servers, loaded at start.
pub struct DirectLink {
    resolver: TokioResolver,
    port: u16,
    sts_port: u16,
    sts_always: bool,
    tls: Vec<crate::config::DomainTls>,
    /// The extra trusted certificates (`[relay] ca_file`), PEM, for SMTP and for MTA-STS.
    roots: Vec<Vec<u8>>,
    hello: ClientId,
    connect_timeout: Duration,
    command_timeout: Duration,
    /// MTA-STS policies by domain (RFC 8461 §5.1, `mta_sts::next`): in memory, bounded.
    sts_cache: std::sync::Mutex<std::collections::HashMap<String, mta_sts::Cached>>,
}

/// Most domains whose MTA-STS policy is cached; past it, expired ones go, then the one that
/// expires first.
const STS_CACHE_MAX: usize = 10_000;

impl DirectLink {
    /// `None` unless `route = "direct"`. Fails if the resolver or `ca_file` cannot be set up.
    pub fn load(config: &Config) -> anyhow::Result<Option<DirectLink>> {
        let r: &RelayConfig = &config.relay;
        if r.route != crate::config::RelayRoute::Direct {
            return Ok(None);
        }
        let resolver = match r.resolver_addr() {
            Some(addr) => {
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                let ns = NameServerConfig::new(addr.ip(), true, vec![udp, tcp]);
                TokioResolver::builder_with_config(
                    ResolverConfig::from_name_servers(vec![ns]),
                    TokioRuntimeProvider::default(),
                )
                .build()
            }
            None => TokioResolver::builder_tokio()
                .context("relay: reading the system's resolver configuration")?
                .build(),
        }
        .context("relay: setting up the DNS resolver")?;
        let roots = if r.ca_file.is_empty() {
            Vec::new()
        } else {
            let pem = std::fs::read(&r.ca_file)
                .with_context(|| format!("relay.ca_file: reading {}", r.ca_file))?;
            let certs = pem_certificates(&pem);
            if certs.is_empty() {
                anyhow::bail!("relay.ca_file: no PEM certificate in {}", r.ca_file);
            }
            certs
        };
        let helo = if r.helo_name.is_empty() {
            &config.domain
        } else {
            &r.helo_name
        };
        Ok(Some(DirectLink {
            resolver,
            port: r.direct_port,
            sts_port: r.mta_sts_port,
            sts_always: r.mta_sts,
            tls: r.tls.clone(),
            roots,
            hello: ClientId::Domain(helo.clone()),
            connect_timeout: Duration::from_secs(r.connect_timeout_secs),
            command_timeout: Duration::from_secs(r.command_timeout_secs),
            sts_cache: Default::default(),
        }))
    }

    /// A session with one of `domain`'s mail servers, ready for mail whose TLS is `required`
    /// (the admin's `[[relay.tls]]` for the domain applies too), or the attempt every mail
    /// of the group then counts, with the hop it concerns.
    pub async fn connect(
        &self,
        domain: &str,
        required: Option<TlsPolicy>,
    ) -> Result<(Session, Hop), (Attempt, Hop)> {
        let hop = |host: Option<&str>| Hop::Domain {
            domain: domain.to_owned(),
            host: host.map(str::to_owned),
        };
        let required = required.or_else(|| {
            self.tls
                .iter()
                .find(|t| t.domain.eq_ignore_ascii_case(domain))
                .map(|t| t.policy)
        });
        let sts = if self.sts_always || required == Some(TlsPolicy::MtaSts) {
            self.mta_sts(domain).await
        } else {
            Sts::NotAsked
        };
        let need = direct::need(domain, required, &sts).map_err(|a| (a, hop(None)))?;
        let records = self.mx_records(domain).await.map_err(|a| (a, hop(None)))?;
        let hosts = direct::mx_hosts(domain, &records)
            .and_then(|h| direct::allowed_hosts(domain, h, &need))
            .map_err(|a| (a, hop(None)))?;
        let mut last = (
            Attempt::Broken {
                step: Step::Connect,
                error: "no mail server to try".into(),
            },
            hop(None),
        );
        // Bounded: a domain naming many hosts gets its ten best tried, four addresses each.
        for host in hosts.iter().take(10) {
            let ips = match self.resolver.lookup_ip(format!("{host}.")).await {
                Ok(ips) => ips.iter().collect::<Vec<IpAddr>>(),
                Err(e) => {
                    last = (
                        Attempt::Broken {
                            step: Step::Connect,
                            error: format!("{host} has no address: {e}"),
                        },
                        hop(Some(host)),
                    );
                    continue;
                }
            };
            for ip in ips.into_iter().take(4) {
                match tokio::time::timeout(self.connect_timeout, self.open(domain, host, ip, &need))
                    .await
                {
                    Ok(Ok(conn)) => {
                        return Ok((Session::over(conn, self.command_timeout), hop(Some(host))));
                    }
                    Ok(Err(a)) => last = (a, hop(Some(host))),
                    Err(_) => {
                        last = (
                            Attempt::Broken {
                                step: Step::Connect,
                                error: format!(
                                    "no answer within {} seconds",
                                    self.connect_timeout.as_secs()
                                ),
                            },
                            hop(Some(host)),
                        )
                    }
                }
            }
        }
        Err(last)
    }

    /// Connects to `host` at `ip`, greets, and encrypts as `need` says.
    async fn open(
        &self,
        domain: &str,
        host: &str,
        ip: IpAddr,
        need: &Need,
    ) -> Result<AsyncSmtpConnection, Attempt> {
        let mut conn = AsyncSmtpConnection::connect_tokio1(
            SocketAddr::new(ip, self.port),
            Some(self.connect_timeout),
            &self.hello,
            None,
            None,
        )
        .await
        .map_err(|e| attempt(Step::Connect, e))?;
        if !conn.can_starttls() {
            return match direct::tls_failure(domain, host, need, TlsSeen::NotOffered, "") {
                None => Ok(conn),
                Some(a) => {
                    conn.abort().await;
                    Err(a)
                }
            };
        }
        let tls = self
            .tls_parameters(host, need)
            .map_err(|e| Attempt::Broken {
                step: Step::StartTls,
                error: e.to_string(),
            })?;
        if let Err(e) = conn.starttls(tls, &self.hello).await {
            let Attempt::Broken { error, .. } = attempt(Step::StartTls, e) else {
                unreachable!("a TLS handshake has no SMTP answer")
            };
            tracing::warn!(domain, host, %error, "STARTTLS failed");
            return Err(
                direct::tls_failure(domain, host, need, TlsSeen::HandshakeFailed, &error)
                    .expect("a failed handshake is an attempt"),
            );
        }
        Ok(conn)
    }

    fn tls_parameters(&self, host: &str, need: &Need) -> anyhow::Result<TlsParameters> {
        let mut b = TlsParameters::builder(host.to_owned()).set_min_tls_version(TlsVersion::Tlsv12);
        match need {
            // RFC 7435: encrypt when offered, whatever the certificate.
            Need::Opportunistic => {
                b = b
                    .dangerous_accept_invalid_certs(true)
                    .dangerous_accept_invalid_hostnames(true);
            }
            Need::Verified { .. } => {
                for pem in &self.roots {
                    b = b.add_root_certificate(Certificate::from_pem(pem)?);
                }
            }
        }
        Ok(b.build_native()?)
    }

    /// `domain`'s MX records, empty when it has none; a domain that does not exist is
    /// undeliverable, a DNS failure is retried.
    async fn mx_records(&self, domain: &str) -> Result<Vec<(u16, String)>, Attempt> {
        match self.resolver.mx_lookup(format!("{domain}.")).await {
            Ok(lookup) => Ok(lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
                    _ => None,
                })
                .collect()),
            Err(e) if e.is_nx_domain() => Err(Attempt::Undeliverable {
                reason: format!("{domain} does not exist (the DNS knows no such domain)"),
            }),
            Err(e) if e.is_no_records_found() => Ok(Vec::new()),
            Err(e) => Err(Attempt::Broken {
                step: Step::Connect,
                error: format!("the DNS look-up of {domain}'s mail servers failed: {e}"),
            }),
        }
    }

    /// `domain`'s MTA-STS policy: its `_mta-sts` TXT record, then (unless the cache holds the
    /// policy of that ID) the policy file from `https://mta-sts.DOMAIN/.well-known/mta-sts.txt`
    /// (no redirects, at most 64 KiB, certificate valid for that name); `mta_sts::next` and
    /// `after_fetch` decide, the cache keeps what they say.
    async fn mta_sts(&self, domain: &str) -> Sts {
        let key = domain.to_ascii_lowercase();
        let now = crate::now().max(0) as u64;
        let record = self.sts_record(domain).await;
        let cached = self.sts_cache.lock().expect("sts cache").get(&key).cloned();
        let id = match mta_sts::next(cached.as_ref(), &record, now) {
            mta_sts::Next::Use(p) => return Sts::Policy(p),
            mta_sts::Next::NoPolicy => return Sts::NotPublished,
            mta_sts::Next::Unusable(why) => return Sts::Unusable(why),
            mta_sts::Next::Fetch => match record {
                mta_sts::Record::Id(id) => id,
                _ => return Sts::NotPublished,
            },
        };
        let fetched = match self.fetch_policy(domain).await {
            Ok(body) => mta_sts::parse_policy(&body).map_err(|e| e.to_string()),
            Err(e) => Err(format!("{e:#}")),
        };
        let (policy, keep) = mta_sts::after_fetch(cached.as_ref(), &id, fetched, now);
        if let Some(c) = keep {
            let mut cache = self.sts_cache.lock().expect("sts cache");
            if cache.len() >= STS_CACHE_MAX && !cache.contains_key(&key) {
                cache.retain(|_, c| c.expires_at > now);
                if cache.len() >= STS_CACHE_MAX
                    && let Some(first) = cache
                        .iter()
                        .min_by_key(|(_, c)| c.expires_at)
                        .map(|(d, _)| d.clone())
                {
                    cache.remove(&first);
                }
            }
            cache.insert(key, c);
        }
        match policy {
            Ok(p) => Sts::Policy(p),
            Err(why) => Sts::Unusable(why),
        }
    }

    /// The `_mta-sts` TXT look-up.
    async fn sts_record(&self, domain: &str) -> mta_sts::Record {
        let records = match self
            .resolver
            .txt_lookup(format!("_mta-sts.{domain}."))
            .await
        {
            Ok(l) => l
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::TXT(txt) => Some(
                        txt.txt_data
                            .iter()
                            .map(|s| String::from_utf8_lossy(s).into_owned())
                            .collect::<String>(),
                    ),
                    _ => None,
                })
                .collect::<Vec<_>>(),
            Err(e) if e.is_no_records_found() || e.is_nx_domain() => {
                return mta_sts::Record::None;
            }
            Err(e) => return mta_sts::Record::Failed(format!("the DNS look-up failed: {e}")),
        };
        let mut ids: Vec<String> = records
            .iter()
            .filter_map(|t| mta_sts::parse_record(t))
            .collect();
        match (ids.pop(), ids.is_empty()) {
            (Some(id), true) => mta_sts::Record::Id(id),
            // RFC 8461 §3.1: none, or more than one, is no policy.
            _ => mta_sts::Record::None,
        }
    }

    async fn fetch_policy(&self, domain: &str) -> anyhow::Result<Vec<u8>> {
        let host = format!("mta-sts.{domain}");
        let ip = self
            .resolver
            .lookup_ip(format!("{host}."))
            .await
            .with_context(|| format!("{host} has no address"))?
            .iter()
            .next()
            .with_context(|| format!("{host} has no address"))?;
        let certs = self
            .roots
            .iter()
            .map(|pem| reqwest::Certificate::from_pem(pem))
            .collect::<Result<Vec<_>, _>>()?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(self.connect_timeout)
            .tls_certs_merge(certs)
            .resolve(&host, SocketAddr::new(ip, self.sts_port))
            .build()?;
        let url = format!("https://{host}:{}/.well-known/mta-sts.txt", self.sts_port);
        let response = client.get(&url).send().await?;
        if response.status() != reqwest::StatusCode::OK {
            anyhow::bail!("{host} answered HTTP {}", response.status().as_u16());
        }
        let text_plain = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().starts_with("text/plain"));
        if !text_plain {
            anyhow::bail!("{host} served the policy as something other than text/plain");
        }
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            if body.len() + chunk.len() > mta_sts::MAX_POLICY_BYTES {
                anyhow::bail!("{host} served a policy larger than 64 KiB");
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}
