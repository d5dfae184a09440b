//! The database's shape: every table, index and trigger, as the ordered list of migrations
//! (the schema is their sum, and `user_version` counts those applied), and how a connection is
//! opened and the schema brought up to date.
//!
//! All schema lives here and nowhere else: another module may read and write rows, never
//! create or alter a table. It depends on no other module of the store.

use std::path::Path;

use rusqlite::Connection;

use crate::storage::error::{Result, StorageError};

pub(super) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE accounts (
    id INTEGER PRIMARY KEY,
    address TEXT NOT NULL UNIQUE,
    name TEXT,
    is_admin INTEGER NOT NULL,
    state TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    fingerprint TEXT UNIQUE,
    wrapped_key TEXT,
    kdf_salt BLOB,
    kdf_params TEXT,
    login_hash TEXT,
    totp_secret BLOB,
    totp_enabled INTEGER NOT NULL DEFAULT 0,
    -- The last TOTP time step accepted: a code is good once.
    totp_last_step INTEGER NOT NULL DEFAULT 0,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until INTEGER
);
-- Every certificate the node knows, public parts only: its users', its CA's, peers'.
CREATE TABLE certs (
    fingerprint TEXT PRIMARY KEY,
    armored TEXT NOT NULL,
    origin TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    -- The certificate generation at its last change: caches fetch what changed since theirs.
    generation INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX certs_by_generation ON certs(generation);
CREATE TABLE cert_emails (
    email TEXT NOT NULL,
    fingerprint TEXT NOT NULL REFERENCES certs(fingerprint),
    PRIMARY KEY (email, fingerprint)
) WITHOUT ROWID;
-- Key IDs and fingerprints of primary keys and subkeys, for look-ups by key ID.
CREATE TABLE cert_handles (
    handle TEXT NOT NULL,
    fingerprint TEXT NOT NULL REFERENCES certs(fingerprint),
    PRIMARY KEY (handle, fingerprint)
) WITHOUT ROWID;
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
-- Bumped with every certificate change, so caches (in this or another process) know when
-- to rebuild the trust network.
INSERT INTO meta (key, value) VALUES ('cert_generation', 0);
CREATE TABLE invites (
    code_hash BLOB PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    expires_at INTEGER NOT NULL,
    used_at INTEGER
) WITHOUT ROWID;
CREATE TABLE sessions (
    token_hash BLOB PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE issued_ids (
    message_id TEXT PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    issued_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE blobs (
    sha256 BLOB PRIMARY KEY,
    size INTEGER NOT NULL,
    data BLOB
) WITHOUT ROWID;
CREATE TABLE uploads (
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    sha256 BLOB NOT NULL,
    size INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (account_id, sha256)
) WITHOUT ROWID;
CREATE TABLE messages (
    id TEXT PRIMARY KEY,
    sender TEXT NOT NULL,
    recipients TEXT NOT NULL,
    envelope TEXT NOT NULL,
    signature TEXT NOT NULL,
    size INTEGER NOT NULL,
    parts INTEGER NOT NULL,
    accepted_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE parts (
    message_id TEXT NOT NULL REFERENCES messages(id),
    idx INTEGER NOT NULL,
    sha256 BLOB NOT NULL REFERENCES blobs(sha256),
    size INTEGER NOT NULL,
    PRIMARY KEY (message_id, idx)
) WITHOUT ROWID;
CREATE INDEX parts_by_blob ON parts(sha256);
CREATE TABLE mailbox (
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    message_id TEXT NOT NULL REFERENCES messages(id),
    folder TEXT NOT NULL,
    unread INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (account_id, message_id, folder)
) WITHOUT ROWID;
CREATE INDEX mailbox_list ON mailbox(account_id, folder, received_at DESC);
CREATE TABLE txlog (
    seq INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev BLOB NOT NULL,
    hash BLOB NOT NULL
);
CREATE TABLE checkpoints (
    seq INTEGER PRIMARY KEY,
    hash BLOB NOT NULL,
    at INTEGER NOT NULL,
    signature BLOB NOT NULL
);
"#,
    r#"
-- Federation. Peers an admin authorised: one domain each, bound to a peer ID and a CA.
CREATE TABLE peers (
    domain TEXT PRIMARY KEY,
    peer_id TEXT NOT NULL UNIQUE,
    addrs TEXT NOT NULL,
    ca_fingerprint TEXT NOT NULL,
    added_at INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'new',
    last_error TEXT,
    retry_at INTEGER,
    state_at INTEGER,
    pull_cursor INTEGER NOT NULL DEFAULT 0,
    -- Outbox entries for this peer, kept with the outbox (counting them per submission would
    -- cost as much as the backlog is long).
    queued INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
INSERT INTO meta (key, value) VALUES ('peer_generation', 0);
-- One entry per message and destination organisation, until the peer's receipt or expiry.
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL REFERENCES messages(id),
    domain TEXT NOT NULL,
    recipients TEXT NOT NULL,
    queued_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    UNIQUE (message_id, domain)
);
CREATE INDEX outbox_by_domain ON outbox(domain, seq);
CREATE INDEX outbox_by_expiry ON outbox(expires_at);
-- Each remote recipient's state, for the sender.
CREATE TABLE deliveries (
    message_id TEXT NOT NULL REFERENCES messages(id),
    address TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (message_id, address)
) WITHOUT ROWID;
-- Messages received from peers: which peer, and the local recipients they reached. Kept after
-- the message is deleted, so that a replayed transfer is recognised and not delivered again.
CREATE TABLE received (
    message_id TEXT PRIMARY KEY,
    domain TEXT NOT NULL,
    envelope_sha256 BLOB NOT NULL,
    recipients TEXT NOT NULL,
    node_sig TEXT NOT NULL,
    received_at INTEGER NOT NULL
) WITHOUT ROWID;
-- Our certificates each peer has looked up: it is sent their changes (revocations).
CREATE TABLE peer_served (
    domain TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    PRIMARY KEY (domain, fingerprint)
) WITHOUT ROWID;
CREATE TABLE notices (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    message_id TEXT,
    text TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    unread INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX notices_by_account ON notices(account_id, id DESC);
"#,
    r#"
-- Whether any mailbox still holds a message (checked after each remote delivery and each
-- deletion) without scanning every mailbox.
CREATE INDEX mailbox_by_message ON mailbox(message_id);
"#,
    r#"
-- Part files a peer streamed for a transfer, until that transfer commits. A transfer that
-- never commits (the peer went away between its parts and the commit) leaves its file here,
-- collected with expired uploads.
CREATE TABLE peer_parts (
    sha256 BLOB PRIMARY KEY,
    domain TEXT NOT NULL,
    size INTEGER NOT NULL,
    received_at INTEGER NOT NULL
) WITHOUT ROWID;
"#,
    r#"
-- A small part (sent inline with its submission or transfer) is stored in its message's part
-- row, in message order, instead of in blobs under its random hash: one part row then costs
-- one append rather than an insert at a random place in blobs and in parts_by_blob, which
-- under load was most of the writer's page splits and WAL bytes. A part row with no data
-- refers to a blob (a file, or an inline blob stored before this migration).
CREATE TABLE parts_v5 (
    message_id TEXT NOT NULL REFERENCES messages(id),
    idx INTEGER NOT NULL,
    sha256 BLOB NOT NULL,
    size INTEGER NOT NULL,
    data BLOB,
    PRIMARY KEY (message_id, idx)
) WITHOUT ROWID;
INSERT INTO parts_v5 (message_id, idx, sha256, size) SELECT message_id, idx, sha256, size FROM parts;
DROP TABLE parts;
ALTER TABLE parts_v5 RENAME TO parts;
CREATE INDEX parts_by_blob ON parts(sha256) WHERE data IS NULL;
"#,
    r#"
-- Bumped in the same transaction as any change to what authenticates a request or resolves
-- a local address (accounts, sessions, local users' certificates), by whichever process
-- makes it: a node's in-memory copy of these is good only while the counter stands still.
INSERT INTO meta (key, value) VALUES ('auth_generation', 0);
CREATE TRIGGER accounts_insert_auth AFTER INSERT ON accounts
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'auth_generation'; END;
CREATE TRIGGER accounts_update_auth AFTER UPDATE ON accounts
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'auth_generation'; END;
CREATE TRIGGER accounts_delete_auth AFTER DELETE ON accounts
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'auth_generation'; END;
CREATE TRIGGER sessions_insert_auth AFTER INSERT ON sessions
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'auth_generation'; END;
CREATE TRIGGER sessions_update_auth AFTER UPDATE ON sessions
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'auth_generation'; END;
CREATE TRIGGER sessions_delete_auth AFTER DELETE ON sessions
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'auth_generation'; END;
CREATE TRIGGER certs_insert_auth AFTER INSERT ON certs
    WHEN NEW.fingerprint IN (SELECT fingerprint FROM accounts)
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'auth_generation'; END;
CREATE TRIGGER certs_update_auth AFTER UPDATE ON certs
    WHEN NEW.fingerprint IN (SELECT fingerprint FROM accounts)
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'auth_generation'; END;
CREATE TRIGGER certs_delete_auth AFTER DELETE ON certs
    WHEN OLD.fingerprint IN (SELECT fingerprint FROM accounts)
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'auth_generation'; END;
"#,
    r#"
-- The node also keeps peer records and certificates in memory (`read_cache`): every change
-- to a certificate, and every change to a peer but its outbox count, bumps the counter too.
DROP TRIGGER certs_insert_auth;
DROP TRIGGER certs_update_auth;
DROP TRIGGER certs_delete_auth;
CREATE TRIGGER certs_insert_auth AFTER INSERT ON certs
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'auth_generation'; END;
CREATE TRIGGER certs_update_auth AFTER UPDATE ON certs
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'auth_generation'; END;
CREATE TRIGGER certs_delete_auth AFTER DELETE ON certs
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'auth_generation'; END;
CREATE TRIGGER peers_insert_auth AFTER INSERT ON peers
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'auth_generation'; END;
CREATE TRIGGER peers_update_auth AFTER UPDATE OF domain, peer_id, addrs, ca_fingerprint,
        added_at, state, last_error, retry_at, state_at, pull_cursor ON peers
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'auth_generation'; END;
CREATE TRIGGER peers_delete_auth AFTER DELETE ON peers
    BEGIN UPDATE meta SET value = value + 1 WHERE key = 'auth_generation'; END;
"#,
    r#"
-- Notification mail to outside recipients, sent through the organisation's relay (notify/).
-- Queued until the relay answers 250 to its data (sent) or the node gives up (failed); the
-- rendered mail is kept only while queued. mail_id is its Message-ID header: a copy the relay
-- got twice (a crash between its 250 and our commit) carries the same one.
CREATE TABLE notifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT,
    sender TEXT NOT NULL,
    recipient TEXT NOT NULL,
    mail_from TEXT NOT NULL,
    mail_id TEXT NOT NULL,
    mail BLOB,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error TEXT,
    relay_answer TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX notifications_due ON notifications(next_attempt_at, id) WHERE state = 'queued';
CREATE INDEX notifications_by_message ON notifications(message_id) WHERE message_id IS NOT NULL;
"#,
    r#"
-- Pickups (docs/pickup.md): one per outside recipient of a message. Only hashes of the link's
-- token and of the unlock code's verifier; the pickup key locked under the unlock code. state:
-- open, locked (too many wrong codes), expired, withdrawn. Expiry and withdrawal shred: the
-- locked key, key_for_sender, salt, kdf and verifier hash become NULL, the sessions go.
CREATE TABLE pickups (
    id INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL REFERENCES messages(id),
    address TEXT NOT NULL,
    sender TEXT NOT NULL,
    token_hash BLOB NOT NULL UNIQUE,
    fingerprint TEXT NOT NULL,
    cert TEXT NOT NULL,
    locked_key TEXT,
    key_for_sender TEXT,
    salt TEXT,
    kdf TEXT,
    verifier_hash TEXT,
    state TEXT NOT NULL,
    failures INTEGER NOT NULL DEFAULT 0,
    opened_at INTEGER,
    read_at INTEGER,
    expires_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (message_id, address)
);
CREATE INDEX pickups_live ON pickups(expires_at) WHERE state IN ('open', 'locked');
CREATE TABLE pickup_sessions (
    token_hash BLOB PRIMARY KEY,
    pickup_id INTEGER NOT NULL REFERENCES pickups(id),
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX pickup_sessions_by_pickup ON pickup_sessions(pickup_id);
"#,
    r#"
-- Pickup threads and replies (docs/pickup.md, Replies and Threads). thread: the first pickup
-- of the thread's id; a later message of the same sender to the same address continues it
-- with a copy of the locked key and verifier hash (one unlock code for the whole thread).
-- replies: how many replies were made through this pickup. No foreign keys to pickups from
-- elsewhere: a pickup row goes with its message, its replies stay in the sender's inbox.
ALTER TABLE pickups ADD COLUMN thread INTEGER;
ALTER TABLE pickups ADD COLUMN replies INTEGER NOT NULL DEFAULT 0;
UPDATE pickups SET thread = id;
CREATE INDEX pickups_thread ON pickups(sender, address, thread);
-- A reply's message: the pickup that authenticated it (by possession of the unlock code) and
-- its thread.
ALTER TABLE messages ADD COLUMN via_pickup INTEGER;
ALTER TABLE messages ADD COLUMN pickup_thread INTEGER;
-- A reply's sender key (the pickup key's public certificate), kept with the message: the
-- pickup row may go before the reply does.
ALTER TABLE messages ADD COLUMN sender_cert TEXT;
CREATE INDEX messages_by_pickup_thread ON messages(pickup_thread) WHERE pickup_thread IS NOT NULL;
-- Message IDs issued to a pickup session for a reply, and its uploads (counted per pickup
-- against limits.max_pending_upload_bytes, as a user's).
CREATE TABLE pickup_issued_ids (
    message_id TEXT PRIMARY KEY,
    pickup_id INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE pickup_uploads (
    pickup_id INTEGER NOT NULL,
    sha256 BLOB NOT NULL,
    size INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (pickup_id, sha256)
) WITHOUT ROWID;
"#,
    r#"
-- Guests (docs/pickup.md, "Guests"): an outside address that upgraded from a pickup to a key
-- of its own. kind: 'user' (an address of our domain, enrolled by invite) or 'guest' (an
-- outside address, enrolled from an unlocked pickup; its key carries no CA certification).
ALTER TABLE accounts ADD COLUMN kind TEXT NOT NULL DEFAULT 'user';
"#,
    r#"
-- Outside keys (docs/mail.md): OpenPGP and X.509 certificates of outside addresses imported
-- by a user (owner: their account) or by an administrator (owner NULL: for every user).
-- fingerprint: the OpenPGP fingerprint or the X.509 certificate's SHA-256 (hex, lower case).
CREATE TABLE outside_keys (
    id INTEGER PRIMARY KEY,
    owner INTEGER REFERENCES accounts(id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('openpgp', 'x509')),
    fingerprint TEXT NOT NULL,
    material TEXT NOT NULL,
    imported_at INTEGER NOT NULL
);
-- One row per owner and key (NULL owners compare equal through IFNULL).
CREATE UNIQUE INDEX outside_keys_owner_fpr ON outside_keys (IFNULL(owner, 0), fingerprint);
-- The addresses each key carries, normalised, for look-ups by address.
CREATE TABLE outside_key_addresses (
    key_id INTEGER NOT NULL REFERENCES outside_keys(id) ON DELETE CASCADE,
    address TEXT NOT NULL,
    PRIMARY KEY (address, key_id)
) WITHOUT ROWID;
CREATE INDEX outside_key_addresses_key ON outside_key_addresses (key_id);
"#,
    r#"
-- Delivery modes (docs/mail.md). The outbound queue holds every mail the node sends: kind
-- 'notify' (a notification mail), 'openpgp', 'smime' or 'tls' (an external copy's mail).
ALTER TABLE notifications ADD COLUMN kind TEXT NOT NULL DEFAULT 'notify';
-- How each recipient in deliveries is reached ('remote', 'pickup', 'openpgp', ...); NULL for
-- rows recorded before modes were.
ALTER TABLE deliveries ADD COLUMN mode TEXT;
-- The external copy made by the sender for each outside recipient reached by mail, as the
-- signed envelope names it (mode, SHA-256, size): kept with the message, deleted with it.
CREATE TABLE external_copies (
    message_id TEXT NOT NULL REFERENCES messages(id),
    address TEXT NOT NULL,
    mode TEXT NOT NULL,
    sha256 BLOB NOT NULL,
    copy BLOB NOT NULL,
    PRIMARY KEY (message_id, address)
) WITHOUT ROWID;
"#,
    r#"
-- Mail that came in over SMTP (docs/mail.md "SMTP in"): how it arrived (JSON: encrypted,
-- tls, spf, dkim, dmarc, mail_from) and the message of ours it answers. Such a message has
-- no signed envelope (empty envelope and signature) and one part, an OpenPGP message to its
-- one recipient.
ALTER TABLE messages ADD COLUMN arrival TEXT;
ALTER TABLE messages ADD COLUMN in_reply_to TEXT;
"#,
    r#"
-- The outbound queue's transport (docs/mail.md, "SMTP out"). tls_policy: NULL (opportunistic
-- STARTTLS) or how the recipient's mail server must authenticate ('mta-sts', 'dane',
-- 'pinned'); never sent in plain then. kind 'tls': `mail` is an OpenPGP message to the node's
-- transit key (an enforced-TLS copy), decrypted only in memory at send time, and
-- outer_headers the outer header block the node wrote (From, To, Date, Message-ID), to which
-- the entity's Subject and content headers are added then. It goes with `mail` once sent or
-- failed (secure_delete overwrites them).
ALTER TABLE notifications ADD COLUMN tls_policy TEXT;
ALTER TABLE notifications ADD COLUMN outer_headers BLOB;
"#,
    r#"
-- App passwords for the submission gateway (docs/mail.md, "Submission gateway"): one per
-- device, made by the node, kept only as a verifier (a MAC of the secret under a node key;
-- the secret is random, so no slow hash is needed). A revoked row stays (revoked_at set) so
-- its verifier is never reused; last_used_at is updated at most once a minute.
CREATE TABLE app_passwords (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    label TEXT NOT NULL,
    verifier BLOB NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at INTEGER
);
CREATE INDEX app_passwords_account ON app_passwords (account_id) WHERE revoked_at IS NULL;
"#,
    // S/MIME certificates issued by the organisation's CA (service/smime.rs): a record of each,
    // no key material.
    r#"
CREATE TABLE smime_certificates (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    serial TEXT NOT NULL UNIQUE,
    spki_sha256 TEXT NOT NULL,
    not_after INTEGER NOT NULL,
    issued_at INTEGER NOT NULL
);
CREATE INDEX smime_certificates_account ON smime_certificates (account_id, issued_at);
"#,
    // The web app's S/MIME signing key, kept as the user's OpenPGP key is (docs/mail.md, "The
    // S/MIME copy"): wrapped in the browser under the password-derived key, opaque here, with
    // the certificate issued for it, so the user signs from any browser. NULL for the CLI's.
    r#"
ALTER TABLE smime_certificates ADD COLUMN certificate TEXT;
ALTER TABLE smime_certificates ADD COLUMN wrapped_key TEXT;
"#,
    // RFC 3161 time-stamps over checkpoints (timestamp.rs): the TSA's token (DER ContentInfo),
    // checked before it is stored, and its genTime.
    r#"
CREATE TABLE checkpoint_timestamps (
    seq INTEGER PRIMARY KEY REFERENCES checkpoints(seq),
    token BLOB NOT NULL,
    gen_time INTEGER NOT NULL
);
"#,
    // Evidence records (evidence.rs, docs/evidence.md): each signed by the node's evidence key;
    // `batch`, `leaf` and `proof` (RFC 6962 inclusion proof) once sealed into a batch, whose
    // head is signed and time-stamped (RFC 3161 token). A registered message's recipient's
    // signed receipt or refusal, one per (message, recipient).
    r#"
CREATE TABLE evidence_batches (
    batch INTEGER PRIMARY KEY,
    head BLOB NOT NULL,
    signature TEXT NOT NULL,
    token BLOB NOT NULL,
    gen_time INTEGER NOT NULL
);
CREATE TABLE evidence_records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL,
    recipient TEXT,
    event TEXT NOT NULL,
    at INTEGER NOT NULL,
    record BLOB NOT NULL,
    signature TEXT NOT NULL,
    batch INTEGER REFERENCES evidence_batches(batch),
    leaf INTEGER,
    proof BLOB
);
CREATE INDEX evidence_records_message ON evidence_records(message_id);
CREATE INDEX evidence_records_unsealed ON evidence_records(id) WHERE batch IS NULL;
CREATE TABLE registered_receipts (
    message_id TEXT NOT NULL,
    recipient TEXT NOT NULL,
    decision TEXT NOT NULL,
    statement TEXT NOT NULL,
    signature TEXT NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (message_id, recipient)
);
"#,
    // The organisation's compliance key (service/compliance.rs, docs/compliance.md): the
    // public certificate with the CA's marking certification; one active (retired_at NULL).
    r#"
CREATE TABLE compliance_keys (
    id INTEGER PRIMARY KEY,
    fingerprint TEXT NOT NULL UNIQUE,
    cert TEXT NOT NULL,
    installed_at INTEGER NOT NULL,
    retired_at INTEGER
);
"#,
    r#"
-- The compliance key's custody under dual control (docs/compliance.md, "Dual control").
-- Officers: accounts an admin made compliance officers.
CREATE TABLE compliance_officers (
    account_id INTEGER PRIMARY KEY REFERENCES accounts(id),
    added_at INTEGER NOT NULL,
    added_by TEXT NOT NULL
);
-- The key under custody: its public certificate and its TSK locked under a secret the node
-- never sees (one live row; earlier ones are retired when the key is split anew).
CREATE TABLE compliance_custody (
    id INTEGER PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    cert TEXT NOT NULL,
    locked_key TEXT NOT NULL,
    threshold INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    retired_at INTEGER
);
-- Each officer's share of the lock's secret, encrypted to the officer's key.
CREATE TABLE compliance_custody_shares (
    custody_id INTEGER NOT NULL REFERENCES compliance_custody(id),
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    wrapped_share TEXT NOT NULL,
    PRIMARY KEY (custody_id, account_id)
) WITHOUT ROWID;
-- Access cases: a request by one officer, approvals by others, the release.
CREATE TABLE compliance_cases (
    id INTEGER PRIMARY KEY,
    custody_id INTEGER NOT NULL REFERENCES compliance_custody(id),
    requester_id INTEGER NOT NULL REFERENCES accounts(id),
    case_ref TEXT NOT NULL,
    message_ids TEXT NOT NULL,
    request_key TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    decided_at INTEGER,
    refused_by TEXT
);
CREATE INDEX compliance_cases_by_state ON compliance_cases(state, id);
-- An approval: the officer's share encrypted to the case's request key.
CREATE TABLE compliance_approvals (
    case_id INTEGER NOT NULL REFERENCES compliance_cases(id),
    officer_id INTEGER NOT NULL REFERENCES accounts(id),
    share TEXT NOT NULL,
    approved_at INTEGER NOT NULL,
    PRIMARY KEY (case_id, officer_id)
) WITHOUT ROWID;
"#,
    // Retention of compliance copies and legal holds (docs/compliance.md, "Retention and legal
    // holds"): `retain_until` is set when a user deletes a compliance copy (accepted_at + the
    // retention; NULL for every other message), and a message with it stays, with no mailbox
    // entry, until the expiry sweep deletes it; a hold on a case stops that for its messages.
    r#"
ALTER TABLE messages ADD COLUMN retain_until INTEGER;
CREATE INDEX messages_retained ON messages(retain_until) WHERE retain_until IS NOT NULL;
CREATE TABLE compliance_holds (
    case_id INTEGER PRIMARY KEY REFERENCES compliance_cases(id),
    reason TEXT NOT NULL,
    placed_by TEXT NOT NULL,
    placed_at INTEGER NOT NULL,
    -- Whether a user's view of an opening under this case was withheld and logged
    -- (`compliance.notice_delayed`, once per case and hold).
    notice_delayed INTEGER NOT NULL DEFAULT 0
);
"#,
    // Incoming OpenPGP mail encrypted to its user only (docs/compliance.md, "Waiting copies"):
    // `compliance_pending` is set when such a copy is stored while a compliance key is
    // installed, and cleared when the user's client adds the compliance key's session-key
    // packet, which is kept beside the message as it came (its logged hash stays true); an
    // officer's read gets the packets in front of part 0.
    r#"
ALTER TABLE messages ADD COLUMN compliance_pending INTEGER NOT NULL DEFAULT 0;
CREATE INDEX messages_compliance_pending ON messages(accepted_at) WHERE compliance_pending = 1;
CREATE TABLE compliance_packets (
    message_id TEXT NOT NULL REFERENCES messages(id),
    -- The compliance key (upper-case hex primary fingerprint) the packet is for.
    fingerprint TEXT NOT NULL,
    -- One PKESK (v3) packet, binary.
    packet BLOB NOT NULL,
    added_by TEXT NOT NULL,
    added_at INTEGER NOT NULL,
    PRIMARY KEY (message_id, fingerprint)
);
"#,
];

pub(super) fn open_connection(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    // WAL: readers never block the writer. FULL: a commit is on disk before it returns, so
    // nothing acknowledged is lost to a power cut.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // What is deleted or replaced is overwritten with zeros, in its page and in freed pages:
    // a shredded pickup key (or a deleted message's envelope) must not stay readable in the
    // file's free space, including older copies of a row left there by earlier updates. The
    // WAL's older page versions go with `SqliteStore::truncate_wal` after a shred.
    conn.pragma_update(None, "secure_delete", "ON")?;
    // 8 MiB of page cache (the default is 2 MiB), and a WAL checkpoint every 16,384 pages
    // (64 MiB) rather than every 1,000: hot pages (indexes, the log's last leaf) are copied
    // back into the database once per checkpoint, so rarer checkpoints write less. Durability
    // is unchanged: every commit is still fsynced to the WAL. Not more cache: a B-tree page
    // split renumbers pages through a temporary page number past 1 GiB, after which SQLite's
    // commit walks every cached page (pcache1TruncateUnsafe, seen with perf probes); with
    // the former 64 MiB the walk grew with the cache (about 0.4 ms per commit with 14 MiB
    // cached, 3 % of the node's CPU under load, and more as it filled). New rows go
    // to the end of their tables (message IDs start with the time), so the writer's working
    // set is small.
    conn.pragma_update(None, "cache_size", -8192)?;
    conn.pragma_update(None, "wal_autocheckpoint", 16384)?;
    // When a write batch is run again after one of its operations failed, each operation
    // runs in its own savepoint, so each page it touches is first copied to the statement
    // journal. Held in memory, that journal costs a memcpy; left to its default it spills to
    // a temporary file past 64 KiB (pwrite calls).
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(conn)
}

pub(super) fn migrate(conn: &mut Connection) -> Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version as usize > MIGRATIONS.len() {
        return Err(StorageError::Corrupt(format!(
            "database schema {version} is newer than this sealpost ({})",
            MIGRATIONS.len()
        )));
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    // Re-read inside the write lock: another process may have migrated meanwhile.
    let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
    }
    tx.commit()?;
    Ok(())
}
