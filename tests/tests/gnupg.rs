//! GnuPG interoperability against a real node on loopback: `gpg --recv-keys` over HKP imports
//! a user's certificate with the organisation CA's certification, `--search-keys` finds it, and
//! `--fetch-keys` of the WKD URL imports it. Skipped (with a printed line) only without gpg.

use sealpost_directory::wkd_hash;
use sealpost_tests::TestNode;
use sealpost_tests::gpg::{Gpg, gpg_path, uid_has_sig_by};

fn out(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpg_fetches_user_certificates_from_the_node_over_hkp_and_wkd() {
    if gpg_path().is_none() {
        println!("SKIPPED: gpg is not installed");
        return;
    }
    // The WKD vector from the specification.
    assert_eq!(wkd_hash("Joe.Doe"), "iy9q119eutrkn8s1mk4r39qejnbu3n5q");

    let node = TestNode::spawn("a.test").await.unwrap();
    let alice = node.person("alice").await;
    let fpr = alice.fingerprint();
    let ca_keyid = alice.ca().keyid().to_hex();
    let keyserver = format!("hkp://{}", node.url.trim_start_matches("http://"));
    let url = node.url.clone();

    // The directory finds a key by its exact address, but lists nobody by domain.
    let index = |search: &str| {
        reqwest::Client::new()
            .get(format!(
                "{}/pks/lookup?op=index&options=mr&search={search}",
                node.url
            ))
            .send()
    };
    assert_eq!(index("alice@a.test").await.unwrap().status().as_u16(), 200);
    assert_eq!(index("a.test").await.unwrap().status().as_u16(), 404);
    assert_eq!(index("alice").await.unwrap().status().as_u16(), 404);
    // A hash-only WKD request still finds the key.
    let wkd = format!(
        "{}/.well-known/openpgpkey/hu/{}",
        node.url,
        wkd_hash("alice")
    );
    assert_eq!(reqwest::get(&wkd).await.unwrap().status().as_u16(), 200);

    tokio::task::spawn_blocking(move || {
        // HKP: receive by fingerprint, with the CA's certification. GnuPG 2.2 imports only
        // self-signatures from keyservers unless told otherwise.
        let gpg = Gpg::new();
        let o = gpg.gpg(
            &[
                "--keyserver",
                &keyserver,
                "--keyserver-options",
                "no-self-sigs-only",
                "--recv-keys",
                &fpr,
            ],
            "",
        );
        assert!(o.status.success(), "gpg --recv-keys failed");
        let sigs = out(&gpg.gpg(&["--with-colons", "--list-sigs", &fpr], ""));
        assert!(sigs.contains(&fpr), "imported: {sigs}");
        assert!(
            uid_has_sig_by(&sigs, "alice@a.test", &ca_keyid),
            "CA certification imported: {sigs}"
        );

        // HKP: search by address.
        let gpg = Gpg::new();
        let o = gpg.gpg(
            &[
                "--with-colons",
                "--keyserver",
                &keyserver,
                "--search-keys",
                "alice@a.test",
            ],
            "",
        );
        let listing = out(&o);
        assert!(
            listing.contains(&fpr) && listing.contains("alice@a.test"),
            "search found: {listing}"
        );

        // WKD: the direct-method URL, fetched by gpg.
        let gpg = Gpg::new();
        let wkd = format!(
            "{url}/.well-known/openpgpkey/hu/{}?l=alice",
            wkd_hash("alice")
        );
        let o = gpg.gpg(&["--fetch-keys", &wkd], "");
        assert!(o.status.success(), "gpg --fetch-keys failed");
        let keys = out(&gpg.gpg(&["--with-colons", "--list-keys", &fpr], ""));
        assert!(keys.contains(&fpr), "WKD import: {keys}");
    })
    .await
    .unwrap();
}
