//! The node's Prometheus metrics: one [`Registry`] made at start (`Node::open`), held by the
//! service [`Context`](crate::service::Context), and every metric family the node records,
//! as typed handles (docs/operations.md lists them).
//!
//! Counters and histograms are atomics inside `prometheus-client`'s types; a labelled family
//! takes its read lock on a lookup. Nothing here does I/O: the metrics listener
//! (`api/ops.rs`) encodes the registry, after refreshing the queue gauges from storage.
//!
//! What this module must not do: take a label value that could carry an address, a user, a
//! message ID or a raw request path. Every label here is a fixed word, a status code, a route
//! *template*, a service error code, or an organisation's domain (peers and SMTP
//! destinations, bounded in number).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// The most domains one queue-depth gauge family reports; the rest are summed under
/// `domain="other"`, so that mail to many destinations cannot grow a scrape without bound.
pub const MAX_DOMAINS: usize = 100;

/// An HTTP request: its route template (`/api/v1/messages/{id}`, never the path asked for),
/// method, status code and class.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub route: String,
    pub method: &'static str,
    pub status: u16,
    pub class: &'static str,
}

/// A route template and method (the duration histogram's labels).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
    pub method: &'static str,
}

/// A submission through `service::mail::accept`: the door it came through (`local`, `peer`,
/// `pickup`), whether it was accepted, and the service's code (`ok` when accepted).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SubmissionLabels {
    pub source: &'static str,
    pub outcome: &'static str,
    pub code: &'static str,
}

/// A door (`local`, `peer`, `pickup`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    pub source: &'static str,
}

/// How a message reached (or failed to reach) a recipient.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    /// `local`, `federated`, `smtp`, `pickup`.
    pub kind: &'static str,
    /// `delivered` or `failed`.
    pub outcome: &'static str,
}

/// A delivery kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

/// An organisation's domain: a peer's, or where outbound mail goes.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DomainLabels {
    pub domain: String,
}

/// A trust look-up's answer: the verdict's level word, or `error`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TrustLabels {
    pub level: &'static str,
}

/// A pickup event: `opened`, `unlocked`, `failed` (wrong code, locked, expired, withdrawn).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PickupLabels {
    pub event: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Request and operation latencies: 1 ms to ~33 s.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Delivery latencies (queue to receipt): 10 ms to ~45 h.
fn delivery_latency() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 4.0, 12))
}

/// The writer's share of the metrics, handed to the SQLite writer thread.
#[derive(Clone, Debug)]
pub struct WriterMetrics {
    batch_size: Histogram,
    commit_seconds: Histogram,
}

impl WriterMetrics {
    /// One group commit of `ops` operations that took `took` (begin to commit).
    pub fn committed(&self, ops: usize, took: Duration) {
        self.batch_size.observe(ops as f64);
        self.commit_seconds.observe(took.as_secs_f64());
    }
}

/// Every metric family of the node, and the registry that encodes them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: HistogramFamily<RouteLabels>,
    submissions: Family<SubmissionLabels, Counter>,
    accept_duration: HistogramFamily<SourceLabels>,
    deliveries: Family<DeliveryLabels, Counter>,
    delivery_duration: HistogramFamily<KindLabels>,
    peer_queue: Family<DomainLabels, Gauge>,
    smtp_queue: Family<DomainLabels, Gauge>,
    writer: WriterMetrics,
    trust_lookups: Family<TrustLabels, Counter>,
    pickups: Family<PickupLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry with every family registered, all at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("sealpost");
        let http_requests = Family::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template, method and status",
            http_requests.clone(),
        );
        let http_duration = HistogramFamily::new_with_constructor(latency as fn() -> Histogram);
        registry.register_with_unit(
            "http_request_duration",
            "Time to answer an HTTP request (to the response head), by route template",
            Unit::Seconds,
            http_duration.clone(),
        );
        let submissions = Family::default();
        registry.register(
            "submissions",
            "Messages offered to the one accept operation, by door, outcome and code",
            submissions.clone(),
        );
        let accept_duration = HistogramFamily::new_with_constructor(latency as fn() -> Histogram);
        registry.register_with_unit(
            "accept_duration",
            "Time to accept a message (checks and the durable commit), by door",
            Unit::Seconds,
            accept_duration.clone(),
        );
        let deliveries = Family::default();
        registry.register(
            "deliveries",
            "Deliveries to a recipient by kind (local, federated, smtp, pickup) and outcome",
            deliveries.clone(),
        );
        let delivery_duration =
            HistogramFamily::new_with_constructor(delivery_latency as fn() -> Histogram);
        registry.register_with_unit(
            "delivery_duration",
            "Time from acceptance (or queueing) to delivery, by kind",
            Unit::Seconds,
            delivery_duration.clone(),
        );
        let peer_queue = Family::default();
        registry.register(
            "federation_queue_messages",
            "Messages waiting in the outbox per peer domain (read at scrape time)",
            peer_queue.clone(),
        );
        let smtp_queue = Family::default();
        registry.register(
            "smtp_queue_messages",
            "Outbound mails queued per destination domain (read at scrape time)",
            smtp_queue.clone(),
        );
        let writer = WriterMetrics {
            batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 11)),
            commit_seconds: latency(),
        };
        registry.register(
            "writer_batch_operations",
            "Write operations per group commit of the database writer",
            writer.batch_size.clone(),
        );
        registry.register_with_unit(
            "writer_commit_duration",
            "Time of one group commit (begin to durable commit)",
            Unit::Seconds,
            writer.commit_seconds.clone(),
        );
        let trust_lookups = Family::default();
        registry.register(
            "trust_lookups",
            "Trust verdicts computed, by the verdict's level",
            trust_lookups.clone(),
        );
        let pickups = Family::default();
        registry.register(
            "pickups",
            "Pickup page events: opened, unlocked, failed",
            pickups.clone(),
        );
        Metrics {
            registry,
            http_requests,
            http_duration,
            submissions,
            accept_duration,
            deliveries,
            delivery_duration,
            peer_queue,
            smtp_queue,
            writer,
            trust_lookups,
            pickups,
        }
    }

    /// The registry, for encoding (and for other components to register into at start).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The registry in the text exposition format (OpenMetrics).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String does not fail");
        out
    }

    /// The handles the database writer records its commits with.
    pub fn writer(&self) -> WriterMetrics {
        self.writer.clone()
    }

    /// An HTTP request answered. `route` is the matched route's template, or `unmatched`.
    pub fn http_request(&self, route: &str, method: &str, status: u16, took: Duration) {
        let method = method_word(method);
        self.http_requests
            .get_or_create(&HttpLabels {
                route: route.to_owned(),
                method,
                status,
                class: status_class(status),
            })
            .inc();
        self.http_duration
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
                method,
            })
            .observe(took.as_secs_f64());
    }

    /// A message offered to `accept` through `source`: accepted (`code` is `None`) or refused
    /// with the service's code.
    pub fn submission(&self, source: &'static str, code: Option<&'static str>, took: Duration) {
        let (outcome, code) = match code {
            None => ("accepted", "ok"),
            Some(code) => ("refused", code),
        };
        self.submissions
            .get_or_create(&SubmissionLabels {
                source,
                outcome,
                code,
            })
            .inc();
        if outcome == "accepted" {
            self.accept_duration
                .get_or_create(&SourceLabels { source })
                .observe(took.as_secs_f64());
        }
    }

    /// `n` deliveries of `kind`; `took` (when known) from acceptance or queueing to delivery.
    pub fn delivered(&self, kind: &'static str, n: u64, took: Option<Duration>) {
        if n == 0 {
            return;
        }
        self.deliveries
            .get_or_create(&DeliveryLabels {
                kind,
                outcome: "delivered",
            })
            .inc_by(n);
        if let Some(took) = took {
            let h = self.delivery_duration.get_or_create(&KindLabels { kind });
            for _ in 0..n {
                h.observe(took.as_secs_f64());
            }
        }
    }

    /// A delivery of `kind` given up on (failed for good).
    pub fn delivery_failed(&self, kind: &'static str) {
        self.deliveries
            .get_or_create(&DeliveryLabels {
                kind,
                outcome: "failed",
            })
            .inc();
    }

    /// Replaces the queue gauges with what storage counts now: messages waiting per peer
    /// domain, mails waiting per destination domain.
    pub fn set_queue_depths(&self, peers: &[(String, u64)], smtp: &[(String, u64)]) {
        fill(&self.peer_queue, peers);
        fill(&self.smtp_queue, smtp);
    }

    /// A trust verdict computed (`level`: the verdict's word, or `error`).
    pub fn trust_lookup(&self, level: &'static str) {
        self.trust_lookups
            .get_or_create(&TrustLabels { level })
            .inc();
    }

    /// A pickup page event.
    pub fn pickup(&self, event: &'static str) {
        self.pickups.get_or_create(&PickupLabels { event }).inc();
    }
}

/// How long ago the message ID `id` was issued (its first 48 bits are the issuing time in
/// milliseconds, `sealpost_proto::new_message_id`): the delivery latency of a message from its
/// envelope request. `None` for an ID that is not one, or from the future.
pub fn age_of_message_id(id: &str, now: SystemTime) -> Option<Duration> {
    if !sealpost_proto::is_message_id(id) {
        return None;
    }
    let millis = u64::from_str_radix(&id[..12], 16).ok()?;
    now.duration_since(UNIX_EPOCH + Duration::from_millis(millis))
        .ok()
}

/// Sets `family` to `depths` (the largest [`MAX_DOMAINS`] by name, the rest as `other`),
/// dropping domains no longer queued for.
fn fill(family: &Family<DomainLabels, Gauge>, depths: &[(String, u64)]) {
    let mut sorted: Vec<&(String, u64)> = depths.iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    family.clear();
    let mut other = 0u64;
    for (i, (domain, n)) in sorted.into_iter().enumerate() {
        if i < MAX_DOMAINS && sealpost_proto::is_valid_domain(domain) {
            family
                .get_or_create(&DomainLabels {
                    domain: domain.clone(),
                })
                .set(*n as i64);
        } else {
            other += n;
        }
    }
    if other > 0 {
        family
            .get_or_create(&DomainLabels {
                domain: "other".into(),
            })
            .set(other as i64);
    }
}

/// The method as one of a fixed set of words (an unknown method would otherwise be a label
/// value chosen by any client).
fn method_word(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

fn status_class(status: u16) -> &'static str {
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_named_with_the_prefix_and_its_unit() {
        let m = Metrics::new();
        m.http_request(
            "/api/v1/messages/{id}",
            "GET",
            200,
            Duration::from_millis(3),
        );
        m.http_request("unmatched", "BREW", 404, Duration::from_millis(1));
        m.submission("local", None, Duration::from_millis(5));
        m.submission("local", Some("unknown_recipient"), Duration::from_millis(5));
        m.delivered("federated", 2, Some(Duration::from_secs(1)));
        m.writer().committed(3, Duration::from_millis(2));
        let text = m.encode();
        for family in [
            "sealpost_http_requests_total{route=\"/api/v1/messages/{id}\",method=\"GET\",status=\"200\",class=\"2xx\"} 1",
            "sealpost_http_requests_total{route=\"unmatched\",method=\"other\",status=\"404\",class=\"4xx\"} 1",
            "sealpost_http_request_duration_seconds_bucket",
            "sealpost_submissions_total{source=\"local\",outcome=\"accepted\",code=\"ok\"} 1",
            "sealpost_submissions_total{source=\"local\",outcome=\"refused\",code=\"unknown_recipient\"} 1",
            "sealpost_accept_duration_seconds_count{source=\"local\"} 1",
            "sealpost_deliveries_total{kind=\"federated\",outcome=\"delivered\"} 2",
            "sealpost_delivery_duration_seconds_count{kind=\"federated\"} 2",
            "sealpost_writer_batch_operations_count 1",
            "sealpost_writer_commit_duration_seconds_count 1",
        ] {
            assert!(text.contains(family), "{family} missing from:\n{text}");
        }
    }

    /// Every family once, as a busy node has them all.
    fn all_touched() -> Metrics {
        let m = Metrics::new();
        m.http_request("/livez", "GET", 200, Duration::from_millis(1));
        m.submission("peer", None, Duration::from_millis(1));
        m.delivered("smtp", 1, Some(Duration::from_secs(1)));
        m.delivery_failed("smtp");
        m.set_queue_depths(&[("b.test".into(), 1)], &[("c.test".into(), 2)]);
        m.writer().committed(1, Duration::from_millis(1));
        m.trust_lookup("full");
        m.pickup("opened");
        m
    }

    #[test]
    fn the_grafana_dashboard_asks_only_for_families_the_node_exports() {
        let text = all_touched().encode();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../ops/grafana/sealpost.json");
        let dashboard = std::fs::read_to_string(path).unwrap();
        let _: serde_json::Value = serde_json::from_str(&dashboard).expect("valid JSON");
        let mut asked = std::collections::BTreeSet::new();
        for (i, _) in dashboard.match_indices("sealpost_") {
            let name: String = dashboard[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if name != "sealpost_" {
                asked.insert(name);
            }
        }
        for name in &asked {
            assert!(
                text.lines().any(|l| l.starts_with(name.as_str())),
                "the dashboard asks for {name}, which the node does not export"
            );
        }
        // Every family has a panel.
        for family in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
            let name = family.split(' ').next().unwrap();
            assert!(
                asked.iter().any(|a| a.starts_with(name)),
                "no panel shows {name}"
            );
        }
    }

    #[test]
    fn a_message_ids_age_is_read_from_its_first_48_bits() {
        let id = sealpost_proto::new_message_id();
        let later = SystemTime::now() + Duration::from_secs(5);
        let age = age_of_message_id(&id, later).unwrap();
        assert!(
            age >= Duration::from_secs(4) && age <= Duration::from_secs(6),
            "{age:?}"
        );
        assert_eq!(age_of_message_id("not-an-id", later), None);
        assert_eq!(age_of_message_id(&id, UNIX_EPOCH), None);
    }

    #[test]
    fn queue_depths_keep_the_largest_domains_and_sum_the_rest() {
        let m = Metrics::new();
        let mut many: Vec<(String, u64)> = (0..MAX_DOMAINS + 5)
            .map(|i| (format!("d{i}.test"), 1))
            .collect();
        many.push(("big.test".into(), 50));
        // Not a domain (what a broken row could hold): never a label.
        many.push(("alice@x.test".into(), 7));
        m.set_queue_depths(&many, &[]);
        let text = m.encode();
        assert!(text.contains("sealpost_federation_queue_messages{domain=\"big.test\"} 50"));
        assert!(!text.contains("alice"), "{text}");
        assert!(
            text.contains("sealpost_federation_queue_messages{domain=\"other\"}"),
            "{text}"
        );
        // A later scrape with nothing queued drops the old domains.
        m.set_queue_depths(&[], &[]);
        assert!(!m.encode().contains("big.test"));
    }
}
