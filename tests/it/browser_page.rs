//! The page's harder flows in a real browser (headless Chromium over the real binary, database
//! and model): a match posted later appears on an open report page by itself, in place; a report
//! with two large photos goes through a weak signal (750 kb/s up), with its progress shown, after
//! a failed try kept for a retry; and the smaller problems people met (files the service cannot
//! read, too many photos, no default species, half a place, a resolved report's
//! matches, the owner link, the operators' view updated in place).

use std::time::{Duration, Instant};

use crate::common::api::resolve;
use crate::common::browser::*;
use crate::common::*;
use fantoccini::Locator;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_match_posted_later_appears_on_the_open_report_page_in_place() {
    let _machine = whole_machine().await;
    let s = Session::start(2).await;
    let (cat, lost) = post_lost_cat(&s.service).await;
    eventually("the lost cat embedded", 60, || embedded(&s.service, &lost)).await;

    // A visitor (who might be its owner on a phone) reads the report and starts a message.
    s.browser.set_window_size(390, 700).await.unwrap();
    let id = lost["id"].as_str().unwrap();
    s.open(&format!("#/reports/{id}"), "Lost tabby cat").await;
    s.text("#embedding-status", "ready", 30).await;
    s.text("#matches-empty", "None yet", 10).await;
    let shown = s
        .js("return document.querySelector('main').innerText")
        .await;
    let shown = shown.as_str().unwrap();
    assert!(
        !shown.contains("null") && !shown.contains("undefined"),
        "{shown}"
    );
    s.type_into("#message-text", "Is this your cat? I saw")
        .await;
    s.js("document.getElementById('report-title').kept = 'yes'; window.scrollTo(0, 300);")
        .await;
    let scrolled = s.js("return window.scrollY").await;

    // Someone else posts the same cat, found.
    let posted = Instant::now();
    post_report(
        &s.service,
        "found",
        "Found: tabby in my garden",
        &edited_copy(&cat),
    )
    .await;
    s.text("#matches .match", "Found: tabby in my garden", 45)
        .await;
    let seconds = posted.elapsed().as_secs_f64();
    eprintln!("the match appeared on the open page {seconds:.1} s after it was posted");

    // In place: nothing rebuilt, the typed text, the focus and the scroll kept; the new match
    // announced once.
    assert_eq!(
        s.js("return document.getElementById('report-title').kept")
            .await,
        "yes"
    );
    assert_eq!(
        s.js("return document.getElementById('message-text').value")
            .await,
        "Is this your cat? I saw"
    );
    assert_eq!(
        s.js("return document.activeElement.id").await,
        "message-text"
    );
    // Not sent back to the top (scroll anchoring may move it down by what was added above).
    let now = s.js("return window.scrollY").await.as_f64().unwrap();
    assert!(
        now >= scrolled.as_f64().unwrap() - 1.0,
        "scrolled from {scrolled} to {now}"
    );
    let said = s
        .js("return document.getElementById('announcer').textContent")
        .await;
    assert!(
        said.as_str()
            .unwrap()
            .contains("New possible match: Found: tabby in my garden"),
        "{said}"
    );
    assert_eq!(s.count("#matches .match").await, 1);
    s.shot("report-live-match").await;
    s.close().await;
}

/// A JPEG of about 3 MB: the cat, enlarged to 3000 px with a little grain (as a phone's photo).
fn large_photo(seed: u32) -> Vec<u8> {
    let cat = image::load_from_memory(&sample("chelsea.png")).unwrap();
    let mut big = cat
        .resize_exact(3000, 2250, image::imageops::FilterType::Triangle)
        .to_rgb8();
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    for pixel in big.pixels_mut() {
        for channel in pixel.0.iter_mut() {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let grain = (state >> 28) as i16 - 8;
            *channel = (*channel as i16 + grain).clamp(0, 255) as u8;
        }
    }
    let mut out = std::io::Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 94)
        .encode_image(&big)
        .unwrap();
    out.into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_large_photos_go_through_a_weak_signal_with_progress_and_a_retry() {
    let _machine = whole_machine().await;
    let s = Session::start(2).await;
    let photos: Vec<Vec<u8>> = (1..=2).map(large_photo).collect();
    let sizes: Vec<usize> = photos.iter().map(Vec::len).collect();
    assert!(sizes.iter().all(|&n| n > 2_500_000), "{sizes:?}");
    let paths: Vec<String> = photos
        .iter()
        .enumerate()
        .map(|(i, bytes)| photo_file(bytes, &format!("big-{i}.jpg")))
        .collect();

    s.open("#/new", "Post a report").await;
    assert_eq!(
        s.browser.title().await.unwrap(),
        "Post a report · lookalike"
    );
    s.choose("#kind", "found").await;
    s.choose("#species", "cat").await;
    s.type_into("#title", "Tabby on a weak signal").await;
    s.type_into("#photos-input", &paths.join("\n")).await;
    s.text(".previews", "MB", 10).await;

    // First try: the connection drops. The form stays, the problem is said beside the button
    // (and focused), and the button offers to try again.
    offline(&s, true).await;
    s.submit().await;
    s.text("#post-error", "connection was lost", 30).await;
    assert_eq!(s.js("return document.activeElement.id").await, "post-error");
    assert_eq!(
        s.js("return document.getElementById('title').value").await,
        "Tabby on a weak signal"
    );
    s.text("form button[type=submit]", "Try again", 5).await;

    // Back on a weak signal: it goes through, with its progress shown.
    offline(&s, false).await;
    let started = Instant::now();
    s.submit().await;
    s.text("#upload-words", "Sending:", 30).await;
    let total = s
        .js("return document.getElementById('upload-progress').max")
        .await;
    s.shot("posting-progress").await;
    let token = s.text("#owner-token", "", 180).await;
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(token.len(), 64, "{token}");
    let sent = total.as_f64().unwrap();
    eprintln!(
        "two photos of {sizes:?} bytes posted at 750 kb/s up in {seconds:.1} s, {sent} bytes sent"
    );
    // Made smaller in the browser before sending.
    assert!(
        sent < (sizes[0] + sizes[1]) as f64 / 2.0,
        "{sent} bytes sent"
    );
    s.text("#embedding-status", "ready", 90).await;
    s.close().await;
}

/// Cuts the browser's network (`offline`) or brings it back at 750 kb/s up.
async fn offline(s: &Session, offline: bool) {
    throttle(&s.driver, &s.browser, offline, 750, 1600, 100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_smaller_problems_people_met_are_answered_in_plain_words() {
    let _machine = whole_machine().await;
    let s = Session::start(2).await;

    // A PDF, a HEIC, and a photo: the two are named and explained, the photo kept.
    let pdf = photo_file(b"%PDF-1.4\n% a flyer\n", "flyer.pdf");
    let heic = photo_file(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic", "IMG_0001.heic");
    let jpeg = photo_file(&edited_copy(&sample("chelsea.png")), "cat.jpg");
    s.open("#/new", "Post a report").await;
    s.type_into("#photos-input", &[pdf, heic, jpeg.clone()].join("\n"))
        .await;
    let said = s.text("#photos-problems", "flyer.pdf", 10).await;
    assert!(said.contains("JPEG, PNG or WebP"), "{said}");
    assert!(said.contains("IMG_0001.heic is a HEIC photo"), "{said}");
    assert!(said.contains("Export it as JPEG"), "{said}");
    assert_eq!(s.count(".previews img").await, 1);

    // Six photos: five kept, and said so.
    let six: Vec<String> = (0..6)
        .map(|i| {
            photo_file(
                &edited_copy(&sample("chelsea.png")),
                &format!("cat-{i}.jpg"),
            )
        })
        .collect();
    s.open("#/mine", "My reports").await;
    s.open("#/new", "Post a report").await;
    s.type_into("#photos-input", &six.join("\n")).await;
    s.text(
        "#photos-problems",
        "You chose 6 photos; a report takes up to 5",
        10,
    )
    .await;
    assert_eq!(s.count(".previews img").await, 5);

    // No species is chosen for the person: the form asks for one.
    assert_eq!(
        s.js("return document.getElementById('species').value")
            .await,
        ""
    );
    assert_eq!(
        s.js("return document.getElementById('species').validity.valueMissing")
            .await,
        true
    );

    // Half a place (a latitude without its longitude) is refused, in words.
    s.open("#/", "Is your pet among the reports?").await;
    s.js("document.querySelector('fieldset.place details').open = true")
        .await;
    s.type_into("#latitude", "48.85").await;
    s.type_into("#photo-input", &jpeg).await;
    s.submit().await;
    s.text(".notice.error", "needs both a latitude and a longitude", 10)
        .await;

    // A resolved report says why it shows no match; a visitor sees no owner's panel.
    let report = post_report(
        &s.service,
        "lost",
        "Grey cat, resolved",
        &sample("astronaut.png"),
    )
    .await;
    let id = report["id"].as_str().unwrap().to_owned();
    let token = report["owner_token"].as_str().unwrap().to_owned();
    resolve(&s.service.addr, &id, &token).await;
    s.open(&format!("#/reports/{id}"), "Grey cat, resolved")
        .await;
    s.text("#matches-empty", "this report is resolved", 10)
        .await;
    assert!(s.browser.find(Locator::Css("#owner-panel")).await.is_err());
    assert!(
        !s.js("return document.body.innerText.includes('Mark as resolved')")
            .await
            .as_bool()
            .unwrap()
    );
    assert_eq!(
        s.browser.title().await.unwrap(),
        "Grey cat, resolved · lookalike"
    );

    // The owner link, opened on "another device" (a browser that kept nothing): the token is
    // kept, the address forgets it, the owner's panel shows.
    s.js("localStorage.clear()").await;
    s.open(
        &format!("#/reports/{id}?token={token}"),
        "Grey cat, resolved",
    )
    .await;
    s.text("#owner-panel", "Open it again", 10).await;
    let address = s.browser.current_url().await.unwrap().to_string();
    assert!(address.ends_with(&format!("#/reports/{id}")), "{address}");
    assert_eq!(
        s.js(&format!(
            "return localStorage.getItem('lookalike.token.{id}')"
        ))
        .await,
        token.as_str()
    );
    // After a reload, "My reports" has it.
    s.browser.refresh().await.unwrap();
    s.open("#/mine", "My reports").await;
    s.text("#my-reports", "Grey cat, resolved", 10).await;

    // Swagger UI's "Try it out" for a search fills in only k (no place, no radius, no filter).
    s.goto("docs").await;
    let operation = "#operations-search-search";
    s.text(operation, "/v1/search", 30).await;
    s.click(&format!("{operation} .opblock-summary-control"))
        .await;
    // The reference opens with "Try it out" on (docs.js): the form shows at once.
    let form_shown = "return document.querySelector('#operations-search-search tr[data-property-name=k] input') !== null";
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.js(form_shown).await != true {
        let row = s
            .js("const r = document.querySelector('#operations-search-search tr[data-property-name=k]'); return r ? r.outerHTML : 'no row'")
            .await;
        assert!(Instant::now() < deadline, "no field for k: {row}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let filled = s
        .js("return Object.fromEntries(['k', 'latitude', 'longitude', 'radius_km', 'breed', 'since', \
             'kind', 'species', 'min_score'].map((n) => { \
             const row = document.querySelector(`#operations-search-search tr[data-property-name=${n}]`); \
             const input = row && row.querySelector('input:not([type=checkbox]), textarea'); \
             return [n, input ? input.value : 'no field']; }))")
        .await;
    for (field, value) in filled.as_object().unwrap() {
        let expected = if field == "k" { "10" } else { "" };
        assert_eq!(value, expected, "{field} in {filled}");
    }

    // The operators' view changes its numbers in place, not its elements.
    s.open("#/status", "Service status").await;
    s.text("#stats", "Model permits in use", 10).await;
    s.js("document.getElementById('stats').kept = 'yes'").await;
    tokio::time::sleep(Duration::from_millis(4500)).await;
    assert_eq!(
        s.js("return document.getElementById('stats').kept").await,
        "yes"
    );
    s.close().await;
}
