//! One table of account-administration cases, run through both doors an administrator has:
//! the admin console's routes (HTTP, as a logged-in admin) and `sealpost admin` (the CLI on the
//! node's machine). Both call the service layer (`service::accounts`), so the outcomes must be
//! identical, case by case, and the transaction log names the real actor.
//!
//! The one rule that cannot be the same is "not your own account": the CLI acts as nobody's
//! account (`cli` in the log), so that case runs through the console only.

use sealpost_client::Session;
use sealpost_tests::{TEST_KDF, TestNode};

#[derive(Clone, Copy, Debug)]
enum Op {
    Invite(&'static str, Option<&'static str>),
    Enable(&'static str),
    Disable(&'static str),
}

/// `(operation, expected outcome: "ok" or the error code)`, run in order on a node where
/// alice@a.test is enrolled and carol@a.test is invited.
const CASES: &[(Op, &str)] = &[
    (Op::Invite("erin@other.test", None), "wrong_domain"),
    (Op::Invite("not an address", None), "invalid_address"),
    (Op::Invite("erin@a.test", Some(LONG_NAME)), "invalid_name"),
    (Op::Invite("erin@a.test", Some("Erin\u{7}")), "invalid_name"),
    (Op::Invite("alice@a.test", None), "already_enrolled"),
    (Op::Invite("ALICE@A.TEST", None), "already_enrolled"),
    (Op::Invite("erin@a.test", Some("Erin")), "ok"),
    (Op::Invite("erin@a.test", None), "ok"),
    (Op::Invite("carol@a.test", None), "ok"),
    (Op::Enable("carol@a.test"), "not_enrolled"),
    (Op::Disable("carol@a.test"), "not_enrolled"),
    (Op::Disable("nobody@a.test"), "unknown_user"),
    (Op::Disable("not an address"), "invalid_address"),
    (Op::Disable("alice@a.test"), "ok"),
    (Op::Disable("alice@a.test"), "ok"),
    (Op::Invite("alice@a.test", None), "already_enrolled"),
    (Op::Enable("alice@a.test"), "ok"),
];

const LONG_NAME: &str = "Erin Exampleeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee";

/// A node with alice enrolled, carol invited and root@a.test an enrolled admin (logged in).
async fn world() -> (TestNode, Session) {
    let node = TestNode::spawn("a.test").await.unwrap();
    node.user("alice@a.test", "alice password", TEST_KDF)
        .await
        .unwrap();
    node.invite("carol@a.test").await.unwrap();
    let root = node
        .enrolled("root@a.test", "root password", TEST_KDF, true)
        .await
        .unwrap();
    (node, root)
}

async fn through_console(node: &TestNode, root: &Session, op: Op) -> String {
    let http = reqwest::Client::new();
    let api = |p: &str| format!("{}/api/v1{p}", node.url);
    let req = match op {
        Op::Invite(address, name) => http
            .post(api("/admin/invites"))
            .json(&serde_json::json!({ "address": address, "name": name })),
        Op::Enable(address) | Op::Disable(address) => {
            let state = if matches!(op, Op::Enable(_)) {
                "active"
            } else {
                "disabled"
            };
            let path: String = form_path(address);
            http.post(api(&format!("/admin/users/{path}/state")))
                .json(&serde_json::json!({ "state": state }))
        }
    };
    let r = req.bearer_auth(root.token()).send().await.unwrap();
    if r.status().is_success() {
        return "ok".into();
    }
    let body: serde_json::Value = r.json().await.unwrap();
    body["code"].as_str().unwrap().to_owned()
}

/// An address as a path segment.
fn form_path(address: &str) -> String {
    address.replace(' ', "%20")
}

async fn through_cli(node: &TestNode, op: Op) -> String {
    let result = match op {
        Op::Invite(address, Some(name)) => {
            node.admin(&["user", "add", address, "--name", name]).await
        }
        Op::Invite(address, None) => node.admin(&["user", "add", address]).await,
        Op::Enable(address) => node.admin(&["user", "enable", address]).await,
        Op::Disable(address) => node.admin(&["user", "disable", address]).await,
    };
    match result {
        Ok(()) => "ok".into(),
        Err(e) => e
            .downcast_ref::<sealpost::service::ServiceError>()
            .unwrap_or_else(|| panic!("{op:?}: not a service error: {e:#}"))
            .code()
            .to_owned(),
    }
}

/// The actors the log names for account events.
fn actors(node: &TestNode) -> Vec<String> {
    let db = node.db();
    let mut stmt = db
        .prepare(
            "SELECT DISTINCT actor FROM txlog WHERE kind IN \
             ('account.authorised', 'account.invite_reissued', 'account.state') ORDER BY actor",
        )
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_and_the_cli_apply_the_same_rules() {
    let (console_node, root) = world().await;
    let (cli_node, _) = world().await;
    for &(op, expected) in CASES {
        let by_console = through_console(&console_node, &root, op).await;
        let by_cli = through_cli(&cli_node, op).await;
        assert_eq!(
            (by_console.as_str(), by_cli.as_str()),
            (expected, expected),
            "{op:?}: (console, cli)"
        );
    }
    // The console only: an administrator cannot disable or enable their own account.
    for op in [Op::Disable("root@a.test"), Op::Enable("root@a.test")] {
        assert_eq!(
            through_console(&console_node, &root, op).await,
            "own_account"
        );
    }
    // The log names who did it: the admin's address, or `cli` (the test kit's own invites
    // are the CLI's too).
    assert_eq!(actors(&console_node), vec!["cli", "root@a.test"]);
    assert_eq!(actors(&cli_node), vec!["cli"]);
}

/// A change made with `sealpost admin` is in force at the running node when the command
/// returns, with no wait: the very next request with a disabled user's session is refused,
/// though the node had just served that session from memory. Twenty rounds, so that a race
/// between the command and the node's caches would show.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cli_change_is_in_force_at_the_running_node_when_the_command_returns() {
    use sealpost_proto::Folder;
    let node = TestNode::spawn_with("a.test", |c| c.http.auth_rate_per_sec = 10_000)
        .await
        .unwrap();
    node.user("alice@a.test", "alice password", TEST_KDF)
        .await
        .unwrap();
    for round in 0..20 {
        let alice = node
            .client()
            .login("alice@a.test", b"alice password", None, None)
            .await
            .unwrap();
        alice.mailbox(Folder::Inbox).await.unwrap();
        alice.mailbox(Folder::Inbox).await.unwrap();
        node.admin(&["user", "disable", "alice@a.test"])
            .await
            .unwrap();
        let e = alice.mailbox(Folder::Inbox).await.unwrap_err();
        assert_eq!(e.code(), Some("unauthenticated"), "round {round}: {e}");
        node.admin(&["user", "enable", "alice@a.test"])
            .await
            .unwrap();
    }
}
