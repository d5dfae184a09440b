//! Real HTTPS servers on loopback for the tests of outside keys: a throw-away certificate
//! authority ([`TestCa`], made with OpenSSL at test time) and a small HTTPS server
//! ([`HttpsServer`]: hyper over OpenSSL's TLS through native-tls) that answers from a table of
//! routes, as a Web Key Directory (static files by definition) or a keyserver's HKP `get`
//! does. Routes may also answer slowly (a byte at a time) or with a status, to show that the
//! node's look-ups are bounded.
//!
//! The node reaches it through `[delivery] resolve` (the host names map to this loopback
//! address) and trusts the CA through `[delivery] wkd_ca_file`: the TLS is checked for real,
//! host name included.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName, SubjectKeyIdentifier,
};
use openssl::x509::{X509, X509Builder, X509NameBuilder};

/// A certificate authority made for one test.
pub struct TestCa {
    pub cert: X509,
    key: PKey<Private>,
}

/// A certificate with its key, in PEM.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert: X509,
}

/// What a certificate made by [`TestCa::issue`] is for.
pub enum Usage<'a> {
    /// A TLS server for these host names.
    Server(&'a [&'a str]),
    /// S/MIME for this address.
    Smime(&'a str),
}

fn name(cn: &str) -> anyhow::Result<openssl::x509::X509Name> {
    let mut n = X509NameBuilder::new()?;
    n.append_entry_by_text("CN", cn)?;
    Ok(n.build())
}

fn key() -> anyhow::Result<PKey<Private>> {
    Ok(PKey::from_rsa(Rsa::generate(2048)?)?)
}

impl TestCa {
    /// A new CA named `cn`, valid from a day ago for ten years.
    pub fn new(cn: &str) -> anyhow::Result<TestCa> {
        let key = key()?;
        let mut b = X509Builder::new()?;
        b.set_version(2)?;
        b.set_serial_number(&*BigNum::from_u32(1)?.to_asn1_integer()?)?;
        b.set_subject_name(&*name(cn)?)?;
        b.set_issuer_name(&*name(cn)?)?;
        b.set_pubkey(&key)?;
        b.set_not_before(&*Asn1Time::days_from_now(0)?)?;
        b.set_not_after(&*Asn1Time::days_from_now(3650)?)?;
        b.append_extension(BasicConstraints::new().critical().ca().build()?)?;
        b.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()?,
        )?;
        let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(None, None))?;
        b.append_extension(ski)?;
        b.sign(&key, MessageDigest::sha256())?;
        Ok(TestCa {
            cert: b.build(),
            key,
        })
    }

    pub fn pem(&self) -> String {
        String::from_utf8(self.cert.to_pem().expect("PEM")).expect("PEM is ASCII")
    }

    /// Writes the CA's certificate to `path` (for `wkd_ca_file`, `x509_anchors`).
    pub fn write_pem(&self, path: &Path) -> anyhow::Result<PathBuf> {
        std::fs::write(path, self.pem())?;
        Ok(path.to_owned())
    }

    /// Writes the CA's private key (PEM) to `path`: for a node's `[smime] ca_key`.
    pub fn write_key(&self, path: &Path) -> anyhow::Result<PathBuf> {
        std::fs::write(path, self.key.private_key_to_pem_pkcs8()?)?;
        Ok(path.to_owned())
    }

    /// A certificate for `usage`, valid between the two Unix times.
    pub fn issue_between(
        &self,
        usage: Usage<'_>,
        not_before: i64,
        not_after: i64,
    ) -> anyhow::Result<Issued> {
        let key = key()?;
        let mut b = X509Builder::new()?;
        b.set_version(2)?;
        let serial: u32 = rand_serial();
        b.set_serial_number(&*BigNum::from_u32(serial)?.to_asn1_integer()?)?;
        b.set_issuer_name(self.cert.subject_name())?;
        b.set_pubkey(&key)?;
        b.set_not_before(&*Asn1Time::from_unix(not_before)?)?;
        b.set_not_after(&*Asn1Time::from_unix(not_after)?)?;
        b.append_extension(BasicConstraints::new().build()?)?;
        match usage {
            Usage::Server(hosts) => {
                b.set_subject_name(&*name(hosts[0])?)?;
                let mut san = SubjectAlternativeName::new();
                for h in hosts {
                    san.dns(h);
                }
                let san = san.build(&b.x509v3_context(Some(&self.cert), None))?;
                b.append_extension(san)?;
                b.append_extension(ExtendedKeyUsage::new().server_auth().build()?)?;
            }
            Usage::Smime(address) => {
                b.set_subject_name(&*name(address)?)?;
                let san = SubjectAlternativeName::new()
                    .email(address)
                    .build(&b.x509v3_context(Some(&self.cert), None))?;
                b.append_extension(san)?;
                // So that a sender may name the certificate by key identifier (CMS `rid`).
                let ski =
                    SubjectKeyIdentifier::new().build(&b.x509v3_context(Some(&self.cert), None))?;
                b.append_extension(ski)?;
                b.append_extension(
                    KeyUsage::new()
                        .digital_signature()
                        .key_encipherment()
                        .build()?,
                )?;
                b.append_extension(ExtendedKeyUsage::new().email_protection().build()?)?;
            }
        }
        b.sign(&self.key, MessageDigest::sha256())?;
        let cert = b.build();
        Ok(Issued {
            cert_pem: String::from_utf8(cert.to_pem()?)?,
            key_pem: String::from_utf8(key.private_key_to_pem_pkcs8()?)?,
            cert,
        })
    }

    /// A certificate for `usage`, valid from a day ago for a year.
    pub fn issue(&self, usage: Usage<'_>) -> anyhow::Result<Issued> {
        let now = sealpost::now();
        self.issue_between(usage, now - 86_400, now + 365 * 86_400)
    }
}

fn rand_serial() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(2);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// How a route answers.
#[derive(Clone, Debug)]
pub enum Answer {
    /// 200 with this body.
    Body(Vec<u8>),
    /// 200 without a length, then this body `chunk` bytes at a time, one chunk every `every`.
    Stream {
        body: Vec<u8>,
        chunk: usize,
        every: Duration,
    },
    /// This status, empty body.
    Status(u16),
}

type Routes = Arc<Mutex<HashMap<String, Answer>>>;

/// An HTTPS server on 127.0.0.1 answering `GET https://HOST/PATH?QUERY` from a table keyed by
/// `HOST/PATH?QUERY` (the request's `Host` without port); anything else is 404.
pub struct HttpsServer {
    pub addr: SocketAddr,
    routes: Routes,
    /// Every request as `HOST/PATH?QUERY`, in order.
    seen: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl HttpsServer {
    /// Serves TLS with `identity` (a certificate for the host names the test uses).
    pub async fn start(identity: &Issued) -> anyhow::Result<HttpsServer> {
        let id = native_tls::Identity::from_pkcs8(
            identity.cert_pem.as_bytes(),
            identity.key_pem.as_bytes(),
        )
        .context("TLS identity")?;
        let acceptor =
            tokio_native_tls::TlsAcceptor::from(native_tls::TlsAcceptor::builder(id).build()?);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let routes: Routes = Arc::default();
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let (r, s) = (routes.clone(), seen.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, routes, seen) = (acceptor.clone(), r.clone(), s.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req| {
                        let (routes, seen) = (routes.clone(), seen.clone());
                        async move { Ok::<_, Infallible>(answer(&routes, &seen, req)) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Ok(HttpsServer {
            addr,
            routes,
            seen,
            task,
        })
    }

    /// Answers `GET https://{key}` (`HOST/PATH?QUERY`) with `answer`.
    pub fn route(&self, key: &str, answer: Answer) {
        self.routes
            .lock()
            .expect("routes")
            .insert(key.to_owned(), answer);
    }

    /// The requests served so far (`HOST/PATH?QUERY`).
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().expect("seen").clone()
    }
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn answer(
    routes: &Routes,
    seen: &Mutex<Vec<String>>,
    req: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<Body> {
    let host = req
        .headers()
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .split(':')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let key = format!("{host}{target}");
    seen.lock().expect("seen").push(key.clone());
    let found = routes.lock().expect("routes").get(&key).cloned();
    let full = |status: u16, body: Vec<u8>| {
        hyper::Response::builder()
            .status(status)
            .body(
                http_body_util::Full::new(Bytes::from(body))
                    .map_err(|n: Infallible| match n {})
                    .boxed(),
            )
            .expect("response")
    };
    match found {
        None => full(404, b"not found".to_vec()),
        Some(Answer::Status(s)) => full(s, Vec::new()),
        Some(Answer::Body(b)) => full(200, b),
        Some(Answer::Stream { body, chunk, every }) => {
            let chunks: Vec<Bytes> = body
                .chunks(chunk.max(1))
                .map(Bytes::copy_from_slice)
                .collect();
            let stream = futures::stream::unfold(chunks.into_iter(), move |mut it| async move {
                let b = it.next()?;
                tokio::time::sleep(every).await;
                Some((Ok::<_, Infallible>(Frame::data(b)), it))
            });
            hyper::Response::builder()
                .status(200)
                .body(StreamBody::new(stream).boxed())
                .expect("response")
        }
    }
}

/// Runs the `openssl` command with `args` (as a recipient's tools would), printing what it
/// said; its output.
pub fn openssl(args: &[&str]) -> std::process::Output {
    let out = std::process::Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl runs");
    println!(
        "$ openssl {}\n[exit {:?}]\n{}",
        args.join(" "),
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
