//! The `sealpost` binary as a user and an administrator run it: init, serve, admin, the CLI
//! client, the transaction log check, and the demo.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

#[test]
fn init_creates_a_node_and_refuses_to_overwrite_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let d = data.to_str().unwrap();
    ok(&["init", "--data", d, "--domain", "a.test"], &[]);
    for f in [
        "sealpost.toml",
        "sealpost.db",
        "keys/ca.tsk.asc",
        "keys/node.ed25519",
    ] {
        assert!(data.join(f).exists(), "{f}");
    }
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(data.join("keys/ca.tsk.asc"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o077, 0, "the CA key is private to its owner");
    let ca = std::fs::read_to_string(data.join("keys/ca.tsk.asc")).unwrap();
    let before = std::fs::read(data.join("sealpost.toml")).unwrap();
    let o = sealpost(&["init", "--data", d, "--domain", "b.test"], &[]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("refusing to overwrite"));
    assert_eq!(std::fs::read(data.join("sealpost.toml")).unwrap(), before);
    assert_eq!(
        std::fs::read_to_string(data.join("keys/ca.tsk.asc")).unwrap(),
        ca
    );
    // A bad domain is refused before anything is created.
    let o = sealpost(
        &[
            "init",
            "--data",
            dir.path().join("e").to_str().unwrap(),
            "--domain",
            "not a domain",
        ],
        &[],
    );
    assert!(!o.status.success());
    assert!(!dir.path().join("e").exists());
}

#[test]
fn cli_client_enrols_sends_lists_and_reads_while_admin_works_on_the_running_node() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let d = data.to_str().unwrap();
    let (node, url) = init_and_serve(&data);
    // Admin commands work while the node runs.
    let alice_invite = add_user(&data, "alice@a.test");
    let bob_invite = add_user(&data, "bob@a.test");
    assert_eq!(alice_invite.len(), 24, "XXXX-XXXX-XXXX-XXXX-XXXX");
    let list = ok(&["admin", "--data", d, "user", "list"], &[]);
    assert!(list.contains("alice@a.test") && list.contains("invited"));

    let alice_dir = dir.path().join("alice");
    let bob_dir = dir.path().join("bob");
    let pw_file = dir.path().join("bob-password");
    std::fs::write(&pw_file, "bob's long password\n").unwrap();
    let a = alice_dir.to_str().unwrap();
    let b = bob_dir.to_str().unwrap();
    let apw = [("SEALPOST_PASSWORD", "alice's long password")];
    let out = ok(
        &[
            "client",
            "--node",
            &url,
            "--dir",
            a,
            "enroll",
            "--invite",
            &alice_invite,
            "--address",
            "alice@a.test",
        ],
        &apw,
    );
    assert!(out.contains("Enrolled alice@a.test"));
    ok(
        &[
            "client",
            "--node",
            &url,
            "--dir",
            b,
            "--password-file",
            pw_file.to_str().unwrap(),
            "enroll",
            "--invite",
            &bob_invite,
            "--address",
            "bob@a.test",
        ],
        &[],
    );
    // The same invite does not work twice.
    let o = sealpost(
        &[
            "client",
            "--node",
            &url,
            "--dir",
            dir.path().join("x").to_str().unwrap(),
            "enroll",
            "--invite",
            &bob_invite,
            "--address",
            "bob@a.test",
        ],
        &[("SEALPOST_PASSWORD", "some password here")],
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("invite_invalid"));

    let att = dir.path().join("report.txt");
    std::fs::write(&att, "attachment bytes").unwrap();
    let id = ok(
        &[
            "client",
            "--dir",
            a,
            "send",
            "--to",
            "bob@a.test",
            "--subject",
            "Hello Bob",
            "--body",
            "See attached.",
            "--attach",
            att.to_str().unwrap(),
        ],
        &apw,
    )
    .trim()
    .to_owned();
    assert!(sealpost_proto::is_message_id(&id), "{id}");

    let bpw = [
        ("SEALPOST_CLIENT_DIR", b),
        ("SEALPOST_PASSWORD", "bob's long password"),
    ];
    let inbox: serde_json::Value =
        serde_json::from_str(&ok(&["client", "inbox", "--json"], &bpw)).unwrap();
    assert_eq!(inbox[0]["message_id"], id.as_str());
    assert_eq!(inbox[0]["subject"], "Hello Bob");
    assert_eq!(inbox[0]["unread"], true);
    let save = dir.path().join("saved");
    let read: serde_json::Value = serde_json::from_str(&ok(
        &[
            "client",
            "read",
            &id,
            "--save-attachments",
            save.to_str().unwrap(),
            "--json",
        ],
        &bpw,
    ))
    .unwrap();
    assert_eq!(read["verified_sender"], "alice@a.test");
    assert_eq!(read["body"], "See attached.");
    assert_eq!(
        std::fs::read_to_string(save.join("report.txt")).unwrap(),
        "attachment bytes"
    );
    let text = ok(&["client", "read", &id], &bpw);
    assert!(
        text.contains("Signed:  verified, by alice@a.test"),
        "{text}"
    );
    let sent = ok(&["client", "--dir", a, "sent"], &apw);
    assert!(sent.contains(&id) && sent.contains("Hello Bob"));
    let who = ok(&["client", "--dir", a, "whoami"], &apw);
    assert!(who.starts_with("alice@a.test"));

    // The same account on another machine (or one enrolled in the browser): `setup`.
    let a2_dir = dir.path().join("alice-laptop");
    let a2 = a2_dir.to_str().unwrap();
    let setup = |dir: &str, extra: &[&str], pw: &str| {
        let mut args = vec!["client", "--node", &url, "--dir", dir, "setup"];
        args.extend_from_slice(&["--address", "alice@a.test"]);
        args.extend_from_slice(extra);
        sealpost(&args, &[("SEALPOST_PASSWORD", pw)])
    };
    // A wrong password or a CA other than the one given: refused, nothing saved.
    let o = setup(a2, &[], "wrong");
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("wrong address or password"));
    let o = setup(a2, &["--ca", &"AB".repeat(20)], "alice's long password");
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("presents CA"));
    assert!(!a2_dir.join("client.json").exists());
    let o = setup(a2, &[], "alice's long password");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("Set up alice@a.test"), "{out}");
    // The same client state as at enrolment, but for the device token: each device has its own.
    let state_of = |dir: &std::path::Path| {
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("client.json")).unwrap()).unwrap();
        let token = v.as_object_mut().unwrap().remove("device_token");
        (v, token)
    };
    let ((state, token), (state2, token2)) = (state_of(&alice_dir), state_of(&a2_dir));
    assert_eq!(state, state2, "the same client state as at enrolment");
    assert!(token.is_some() && token2.is_some() && token != token2);
    let sent2 = ok(&["client", "--dir", a2, "sent"], &apw);
    assert!(sent2.contains(&id) && sent2.contains("Hello Bob"));
    // Not over an existing client.
    let o = setup(a2, &[], "alice's long password");
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("already holds a client"));
    // Wrong password: a clear error.
    let o = sealpost(
        &["client", "--dir", a, "inbox"],
        &[("SEALPOST_PASSWORD", "wrong")],
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("wrong address or password"));

    // Disabling bob while the node runs ends his access.
    ok(
        &["admin", "--data", d, "user", "disable", "bob@a.test"],
        &[],
    );
    let o = sealpost(&["client", "inbox"], &bpw);
    assert!(String::from_utf8_lossy(&o.stderr).contains("account_disabled"));
    drop(node);
}

#[test]
fn log_verify_passes_on_an_intact_log_and_names_the_first_changed_entry() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let d = data.to_str().unwrap();
    ok(&["init", "--data", d, "--domain", "a.test"], &[]);
    for u in ["a", "b", "c", "d", "e"] {
        add_user(&data, &format!("{u}@a.test"));
    }
    let out = ok(&["admin", "--data", d, "log", "verify"], &[]);
    assert!(out.contains("log ok: 6 entries"), "{out}"); // the CA, then five accounts
    // Change one stored byte of entry 3.
    let db = rusqlite::Connection::open(data.join("sealpost.db")).unwrap();
    let subject: String = db
        .query_row("SELECT subject FROM txlog WHERE seq = 3", [], |r| r.get(0))
        .unwrap();
    // One byte: the first character, changed to another.
    let first = subject.chars().next().unwrap();
    let other = if first == 'x' { 'y' } else { 'x' };
    let changed = format!("{other}{}", &subject[first.len_utf8()..]);
    assert_ne!(subject, changed);
    db.execute("UPDATE txlog SET subject = ?1 WHERE seq = 3", [&changed])
        .unwrap();
    drop(db);
    let o = sealpost(&["admin", "--data", d, "log", "verify"], &[]);
    assert!(!o.status.success());
    assert!(
        stdout(&o).contains("log BROKEN at entry 3"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn demo_starts_two_federated_organisations_whose_printed_commands_work() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let demo = NodeProcess::spawn(
        bin(),
        &[
            "demo",
            "--data",
            data.to_str().unwrap(),
            "--http",
            "127.0.0.1:0",
        ],
    )
    .unwrap();
    let alpha = demo
        .wait_line("alpha.test  http://", Duration::from_secs(90))
        .unwrap();
    assert!(alpha.contains("http://127.0.0.1:"), "{alpha}");
    demo.wait_line("beta.test  http://", Duration::from_secs(10))
        .unwrap();
    demo.wait_line("Press Ctrl-C", Duration::from_secs(60))
        .unwrap();
    let client = |user: &str, args: &[&str]| {
        let d = data.join("clients").join(user);
        let mut argv = vec![
            "client".to_owned(),
            "--dir".into(),
            d.to_str().unwrap().into(),
            "--password-file".into(),
            d.join("password").to_str().unwrap().into(),
        ];
        argv.extend(args.iter().map(|a| a.to_string()));
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        ok(&argv, &[])
    };
    let id = client(
        "alice",
        &[
            "send",
            "--to",
            "bob@beta.test",
            "--subject",
            "Hello",
            "--body",
            "Hi Bob",
        ],
    );
    // Delivery across organisations is asynchronous: poll with a deadline.
    let mut inbox = String::new();
    wait_for_blocking(Duration::from_secs(30), || {
        inbox = client("bob", &["inbox"]);
        (inbox.contains(id.trim()) && inbox.contains("Hello")).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {inbox}"));
    let path = client("bob", &["trust", "show", "alice@alpha.test"]);
    assert!(path.contains("bridge") && path.contains("full"), "{path}");
    let sent = client("alice", &["sent"]);
    assert!(sent.contains("bob@beta.test: delivered"), "{sent}");
}

#[test]
fn trust_commands_work_end_to_end_including_revocation() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let d = data.to_str().unwrap();
    let (node, url) = init_and_serve(&data);
    let users = ["alice", "bob"];
    for u in users {
        let invite = add_user(&data, &format!("{u}@a.test"));
        let cdir = dir.path().join(u);
        ok(
            &[
                "client",
                "--node",
                &url,
                "--dir",
                cdir.to_str().unwrap(),
                "enroll",
                "--invite",
                &invite,
                "--address",
                &format!("{u}@a.test"),
            ],
            &[("SEALPOST_PASSWORD", &format!("{u} long password"))],
        );
    }
    let a = dir.path().join("alice");
    let b = dir.path().join("bob");
    let alice = [
        ("SEALPOST_CLIENT_DIR", a.to_str().unwrap()),
        ("SEALPOST_PASSWORD", "alice long password"),
    ];
    let bob = [
        ("SEALPOST_CLIENT_DIR", b.to_str().unwrap()),
        ("SEALPOST_PASSWORD", "bob long password"),
    ];

    let show = ok(&["client", "trust", "show", "bob@a.test"], &alice);
    assert!(
        show.contains("full (120)") && show.contains("(your organisation)"),
        "{show}"
    );
    let own = ok(&["client", "fingerprint"], &bob);
    let bob_fpr = own.trim().split_once("  ").unwrap().1.to_owned();
    assert_eq!(bob_fpr.len(), 49, "ten groups of four: {bob_fpr}");
    let served = ok(&["client", "fingerprint", "bob@a.test"], &alice);
    assert!(served.contains(&bob_fpr), "{served}");

    // The leaver: the admin revokes the CA's certification; the path is gone.
    ok(&["admin", "--data", d, "user", "revoke", "bob@a.test"], &[]);
    let show = ok(&["client", "trust", "show", "bob@a.test"], &alice);
    assert!(show.contains("none (0)"), "{show}");
    let o = sealpost(
        &[
            "client",
            "send",
            "--to",
            "bob@a.test",
            "--subject",
            "s",
            "--body",
            "b",
        ],
        &alice,
    );
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no trust path"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // A wrong fingerprint is refused; the right one certifies, and the personal path shows.
    let o = sealpost(
        &[
            "client",
            "certify",
            "bob@a.test",
            "--fingerprint",
            "ABCD 0000",
        ],
        &alice,
    );
    assert!(!o.status.success());
    let out = ok(
        &["client", "certify", "bob@a.test", "--fingerprint", &bob_fpr],
        &alice,
    );
    assert!(out.contains("you certified"), "{out}");
    ok(
        &[
            "client",
            "send",
            "--to",
            "bob@a.test",
            "--subject",
            "s",
            "--body",
            "b",
        ],
        &alice,
    );
    ok(&["client", "retract", "bob@a.test"], &alice);
    assert!(ok(&["client", "trust", "show", "bob@a.test"], &alice).contains("none (0)"));
    ok(
        &[
            "client",
            "introducer",
            "bob@a.test",
            "--fingerprint",
            &bob_fpr,
            "--scope",
            "a.test",
        ],
        &alice,
    );
    assert!(ok(&["client", "trust", "show", "bob@a.test"], &alice).contains("full (120)"));

    // Bob revokes his key: the verdict says revoked and sending refuses.
    ok(&["client", "revoke-key", "--reason", "laptop stolen"], &bob);
    let show = ok(&["client", "trust", "show", "bob@a.test"], &alice);
    assert!(show.contains("revoked"), "{show}");
    let o = sealpost(
        &[
            "client",
            "send",
            "--to",
            "bob@a.test",
            "--subject",
            "s",
            "--body",
            "b",
        ],
        &alice,
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("revoked"));
    let log = ok(&["admin", "--data", d, "log", "verify"], &[]);
    assert!(log.contains("log ok"));
    drop(node);
}

#[test]
fn an_outside_recipient_picks_up_and_replies_with_the_cli_and_the_next_message_keeps_the_code() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let (_node, url) = init_and_serve(&data);
    let invite = add_user(&data, "alice@a.test");
    let a = dir.path().join("alice");
    let a = a.to_str().unwrap();
    let apw = [("SEALPOST_PASSWORD", "alice's long password")];
    ok(
        &[
            "client",
            "--node",
            &url,
            "--dir",
            a,
            "enroll",
            "--invite",
            &invite,
            "--address",
            "alice@a.test",
        ],
        &apw,
    );
    let send = |subject: &str, body: &str| {
        let o = sealpost(
            &[
                "client",
                "--dir",
                a,
                "send",
                "--to",
                "carol@outside.test",
                "--subject",
                subject,
                "--body",
                body,
            ],
            &apw,
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        let link = err
            .split_whitespace()
            .find(|w| w.contains("/pickup#"))
            .unwrap_or_else(|| panic!("no link in {err}"))
            .to_owned();
        (stdout(&o).trim().to_owned(), link, err)
    };
    let (first, link1, err) = send("Statement", "CLI-PICKUP-BODY");
    // Each recipient's state and mode.
    assert!(err.contains("carol@outside.test: pickup [pickup]"), "{err}");
    let code = err
        .lines()
        .find_map(|l| l.trim().strip_prefix("unlock code: "))
        .unwrap_or_else(|| panic!("no code in {err}"))
        .to_owned();
    let code_file = dir.path().join("code");
    std::fs::write(&code_file, format!("{code}\n")).unwrap();
    let cf = code_file.to_str().unwrap().to_owned();
    let pickup = |link: &str, extra: &[&str]| {
        let mut args = vec!["client", "pickup", link, "--code-file", cf.as_str()];
        args.extend_from_slice(extra);
        ok(&args, &[])
    };
    let reply = dir.path().join("reply.txt");
    std::fs::write(&reply, "CLI-REPLY-BODY").unwrap();
    let attach = dir.path().join("form.txt");
    std::fs::write(&attach, "reply attachment").unwrap();
    let out = pickup(
        &link1,
        &[
            "--reply",
            reply.to_str().unwrap(),
            "--reply-attach",
            attach.to_str().unwrap(),
        ],
    );
    assert!(out.contains("CLI-PICKUP-BODY"), "{out}");
    assert!(out.contains("certifies this key for alice@a.test"), "{out}");
    assert!(out.contains("Replied to alice@a.test"), "{out}");
    let inbox: serde_json::Value =
        serde_json::from_str(&ok(&["client", "--dir", a, "inbox", "--json"], &apw)).unwrap();
    assert_eq!(inbox[0]["from"], "carol@outside.test");
    assert_eq!(inbox[0]["via"], "pickup");
    assert_eq!(inbox[0]["subject"], "Re: Statement");
    let sent = ok(&["client", "--dir", a, "sent"], &apw);
    assert!(
        sent.contains("carol@outside.test: replied [pickup]"),
        "{sent}"
    );

    // The next message: the same code, a new link; then a new code for it by relock.
    let (second, link2, err) = send("Follow-up", "CLI-SECOND-BODY");
    assert!(err.contains("same unlock code as before"), "{err}");
    assert_ne!(
        (first.as_str(), link1.as_str()),
        (second.as_str(), link2.as_str())
    );
    let save = dir.path().join("saved");
    let out = pickup(&link2, &["--save-dir", save.to_str().unwrap()]);
    assert!(out.contains("CLI-SECOND-BODY"), "{out}");
    let (third, link3, _) = send("Third", "CLI-THIRD-BODY");
    let new_code = ok(
        &["client", "--dir", a, "relock", &third, "carol@outside.test"],
        &apw,
    );
    std::fs::write(&code_file, new_code.trim()).unwrap();
    let out = pickup(&link3, &[]);
    assert!(out.contains("CLI-THIRD-BODY"), "{out}");
}

/// `sealpost client key import FILE`, `key list` and `key find`, and `sealpost admin key
/// import FILE` against a running node: a user's import is theirs, an administrator's is
/// everyone's, and `key find` says where each key came from.
#[test]
fn key_commands_import_list_and_find_outside_keys() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let d = data.to_str().unwrap();
    let (node, url) = init_and_serve(&data);
    let a = dir.path().join("alice");
    let alice = [
        ("SEALPOST_CLIENT_DIR", a.to_str().unwrap()),
        ("SEALPOST_PASSWORD", "alice long password"),
    ];
    enrol_cli(&data, &url, "alice@a.test", &alice);
    let now = std::time::SystemTime::now() - Duration::from_secs(60);
    let (zoe, _) =
        sealpost_client::crypto::generate_user_key("zoe@outside.test", Some("Zoe"), now).unwrap();
    let zoe_file = dir.path().join("zoe.asc");
    std::fs::write(
        &zoe_file,
        sealpost_client::crypto::cert_to_armored(&zoe).unwrap(),
    )
    .unwrap();
    let out = ok(
        &["client", "key", "import", zoe_file.to_str().unwrap()],
        &alice,
    );
    assert!(out.contains("imported openpgp"), "{out}");
    let list = ok(&["client", "key", "list"], &alice);
    assert!(
        list.contains(&zoe.fingerprint().to_hex()) && list.contains("zoe@outside.test"),
        "{list}"
    );
    let found = ok(&["client", "key", "find", "Zoe@Outside.test"], &alice);
    assert!(
        found.contains("(imported)") && found.contains("imported by you"),
        "{found}"
    );

    let (yan, _) =
        sealpost_client::crypto::generate_user_key("yan@outside.test", None, now).unwrap();
    let yan_file = dir.path().join("yan.asc");
    std::fs::write(
        &yan_file,
        sealpost_client::crypto::cert_to_armored(&yan).unwrap(),
    )
    .unwrap();
    let out = ok(
        &[
            "admin",
            "--data",
            d,
            "key",
            "import",
            yan_file.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.contains("for every user"), "{out}");
    let found = ok(&["client", "key", "find", "yan@outside.test"], &alice);
    assert!(
        found.contains("imported by your organisation's administrator"),
        "{found}"
    );
    // The administrator's import is not in alice's own list.
    assert!(!ok(&["client", "key", "list"], &alice).contains("yan@outside.test"));
    drop(node);
}

/// `admin user add` of `address`, then `client enroll` at `url` with `env` (the client's
/// directory and password).
fn enrol_cli(data: &std::path::Path, url: &str, address: &str, env: &[(&str, &str)]) {
    let invite = add_user(data, address);
    ok(
        &[
            "client",
            "--node",
            url,
            "enroll",
            "--invite",
            &invite,
            "--address",
            address,
        ],
        env,
    );
}

/// Runs `openssl ARGS` in `dir` and fails unless it succeeds.
fn openssl_in(dir: &std::path::Path, args: &[&str]) {
    let o = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `client send` to an outside address with an anchored X.509 certificate: the recipient is
/// reached by S/MIME, and the sender is told the copy goes unsigned.
#[test]
fn client_send_to_an_smime_recipient_says_the_mail_goes_unsigned() {
    let dir = tempfile::tempdir().unwrap();
    let (err, _) = client_send_to_erik(dir.path(), false);
    assert!(
        err.contains("sent unsigned: your organisation has no S/MIME certificate for you"),
        "{err}"
    );
}

/// The same with the CA also the organisation's S/MIME CA (`[smime]`): the client makes its
/// signing key, has it certified, signs, says so, and keeps key (encrypted) and certificate in
/// its state for the next send, which uses them again.
#[test]
fn client_send_signs_smime_copies_when_the_organisation_runs_a_ca_and_keeps_the_identity() {
    let dir = tempfile::tempdir().unwrap();
    let (err, again) = client_send_to_erik(dir.path(), true);
    assert!(
        err.contains("signed with the S/MIME certificate your organisation issues you"),
        "{err}"
    );
    let state = |n: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.path().join(n)).unwrap()).unwrap()
    };
    let first = state("alice/client.json.first");
    let smime = &first["smime"];
    assert!(
        smime["key"]
            .as_str()
            .unwrap()
            .contains("BEGIN ENCRYPTED PRIVATE KEY"),
        "{smime}"
    );
    assert!(
        smime["certificate"]
            .as_str()
            .unwrap()
            .contains("BEGIN CERTIFICATE")
    );
    assert!(again.status.success());
    assert_eq!(
        state("alice/client.json")["smime"],
        *smime,
        "used again, not renewed"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("alice/client.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "readable by its owner only");
}

/// alice (CLI) sends to erik@smime.test on a node with erik's CA as its anchor and, when
/// `smime_ca`, as its `[smime]` CA: what `client send` said, and the output of a second send
/// (the client state after the first kept as `client.json.first`).
fn client_send_to_erik(x: &Path, smime_ca: bool) -> (String, std::process::Output) {
    // A CA (the node's trust anchor) and erik's certificate under it, made with openssl.
    openssl_in(
        x,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=S-MIME test CA",
            // Longer than a certificate's renewal margin (30 days), so that one lasts.
            "-days",
            "400",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ],
    );
    openssl_in(
        x,
        &[
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "erik.key", "-out", "erik.csr",
            "-subj", "/CN=erik",
        ],
    );
    std::fs::write(
        x.join("erik.ext"),
        "subjectAltName=email:erik@smime.test\nkeyUsage=keyEncipherment\n\
         extendedKeyUsage=emailProtection\n",
    )
    .unwrap();
    openssl_in(
        x,
        &[
            "x509",
            "-req",
            "-in",
            "erik.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "erik.ext",
            "-out",
            "erik.pem",
        ],
    );
    let data = x.join("d");
    init(&data, "a.test");
    // Mail goes out through a relay (none listens: the mail stays queued), anchors as made.
    let config = data.join("sealpost.toml");
    let toml = std::fs::read_to_string(&config).unwrap();
    let anchors = x.join("ca.pem");
    let toml = toml
        .replacen(
            "host = \"\"\nport = 587",
            "host = \"127.0.0.1\"\nport = 9",
            1,
        )
        .replacen(
            "x509_anchors = \"\"",
            &format!("x509_anchors = {:?}", anchors.to_str().unwrap()),
            1,
        );
    let toml = if smime_ca {
        format!(
            "{toml}\n[smime]\nca_cert = {:?}\nca_key = {:?}\n",
            anchors.to_str().unwrap(),
            x.join("ca.key").to_str().unwrap()
        )
    } else {
        toml
    };
    std::fs::write(&config, toml).unwrap();
    let (_node, url) = serve(&data);
    let d = data.to_str().unwrap();
    let erik = x.join("erik.pem");
    ok(
        &[
            "admin",
            "--data",
            d,
            "key",
            "import",
            erik.to_str().unwrap(),
        ],
        &[],
    );
    let a = x.join("alice");
    let alice = [
        ("SEALPOST_CLIENT_DIR", a.to_str().unwrap()),
        ("SEALPOST_PASSWORD", "alice long password"),
    ];
    enrol_cli(&data, &url, "alice@a.test", &alice);
    let send = [
        "client",
        "send",
        "--to",
        "erik@smime.test",
        "--subject",
        "Hello",
        "--body",
        "Hi Erik",
    ];
    let o = sealpost(&send, &alice);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");
    assert!(err.contains("erik@smime.test: queued [smime]"), "{err}");
    std::fs::copy(a.join("client.json"), a.join("client.json.first")).unwrap();
    let again = sealpost(&send, &alice);
    (err, again)
}

#[test]
fn evidence_verify_runs_offline_and_names_the_failing_part() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bundle.json");
    let f = file.to_str().unwrap();
    // Not a bundle at all: the bundle is named.
    std::fs::write(&file, "{}").unwrap();
    let o = sealpost(&["evidence", "verify", f], &[]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("evidence does not verify: bundle:"), "{err}");
    // A bundle of another format: the format is named.
    std::fs::write(
        &file,
        r#"{"format":"x","message_id":"m","ca_cert":"","evidence_cert":"","tsa_ca":null,"records":[],"batches":[]}"#,
    )
    .unwrap();
    let o = sealpost(&["evidence", "verify", f], &[]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("evidence does not verify: format:"), "{err}");
}
