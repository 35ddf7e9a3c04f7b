//! The real binary as a child process (`lookalike serve` on a port of its own), and a tiny
//! HTTP/1.1 client for it (one request per connection, no dependency beyond tokio).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{free_port, repo};

/// A `lookalike serve` child process on its own port; killed when dropped.
pub struct Service {
    child: Child,
    /// `127.0.0.1:port`.
    pub addr: String,
    log: Option<PathBuf>,
}

impl Service {
    /// Starts `serve` with `workers` job workers, one gate permit, one model thread, 2 s job
    /// leases and no per-address rate limits, logging warnings to the test's stderr; waits until
    /// `/readyz` answers 200.
    pub async fn start(database_url: &str, storage: &Path, workers: usize) -> Service {
        Service::start_with(database_url, storage, workers, &[], None).await
    }

    /// As `start`, with more `serve` flags (not those `start` passes: `--listen`,
    /// `--job-workers`, `--job-lease-secs`, `--gate-permits`, `--model-threads`, the
    /// `--rate-*-per-address` ones; the per-address caps are off unless given here), and the
    /// process's stderr written to `log` when given (its tail is printed if the test panics).
    pub async fn start_with(
        database_url: &str,
        storage: &Path,
        workers: usize,
        extra: &[&str],
        log: Option<&Path>,
    ) -> Service {
        Service::start_with_env(database_url, storage, workers, extra, log, &[]).await
    }

    /// As `start_with`, with more environment variables for the process.
    pub async fn start_with_env(
        database_url: &str,
        storage: &Path,
        workers: usize,
        extra: &[&str],
        log: Option<&Path>,
        env: &[(&str, &str)],
    ) -> Service {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let stderr = match log {
            Some(path) => Stdio::from(std::fs::File::create(path).unwrap()),
            None => Stdio::inherit(),
        };
        let child = Command::new(env!("CARGO_BIN_EXE_lookalike"))
            .current_dir(repo(""))
            .args([
                "serve",
                "--listen",
                &addr,
                "--job-workers",
                &workers.to_string(),
                "--job-lease-secs",
                "2",
                "--gate-permits",
                "1",
                "--model-threads",
                "1",
            ])
            // The tests load the service from one address on purpose.
            .args([
                "--rate-uploads-per-address",
                "off",
                "--rate-searches-per-address",
                "off",
                "--rate-reads-per-address",
                "off",
            ])
            // Nor per-address caps on bodies, upload slots and body memory, unless the test sets
            // its own.
            .args(
                [
                    "--max-bodies-per-address",
                    "--max-uploads-per-address",
                    "--body-memory-per-address-mib",
                ]
                .into_iter()
                .filter(|flag| !extra.contains(flag))
                .flat_map(|flag| [flag, "0"]),
            )
            // The tests were written against the fp32 model's answers: the precision `auto` would
            // pick on this CPU is chosen only where a test asks for it (tests/it/int8.rs).
            .args(
                ["--precision", "fp32"]
                    .into_iter()
                    .filter(|_| !extra.contains(&"--precision")),
            )
            .args(extra)
            .envs(env.iter().copied())
            .env("LOOKALIKE_LOG", "warn")
            .env("DATABASE_URL", database_url)
            .env("LOOKALIKE_STORAGE_DIR", storage)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let mut service = Service {
            child,
            addr,
            log: log.map(Path::to_path_buf),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok((200, _)) = http(&service.addr, "GET", "/readyz", "", &[]).await {
                return service;
            }
            if let Ok(Some(status)) = service.child.try_wait() {
                panic!("the service exited before it was ready: {status}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the service did not become ready");
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM (shutdown code runs).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM {} failed", self.pid());
    }

    /// Waits up to `limit` for the process to exit by itself; its exit status, or None.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill_9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let (true, Some(log)) = (std::thread::panicking(), &self.log) {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(40)..].join("\n");
            eprintln!("--- last lines of {} ---\n{tail}", log.display());
        }
    }
}

/// `lookalike work` on `database_url` with two job workers, one gate permit, one model thread and
/// the precision of the `serve` replicas beside it (`Service::start`), logging warnings.
pub fn work_command(database_url: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lookalike"));
    command
        .current_dir(repo(""))
        .args(["work", "--job-workers", "2", "--gate-permits", "1"])
        .args(["--model-threads", "1", "--precision", "fp32"])
        .env("DATABASE_URL", database_url)
        .env("LOOKALIKE_LOG", "warn")
        .stdout(Stdio::null());
    command
}

/// One HTTP/1.1 request on a fresh connection; the status and body. A connection that closes
/// without a status line is an error (`UnexpectedEof`), as is any connection error.
pub async fn http(
    addr: &str,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<(u16, Vec<u8>)> {
    let answer = http_with(addr, method, path, &[], content_type, body).await?;
    Ok((answer.status, answer.body))
}

/// A GET of `path` on a fresh connection (which must not fail); the status and body.
pub async fn http_get(addr: &str, path: &str) -> (u16, Vec<u8>) {
    http(addr, "GET", path, "", &[]).await.unwrap()
}

/// The error of an answer without an HTTP status line; `what` names the answer.
pub fn no_status(what: &str) -> std::io::Error {
    let message = format!("no HTTP status in {what}");
    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, message)
}

/// The status and body of a raw HTTP/1.1 answer (`None` without a status line).
pub fn split_response(response: &[u8]) -> Option<(u16, &[u8])> {
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(response.len(), |p| p + 4);
    let status = String::from_utf8_lossy(&response[..split])
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())?;
    Some((status, &response[split..]))
}

/// An answer with its headers (names lowercased).
pub struct Answer {
    /// The status.
    pub status: u16,
    /// The headers, lowercased names, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Answer {
    /// A header's value, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (`Null` when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// As `http`, with request headers, and the answer's headers back.
pub async fn http_with(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    content_type: &str,
    body: &[u8],
) -> std::io::Result<Answer> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(response.len(), |p| p + 4);
    let (status, body) = split_response(&response).ok_or_else(|| {
        let bytes = response.len();
        no_status(&format!("the {bytes} bytes answered to {method} {path}"))
    })?;
    let headers = String::from_utf8_lossy(&response[..split])
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok(Answer {
        status,
        headers,
        body: body.to_vec(),
    })
}
