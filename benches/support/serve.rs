//! The real binary's `serve` as a child process, for the benches that drive it from outside
//! (kill_drain, soak): on a free loopback port, killed when dropped.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `serve` process; killed when dropped, also if it never became ready.
pub struct Serve {
    /// The process.
    pub child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    /// Starts `binary serve` with `args` on `database_url`, its photos under `storage`, logging
    /// errors only; waits (up to a minute) until `/readyz` answers 200.
    pub async fn start(
        binary: &str,
        database_url: &str,
        storage: &std::path::Path,
        args: &[&str],
    ) -> Serve {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let child = Command::new(binary)
            .current_dir(super::repo(""))
            .args(["serve", "--listen", &addr.to_string()])
            .args(args)
            .env("DATABASE_URL", database_url)
            .env("LOOKALIKE_STORAGE_DIR", storage)
            .env("LOOKALIKE_LOG", "error")
            .stdout(Stdio::null())
            .spawn()
            .expect("start the service");
        let serve = Serve { child, addr };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if serve.ready() {
                return serve;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("the service did not become ready");
    }

    /// Whether `/readyz` answers 200 now.
    fn ready(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut stream) = std::net::TcpStream::connect(self.addr) else {
            return false;
        };
        let _ = stream.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer.starts_with("HTTP/1.1 200")
    }
}
