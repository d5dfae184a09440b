//! A throw-away GnuPG 2.2 home for interoperability tests: the real `gpg` and its dirmngr,
//! pointed at loopback only.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// A throw-away GnuPG home; its agent and dirmngr are killed when it is dropped.
pub struct Gpg {
    home: tempfile::TempDir,
}

impl Gpg {
    pub fn new() -> Self {
        let home = tempfile::Builder::new().prefix("gpg").tempdir().unwrap();
        // gpg warns about anything but 0700.
        std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        // No DNS and no Tor: everything here is a literal loopback address, and a fresh
        // dirmngr otherwise probes for Tor and the system resolver first.
        std::fs::write(
            home.path().join("dirmngr.conf"),
            "standard-resolver\nno-use-tor\ndisable-ipv6\nconnect-timeout 10\n",
        )
        .unwrap();
        Gpg { home }
    }

    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.arg("--homedir").arg(self.home.path());
        // Whatever the environment says, talk to our loopback server directly.
        for var in [
            "GNUPGHOME",
            "http_proxy",
            "https_proxy",
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "all_proxy",
            "ALL_PROXY",
        ] {
            c.env_remove(var);
        }
        c
    }

    /// A new key for `address` (ed25519/cv25519, as gpg 2.2 makes by `future-default`, no
    /// passphrase): armored, and its fingerprint.
    pub fn new_key(&self, address: &str) -> (String, String) {
        let uid = format!("<{address}>");
        let out = self.gpg(
            &[
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
                "--quick-gen-key",
                &uid,
                "future-default",
                "default",
                "never",
            ],
            "",
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = self.gpg(&["--with-colons", "--list-keys", &uid], "");
        let colons = String::from_utf8(out.stdout).unwrap();
        let fpr = colons
            .lines()
            .find(|l| l.starts_with("fpr:"))
            .and_then(|l| l.split(':').nth(9))
            .unwrap()
            .to_owned();
        let out = self.gpg(&["--armor", "--export", &fpr], "");
        (String::from_utf8(out.stdout).unwrap(), fpr)
    }

    /// Runs `gpg --batch ARGS` with `stdin`, with a time limit, and returns its output.
    pub fn gpg(&self, args: &[&str], stdin: &str) -> Output {
        self.tool("gpg", args, stdin)
    }

    /// Runs `gpgsm --batch ARGS` (GnuPG's S/MIME tool, same home) with `stdin`, with a time
    /// limit, and returns its output.
    pub fn gpgsm(&self, args: &[&str], stdin: &str) -> Output {
        self.tool("gpgsm", args, stdin)
    }

    /// Imports an S/MIME key into gpgsm as a mail program's user would: certificate and
    /// private key (PEM) exported by `openssl pkcs12` (3DES, which GnuPG 2.2 reads) and
    /// imported with the passphrase given on stdin.
    ///
    /// GnuPG 2.2's PKCS#12 parser rejects about one export in twenty ("data error at
    /// shrouded_key_bag.decrypted-text": its check of the decrypted key bag misreads some
    /// salt and IV values; the same file always fails, a fresh export imports), so a refused
    /// file is exported anew, up to five times.
    pub fn gpgsm_import_key(&self, cert_pem: &str, key_pem: &str) {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key, p12) = (
            dir.path().join("cert.pem"),
            dir.path().join("key.pem"),
            dir.path().join("key.p12"),
        );
        std::fs::write(&cert, cert_pem).unwrap();
        std::fs::write(&key, key_pem).unwrap();
        for _ in 0..5 {
            let out = Command::new("openssl")
                .args(["pkcs12", "-export", "-passout", "pass:test"])
                .args(["-keypbe", "PBE-SHA1-3DES", "-certpbe", "PBE-SHA1-3DES"])
                .args(["-macalg", "sha1", "-in"])
                .arg(&cert)
                .arg("-inkey")
                .arg(&key)
                .arg("-out")
                .arg(&p12)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let out = self.gpgsm_with_passphrase(&["--import", p12.to_str().unwrap()]);
            if out.status.success() {
                return;
            }
        }
        panic!("gpgsm refused five PKCS#12 exports of the key");
    }

    /// Makes `ca_pem` a trusted root for gpgsm, as an administrator would: its fingerprint in
    /// the agent's `trustlist.txt` (call before anything starts the agent), and CRL checks off
    /// (a test CA publishes none); the certificate imported.
    pub fn gpgsm_trust_root(&self, ca_pem: &str) {
        let ca = openssl::x509::X509::from_pem(ca_pem.as_bytes()).unwrap();
        let sha1 = ca.digest(openssl::hash::MessageDigest::sha1()).unwrap();
        let fpr: Vec<String> = sha1.iter().map(|b| format!("{b:02X}")).collect();
        std::fs::write(
            self.home.path().join("trustlist.txt"),
            format!("{} S\n", fpr.join(":")),
        )
        .unwrap();
        std::fs::write(self.home.path().join("gpgsm.conf"), "disable-crl-checks\n").unwrap();
        let out = self.gpgsm(&["--import"], ca_pem);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `gpgsm --batch ARGS` with the passphrase of [`Gpg::gpgsm_import_key`]'s keys.
    pub fn gpgsm_with_passphrase(&self, args: &[&str]) -> Output {
        let mut all = vec!["--pinentry-mode", "loopback", "--passphrase-fd", "0"];
        all.extend(args);
        self.gpgsm(&all, "test\n")
    }

    fn tool(&self, program: &str, args: &[&str], stdin: &str) -> Output {
        let mut child = self
            .command(program)
            .arg("--batch")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Input written and output read at once (threads): a large input or output would
        // otherwise fill a pipe while the tool waits for us.
        let mut input = child.stdin.take().unwrap();
        let stdin = stdin.to_owned();
        let writer = std::thread::spawn(move || input.write_all(stdin.as_bytes()));
        let pid = child.id();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(child.wait_with_output()));
        let out = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(out) => out.unwrap(),
            Err(e) => {
                let _ = Command::new("kill").arg(pid.to_string()).status();
                panic!("{program} {args:?}: {e}");
            }
        };
        // A tool may stop reading early (a refusal): its answer is what the test checks.
        let _ = writer.join();
        println!(
            "$ {program} {}\n[exit {:?}]\n--- stdout\n{}--- stderr\n{}",
            args.join(" "),
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = self
            .command("gpgconf")
            .args(["--kill", "all"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

pub fn gpg_path() -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("gpg"))
            .find(|p| p.is_file())
    })
}

/// Whether `gpg --list-sigs --with-colons` shows a signature by `issuer_keyid` under a user ID
/// containing `uid` (before the next uid/sub line).
pub fn uid_has_sig_by(colons: &str, uid: &str, issuer_keyid: &str) -> bool {
    let mut in_uid = false;
    for line in colons.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        match fields.first() {
            Some(&"uid") => in_uid = fields.get(9).is_some_and(|f| f.contains(uid)),
            Some(&"sub") | Some(&"pub") => in_uid = false,
            Some(&"sig") if in_uid && fields.get(4) == Some(&issuer_keyid) => return true,
            _ => {}
        }
    }
    false
}

impl Default for Gpg {
    fn default() -> Self {
        Self::new()
    }
}
