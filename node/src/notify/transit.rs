//! The node's transit key and the enforced-TLS copy (docs/mail.md, mode `tls`).
//!
//! The transit key is an OpenPGP encryption key of the node (`DATA/keys/transit.tsk.asc`,
//! 0600, made by `init`, or at open for a data directory made before it existed), published in
//! the organisation record (`GET /org`, `transit_key`) so that a sender's client can encrypt
//! an enforced-TLS copy to it. The queued copy stays encrypted; [`TransitKey::outer_mail`]
//! decrypts it in memory only (zeroised when dropped) while the driver sends it, and puts
//! the node's outer headers and the entity's real `Subject` in front of the entity's content.
//!
//! This is the one place where the node sees a message's content: only for recipients whose
//! domain the organisation pinned to enforced TLS, and the sender is told before sending.

use std::io::Read;
use std::time::SystemTime;

use anyhow::Context;
use openpgp::Cert;
use openpgp::KeyHandle;
use openpgp::crypto::SessionKey;
use openpgp::packet::{PKESK, SKESK};
use openpgp::parse::Parse;
use openpgp::parse::stream::{
    DecryptionHelper, DecryptorBuilder, MessageStructure, VerificationHelper,
};
use openpgp::policy::StandardPolicy;
use openpgp::serialize::SerializeInto;
use openpgp::types::{KeyFlags, SymmetricAlgorithm};
use sequoia_openpgp as openpgp;
use zeroize::Zeroizing;

use crate::config::Paths;

/// The most bytes a decrypted enforced-TLS copy may have (the message size limit bounds the
/// ciphertext; compression could make more of it).
const MAX_ENTITY_BYTES: u64 = 256 * 1024 * 1024;

/// The node's transit key (secret), loaded at open.
#[derive(Clone)]
pub struct TransitKey {
    tsk: Cert,
    armored: String,
}

impl TransitKey {
    /// Generates a transit key for `domain`: Cv25519 encryption subkey, SEIPDv1 only (as
    /// user keys, so GnuPG 2.2-era tools and every client can encrypt to it).
    pub fn generate(domain: &str, now: SystemTime) -> anyhow::Result<TransitKey> {
        let address = format!("sealpost-transit@{}", domain.to_ascii_lowercase());
        let (tsk, _rev) = crate::proto::crypto::generate_with_encryption_subkey(
            &address,
            Some("Sealpost transit key"),
            KeyFlags::empty().set_certification(),
            now,
        )?;
        Self::from_tsk(tsk)
    }

    fn from_tsk(tsk: Cert) -> anyhow::Result<TransitKey> {
        if !tsk.is_tsk() {
            anyhow::bail!("the transit key holds no secret key");
        }
        let armored = String::from_utf8(tsk.armored().to_vec()?)?;
        Ok(TransitKey { tsk, armored })
    }

    /// The key in `DATA/keys/`, made (and written, 0600) if this data directory has none yet.
    pub fn load_or_create(paths: &Paths, domain: &str) -> anyhow::Result<TransitKey> {
        let path = paths.transit_key();
        if path.exists() {
            let tsk =
                Cert::from_file(&path).with_context(|| format!("reading {}", path.display()))?;
            return Self::from_tsk(tsk);
        }
        let key = Self::generate(domain, SystemTime::now())?;
        let secret = Zeroizing::new(key.tsk.as_tsk().armored().to_vec()?);
        crate::keys::write_secret_file(&path, &secret)?;
        Ok(key)
    }

    /// The public certificate, armored: what clients encrypt to.
    pub fn public_armored(&self) -> &str {
        &self.armored
    }

    /// The public certificate.
    pub fn public_cert(&self) -> Cert {
        self.tsk.clone().strip_secret_key_material()
    }

    pub fn fingerprint(&self) -> String {
        self.tsk.fingerprint().to_hex()
    }

    /// Decrypts an enforced-TLS copy in memory.
    pub fn decrypt(&self, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
        let policy = StandardPolicy::new();
        let helper = Helper { key: &self.tsk };
        let mut d = DecryptorBuilder::from_bytes(ciphertext)
            .map_err(|e| format!("not an OpenPGP message: {e}"))?
            .with_policy(&policy, None, helper)
            .map_err(|e| format!("it is not encrypted to this node's transit key: {e}"))?;
        let mut out = Zeroizing::new(Vec::new());
        (&mut d)
            .take(MAX_ENTITY_BYTES + 1)
            .read_to_end(&mut out)
            .map_err(|e| format!("it could not be decrypted: {e}"))?;
        if out.len() as u64 > MAX_ENTITY_BYTES {
            return Err("it is larger than 256 MiB decrypted".into());
        }
        Ok(out)
    }

    /// The mail to send for an enforced-TLS copy: `outer_headers` (the node's), the entity's
    /// `Subject`, then the entity's `MIME-Version`/`Content-*` headers and its body. Only in
    /// memory.
    pub fn outer_mail(
        &self,
        outer_headers: &[u8],
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, String> {
        let entity = self.decrypt(ciphertext)?;
        outer_mail(outer_headers, &entity)
    }
}

/// [`TransitKey::outer_mail`] after decryption (pure).
pub fn outer_mail(outer_headers: &[u8], entity: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
    let parsed = mail_parser::MessageParser::default()
        .parse(entity)
        .ok_or("its content is not a MIME entity")?;
    let root = parsed.root_part();
    let mut out = Zeroizing::new(Vec::with_capacity(outer_headers.len() + entity.len() + 256));
    out.extend_from_slice(outer_headers);
    if let Some(subject) = parsed.subject() {
        let mut h = lettre::message::header::Headers::new();
        h.set(lettre::message::header::Subject::from(subject.to_owned()));
        out.extend_from_slice(h.to_string().as_bytes());
    }
    let mut content_type = false;
    for header in &root.headers {
        let name = header.name.as_str();
        let lower = name.to_ascii_lowercase();
        if lower.starts_with("content-") || lower == "mime-version" {
            content_type |= lower == "content-type";
            let raw = entity
                .get(header.offset_field as usize..header.offset_end as usize)
                .ok_or("a header of its content is out of range")?;
            out.extend_from_slice(raw);
            if !raw.ends_with(b"\n") {
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    if !content_type {
        return Err("its content has no Content-Type".into());
    }
    out.extend_from_slice(b"\r\n");
    let body = entity
        .get(root.offset_body as usize..)
        .ok_or("its body is out of range")?;
    out.extend_from_slice(body);
    Ok(out)
}

struct Helper<'a> {
    key: &'a Cert,
}

impl VerificationHelper for Helper<'_> {
    fn get_certs(&mut self, _ids: &[KeyHandle]) -> openpgp::Result<Vec<Cert>> {
        Ok(Vec::new())
    }
    // The sender's signature over the copy is the envelope's (its hash is signed there and
    // checked at `accept`); the node does not check signatures inside the copy.
    fn check(&mut self, _structure: MessageStructure) -> openpgp::Result<()> {
        Ok(())
    }
}

impl DecryptionHelper for Helper<'_> {
    fn decrypt(
        &mut self,
        pkesks: &[PKESK],
        _skesks: &[SKESK],
        sym_algo: Option<SymmetricAlgorithm>,
        decrypt: &mut dyn FnMut(Option<SymmetricAlgorithm>, &SessionKey) -> bool,
    ) -> openpgp::Result<Option<Cert>> {
        for pkesk in pkesks {
            for ka in self
                .key
                .keys()
                .secret()
                .filter(|ka| match pkesk.recipient() {
                    Some(h) => h.aliases(KeyHandle::from(ka.key().fingerprint())),
                    None => true,
                })
            {
                let mut pair = ka.key().clone().into_keypair()?;
                if let Some((algo, sk)) = pkesk.decrypt(&mut pair, sym_algo)
                    && decrypt(algo, &sk)
                {
                    return Ok(None);
                }
            }
        }
        Err(anyhow::anyhow!("no session key for the transit key"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENTITY: &str = "Content-Type: multipart/mixed; boundary=\"b1\"; protected-headers=\"v1\"\r\n\
From: alice@alpha.test\r\n\
To: fay@tls.test\r\n\
Subject: =?utf-8?q?Quartalszahlen_f=C3=BCr_Fay?=\r\n\
Message-ID: <m1@alpha.test>\r\n\
MIME-Version: 1.0\r\n\
\r\n\
--b1\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
the body\r\n\
--b1--\r\n";

    #[test]
    fn the_outer_mail_has_the_nodes_headers_the_real_subject_and_the_entitys_content() {
        let outer =
            b"From: alice@alpha.test\r\nTo: fay@tls.test\r\nMessage-ID: <m1@alpha.test>\r\n";
        let mail = outer_mail(outer, ENTITY.as_bytes()).unwrap();
        let text = String::from_utf8(mail.to_vec()).unwrap();
        assert!(
            text.starts_with(std::str::from_utf8(outer).unwrap()),
            "{text}"
        );
        assert_eq!(text.matches("From: ").count(), 1, "{text}");
        assert_eq!(text.matches("Message-ID: ").count(), 1, "{text}");
        let parsed = mail_parser::MessageParser::default()
            .parse(&mail[..])
            .unwrap();
        assert_eq!(parsed.subject(), Some("Quartalszahlen für Fay"));
        assert_eq!(parsed.body_text(0).as_deref(), Some("the body"));
        assert!(text.contains("protected-headers=\"v1\""), "{text}");
        assert!(text.ends_with("--b1--\r\n"));

        // A subject with a line break cannot add a header.
        let evil = ENTITY.replace(
            "Subject: =?utf-8?q?Quartalszahlen_f=C3=BCr_Fay?=",
            "Subject: =?utf-8?q?x=0D=0ABcc:_eve@evil.test?=",
        );
        let mail = outer_mail(outer, evil.as_bytes()).unwrap();
        let text = String::from_utf8(mail.to_vec()).unwrap();
        assert!(!text.contains("\r\nBcc:"), "{text}");

        assert_eq!(
            outer_mail(outer, b"no headers here at all").unwrap_err(),
            "its content has no Content-Type"
        );
    }

    #[tokio::test]
    async fn init_makes_the_transit_key_and_open_makes_one_for_an_older_data_directory() {
        let (dir, node) = crate::node::temp_node("transit.test").await;
        let path = Paths::new(dir.path()).transit_key();
        let made = std::fs::read(&path).unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let published = node.state.org_record()["transit_key"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(published.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----"));
        assert!(!published.contains("PRIVATE"));
        drop(node);
        // Opened again: the same key.
        let again = crate::node::Node::open(dir.path()).unwrap();
        assert_eq!(again.state.org_record()["transit_key"], published.as_str());
        assert_eq!(std::fs::read(&path).unwrap(), made);
        drop(again);
        // A data directory from before the transit key: one is made at open.
        std::fs::remove_file(&path).unwrap();
        let older = crate::node::Node::open(dir.path()).unwrap();
        assert!(path.exists());
        assert_ne!(older.state.org_record()["transit_key"], published.as_str());
    }

    #[test]
    fn a_copy_to_the_transit_key_opens_and_one_to_another_key_does_not() {
        use openpgp::serialize::stream::{Encryptor, LiteralWriter, Message};
        use std::io::Write;
        let key = TransitKey::generate("alpha.test", SystemTime::now()).unwrap();
        let other = TransitKey::generate("beta.test", SystemTime::now()).unwrap();
        let p = StandardPolicy::new();
        let seal = |to: &TransitKey| {
            let cert = Cert::from_bytes(to.public_armored().as_bytes()).unwrap();
            assert!(!cert.is_tsk());
            let recipients = cert
                .keys()
                .with_policy(&p, None)
                .supported()
                .for_transport_encryption();
            let mut out = Vec::new();
            let m = Message::new(&mut out);
            let m = Encryptor::for_recipients(m, recipients).build().unwrap();
            let mut w = LiteralWriter::new(m).build().unwrap();
            w.write_all(ENTITY.as_bytes()).unwrap();
            w.finalize().unwrap();
            out
        };
        assert_eq!(&key.decrypt(&seal(&key)).unwrap()[..], ENTITY.as_bytes());
        assert!(key.decrypt(&seal(&other)).is_err());
        assert!(key.decrypt(b"plain text").is_err());
    }
}
