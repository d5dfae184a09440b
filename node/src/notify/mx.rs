//! Direct delivery's I/O (`[relay] route = "direct"`): DNS look-ups through hickory-resolver
//! (`[relay] resolver`, else the system's), the MTA-STS policy over HTTPS, and the
//! connection to a domain's mail server with STARTTLS. Every decision is `direct.rs`'s,
//! `mta_sts.rs`'s or `dane.rs`'s; this module only asks and connects.
//!
//! DANE (RFC 7672): with `[relay] resolver` set, the MX and TLSA questions go to that
//! resolver with the DNSSEC OK bit, and an answer is secure when the resolver sets the AD bit
//! (the node does not validate signatures itself: it trusts the resolver, as Postfix does with
//! `smtp_dns_support_level = dnssec`, so the resolver must be on loopback or a trusted link).
//! A DANE host's STARTTLS is done over OpenSSL here (tokio-openssl), the chain checked
//! against the TLSA records after the handshake and before any mail command.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, TlsParameters, TlsVersion,
};
use lettre::transport::smtp::commands::{Ehlo, Starttls};
use lettre::transport::smtp::extension::ClientId;

use super::dane;
use super::direct::{self, Need, Sts, TlsSeen, TlsaLookup};
use super::mta_sts;
use super::relay::{Session, attempt, pem_certificates};
use super::schedule::{Attempt, Hop, Step};
use crate::config::{Config, RelayConfig};
use crate::storage::notify::TlsPolicy;

/// How the node reaches recipient domains' mail servers, loaded at start.
pub struct DirectLink {
    resolver: TokioResolver,
    /// `[relay] resolver`: asked for MX and TLSA records with DNSSEC OK, its AD bit trusted.
    validating: Option<SocketAddr>,
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
            validating: r.resolver_addr(),
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
        let (records, mx_secure) = self.mx_records(domain).await.map_err(|a| (a, hop(None)))?;
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
            let tlsa = match self.validating {
                Some(server) if mx_secure => self.tlsa(server, host).await,
                _ => TlsaLookup::NotAsked,
            };
            let need = match direct::host_need(domain, host, &need, &tlsa) {
                Ok(n) => n,
                Err(a) => {
                    last = (a, hop(Some(host)));
                    continue;
                }
            };
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
        if let Need::Dane(records) = need {
            return self.open_dane(domain, host, ip, records).await;
        }
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
            Need::Opportunistic | Need::Encrypted => {
                b = b
                    .dangerous_accept_invalid_certs(true)
                    .dangerous_accept_invalid_hostnames(true);
            }
            Need::Verified { .. } | Need::DaneOnly | Need::Dane(_) => {
                for pem in &self.roots {
                    b = b.add_root_certificate(Certificate::from_pem(pem)?);
                }
            }
        }
        Ok(b.build_native()?)
    }

    /// `domain`'s MX records, empty when it has none, and whether the answer is
    /// DNSSEC-validated (only through `[relay] resolver`); a domain that does not exist is
    /// undeliverable, a DNS failure (a bogus answer too) is retried.
    async fn mx_records(&self, domain: &str) -> Result<(Vec<(u16, String)>, bool), Attempt> {
        let failed = |e: &dyn std::fmt::Display| Attempt::Broken {
            step: Step::Connect,
            error: format!("the DNS look-up of {domain}'s mail servers failed: {e}"),
        };
        let nx = || Attempt::Undeliverable {
            reason: format!("{domain} does not exist (the DNS knows no such domain)"),
        };
        if let Some(server) = self.validating {
            let answer = self
                .ask(server, domain, RecordType::MX)
                .await
                .map_err(|e| failed(&e))?;
            return match answer.rcode {
                ResponseCode::NoError => Ok((
                    answer
                        .records
                        .iter()
                        .filter_map(|r| match r {
                            RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
                            _ => None,
                        })
                        .collect(),
                    answer.secure,
                )),
                ResponseCode::NXDomain => Err(nx()),
                other => Err(failed(&other)),
            };
        }
        match self.resolver.mx_lookup(format!("{domain}.")).await {
            Ok(lookup) => Ok((
                lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
                        _ => None,
                    })
                    .collect(),
                false,
            )),
            Err(e) if e.is_nx_domain() => Err(nx()),
            Err(e) if e.is_no_records_found() => Ok((Vec::new(), false)),
            Err(e) => Err(failed(&e)),
        }
    }

    /// The TLSA records of `host` for the port mail goes to (`_PORT._tcp.HOST`, RFC 7672
    /// §2.2), asked of the validating resolver.
    async fn tlsa(&self, server: SocketAddr, host: &str) -> TlsaLookup {
        let name = format!("_{}._tcp.{host}", self.port);
        let answer = match self.ask(server, &name, RecordType::TLSA).await {
            Ok(a) => a,
            Err(e) => return TlsaLookup::Failed(e),
        };
        match answer.rcode {
            ResponseCode::NoError | ResponseCode::NXDomain if !answer.secure => {
                TlsaLookup::Insecure
            }
            ResponseCode::NoError | ResponseCode::NXDomain => TlsaLookup::Secure(
                answer
                    .records
                    .iter()
                    .filter_map(|r| match r {
                        RData::TLSA(t) => Some(dane::Tlsa {
                            usage: t.cert_usage.into(),
                            selector: t.selector.into(),
                            matching: t.matching.into(),
                            data: t.cert_data.clone(),
                        }),
                        _ => None,
                    })
                    .collect(),
            ),
            other => TlsaLookup::Failed(other.to_string()),
        }
    }

    /// One question to the validating resolver: recursion desired, EDNS with DNSSEC OK (a
    /// validating resolver sets AD only then, RFC 6840 §5.7), over UDP, again over TCP when
    /// the answer is truncated. The answer's records of the asked type for the asked name
    /// (after CNAMEs the resolver followed), and whether the resolver vouched for it (AD).
    async fn ask(
        &self,
        server: SocketAddr,
        name: &str,
        rtype: RecordType,
    ) -> Result<Answer, String> {
        let qname = Name::from_ascii(format!("{}.", name.trim_end_matches('.')))
            .map_err(|e| format!("{name} is not a DNS name: {e}"))?;
        let mut id = [0u8; 2];
        openssl::rand::rand_bytes(&mut id).map_err(|e| e.to_string())?;
        let id = u16::from_be_bytes(id);
        let mut query = Message::new(id, MessageType::Query, OpCode::Query);
        query.metadata.recursion_desired = true;
        query.metadata.authentic_data = true;
        query.add_query(Query::query(qname.clone(), rtype));
        let mut edns = Edns::new();
        edns.set_dnssec_ok(true).set_max_payload(1232);
        query.set_edns(edns);
        let wire = query.to_vec().map_err(|e| e.to_string())?;
        let exchange = async {
            let local: SocketAddr = if server.is_ipv4() {
                ([0, 0, 0, 0], 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            let udp = tokio::net::UdpSocket::bind(local).await?;
            udp.connect(server).await?;
            udp.send(&wire).await?;
            let mut buf = vec![0u8; 4096];
            loop {
                let n = udp.recv(&mut buf).await?;
                // Not ours (a stray or forged datagram): wait for the real one.
                match Message::from_vec(&buf[..n]) {
                    Ok(m)
                        if m.metadata.id == id
                            && m.metadata.message_type == MessageType::Response =>
                    {
                        if !m.metadata.truncation {
                            return Ok::<Message, std::io::Error>(m);
                        }
                        break;
                    }
                    _ => continue,
                }
            }
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut tcp = tokio::net::TcpStream::connect(server).await?;
            let mut framed = (wire.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&wire);
            tcp.write_all(&framed).await?;
            let len = tcp.read_u16().await? as usize;
            let mut body = vec![0u8; len];
            tcp.read_exact(&mut body).await?;
            Message::from_vec(&body).map_err(std::io::Error::other)
        };
        let answer = tokio::time::timeout(self.connect_timeout, exchange)
            .await
            .map_err(|_| {
                format!(
                    "no answer from {server} within {} seconds",
                    self.connect_timeout.as_secs()
                )
            })?
            .map_err(|e| format!("asking {server}: {e}"))?;
        if answer.metadata.id != id
            || answer.queries.first().map(|q| (q.name(), q.query_type())) != Some((&qname, rtype))
        {
            return Err(format!("{server} answered another question"));
        }
        Ok(Answer {
            rcode: answer.metadata.response_code,
            secure: answer.metadata.authentic_data,
            records: answer
                .answers
                .into_iter()
                .filter(|r| r.record_type() == rtype)
                .map(|r| r.data)
                .collect(),
        })
    }

    /// A session with the DANE `host` at `ip`: greeting and EHLO in plain, STARTTLS, the
    /// handshake over OpenSSL with the chain checked against `records` (`dane::verify`)
    /// before anything else is sent, then EHLO again.
    async fn open_dane(
        &self,
        domain: &str,
        host: &str,
        ip: IpAddr,
        records: &[dane::Tlsa],
    ) -> Result<AsyncSmtpConnection, Attempt> {
        let need = Need::Dane(records.to_vec());
        let tcp = tokio::net::TcpStream::connect(SocketAddr::new(ip, self.port))
            .await
            .map_err(|e| Attempt::Broken {
                step: Step::Connect,
                error: e.to_string(),
            })?;
        let link = Upgradable::new(tcp);
        let mut conn =
            AsyncSmtpConnection::connect_with_transport(Box::new(link.clone()), &self.hello)
                .await
                .map_err(|e| attempt(Step::Connect, e))?;
        if !conn.can_starttls() {
            conn.abort().await;
            return Err(
                direct::tls_failure(domain, host, &need, TlsSeen::NotOffered, "")
                    .expect("DANE needs TLS"),
            );
        }
        conn.command(Starttls)
            .await
            .map_err(|e| attempt(Step::StartTls, e))?;
        let chain = match link.upgrade(host).await {
            Ok(chain) => chain,
            Err(error) => {
                tracing::warn!(domain, host, %error, "STARTTLS failed");
                return Err(direct::tls_failure(
                    domain,
                    host,
                    &need,
                    TlsSeen::HandshakeFailed,
                    &error,
                )
                .expect("a failed handshake is an attempt"));
            }
        };
        if let Err(why) = dane::verify(records, &chain, host, crate::now()) {
            tracing::warn!(domain, host, %why, "DANE: the certificate matches no TLSA record");
            conn.abort().await;
            return Err(
                direct::tls_failure(domain, host, &need, TlsSeen::DaneMismatch, "")
                    .expect("a mismatch is an attempt"),
            );
        }
        // lettre keeps the EHLO answer it had in plain (the same server's); this one only
        // has the session start over TLS as RFC 3207 says.
        conn.command(Ehlo::new(self.hello.clone()))
            .await
            .map_err(|e| attempt(Step::StartTls, e))?;
        Ok(conn)
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

/// A validating resolver's answer.
struct Answer {
    rcode: ResponseCode,
    /// The AD bit: the resolver validated the answer.
    secure: bool,
    records: Vec<RData>,
}

/// The connection under a DANE session: plain TCP until [`Upgradable::upgrade`], OpenSSL
/// after; lettre holds one handle, `open_dane` the other.
#[derive(Clone)]
struct Upgradable(std::sync::Arc<std::sync::Mutex<Link>>);

enum Link {
    Plain(tokio::net::TcpStream),
    Tls(Box<tokio_openssl::SslStream<tokio::net::TcpStream>>),
    /// During the handshake, or after it failed.
    Gone,
}

impl std::fmt::Debug for Upgradable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Upgradable")
    }
}

impl Upgradable {
    fn new(tcp: tokio::net::TcpStream) -> Upgradable {
        Upgradable(std::sync::Arc::new(std::sync::Mutex::new(Link::Plain(tcp))))
    }

    /// The TLS handshake with `host` (SNI), TLS 1.2 or later, the certificate not judged
    /// here: the chain the server sent (DER, its own first), for `dane::verify`.
    async fn upgrade(&self, host: &str) -> Result<Vec<Vec<u8>>, String> {
        use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode, SslVersion};
        let tcp = match std::mem::replace(&mut *self.0.lock().expect("link"), Link::Gone) {
            Link::Plain(tcp) => tcp,
            _ => return Err("the connection is not in plain".into()),
        };
        let ssl = (|| {
            let mut b = SslConnector::builder(SslMethod::tls_client())?;
            b.set_min_proto_version(Some(SslVersion::TLS1_2))?;
            // Judged after the handshake, against the TLSA records, not against CAs.
            b.set_verify(SslVerifyMode::NONE);
            b.build().configure()?.verify_hostname(false).into_ssl(host)
        })()
        .map_err(|e| e.to_string())?;
        let mut tls = tokio_openssl::SslStream::new(ssl, tcp).map_err(|e| e.to_string())?;
        std::pin::Pin::new(&mut tls)
            .connect()
            .await
            .map_err(|e| e.to_string())?;
        let chain = tls
            .ssl()
            .peer_cert_chain()
            .map(|s| s.iter().filter_map(|c| c.to_der().ok()).collect())
            .unwrap_or_default();
        *self.0.lock().expect("link") = Link::Tls(Box::new(tls));
        Ok(chain)
    }
}

macro_rules! with_link {
    ($self:ident, $s:ident => $e:expr) => {
        match &mut *$self.0.lock().expect("link") {
            Link::Plain($s) => {
                let $s = std::pin::Pin::new($s);
                $e
            }
            Link::Tls($s) => {
                let $s = std::pin::Pin::new(&mut **$s);
                $e
            }
            Link::Gone => {
                std::task::Poll::Ready(Err(std::io::Error::from(std::io::ErrorKind::NotConnected)))
            }
        }
    };
}

impl tokio::io::AsyncRead for Upgradable {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        with_link!(self, s => s.poll_read(cx, buf))
    }
}

impl tokio::io::AsyncWrite for Upgradable {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        with_link!(self, s => s.poll_write(cx, buf))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        with_link!(self, s => s.poll_flush(cx))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        with_link!(self, s => s.poll_shutdown(cx))
    }
}

impl AsyncTokioStream for Upgradable {
    fn peer_addr(&self) -> std::io::Result<SocketAddr> {
        match &*self.0.lock().expect("link") {
            Link::Plain(s) => s.peer_addr(),
            Link::Tls(s) => s.get_ref().peer_addr(),
            Link::Gone => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }
}
