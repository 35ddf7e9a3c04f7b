//! The share page (`/r/{id}`: preview metadata for link unfurlers, then on to the app) and the
//! printable poster (`/r/{id}/poster`), rendered from what the public may see of a report. Every
//! piece of report text goes through [`escape`].

use std::fmt::Write;

use chrono::{DateTime, Utc};
use qrcode::QrCode;
use qrcode::render::svg;
use uuid::Uuid;

use crate::reports::{Report, ReportKind, Species};

/// Text made safe for HTML content and double- or single-quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A QR code of `url` as an SVG document (black on white, with its quiet zone), or `None` when
/// the text is too long for a QR code (a URL of ours never is).
pub fn qr_svg(url: &str) -> Option<String> {
    let code = QrCode::new(url.as_bytes()).ok()?;
    Some(
        code.render::<svg::Color<'_>>()
            .min_dimensions(200, 200)
            .dark_color(svg::Color("#000000"))
            .light_color(svg::Color("#ffffff"))
            .build(),
    )
}

/// What a poster or a preview says of a report, from its public view only.
pub struct Summary {
    /// "Lost dog", "Found cat", "Seen: animal".
    pub headline: String,
    /// The report's title.
    pub title: String,
    /// The most likely breed of its first photo, when the model is fairly sure.
    pub breed: Option<&'static str>,
    /// When it was posted.
    pub date: String,
    /// The public (rounded) position, in words.
    pub place: Option<String>,
    /// The contact, only when the owner published it.
    pub contact: Option<String>,
    /// The first photo.
    pub photo: Option<Uuid>,
}

/// Least probability of a breed worth printing.
const BREED_FLOOR: f32 = 0.3;

impl Summary {
    /// The summary of `report` as the public sees it (the caller passes the public view).
    pub fn of(report: &Report) -> Self {
        let animal = match report.species {
            Species::Dog => "dog",
            Species::Cat => "cat",
            Species::Other => "animal",
        };
        let headline = match report.kind {
            ReportKind::Lost => format!("Lost {animal}"),
            ReportKind::Found => format!("Found {animal}"),
            ReportKind::Sighting => format!("Seen: {animal}"),
        };
        let first = report.photos.first();
        Summary {
            headline,
            title: report.title.clone(),
            breed: first
                .and_then(|p| p.breeds.first())
                .filter(|b| b.probability >= BREED_FLOOR)
                .map(|b| b.name),
            date: day(report.created_at),
            place: report.public_location.map(|(lat, lon)| place(lat, lon)),
            contact: report
                .contact
                .clone()
                .filter(|c| report.contact_public && !c.trim().is_empty()),
            photo: first.map(|p| p.id),
        }
    }

    /// One line for previews: no contact, nothing finer than the public position.
    pub fn description(&self) -> String {
        let mut out = self.headline.clone();
        if let Some(breed) = self.breed {
            let _ = write!(out, ", looks like a {}", breed.replace('_', " "));
        }
        let _ = write!(out, ", posted {}", self.date);
        if let Some(place) = &self.place {
            let _ = write!(out, ", {place}");
        }
        out.push('.');
        out
    }
}

fn day(t: DateTime<Utc>) -> String {
    t.format("%-d %B %Y").to_string()
}

/// "around 48.86° N, 2.35° E": the public position, which is rounded to about a kilometre.
fn place(lat: f64, lon: f64) -> String {
    let ns = if lat < 0.0 { 'S' } else { 'N' };
    let ew = if lon < 0.0 { 'W' } else { 'E' };
    format!("around {:.2}° {ns}, {:.2}° {ew}", lat.abs(), lon.abs())
}

/// The share page: OpenGraph and Twitter card tags, and a script that sends people on to the
/// report in the app (crawlers read the tags and run no script). `origin` is the service's own
/// `scheme://host`, for the absolute URLs previews need.
pub fn share_page(id: Uuid, summary: &Summary, origin: Option<&str>) -> String {
    let title = escape(&format!("{}: {}", summary.headline, summary.title));
    let description = escape(&summary.description());
    let app = format!("/#/reports/{id}");
    let mut absolute = String::new();
    if let Some(origin) = origin {
        let origin = escape(origin);
        let _ = writeln!(
            absolute,
            "<meta property=\"og:url\" content=\"{origin}/r/{id}\">"
        );
        if let Some(photo) = summary.photo {
            let _ = write!(
                absolute,
                "<meta property=\"og:image\" content=\"{origin}/v1/photos/{photo}\">\n\
                 <meta name=\"twitter:image\" content=\"{origin}/v1/photos/{photo}\">\n"
            );
        }
    }
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<meta name=\"description\" content=\"{description}\">\n\
         <meta property=\"og:type\" content=\"website\">\n\
         <meta property=\"og:site_name\" content=\"lookalike\">\n\
         <meta property=\"og:title\" content=\"{title}\">\n\
         <meta property=\"og:description\" content=\"{description}\">\n{absolute}\
         <meta name=\"twitter:card\" content=\"{card}\">\n\
         <meta name=\"twitter:title\" content=\"{title}\">\n\
         <meta name=\"twitter:description\" content=\"{description}\">\n\
         <link rel=\"stylesheet\" href=\"/assets/app.css\">\n\
         <script src=\"/assets/share.js\" defer></script>\n</head>\n<body>\n<main>\n\
         <h1>{title}</h1>\n<p>{description}</p>\n\
         <p><a id=\"open-report\" href=\"{app}\">Open the report</a> · \
         <a href=\"/r/{id}/poster\">Print a poster</a></p>\n</main>\n</body>\n</html>\n",
        card = if summary.photo.is_some() {
            "summary_large_image"
        } else {
            "summary"
        },
    )
}

/// The printable poster: photo, headline, breed, date, rough place, contact only if published,
/// and a QR code of the share link (`qr`, an SVG document, inlined).
pub fn poster_page(id: Uuid, summary: &Summary, share_url: &str, qr: &str) -> String {
    let headline = escape(&summary.headline);
    let mut facts = String::new();
    if let Some(breed) = summary.breed {
        let _ = write!(
            facts,
            "<li>Looks like: <strong>{}</strong></li>",
            escape(&breed.replace('_', " "))
        );
    }
    let _ = write!(facts, "<li>Posted: {}</li>", escape(&summary.date));
    if let Some(place) = &summary.place {
        let _ = write!(
            facts,
            "<li>Where: {} (within about 1 km)</li>",
            escape(place)
        );
    }
    let photo = summary
        .photo
        .map(|p| {
            format!(
                "<img class=\"poster-photo\" src=\"/v1/photos/{p}\" alt=\"Photo of the animal\">"
            )
        })
        .unwrap_or_default();
    let contact = match &summary.contact {
        Some(c) => format!(
            "<p class=\"poster-contact\">Contact: <strong>{}</strong></p>",
            escape(c)
        ),
        None => "<p class=\"poster-contact\">Scan the code to write to the owner.</p>".to_owned(),
    };
    // The SVG document's XML declaration has no place inside HTML.
    let qr = qr.find("<svg").map_or("", |at| &qr[at..]);
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Poster: {headline}</title>\n<link rel=\"stylesheet\" href=\"/assets/poster.css\">\n\
         <script src=\"/assets/poster.js\" defer></script>\n</head>\n<body>\n\
         <main class=\"poster\" data-report=\"{id}\">\n<h1 class=\"poster-kind\">{headline}</h1>\n\
         {photo}\n<h2 class=\"poster-title\">{title}</h2>\n<ul class=\"poster-facts\">{facts}</ul>\n\
         {contact}\n<figure class=\"poster-qr\">{qr}<figcaption>{url}</figcaption></figure>\n\
         </main>\n<p class=\"no-print\"><button type=\"button\" id=\"print-poster\">Print</button> \
         <a href=\"/#/reports/{id}\">Back to the report</a></p>\n</body>\n</html>\n",
        title = escape(&summary.title),
        url = escape(share_url),
    )
}

#[cfg(test)]
mod tests;
