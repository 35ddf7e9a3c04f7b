//! The browser tests' shared parts: chromedriver and headless Chromium, a session over a fresh
//! service, screenshots, waiting for the page, reports posted through the API, a throttled network.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::api::{call_form, report_ready};
use super::process::Service;
use super::*;
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// chromedriver on a port of its own; killed when dropped.
pub struct Driver {
    child: Child,
    /// chromedriver's address (`127.0.0.1:port`).
    pub addr: String,
    url: String,
}

impl Driver {
    /// Starts chromedriver and waits until it listens.
    pub async fn start() -> Driver {
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("chromedriver: {e} (run `make test`, which installs chromium and chromium-driver)")
            });
        let driver = Driver {
            child,
            addr: format!("127.0.0.1:{port}"),
            url: format!("http://127.0.0.1:{port}"),
        };
        // Listening is enough: a session is asked for next (chromedriver keeps connections open,
        // so a request read to its end would wait).
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return driver;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not start");
    }

    /// A new headless Chromium session, 1280×1000.
    pub async fn browser(&self) -> Client {
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,1000", "--hide-scrollbars", "--lang=en-GB"]
            }
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("a Chromium session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Everything a browser test needs: a service over a fresh database, chromedriver, a browser,
/// screenshots.
pub struct Session {
    /// The service under test.
    pub service: Service,
    /// chromedriver.
    pub driver: Driver,
    /// The browser.
    pub browser: Client,
    /// Where screenshots go.
    pub shots: Screenshots,
    /// The service's address as the browser opens it (`http://127.0.0.1:port`).
    pub site: String,
}

impl Session {
    /// A service with `workers` job workers, chromedriver and a browser.
    pub async fn start(workers: usize) -> Session {
        let database = fresh_database().await;
        let service = Service::start(&database, &temp_dir("storage"), workers).await;
        let driver = Driver::start().await;
        let browser = driver.browser().await;
        let site = format!("http://{}", service.addr);
        Session {
            service,
            driver,
            browser,
            shots: Screenshots::new(),
            site,
        }
    }

    /// Opens the site's `address` (`#/new`, `r/{id}/poster`, …) and waits for its heading.
    pub async fn open(&self, address: &str, heading: &str) {
        self.goto(address).await;
        self.text("h1", heading, 15).await;
    }

    /// Opens the site's `address` without waiting for anything.
    pub async fn goto(&self, address: &str) {
        let url = format!("{}/{address}", self.site);
        self.browser.goto(&url).await.unwrap();
    }

    /// Waits up to `seconds` for `css` with `text` (see [`wait_for_text`]); the element's text.
    pub async fn text(&self, css: &str, text: &str, seconds: u64) -> String {
        wait_for_text(&self.browser, &self.shots, css, text, seconds).await
    }

    /// Runs `script` in the page; its result.
    pub async fn js(&self, script: &str) -> Value {
        js(&self.browser, script).await
    }

    /// The element `css` (which must be there).
    pub async fn find(&self, css: &str) -> Element {
        let found = self.browser.find(Locator::Css(css)).await;
        found.unwrap_or_else(|e| panic!("no `{css}`: {e}"))
    }

    /// How many elements `css` matches.
    pub async fn count(&self, css: &str) -> usize {
        self.browser
            .find_all(Locator::Css(css))
            .await
            .unwrap()
            .len()
    }

    /// Types `keys` into the field `css` (for a file input: paths, one a line).
    pub async fn type_into(&self, css: &str, keys: &str) {
        self.find(css).await.send_keys(keys).await.unwrap();
    }

    /// Chooses `value` in the select `css`.
    pub async fn choose(&self, css: &str, value: &str) {
        self.find(css).await.select_by_value(value).await.unwrap();
    }

    /// Clicks the element `css`.
    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap();
    }

    /// Submits the page's form with its submit button.
    pub async fn submit(&self) {
        self.click("form button[type=submit]").await;
    }

    /// Keeps a screenshot named `name`.
    pub async fn shot(&self, name: &str) {
        self.shots.take(&self.browser, name).await;
    }

    /// Closes the browser, saying where the screenshots are.
    pub async fn close(self) {
        self.browser.close().await.unwrap();
        eprintln!("screenshots in {}", self.shots.artifacts.display());
    }
}

/// Where screenshots go: the artifacts folder, and the README's when asked.
pub struct Screenshots {
    /// Where every screenshot is kept.
    pub artifacts: PathBuf,
}

impl Screenshots {
    /// The artifacts folder, created.
    pub fn new() -> Self {
        let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
        std::fs::create_dir_all(&artifacts).unwrap();
        Screenshots { artifacts }
    }

    /// Keeps a screenshot named `name` (and replaces the README's when asked).
    pub async fn take(&self, browser: &Client, name: &str) {
        let png = browser.screenshot().await.unwrap();
        std::fs::write(self.artifacts.join(format!("{name}.png")), &png).unwrap();
        if std::env::var_os("LOOKALIKE_UPDATE_SCREENSHOTS").is_some() {
            let docs = repo("docs/screenshots");
            std::fs::create_dir_all(&docs).unwrap();
            std::fs::write(docs.join(format!("{name}.png")), &png).unwrap();
        }
    }
}

/// Waits up to `seconds` until `css` matches an element whose text contains `text`; on timeout
/// keeps a screenshot and the page's source beside the others, then fails.
pub async fn wait_for_text(
    browser: &Client,
    shots: &Screenshots,
    css: &str,
    text: &str,
    seconds: u64,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        for element in browser.find_all(Locator::Css(css)).await.unwrap() {
            if let Ok(found) = element.text().await
                && found.contains(text)
            {
                return found;
            }
        }
        if Instant::now() > deadline {
            shots.take(browser, "failure").await;
            let source = browser.source().await.unwrap_or_default();
            std::fs::write(shots.artifacts.join("failure.html"), &source).unwrap();
            panic!(
                "no `{css}` with “{text}” after {seconds} s; see {}",
                shots.artifacts.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Clicks the button labelled `label`.
pub async fn click_button(browser: &Client, label: &str) {
    for button in browser.find_all(Locator::Css("button")).await.unwrap() {
        if button.text().await.unwrap() == label {
            button.click().await.unwrap();
            return;
        }
    }
    panic!("no button “{label}”");
}

/// A photo written to a file, for a file input.
pub fn photo_file(bytes: &[u8], name: &str) -> String {
    let path = temp_dir("browser").join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_string_lossy().into_owned()
}

/// A report posted through the API (one photo, species cat), as answered.
pub async fn post_report(service: &Service, kind: &str, title: &str, photo: &[u8]) -> Value {
    let fields = [("kind", kind), ("species", "cat"), ("title", title)];
    post_report_with(service, &fields, photo).await
}

/// The lost tabby cat (chelsea.png) posted: its photo, and its report as answered.
pub async fn post_lost_cat(service: &Service) -> (Vec<u8>, Value) {
    let cat = sample("chelsea.png");
    let lost = post_report(service, "lost", "Lost tabby cat, green collar", &cat).await;
    (cat, lost)
}

/// A report of text `fields` and one photo posted through the API, as answered.
pub async fn post_report_with(service: &Service, fields: &[(&str, &str)], photo: &[u8]) -> Value {
    let photos = [photo.to_vec()];
    let answer = call_form(service, "/v1/reports", &[], fields, "photos", &photos).await;
    assert_eq!(answer.status, 201, "{}", answer.json());
    answer.json()
}

/// Whether the report's photos are embedded.
pub async fn embedded(service: &Service, report: &Value) -> bool {
    report_ready(&service.addr, report["id"].as_str().unwrap()).await
}

/// The browser's network as a phone's weak signal would make it (chromedriver's network
/// conditions; throughputs in kilobits per second), or cut (`offline`).
pub async fn throttle(
    driver: &Driver,
    browser: &Client,
    offline: bool,
    up_kbps: u64,
    down_kbps: u64,
    latency_ms: u64,
) {
    let session = browser.session_id().await.unwrap().unwrap();
    let body = json!({"network_conditions": {
        "offline": offline,
        "latency": latency_ms,
        "upload_throughput": up_kbps * 1000 / 8,
        "download_throughput": down_kbps * 1000 / 8,
    }});
    let path = format!("/session/{session}/chromium/network_conditions");
    let answer = post_to_driver(&driver.addr, &path, &body.to_string()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// POSTs JSON to chromedriver and reads its answer up to its `Content-Length` (chromedriver
/// keeps the connection open, so reading to the end would wait).
pub async fn post_to_driver(addr: &str, path: &str, body: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let read = tokio::time::timeout_at(deadline.into(), stream.read(&mut buf))
            .await
            .expect("chromedriver answers")
            .unwrap();
        answer.extend_from_slice(&buf[..read]);
        let text = String::from_utf8_lossy(&answer).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if answer.len() >= end + 4 + length || read == 0 {
                return text;
            }
        } else if read == 0 {
            return text;
        }
    }
}

/// Runs `script` in the page and gives its result.
pub async fn js(browser: &Client, script: &str) -> Value {
    browser.execute(script, vec![]).await.unwrap()
}
