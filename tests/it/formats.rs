//! Photo formats in the database: a stored photo's format is its stable name
//! (`PhotoFormat::name`), read back as such, and the column takes no other spelling (migration
//! 0016), so no `Debug` string can creep back in.

use crate::common::*;
use lookalike::imaging::PhotoFormat;

#[tokio::test]
async fn a_stored_photo_keeps_its_format_by_its_stable_name() {
    let app = app(default_gate_settings(), uploads()).await;
    let pool = app.state.store.pool();
    create_report(&app.router, "lost", "cat", &sample("chelsea.png")).await;
    create_report(&app.router, "found", "other", &sample("rocket.jpg")).await;
    let stored: Vec<String> = sqlx::query_scalar("SELECT format FROM blobs ORDER BY format")
        .fetch_all(pool)
        .await
        .unwrap();
    assert_eq!(stored, [PhotoFormat::Jpeg.name(), PhotoFormat::Png.name()]);
    assert_eq!(stored, ["jpeg", "png"]);

    // Read back by that name: the report shows it, and the photo is served as its type.
    let (status, _, reports) = send(&app.router, get("/v1/reports?limit=10")).await;
    assert_eq!(status, axum::http::StatusCode::OK, "{reports}");
    let mut shown: Vec<&str> = reports["reports"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["photos"].as_array().unwrap())
        .map(|p| p["format"].as_str().unwrap())
        .collect();
    shown.sort_unstable();
    assert_eq!(shown, ["jpeg", "png"]);

    // Any other spelling (the enum's `Debug` name, an abbreviation) is refused by the column and
    // by the reader.
    for other in ["Png", "JPEG", "jpg", "gif"] {
        let refused = sqlx::query("UPDATE blobs SET format = $1 WHERE format = 'png'")
            .bind(other)
            .execute(pool)
            .await;
        assert!(refused.is_err(), "{other} was stored");
        assert_eq!(PhotoFormat::from_name(other), None, "{other}");
    }
}
