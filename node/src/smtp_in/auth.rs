//! SPF, DKIM and DMARC of an arriving mail, by `mail-auth` through the configured resolver
//! (`[smtp_in] resolver`). Without one, nothing is looked up and every result is `none`.

use std::net::{IpAddr, SocketAddr};

use mail_auth::hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts,
};
use mail_auth::{
    AuthenticatedMessage, DkimResult, DmarcResult, MessageAuthenticator, SpfResult,
    dmarc::verify::DmarcParameters, spf::verify::SpfParameters,
};

/// The results, as RFC 8601 words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Results {
    pub spf: String,
    pub dkim: String,
    pub dmarc: String,
}

impl Results {
    fn none() -> Results {
        Results {
            spf: "none".into(),
            dkim: "none".into(),
            dmarc: "none".into(),
        }
    }
}

/// The checker: a resolver, or none.
pub struct Checker(Option<MessageAuthenticator>);

impl Checker {
    pub fn new(resolver: &str) -> anyhow::Result<Checker> {
        if resolver.is_empty() {
            return Ok(Checker(None));
        }
        let addr: SocketAddr = resolver.parse()?;
        let mut server = NameServerConfig::udp_and_tcp(addr.ip());
        for c in server.connections.iter_mut() {
            c.port = addr.port();
        }
        let _: &[ConnectionConfig] = &server.connections;
        let mut options = ResolverOpts::default();
        options.timeout = std::time::Duration::from_secs(5);
        options.attempts = 2;
        let authenticator =
            MessageAuthenticator::new(ResolverConfig::from_name_servers(vec![server]), options)?;
        Ok(Checker(Some(authenticator)))
    }

    /// Checks a mail from `ip`, greeted as `helo`, sent as `mail_from`; `host` is our name.
    pub async fn check(
        &self,
        raw: &[u8],
        ip: IpAddr,
        helo: &str,
        host: &str,
        mail_from: &str,
    ) -> Results {
        let Some(auth) = &self.0 else {
            return Results::none();
        };
        let spf = auth
            .verify_spf(SpfParameters::verify_mail_from(ip, helo, host, mail_from))
            .await;
        let Some(message) = AuthenticatedMessage::parse(raw) else {
            return Results {
                spf: spf_word(spf.result()),
                dkim: "permerror".into(),
                dmarc: "none".into(),
            };
        };
        let dkim = auth.verify_dkim(&message).await;
        for d in &dkim {
            tracing::debug!(result = %d.result(), "smtp_in: DKIM signature");
        }
        let dkim_word = dkim_word(&dkim.iter().map(|o| o.result()).collect::<Vec<_>>());
        let domain = mail_from.rsplit_once('@').map_or(helo, |(_, d)| d);
        let dmarc = auth
            .verify_dmarc(DmarcParameters::new(&message, &dkim, domain, &spf))
            .await;
        Results {
            spf: spf_word(spf.result()),
            dkim: dkim_word,
            dmarc: dmarc_word(&dmarc.result()),
        }
    }
}

fn spf_word(r: SpfResult) -> String {
    match r {
        SpfResult::Pass => "pass",
        SpfResult::Fail => "fail",
        SpfResult::SoftFail => "softfail",
        SpfResult::Neutral => "neutral",
        SpfResult::TempError => "temperror",
        SpfResult::PermError => "permerror",
        SpfResult::None => "none",
    }
    .into()
}

/// The best of the signatures' results (one passing signature is a pass).
fn dkim_word(results: &[&DkimResult]) -> String {
    let rank = |r: &DkimResult| match r {
        DkimResult::Pass => (0, "pass"),
        DkimResult::Fail(_) => (3, "fail"),
        DkimResult::Neutral(_) => (4, "neutral"),
        DkimResult::TempError(_) => (1, "temperror"),
        DkimResult::PermError(_) => (2, "permerror"),
        DkimResult::None => (5, "none"),
    };
    results
        .iter()
        .map(|r| rank(r))
        .min()
        .map_or("none", |(_, w)| w)
        .into()
}

fn dmarc_word(r: &DmarcResult) -> String {
    match r {
        DmarcResult::Pass => "pass",
        DmarcResult::Fail(_) => "fail",
        DmarcResult::TempError(_) => "temperror",
        DmarcResult::PermError(_) => "permerror",
        DmarcResult::None => "none",
    }
    .into()
}
