//! Reports near a place and posters, in a real browser (headless Chromium through chromedriver,
//! over the real binary and database): "Near me" with the browser's location set through
//! Chromium's DevTools (`Emulation.setGeolocationOverride`), the town picker (no coordinates
//! typed, nothing fetched from elsewhere), the report form's place, a report's printable poster
//! and its share link, which opens the report in the app.

use std::time::{Duration, Instant};

use crate::common::browser::{Driver, Screenshots, click_button, wait_for_text};
use crate::common::process::{Service, http};
use crate::common::*;
use fantoccini::{Client, Locator};
use serde_json::{Value, json};

/// A Chrome DevTools command through chromedriver's `goog/cdp/execute`. chromedriver keeps
/// connections open, so the answer is read to its Content-Length, not to the end.
async fn devtools(driver: &Driver, browser: &Client, cmd: &str, params: Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let session = browser.session_id().await.unwrap().unwrap();
    let addr = driver.addr.trim_start_matches("http://");
    let body = json!({ "cmd": cmd, "params": params }).to_string();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /session/{session}/goog/cdp/execute HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    let read = async {
        loop {
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "chromedriver closed the connection");
            answer.extend_from_slice(&chunk[..n]);
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
                if answer.len() >= end + 4 + length {
                    return text;
                }
            }
        }
    };
    let text = tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("chromedriver answered within 20 s");
    assert!(text.starts_with("HTTP/1.1 200"), "{cmd}: {text}");
}

/// Posts a report of `kind` and `species` at (lat, lon) with one photo; the creation answer.
async fn post(
    service: &Service,
    (kind, species): (&str, &str),
    title: &str,
    photo: &[u8],
    at: (&str, &str),
) -> Value {
    let parts: Vec<(&str, &str, &str, &[u8])> = vec![
        ("kind", "", "text/plain", kind.as_bytes()),
        ("species", "", "text/plain", species.as_bytes()),
        ("title", "", "text/plain", title.as_bytes()),
        ("latitude", "", "text/plain", at.0.as_bytes()),
        ("longitude", "", "text/plain", at.1.as_bytes()),
        ("photos", "photo.png", "image/png", photo),
    ];
    let (content_type, body) = multipart(&parts);
    let (status, answer) = http(&service.addr, "POST", "/v1/reports", &content_type, &body)
        .await
        .unwrap();
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&answer));
    serde_json::from_slice(&answer).unwrap()
}

/// The titles of the listed reports, in order.
async fn listed(browser: &Client) -> Vec<String> {
    let mut titles = Vec::new();
    for t in browser
        .find_all(Locator::Css("#nearby-results .card .title"))
        .await
        .unwrap()
    {
        titles.push(t.text().await.unwrap());
    }
    titles
}

/// Waits until the current URL ends with `tail`.
async fn wait_for_url(browser: &Client, tail: &str, seconds: u64) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        let url = browser.current_url().await.unwrap();
        if url.as_str().ends_with(tail) {
            return;
        }
        assert!(Instant::now() < deadline, "still at {url}, not …{tail}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_person_finds_reports_near_them_or_a_town_and_prints_a_poster() {
    let _machine = whole_machine().await;
    let database = fresh_database().await;
    let service = Service::start(&database, &temp_dir("storage"), 0).await;
    let driver = Driver::start().await;
    let browser = driver.browser().await;
    let shots = Screenshots::new();
    let site = format!("http://{}", service.addr);

    let photos = distinct_photos(2, 160);
    let lyon = post(
        &service,
        ("lost", "cat"),
        "Lost tabby cat, green collar",
        &sample("chelsea.png"),
        ("45.7640", "4.8357"),
    )
    .await;
    post(
        &service,
        ("found", "dog"),
        "Found dog near Villeurbanne",
        &photos[0],
        ("45.7719", "4.8902"),
    )
    .await;
    post(
        &service,
        ("lost", "dog"),
        "Lost terrier in Paris",
        &photos[1],
        ("48.8566", "2.3522"),
    )
    .await;

    // 1. "Near me": the browser is in Lyon.
    devtools(
        &driver,
        &browser,
        "Browser.grantPermissions",
        json!({ "origin": site, "permissions": ["geolocation"] }),
    )
    .await;
    devtools(
        &driver,
        &browser,
        "Emulation.setGeolocationOverride",
        json!({ "latitude": 45.7578, "longitude": 4.8320, "accuracy": 50 }),
    )
    .await;
    browser.goto(&format!("{site}/#/nearby")).await.unwrap();
    wait_for_text(&browser, &shots, "h1", "Reports near a place", 10).await;
    click_button(&browser, "Near me").await;
    wait_for_text(
        &browser,
        &shots,
        "#nearby-results h2",
        "Reports near your location",
        15,
    )
    .await;
    wait_for_text(&browser, &shots, "#nearby-results .card", "km away", 10).await;
    assert_eq!(
        listed(&browser).await,
        [
            "Lost tabby cat, green collar",
            "Found dog near Villeurbanne"
        ],
        "nearest first, Paris out of 25 km"
    );
    let first = browser
        .find(Locator::Css("#nearby-results .card .distance"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        first.ends_with("km away") || first.ends_with("m away"),
        "{first}"
    );
    shots.take(&browser, "nearby").await;

    // 2. A town, by name: nothing typed but letters, nothing fetched from elsewhere.
    let search = browser.find(Locator::Css("#place-search")).await.unwrap();
    search.send_keys("pari").await.unwrap();
    wait_for_text(&browser, &shots, "#place-matches button", "Paris, FR", 15).await;
    click_button(&browser, "Paris, FR").await;
    wait_for_text(
        &browser,
        &shots,
        "#nearby-results h2",
        "Reports near Paris, FR",
        15,
    )
    .await;
    wait_for_text(
        &browser,
        &shots,
        "#nearby-results .card",
        "Lost terrier in Paris",
        10,
    )
    .await;
    assert_eq!(listed(&browser).await, ["Lost terrier in Paris"]);
    let latitude = browser.find(Locator::Css("#latitude")).await.unwrap();
    let lat: f64 = latitude
        .prop("value")
        .await
        .unwrap()
        .unwrap()
        .parse()
        .unwrap();
    assert!((lat - 48.85).abs() < 0.05, "{lat}");

    // 3. The report form's place comes from the same picker.
    browser.goto(&format!("{site}/#/new")).await.unwrap();
    wait_for_text(&browser, &shots, "h1", "", 10).await;
    let search = browser.find(Locator::Css("#place-search")).await.unwrap();
    search.send_keys("lyon").await.unwrap();
    wait_for_text(&browser, &shots, "#place-matches button", "Lyon, FR", 15).await;
    click_button(&browser, "Lyon, FR").await;
    let value = |css: &'static str| {
        let browser = browser.clone();
        async move {
            let field = browser.find(Locator::Css(css)).await.unwrap();
            field.prop("value").await.unwrap().unwrap_or_default()
        }
    };
    let (lat, lon): (f64, f64) = (
        value("#latitude").await.parse().unwrap(),
        value("#longitude").await.parse().unwrap(),
    );
    assert!(
        (lat - 45.75).abs() < 0.05 && (lon - 4.85).abs() < 0.05,
        "{lat}, {lon}"
    );

    // 4. The poster: kind, title, QR code of the share link; printable.
    let id = lyon["id"].as_str().unwrap();
    browser
        .goto(&format!("{site}/r/{id}/poster"))
        .await
        .unwrap();
    wait_for_text(&browser, &shots, "h1.poster-kind", "LOST CAT", 10).await;
    wait_for_text(
        &browser,
        &shots,
        ".poster-title",
        "Lost tabby cat, green collar",
        5,
    )
    .await;
    browser.find(Locator::Css(".poster-qr svg")).await.unwrap();
    let caption = browser
        .find(Locator::Css(".poster-qr figcaption"))
        .await
        .unwrap();
    assert_eq!(caption.text().await.unwrap(), format!("{site}/r/{id}"));
    shots.take(&browser, "poster").await;

    // 5. The share link opens the report in the app.
    browser.goto(&format!("{site}/r/{id}")).await.unwrap();
    wait_for_url(&browser, &format!("/#/reports/{id}"), 10).await;

    browser.close().await.unwrap();
    eprintln!("screenshots in {}", shots.artifacts.display());
}
