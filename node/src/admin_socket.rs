//! The local admin socket: how `sealpost admin` makes a running node see what it committed
//! before the command returns.
//!
//! The admin CLI changes the node's database itself, through the service layer as `Actor::Cli`
//! (another process, sharing the database through SQLite's WAL). A running node keeps
//! accounts, sessions, certificates and peers in memory (`storage::sqlite::read_cache`), which
//! would notice another process's commit only at its writer's next batch or idle poll. So after
//! its commit the CLI asks the node, over this socket, to catch up: the node reads the
//! committed generation counter and publishes it to its caches
//! ([`SqliteStore::catch_up`]) before it answers. Once the answer is in, every look-up the
//! node starts reads the database again: a disabled account, a revoked certification or a
//! removed peer is refused by the very next request.
//!
//! No node running (no socket, or a stale one that refuses connections) means nothing to tell.
//! A node that starts during a command binds its socket *before* it catches up with the
//! database and serves only after that, and the CLI tries the socket only *after* its commit:
//! either the CLI reaches the node, or the node's catch-up reads the commit.
//!
//! Access is the file system's, as for postfix's local administration: the socket is
//! [`Paths::admin_socket`], mode 0600 in a directory of mode 0700. The one request changes
//! nothing (the node re-reads a counter): the socket grants no authority of its own; changing
//! the database takes write access to its file. It is an input all the same: one request per
//! connection, frames of at most [`MAX_FRAME`] bytes, [`READ_TIMEOUT`] to send one,
//! [`MAX_CONNECTIONS`] at a time, garbage answered with a typed refusal.
//!
//! The protocol: a frame is a 4-byte big-endian length and that many bytes of JSON. The request
//! is `{"op":"sync"}`; the answer `{"status":"synced","generation":N}`, or
//! `{"status":"refused","code":"…","message":"…"}` with the code of an [`AdminSocketError`].

use std::convert::Infallible;
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

use crate::config::Paths;
use crate::storage::{SqliteStore, StorageError};

/// The largest frame either side reads: a request or an answer is a few dozen bytes.
pub const MAX_FRAME: usize = 4096;

/// How long the node waits for a whole request, and for its answer to be taken.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the CLI waits for the node's answer.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);

/// Connections served at once; more wait in the listener's backlog.
pub const MAX_CONNECTIONS: usize = 8;

/// The longest socket path Linux binds (`sun_path` holds 108 bytes with the final NUL).
const MAX_PATH_BYTES: usize = 107;

/// What a client asks of the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Request {
    /// Publish to the node's caches what any process has committed, then answer.
    Sync,
}

/// The node's answer.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Answer {
    /// The caches now follow the database up to this `auth_generation`.
    Synced {
        generation: u64,
    },
    Refused {
        code: String,
        message: String,
    },
}

/// Why a request to the admin socket, or binding it, failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminSocketError {
    #[error("a frame of {0} bytes; at most {MAX_FRAME} are read")]
    TooLarge(u64),
    #[error("not a request: {0}")]
    BadRequest(String),
    #[error("unknown command {0:?}")]
    UnknownCommand(String),
    #[error("no whole message within {0:?}")]
    Timeout(Duration),
    #[error("the node refused: {message} ({code})")]
    Refused { code: String, message: String },
    #[error("the node's answer is not one: {0}")]
    BadAnswer(String),
    #[error("another node serves {0} (its admin socket answers); stop it first")]
    InUse(PathBuf),
    #[error("{0} is in the way of the admin socket (not a socket, or not its directory)")]
    NotASocket(PathBuf),
    #[error(
        "the admin socket's path {0} is longer than the {MAX_PATH_BYTES} bytes a Unix socket's \
         may have; move the data directory to a shorter path"
    )]
    PathTooLong(PathBuf),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("the node's storage failed: {0}")]
    Storage(#[from] StorageError),
}

impl AdminSocketError {
    /// A stable, machine-readable code, as the socket's refusals carry it.
    pub fn code(&self) -> &'static str {
        match self {
            AdminSocketError::TooLarge(_) => "too_large",
            AdminSocketError::BadRequest(_) => "bad_request",
            AdminSocketError::UnknownCommand(_) => "unknown_command",
            AdminSocketError::Timeout(_) => "timeout",
            AdminSocketError::Refused { .. } => "refused",
            AdminSocketError::BadAnswer(_) => "bad_answer",
            AdminSocketError::InUse(_) => "in_use",
            AdminSocketError::NotASocket(_) => "not_a_socket",
            AdminSocketError::PathTooLong(_) => "path_too_long",
            AdminSocketError::Io(_) => "io",
            AdminSocketError::Storage(_) => "storage",
        }
    }
}

impl Request {
    fn op(self) -> &'static str {
        match self {
            Request::Sync => "sync",
        }
    }

    /// The request's frame body.
    pub fn to_json(self) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({ "op": self.op() })).expect("a JSON object")
    }

    /// Reads a request's frame body: a JSON object with one member, `op`.
    pub fn parse(body: &[u8]) -> Result<Request, AdminSocketError> {
        let value: serde_json::Value = serde_json::from_slice(body)
            .map_err(|e| AdminSocketError::BadRequest(format!("not JSON: {e}")))?;
        let op = match value.as_object() {
            Some(o) if o.len() == 1 => o.get("op").and_then(|op| op.as_str()),
            _ => None,
        }
        .ok_or_else(|| {
            AdminSocketError::BadRequest("a request is a JSON object with only an \"op\"".into())
        })?;
        match op {
            "sync" => Ok(Request::Sync),
            other => Err(AdminSocketError::UnknownCommand(
                other.chars().take(64).collect(),
            )),
        }
    }
}

/// The admin socket's path for the data directory at `paths`, if a socket can have it.
fn socket_path(paths: &Paths) -> Result<PathBuf, AdminSocketError> {
    let path = paths.admin_socket();
    if path.as_os_str().len() > MAX_PATH_BYTES {
        return Err(AdminSocketError::PathTooLong(path));
    }
    Ok(path)
}

/// Reads one frame of at most [`MAX_FRAME`] bytes (a longer one is refused unread).
async fn read_frame(r: &mut (impl AsyncRead + Unpin)) -> Result<Vec<u8>, AdminSocketError> {
    let mut len = [0; 4];
    r.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len);
    if len as usize > MAX_FRAME {
        return Err(AdminSocketError::TooLarge(len.into()));
    }
    let mut body = vec![0; len as usize];
    r.read_exact(&mut body).await?;
    Ok(body)
}

async fn write_frame(w: &mut (impl AsyncWrite + Unpin), body: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(body.len()).expect("frames are small");
    w.write_all(&len.to_be_bytes()).await?;
    w.write_all(body).await?;
    w.flush().await
}

/// Asks the node serving the data directory at `paths`, if one runs, to catch up with what
/// this process committed, and waits for its answer: `Some(generation)` once the node's caches
/// follow the database, `None` if no node runs (no socket, or a stale one).
pub async fn sync(paths: &Paths) -> Result<Option<u64>, AdminSocketError> {
    // A node cannot bind a path this long either: none runs.
    let Ok(path) = socket_path(paths) else {
        return Ok(None);
    };
    let ask = async {
        let mut stream = match UnixStream::connect(&path).await {
            Ok(s) => s,
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused) => {
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        write_frame(&mut stream, &Request::Sync.to_json()).await?;
        let body = read_frame(&mut stream).await?;
        match serde_json::from_slice(&body) {
            Ok(Answer::Synced { generation }) => Ok(Some(generation)),
            Ok(Answer::Refused { code, message }) => {
                Err(AdminSocketError::Refused { code, message })
            }
            Err(e) => Err(AdminSocketError::BadAnswer(e.to_string())),
        }
    };
    tokio::time::timeout(ANSWER_TIMEOUT, ask)
        .await
        .unwrap_or(Err(AdminSocketError::Timeout(ANSWER_TIMEOUT)))
}

/// The node's bound admin socket. Dropping it closes it and removes its file.
pub struct AdminSocket {
    listener: UnixListener,
    path: PathBuf,
    /// The socket file's device and inode: what is removed on drop is this socket only.
    file: (u64, u64),
}

/// Binds the admin socket of the data directory at `paths` (creating its directory, mode
/// 0700; the socket mode 0600). A stale socket file (a node that did not stop cleanly) is
/// replaced; a socket that answers means another node serves this data directory, and is
/// refused.
pub async fn bind(paths: &Paths) -> Result<AdminSocket, AdminSocketError> {
    let path = socket_path(paths)?;
    let dir = path.parent().expect("the socket is in a directory");
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() != ErrorKind::AlreadyExists => return Err(e.into()),
        _ => {}
    }
    if !std::fs::symlink_metadata(dir)?.is_dir() {
        return Err(AdminSocketError::NotASocket(dir.to_owned()));
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.file_type().is_socket() => {
            let probe = tokio::time::timeout(READ_TIMEOUT, UnixStream::connect(&path)).await;
            match probe {
                Ok(Err(e)) if e.kind() == ErrorKind::ConnectionRefused => {
                    std::fs::remove_file(&path)?;
                }
                Ok(Err(e)) => return Err(e.into()),
                // Connected, or accepted into a full backlog: a live node.
                Ok(Ok(_)) | Err(_) => return Err(AdminSocketError::InUse(paths.root().into())),
            }
        }
        Ok(_) => return Err(AdminSocketError::NotASocket(path)),
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    let meta = std::fs::symlink_metadata(&path)?;
    Ok(AdminSocket {
        listener,
        path,
        file: (meta.dev(), meta.ino()),
    })
}

impl AdminSocket {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Answers requests, each against `store`, until dropped.
    pub async fn serve(self, store: Arc<SqliteStore>) -> Infallible {
        let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        loop {
            let permit = permits
                .clone()
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            match self.listener.accept().await {
                Ok((stream, _)) => {
                    let store = store.clone();
                    tokio::spawn(async move {
                        serve_one(stream, &store).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    // Out of file descriptors, most likely: give others time to close some.
                    tracing::warn!(error = %e, "admin socket: accepting failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

impl Drop for AdminSocket {
    fn drop(&mut self) {
        if let Ok(m) = std::fs::symlink_metadata(&self.path)
            && (m.dev(), m.ino()) == self.file
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// One connection: one request, one answer.
async fn serve_one(mut stream: UnixStream, store: &SqliteStore) {
    let request = match tokio::time::timeout(READ_TIMEOUT, read_frame(&mut stream)).await {
        Err(_) => Err(AdminSocketError::Timeout(READ_TIMEOUT)),
        Ok(Err(AdminSocketError::Io(e))) => {
            tracing::debug!(error = %e, "admin socket: the connection ended within a request");
            return;
        }
        Ok(frame) => frame.and_then(|body| Request::parse(&body)),
    };
    let answer = match request {
        Ok(Request::Sync) => store
            .catch_up()
            .await
            .map(|generation| Answer::Synced { generation })
            .map_err(AdminSocketError::from),
        Err(e) => Err(e),
    }
    .unwrap_or_else(|e| {
        tracing::warn!(code = e.code(), error = %e, "admin socket: request refused");
        Answer::Refused {
            code: e.code().into(),
            message: e.to_string(),
        }
    });
    let body = serde_json::to_vec(&answer).expect("answers serialise");
    match tokio::time::timeout(READ_TIMEOUT, write_frame(&mut stream, &body)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(error = %e, "admin socket: the answer was not taken"),
        Err(_) => tracing::debug!("admin socket: the answer was not taken in time"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_read_strictly() {
        assert_eq!(
            Request::parse(&Request::Sync.to_json()).unwrap(),
            Request::Sync
        );
        assert_eq!(
            Request::parse(br#" {"op": "sync"} "#).unwrap(),
            Request::Sync
        );
        for (body, code) in [
            (&b""[..], "bad_request"),
            (b"\xff\x00garbage", "bad_request"),
            (b"sync", "bad_request"),
            (b"[\"sync\"]", "bad_request"),
            (b"{}", "bad_request"),
            (br#"{"op": 1}"#, "bad_request"),
            (br#"{"op": "sync", "and": "more"}"#, "bad_request"),
            (br#"{"op": "disable"}"#, "unknown_command"),
            (br#"{"op": "SYNC"}"#, "unknown_command"),
        ] {
            let e = Request::parse(body).unwrap_err();
            assert_eq!(e.code(), code, "{body:?}: {e}");
        }
        let long = format!(r#"{{"op": "{}"}}"#, "x".repeat(1000));
        let AdminSocketError::UnknownCommand(op) = Request::parse(long.as_bytes()).unwrap_err()
        else {
            panic!("an unknown command");
        };
        assert_eq!(op.len(), 64, "echoed back shortened");
    }

    /// Sends `bytes` as they are, then reads the node's answer.
    async fn exchange(path: &Path, bytes: &[u8]) -> Answer {
        let mut s = UnixStream::connect(path).await.unwrap();
        s.write_all(bytes).await.unwrap();
        serde_json::from_slice(&read_frame(&mut s).await.unwrap()).unwrap()
    }

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut f = (body.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(body);
        f
    }

    fn refused(a: Answer) -> String {
        match a {
            Answer::Refused { code, .. } => code,
            other => panic!("not refused: {other:?}"),
        }
    }

    /// A node's admin socket, served: the data directory's guard, the node, the socket's path
    /// and the serving task.
    async fn serving() -> (
        tempfile::TempDir,
        crate::node::Node,
        PathBuf,
        tokio::task::JoinHandle<Infallible>,
    ) {
        let (dir, node) = crate::node::temp_node("a.test").await;
        let socket = bind(&node.paths).await.unwrap();
        let path = socket.path().to_owned();
        let server = tokio::spawn(socket.serve(node.store.clone()));
        (dir, node, path, server)
    }

    #[tokio::test]
    async fn garbage_is_refused_with_a_code_and_the_node_keeps_answering() {
        let (_dir, node, path, server) = serving().await;

        assert_eq!(
            refused(exchange(&path, &frame(b"\x00\xffnot json")).await),
            "bad_request"
        );
        assert_eq!(
            refused(exchange(&path, &frame(br#"{"op":"drop_tables"}"#)).await),
            "unknown_command"
        );
        // Oversize: refused from its length alone, the body never read.
        let oversize = (MAX_FRAME as u32 + 1).to_be_bytes();
        assert_eq!(refused(exchange(&path, &oversize).await), "too_large");
        let huge = u32::MAX.to_be_bytes();
        assert_eq!(refused(exchange(&path, &huge).await), "too_large");
        let sent_whole = frame(&vec![b'{'; MAX_FRAME + 1]);
        assert_eq!(refused(exchange(&path, &sent_whole).await), "too_large");
        // A request that stops halfway, and a connection that sends nothing: no answer.
        for partial in [&frame(b"{\"op\":\"sync\"}")[..7], &[0, 0][..], &[][..]] {
            let mut s = UnixStream::connect(&path).await.unwrap();
            s.write_all(partial).await.unwrap();
            s.shutdown().await.unwrap();
            let mut rest = Vec::new();
            s.read_to_end(&mut rest).await.unwrap();
            assert!(rest.is_empty(), "{partial:?}");
        }
        // Still answering, as the CLI asks.
        let before = node.store.catch_up().await.unwrap();
        let (_, cli_store) = crate::cli::open_store(node.paths.root()).unwrap();
        crate::service::accounts::invite(
            &cli_store,
            &node.config,
            &crate::service::Actor::Cli,
            "erin@a.test",
            None,
            false,
            crate::now(),
        )
        .await
        .unwrap();
        let after = sync(&node.paths).await.unwrap().unwrap();
        assert!(after > before, "{before} then {after}");
        server.abort();
    }

    #[tokio::test]
    async fn a_request_that_never_completes_times_out() {
        let (_dir, _node, path, server) = serving().await;
        let mut s = UnixStream::connect(&path).await.unwrap();
        s.write_all(&[0, 0, 0, 20, b'{']).await.unwrap();
        let started = std::time::Instant::now();
        let answer: Answer = serde_json::from_slice(&read_frame(&mut s).await.unwrap()).unwrap();
        assert_eq!(refused(answer), "timeout");
        assert!(started.elapsed() >= READ_TIMEOUT - Duration::from_millis(100));
        server.abort();
    }

    #[tokio::test]
    async fn the_socket_is_private_stale_files_go_and_a_live_socket_is_not_taken_over() {
        let (_dir, node) = crate::node::temp_node("a.test").await;
        // No node: nothing to tell.
        assert_eq!(sync(&node.paths).await.unwrap(), None);

        let socket = bind(&node.paths).await.unwrap();
        let path = socket.path().to_owned();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        // Bound, even before it serves: a second node refuses to start.
        let e = bind(&node.paths).await.err().unwrap();
        assert_eq!(e.code(), "in_use", "{e}");
        assert!(path.exists(), "the live socket stays");
        drop(socket);
        assert!(!path.exists(), "removed when closed");

        // A node killed without closing its socket leaves the file: refused connections.
        let stale = std::os::unix::net::UnixListener::bind(&path).unwrap();
        drop(stale);
        assert!(path.exists());
        assert_eq!(sync(&node.paths).await.unwrap(), None, "stale: no node");
        let socket = bind(&node.paths).await.unwrap();
        let server = tokio::spawn(socket.serve(node.store.clone()));
        assert!(sync(&node.paths).await.unwrap().is_some());
        server.abort();
        let _ = server.await;
        assert!(!path.exists());

        // Something else in the socket's place is not removed.
        std::fs::write(&path, b"a file").unwrap();
        assert_eq!(
            bind(&node.paths).await.err().unwrap().code(),
            "not_a_socket"
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"a file");
    }

    #[tokio::test]
    async fn a_path_too_long_for_a_socket_is_refused_clearly() {
        let paths = Paths::new(&PathBuf::from("/tmp").join("d".repeat(120)));
        let e = bind(&paths).await.err().unwrap();
        assert_eq!(e.code(), "path_too_long", "{e}");
        assert_eq!(sync(&paths).await.unwrap(), None);
    }
}
