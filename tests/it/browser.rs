//! The page, as a person uses it, in a real browser: headless Chromium driven by chromedriver
//! (Debian's, installed by `scripts/setup-browser.sh`) over the real binary, database and model.
//! Search with a photo and see the look-alike report first; post a report, see its owner token,
//! see it turn ready and show its match; the operators' view; the interactive API reference.
//!
//! Screenshots are kept as artifacts in `<target>/tmp/screenshots/`; with
//! `LOOKALIKE_UPDATE_SCREENSHOTS=1` they also replace those of the README in `docs/screenshots/`.

use crate::common::browser::*;
use crate::common::process::{Service, http};
use crate::common::*;
use fantoccini::Locator;

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
    let lost = post_report(&service, "lost", "Lost tabby cat, green collar", &cat).await;
    for (title, name) in [
        ("Found dog by the river", "coffee.png"),
        ("Found: grey kitten", "astronaut.png"),
    ] {
        post_report(&service, "found", title, &sample(name)).await;
    }
    post_report(
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
    // Every kind is searched by default: a finder sees the lost reports.
    assert_eq!(
        js(
            &browser,
            "return document.querySelectorAll('input[name=kind]:checked').length"
        )
        .await,
        3
    );
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
    // The report's own address, which a reload keeps.
    let address = browser.current_url().await.unwrap().to_string();
    let posted = address
        .split("#/reports/")
        .nth(1)
        .unwrap_or_else(|| panic!("not the report's address: {address}"))
        .to_owned();
    wait_for_text(&browser, &shots, "#embedding-status", "ready", 60).await;
    wait_for_text(&browser, &shots, "#matches .match", "Lost tabby cat", 60).await;
    shots.take(&browser, "report").await;
    browser.refresh().await.unwrap();
    wait_for_text(&browser, &shots, "#report-title", "Found a tabby cat", 10).await;
    wait_for_text(&browser, &shots, "#owner-panel", "Owner link", 10).await;
    assert_eq!(
        browser.title().await.unwrap(),
        "Found a tabby cat in my garden · lookalike"
    );
    let link = js(
        &browser,
        "return document.getElementById('owner-link').value",
    )
    .await;
    assert!(
        link.as_str()
            .unwrap()
            .ends_with(&format!("#/reports/{posted}?token={token}")),
        "{link}"
    );

    // "My reports" lists it, with its match.
    browser.goto(&format!("{site}/#/mine")).await.unwrap();
    wait_for_text(&browser, &shots, "#my-reports", "Found a tabby cat", 10).await;
    wait_for_text(&browser, &shots, "#my-reports", "possible match", 10).await;
    shots.take(&browser, "my-reports").await;

    // Searching again with the cat's photo, the finder sees the lost report, never their own.
    browser.goto(&site).await.unwrap();
    wait_for_text(&browser, &shots, "h1", "Is your pet among the reports?", 10).await;
    browser
        .find(Locator::Css("#photo-input"))
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
    wait_for_text(&browser, &shots, ".result", "Lost tabby cat", 30).await;
    for result in browser.find_all(Locator::Css(".result")).await.unwrap() {
        let text = result.text().await.unwrap();
        assert!(!text.contains("Found a tabby cat in my garden"), "{text}");
    }

    // The match leads to the lost report's page, where this browser is a visitor: no owner's
    // panel, a way to write to the owner.
    browser.goto(&address).await.unwrap();
    wait_for_text(&browser, &shots, "#matches .match", "Lost tabby cat", 10).await;
    browser
        .find(Locator::Css("#matches .match a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&browser, &shots, "#report-title", "Lost tabby cat", 10).await;
    wait_for_text(&browser, &shots, "summary", "Is this your report?", 10).await;
    assert!(browser.find(Locator::Css("#owner-panel")).await.is_err());

    // The owner resolves the report, then deletes it, with the token this browser kept (at the
    // address of the earlier pages too).
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

    // 3. The operators' view, refreshing from /v1/status, at its own address (not in the menu).
    let menu = browser
        .find(Locator::Css("nav"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!menu.contains("Operators"), "{menu}");
    browser.goto(&format!("{site}/#/status")).await.unwrap();
    wait_for_text(&browser, &shots, "#stats", "Model permits in use", 10).await;
    wait_for_text(&browser, &shots, "#stats", "efficientnet-lite0", 10).await;
    shots.take(&browser, "status").await;

    // 4. A phone-sized screen.
    browser.set_window_size(390, 844).await.unwrap();
    browser.goto(&site).await.unwrap();
    wait_for_text(&browser, &shots, "h1", "Is your pet among the reports?", 10).await;
    shots.take(&browser, "search-phone").await;
    let lost_id = lost["id"].as_str().unwrap();
    browser
        .goto(&format!("{site}/#/reports/{lost_id}"))
        .await
        .unwrap();
    wait_for_text(&browser, &shots, "#report-title", "Lost tabby cat", 10).await;
    shots.take(&browser, "report-phone").await;

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
