//! Streaming sign+encrypt ([`seal`]) and decrypt+verify ([`open`]) of
//! messages. (Inspecting a ciphertext's recipients without decrypting it is
//! `sealpost-proto`'s: the node does it too.)

use std::io::{self, Read, Write};
use std::time::SystemTime;

use sequoia_openpgp as openpgp;

use openpgp::crypto::SessionKey;
use openpgp::packet::{PKESK, SKESK};
use openpgp::parse::Parse;
use openpgp::parse::stream::{
    DecryptionHelper, DecryptorBuilder, MessageLayer, MessageStructure, VerificationError,
    VerificationHelper,
};
use openpgp::policy::Policy;
use openpgp::serialize::stream::{
    Compressor, Encryptor, LiteralWriter, Message, Recipient, Signer,
};
use openpgp::types::{CompressionAlgorithm, SymmetricAlgorithm};
use openpgp::{Cert, Fingerprint, KeyHandle};

use sealpost_proto::crypto::CryptoError;

/// How much decrypted data [`open`] holds back before releasing it to
/// the caller's writer (Sequoia's `DecryptorBuilder::buffer_size`).
///
/// Sequoia keeps up to twice this much in memory while streaming, and
/// withholds the last `OPEN_BUFFER_SIZE` bytes until the integrity check
/// and the signatures have been verified.  Messages larger than this are
/// therefore partly written *before* they are authenticated.
pub const OPEN_BUFFER_SIZE: usize = 1024 * 1024;

/// Size of the copy buffer between sequoia's reader and the caller's
/// writer.
const COPY_CHUNK: usize = 64 * 1024;

/// Signs, compresses (zlib) and encrypts `plaintext` into a binary
/// OpenPGP message written to `out`, streaming (the plaintext is never
/// held in memory as a whole).
///
/// * Signed by the first signing-capable key of `signer` that is valid
///   under `policy` at `now` and has unencrypted secret key material;
///   the signature is made at `now` and lists every recipient cert as an
///   intended recipient (defeats surreptitious forwarding).
/// * Encrypted to every transport-or-storage encryption-capable valid
///   key of every cert in `recipients` (callers include the sender's own
///   cert).  The packet version follows the recipients' Features: SEIPDv1
///   unless *all* of them advertise SEIPDv2.
///
/// Nothing is written if a recipient has no usable encryption key
/// ([`CryptoError::NoUsableKey`] with that cert's fingerprint) or the
/// signer has no usable signing key.  Errors while streaming leave a
/// truncated message in `out`, which the caller must discard.
pub fn seal(
    recipients: &[Cert],
    signer: &Cert,
    policy: &dyn Policy,
    now: SystemTime,
    plaintext: &mut dyn Read,
    out: &mut (dyn Write + Send + Sync),
) -> Result<(), CryptoError> {
    if recipients.is_empty() {
        return Err(CryptoError::Other("no recipients".into()));
    }

    // Resolve all keys before writing a single byte.
    let mut encryption_keys: Vec<Recipient> = Vec::new();
    for cert in recipients {
        let keys = sealpost_proto::crypto::encryption_keys(cert, policy, now)
            .ok_or(CryptoError::NoUsableKey(cert.fingerprint()))?;
        let before = encryption_keys.len();
        encryption_keys.extend(keys.map(Recipient::from));
        if encryption_keys.len() == before {
            return Err(CryptoError::NoUsableKey(cert.fingerprint()));
        }
    }

    let signing_keypair = super::sign::signing_keypair(signer, policy, now)?;

    let err = |e: anyhow::Error| CryptoError::other("sealing message", e);
    let message = Message::new(out);
    let message = Encryptor::for_recipients(message, encryption_keys)
        .build()
        .map_err(err)?;
    let message = Compressor::new(message)
        .algo(CompressionAlgorithm::Zlib)
        .build()
        .map_err(err)?;
    let mut sig = Signer::new(message, signing_keypair)
        .map_err(err)?
        .creation_time(now);
    for cert in recipients {
        sig = sig.add_intended_recipient(cert);
    }
    let message = sig.build().map_err(err)?;
    let mut literal = LiteralWriter::new(message).build().map_err(err)?;
    io::copy(plaintext, &mut literal).map_err(|e| CryptoError::other("sealing message", e))?;
    literal.finalize().map_err(err)
}

/// What [`open`] learned while sequoia drove the helper; kept outside
/// the helper so it survives when sequoia drops the helper on error.
#[derive(Default)]
struct OpenState {
    /// The decryption callback ran at least once.
    decrypt_called: bool,
    /// A PKESK addressed to one of our keys was present.
    pkesk_for_us: bool,
    /// A session key was recovered and accepted.
    session_key_ok: bool,
    /// Our secret key was present but still encrypted.
    key_locked: bool,
    /// The verdict of `check`, if it rejected the message.
    check_error: Option<CryptoError>,
    /// The signer, if `check` accepted the message.
    signer: Option<Fingerprint>,
    /// The session key that decrypted the message, with its algorithm (absent for a v6
    /// PKESK, which does not say it).
    session_key: Option<(Option<SymmetricAlgorithm>, SessionKey)>,
}

struct OpenHelper<'a> {
    me: &'a Cert,
    signers: &'a [Cert],
    state: &'a mut OpenState,
    /// A signature by one of `signers` is required ([`open`]); else any encrypted message
    /// is accepted, signed or not ([`open_unsigned`]).
    signed: bool,
}

impl VerificationHelper for OpenHelper<'_> {
    fn get_certs(&mut self, _ids: &[KeyHandle]) -> openpgp::Result<Vec<Cert>> {
        // Only the expected senders can produce an acceptable signature;
        // anything else surfaces as `MissingKey`.
        Ok(self.signers.to_vec())
    }

    fn check(&mut self, structure: MessageStructure) -> openpgp::Result<()> {
        if !self.signed {
            return match structure.into_iter().next() {
                Some(MessageLayer::Encryption { .. }) => Ok(()),
                _ => {
                    let e = CryptoError::Malformed("message is not encrypted".into());
                    let msg = e.to_string();
                    self.state.check_error = Some(e);
                    Err(anyhow::anyhow!(msg))
                }
            };
        }
        match evaluate_structure(structure, self.signers) {
            Ok(fpr) => {
                self.state.signer = Some(fpr);
                Ok(())
            }
            Err(e) => {
                let msg = e.to_string();
                self.state.check_error = Some(e);
                Err(anyhow::anyhow!(msg))
            }
        }
    }
}

/// Accepts exactly: encryption, optionally one compression layer, then
/// signature group(s) with at least one good signature by one of
/// `signers`.  Returns that signer's primary fingerprint.
fn evaluate_structure(
    structure: MessageStructure,
    signers: &[Cert],
) -> Result<Fingerprint, CryptoError> {
    let mut layers = structure.into_iter().peekable();
    match layers.next() {
        Some(MessageLayer::Encryption { .. }) => {}
        _ => return Err(CryptoError::Malformed("message is not encrypted".into())),
    }
    if let Some(MessageLayer::Compression { .. }) = layers.peek() {
        layers.next();
    }

    let mut saw_signature = false;
    let mut only_missing_keys = true;
    let mut first_problem: Option<String> = None;
    for layer in layers {
        let MessageLayer::SignatureGroup { results } = layer else {
            return Err(CryptoError::Malformed(
                "unexpected message structure".into(),
            ));
        };
        for result in results {
            saw_signature = true;
            match result {
                Ok(good) => {
                    let fpr = good.ka.cert().fingerprint();
                    if signers.iter().any(|s| s.fingerprint() == fpr) {
                        return Ok(fpr);
                    }
                }
                Err(VerificationError::MissingKey { .. }) => {}
                Err(e) => {
                    only_missing_keys = false;
                    first_problem.get_or_insert_with(|| e.to_string());
                }
            }
        }
    }
    if !saw_signature {
        Err(CryptoError::BadSignature("message is not signed".into()))
    } else if only_missing_keys {
        Err(CryptoError::UnknownSigner)
    } else {
        Err(CryptoError::BadSignature(
            first_problem.unwrap_or_else(|| "no valid signature".into()),
        ))
    }
}

impl DecryptionHelper for OpenHelper<'_> {
    fn decrypt(
        &mut self,
        pkesks: &[PKESK],
        _skesks: &[SKESK],
        sym_algo: Option<SymmetricAlgorithm>,
        decrypt: &mut dyn FnMut(Option<SymmetricAlgorithm>, &SessionKey) -> bool,
    ) -> openpgp::Result<Option<Cert>> {
        self.state.decrypt_called = true;
        // Decryption deliberately ignores key validity: old messages must
        // stay readable after a subkey expires or is rotated out.
        for pkesk in pkesks {
            let candidates = self
                .me
                .keys()
                .secret()
                .filter(|ka| match pkesk.recipient() {
                    Some(h) => h.aliases(KeyHandle::from(ka.key().fingerprint())),
                    // Wildcard recipient: try every key we have.
                    None => true,
                });
            for ka in candidates {
                if pkesk.recipient().is_some() {
                    self.state.pkesk_for_us = true;
                }
                if !ka.key().has_unencrypted_secret() {
                    self.state.key_locked = true;
                    continue;
                }
                let mut keypair = ka.key().clone().into_keypair()?;
                if let Some((algo, sk)) = pkesk.decrypt(&mut keypair, sym_algo)
                    && decrypt(algo, &sk)
                {
                    self.state.session_key_ok = true;
                    self.state.session_key = Some((algo, sk.clone()));
                    // Returning our cert lets sequoia check the
                    // signature's intended-recipient list against us.
                    return Ok(Some(self.me.clone()));
                }
            }
        }
        Err(anyhow::anyhow!("no session key"))
    }
}

/// Maps a failure reported by sequoia to the caller's terms using what
/// the helper observed, rather than by parsing sequoia's error text.
fn classify_open_error(state: &mut OpenState, e: impl std::fmt::Display) -> CryptoError {
    if let Some(err) = state.check_error.take() {
        return err;
    }
    if !state.decrypt_called {
        // Failed before any encryption container was reached: a corrupt
        // header or not an (encrypted) OpenPGP message at all.
        return CryptoError::Integrity(format!("malformed ciphertext: {e}"));
    }
    if !state.session_key_ok {
        if state.key_locked {
            return CryptoError::Other("decryption key is still encrypted".into());
        }
        if state.pkesk_for_us {
            return CryptoError::Integrity("session key does not decrypt".into());
        }
        return CryptoError::NotEncryptedForUs;
    }
    CryptoError::Integrity(e.to_string())
}

/// Decrypts a binary message with `me` (whose secret keys must be
/// unencrypted), verifies it was signed by one of `signers` and writes
/// the plaintext to `out`, streaming.  Returns the primary fingerprint
/// of the cert that made the valid signature.
///
/// **`out` is untrusted until `Ok` is returned.**  To keep memory
/// bounded, up to [`OPEN_BUFFER_SIZE`] bytes are held back and the rest
/// is written as it is decrypted, before the integrity check and the
/// signature are verified at the end of the message.  Write to a
/// temporary file and move it into place only on success.
///
/// Errors: [`CryptoError::NotEncryptedForUs`] when no PKESK is for one
/// of our keys; [`CryptoError::Integrity`] for tampered or malformed
/// ciphertext (including a PKESK for us that does not decrypt);
/// [`CryptoError::UnknownSigner`] when all signatures are by keys not in
/// `signers`; [`CryptoError::BadSignature`] when a signature does not
/// verify, its key is not valid for signing at `now`, we are not among
/// its intended recipients, or the message is not signed at all.
///
/// Tampering with a PKESK addressed to *another* recipient is not
/// detectable by us (that packet is not authenticated) and does not
/// affect our result; tampering with the key ID of our own PKESK shows
/// up as `NotEncryptedForUs`.
pub fn open(
    me: &Cert,
    signers: &[Cert],
    policy: &dyn Policy,
    now: SystemTime,
    ciphertext: &mut (dyn Read + Send + Sync),
    out: &mut dyn Write,
) -> Result<Fingerprint, CryptoError> {
    let mut state = OpenState::default();
    let result = open_inner(me, signers, true, policy, now, ciphertext, out, &mut state);
    match result {
        Ok(()) => state
            .signer
            .take()
            .ok_or_else(|| CryptoError::BadSignature("message was not verified".into())),
        Err(OpenFailure::Write(e)) => Err(CryptoError::other("writing plaintext", e)),
        Err(OpenFailure::Sequoia(e)) => Err(classify_open_error(&mut state, e)),
    }
}

/// Decrypts a message (binary or armored) with `me`, signed or not, writing the plaintext to
/// `out`: for mail that came in over SMTP (docs/mail.md "SMTP in"), whose part 0 is an OpenPGP
/// message to the recipient made by an outside sender or by the node on arrival. Nothing is
/// said about who wrote it; `out` is untrusted until `Ok`, as with [`open`].
pub fn open_unsigned(
    me: &Cert,
    policy: &dyn Policy,
    now: SystemTime,
    ciphertext: &mut (dyn Read + Send + Sync),
    out: &mut dyn Write,
) -> Result<(), CryptoError> {
    open_unsigned_keeping_session_key(me, policy, now, ciphertext, out).map(drop)
}

/// [`open_unsigned`], also returning the message's session key and its algorithm: what the
/// reader of incoming mail wraps for the organisation's compliance key ([`compliance_packet`];
/// docs/compliance.md, "Waiting copies"). The session key stays in memory only.
pub fn open_unsigned_keeping_session_key(
    me: &Cert,
    policy: &dyn Policy,
    now: SystemTime,
    ciphertext: &mut (dyn Read + Send + Sync),
    out: &mut dyn Write,
) -> Result<(Option<SymmetricAlgorithm>, SessionKey), CryptoError> {
    let mut state = OpenState::default();
    match open_inner(me, &[], false, policy, now, ciphertext, out, &mut state) {
        Ok(()) => state
            .session_key
            .take()
            .ok_or_else(|| CryptoError::Other("no session key was recovered".into())),
        Err(OpenFailure::Write(e)) => Err(CryptoError::other("writing plaintext", e)),
        Err(OpenFailure::Sequoia(e)) => Err(classify_open_error(&mut state, e)),
    }
}

/// One v3 PKESK packet (binary, as sequoia writes it) wrapping `session_key` for the first
/// encryption key of `compliance` valid under `policy` at `now`: the packet that lets the
/// compliance archive open a message that came encrypted to its user only. `algo` must be
/// known (SEIPDv1: the v3 packet carries it); a v6-PKESK message gets
/// [`CryptoError::Other`].
pub fn compliance_packet(
    compliance: &Cert,
    policy: &dyn Policy,
    now: SystemTime,
    algo: Option<SymmetricAlgorithm>,
    session_key: &SessionKey,
) -> Result<Vec<u8>, CryptoError> {
    use openpgp::Packet;
    use openpgp::packet::pkesk::PKESK3;
    use openpgp::serialize::MarshalInto;
    let algo = algo.ok_or_else(|| {
        CryptoError::Other("the message's session key has no algorithm (not SEIPDv1)".into())
    })?;
    let key = sealpost_proto::crypto::encryption_keys(compliance, policy, now)
        .and_then(|mut keys| keys.next())
        .ok_or(CryptoError::NoUsableKey(compliance.fingerprint()))?;
    let mut pkesk = PKESK3::for_recipient(algo, session_key, key.key())
        .map_err(|e| CryptoError::other("wrapping the session key", e))?;
    pkesk.set_recipient(Some(key.key().keyid()));
    Packet::PKESK(pkesk.into())
        .to_vec()
        .map_err(|e| CryptoError::other("writing the packet", e))
}

enum OpenFailure {
    /// The caller's writer failed.
    Write(io::Error),
    /// Sequoia reported a problem with the message.
    Sequoia(String),
}

#[allow(clippy::too_many_arguments)]
fn open_inner(
    me: &Cert,
    signers: &[Cert],
    signed: bool,
    policy: &dyn Policy,
    now: SystemTime,
    ciphertext: &mut (dyn Read + Send + Sync),
    out: &mut dyn Write,
    state: &mut OpenState,
) -> Result<(), OpenFailure> {
    let sequoia = |e: &dyn std::fmt::Display| OpenFailure::Sequoia(e.to_string());
    let helper = OpenHelper {
        me,
        signers,
        state,
        signed,
    };
    let mut decryptor = DecryptorBuilder::from_reader(ciphertext)
        .map_err(|e| sequoia(&e))?
        .buffer_size(OPEN_BUFFER_SIZE)
        .with_policy(policy, now, helper)
        .map_err(|e| sequoia(&e))?;

    // Our own copy loop instead of io::copy, so that read errors
    // (the message) and write errors (the caller's sink) stay apart.
    let mut buf = vec![0u8; COPY_CHUNK];
    loop {
        let n = match decryptor.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(sequoia(&e)),
        };
        out.write_all(&buf[..n]).map_err(OpenFailure::Write)?;
    }
    out.flush().map_err(OpenFailure::Write)?;
    if !decryptor.message_processed() {
        return Err(OpenFailure::Sequoia(
            "message was not fully processed".into(),
        ));
    }
    Ok(())
}
