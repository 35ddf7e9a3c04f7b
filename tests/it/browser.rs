//! The page, as a person uses it, in a real browser: headless Chromium driven by chromedriver
//! (Debian's, installed by `scripts/setup-browser.sh`) over the real binary, database and model.
//! Search with a photo and see the look-alike report first; post a report, see its owner token,
//! see it turn ready and show its match; the operators' view; the interactive API reference.
//!
//! Screenshots are kept as artifacts in `<target>/tmp/screenshots/`; with
//! `LOOKALIKE_UPDATE_SCREENSHOTS=1` they also replace those of the README in `docs/screenshots/`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::process::{Service, http};
use crate::common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// chromedriver on a port of its own; killed when dropped.
pub(crate) struct Driver {
    child: Child,
    pub(crate) url: String,
}

impl Driver {
    pub(crate) async fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
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

    pub(crate) async fn browser(&self) -> Client {
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

/// Where screenshots go: the artifacts folder, and the README's when asked.
pub(crate) struct Screenshots {
    pub(crate) artifacts: PathBuf,
}

impl Screenshots {
    pub(crate) fn new() -> Self {
        let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
        std::fs::create_dir_all(&artifacts).unwrap();
        Screenshots { artifacts }
    }

    pub(crate) async fn take(&self, browser: &Client, name: &str) {
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
pub(crate) async fn wait_for_text(
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
pub(crate) async fn click_button(browser: &Client, label: &str) {
    for button in browser.find_all(Locator::Css("button")).await.unwrap() {
        if button.text().await.unwrap() == label {
            button.click().await.unwrap();
            return;
        }
    }
    panic!("no button “{label}”");
}

/// A photo written to a file, for a file input.
fn photo_file(bytes: &[u8], name: &str) -> String {
    let path = temp_dir("browser").join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_string_lossy().into_owned()
}

async fn create_report(service: &Service, kind: &str, title: &str, photo: &[u8]) -> Value {
    let photos = [photo.to_vec()];
    let mut form = report_form(kind, "cat", &photos);
    form[2] = ("title", "", "text/plain", title.as_bytes());
    let (content_type, body) = multipart(&form);
    let (status, answer) = http(&service.addr, "POST", "/v1/reports", &content_type, &body)
        .await
        .unwrap();
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&answer));
    serde_json::from_slice(&answer).unwrap()
}

async fn embedded(service: &Service, report: &Value) -> bool {
    let path = format!("/v1/reports/{}", report["id"].as_str().unwrap());
    let (_, body) = http(&service.addr, "GET", &path, "", &[]).await.unwrap();
    serde_json::from_slice::<Value>(&body).unwrap()["embedding_status"] == "ready"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_person_searches_posts_a_report_and_follows_it_to_a_match() {
    let _machine = whole_machine().await;
    let database = fresh_database().await;
    let service = Service::start(&database, &temp_dir("storage"), 2).await;
    let driver = Driver::start().await;
    let browser = driver.browser().await;
    let shots = Screenshots::new();
    let site = format!("http://{}", service.addr);

    // Reports already posted: the lost cat is the one to find.
    let cat = sample("chelsea.png");
    let lost = create_report(&service, "lost", "Lost tabby cat, green collar", &cat).await;
    for (title, name) in [
        ("Found dog by the river", "coffee.png"),
        ("Found: grey kitten", "astronaut.png"),
    ] {
        create_report(&service, "found", title, &sample(name)).await;
    }
    create_report(
        &service,
        "sighting",
        "Seen: cat on a wall",
        &sample("motorcycle_left.png"),
    )
    .await;
    eventually("the lost cat embedded", 60, || embedded(&service, &lost)).await;

    // 1. Search with another photo of the cat: the lost report comes first, with its score.
    let query = photo_file(&edited_copy(&cat), "cat-query.jpg");
    browser.goto(&site).await.unwrap();
    wait_for_text(&browser, &shots, "h1", "Is your pet among the reports?", 10).await;
    let lost_box = browser
        .find(Locator::Css("input[name=kind][value=lost]"))
        .await
        .unwrap();
    lost_box.click().await.unwrap();
    browser
        .find(Locator::Css("#photo-input"))
        .await
        .unwrap()
        .send_keys(&query)
        .await
        .unwrap();
    browser
        .find(Locator::Css("form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let first = wait_for_text(&browser, &shots, ".result", "Lost tabby cat", 30).await;
    let results = browser.find_all(Locator::Css(".result")).await.unwrap();
    assert!(
        results[0].text().await.unwrap().contains("Lost tabby cat"),
        "the lost cat is not first: {first}"
    );
    assert!(first.contains("% alike"), "{first}");
    shots.take(&browser, "search").await;

    // 2. Post a found report with a photo of the same cat: the owner token is shown once, the
    //    photos turn ready, and the lost report appears as a possible match.
    browser.goto(&format!("{site}/#/new")).await.unwrap();
    wait_for_text(&browser, &shots, "h1", "Post a report", 10).await;
    browser
        .find(Locator::Css("#kind"))
        .await
        .unwrap()
        .select_by_value("found")
        .await
        .unwrap();
    browser
        .find(Locator::Css("#species"))
        .await
        .unwrap()
        .select_by_value("cat")
        .await
        .unwrap();
    browser
        .find(Locator::Css("#title"))
        .await
        .unwrap()
        .send_keys("Found a tabby cat in my garden")
        .await
        .unwrap();
    browser
        .find(Locator::Css("#contact"))
        .await
        .unwrap()
        .send_keys("finder@example.org")
        .await
        .unwrap();
    let found_photo = photo_file(&edited_copy(&cat), "cat-found.jpg");
    browser
        .find(Locator::Css("#photos-input"))
        .await
        .unwrap()
        .send_keys(&found_photo)
        .await
        .unwrap();
    browser
        .find(Locator::Css("form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let token = wait_for_text(&browser, &shots, "#owner-token", "", 30).await;
    assert!(
        token.len() == 64 && token.chars().all(|c| c.is_ascii_hexdigit()),
        "{token}"
    );
    wait_for_text(&browser, &shots, "#embedding-status", "ready", 60).await;
    wait_for_text(&browser, &shots, "#matches .match", "Lost tabby cat", 60).await;
    shots.take(&browser, "report").await;

    // The match leads to the lost report's page.
    browser
        .find(Locator::Css("#matches .match a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&browser, &shots, "#report-title", "Lost tabby cat", 10).await;

    // The owner resolves the report, then deletes it, with the token this browser kept.
    let (_, listed) = http(&service.addr, "GET", "/v1/reports?kind=found", "", &[])
        .await
        .unwrap();
    let listed: Value = serde_json::from_slice(&listed).unwrap();
    let posted = listed["reports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["title"] == "Found a tabby cat in my garden")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    browser
        .goto(&format!("{site}/#/report/{posted}"))
        .await
        .unwrap();
    wait_for_text(&browser, &shots, "#report-title", "open", 10).await;
    click_button(&browser, "Mark as resolved").await;
    wait_for_text(&browser, &shots, "#report-title", "resolved", 10).await;
    click_button(&browser, "Delete").await;
    browser.accept_alert().await.unwrap();
    wait_for_text(&browser, &shots, "h1", "Report deleted", 10).await;
    let (status, _) = http(
        &service.addr,
        "GET",
        &format!("/v1/reports/{posted}"),
        "",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(status, 404);

    // A file that is not a photo gets an answer in plain words.
    browser.goto(&site).await.unwrap();
    wait_for_text(&browser, &shots, "h1", "Is your pet among the reports?", 10).await;
    let not_a_photo = photo_file(b"these are not the pixels you are looking for", "notes.jpg");
    browser
        .find(Locator::Css("#photo-input"))
        .await
        .unwrap()
        .send_keys(&not_a_photo)
        .await
        .unwrap();
    browser
        .find(Locator::Css("form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(
        &browser,
        &shots,
        ".notice.error",
        "not a photo this service reads",
        20,
    )
    .await;

    // 3. The operators' view, refreshing from /v1/status.
    browser.goto(&format!("{site}/#/status")).await.unwrap();
    wait_for_text(&browser, &shots, "#stats", "Model permits in use", 10).await;
    wait_for_text(&browser, &shots, "#stats", "efficientnet-lite0", 10).await;
    shots.take(&browser, "status").await;

    // 4. A phone-sized screen.
    browser.set_window_size(390, 844).await.unwrap();
    browser.goto(&site).await.unwrap();
    wait_for_text(&browser, &shots, "h1", "Is your pet among the reports?", 10).await;
    shots.take(&browser, "search-phone").await;

    // 5. The interactive reference renders every operation from /openapi.json.
    browser.set_window_size(1280, 1000).await.unwrap();
    browser.goto(&format!("{site}/docs")).await.unwrap();
    wait_for_text(&browser, &shots, ".swagger-ui .opblock", "/v1/search", 30).await;
    let operations = browser
        .find_all(Locator::Css(".swagger-ui .opblock"))
        .await
        .unwrap()
        .len();
    assert!(operations >= 15, "{operations} operations shown");
    shots.take(&browser, "docs").await;

    browser.close().await.unwrap();
    eprintln!("screenshots in {}", shots.artifacts.display());
}
