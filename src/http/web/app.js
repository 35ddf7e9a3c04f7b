// lookalike's page: search by photo, post a report and follow it, a report's page, and the
// operators' view. Plain JavaScript, no build step; every value from the API reaches the page as
// text (never as HTML).
"use strict";

const KINDS = ["lost", "found", "sighting"];
const SPECIES = ["dog", "cat", "other"];
const MAX_REPORT_PHOTOS = 5;
const main = document.getElementById("main");
let leaving = []; // what the current view must stop (timers) when another one opens

// ---------- DOM ----------

/** An element with attributes (on* are listeners) and children (strings become text). */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (value === true) el.setAttribute(name, "");
    else el.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function show(...nodes) {
  main.replaceChildren(...nodes);
  window.scrollTo(0, 0);
  main.focus({ preventScroll: true });
}

function notice(kind, ...text) {
  return h("div", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" }, ...text);
}

function percent(score) {
  return `${Math.round(Math.max(0, Math.min(1, score)) * 100)}% alike`;
}

function when(iso) {
  return new Date(iso).toLocaleString();
}

// ---------- API ----------

/** An API answer that is not 2xx, in words a person can act on. */
class ApiError extends Error {
  constructor(status, body, retryAfter) {
    super(explain(status, body, retryAfter));
    this.status = status;
    this.code = body && body.code;
  }
}

function explain(status, body, retryAfter) {
  const message = (body && body.message) || "";
  const wait = retryAfter ? ` Please try again in ${retryAfter} second${retryAfter === "1" ? "" : "s"}.` : " Please try again in a moment.";
  switch (status) {
    case 503: return `The service is busy right now.${wait}`;
    case 429: return `Too many requests from here.${wait}`;
    case 413: return `That photo is too large. ${message}`;
    case 415: return `That file is not a photo this service reads (JPEG, PNG or WebP). ${message}`;
    case 401: return "This service needs an API key: enter it below.";
    case 403: return "That owner token does not belong to this report.";
    case 404: return "Not found: it may have been deleted.";
    case 409: return message || "That does not fit your storage quota.";
    default: return message || `Something went wrong (HTTP ${status}).`;
  }
}

async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  const key = localStorage.getItem("lookalike.apiKey");
  if (key) headers.set("X-API-Key", key);
  let response;
  try {
    response = await fetch(path, { ...options, headers });
  } catch (e) {
    throw new ApiError(0, { message: "Could not reach the service. Check your connection and try again." });
  }
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
  if (!response.ok) {
    if (response.status === 401) askForKey();
    throw new ApiError(response.status, body, response.headers.get("Retry-After"));
  }
  return body;
}

function askForKey() {
  const panel = document.getElementById("key-panel");
  panel.hidden = false;
  document.getElementById("api-key").focus();
}

document.getElementById("key-form").addEventListener("submit", (e) => {
  e.preventDefault();
  localStorage.setItem("lookalike.apiKey", document.getElementById("api-key").value.trim());
  document.getElementById("key-panel").hidden = true;
  route();
});

// Owner tokens are shown once by the service; this browser keeps them so that their owner can
// act on their reports later.
const tokens = {
  get: (id) => localStorage.getItem(`lookalike.token.${id}`) || "",
  set: (id, token) => localStorage.setItem(`lookalike.token.${id}`, token),
  forget: (id) => localStorage.removeItem(`lookalike.token.${id}`),
};

// ---------- shared pieces ----------

/** A drop zone over a file input: drag and drop, the file picker, or (on phones) the camera. */
function photoPicker({ name, multiple, label, onChange }) {
  const input = h("input", { type: "file", id: `${name}-input`, name, accept: "image/jpeg,image/png,image/webp", multiple, required: true });
  const camera = h("input", { type: "file", id: `${name}-camera`, accept: "image/*", capture: "environment", class: "camera" });
  const previews = h("div", { class: "previews", "aria-live": "polite" });
  const zone = h("div", { class: "drop" },
    h("label", { for: input.id }, label),
    h("p", { class: "hint" }, multiple ? `Drop up to ${MAX_REPORT_PHOTOS} photos here, or choose them.` : "Drop a photo here, or choose one."),
    input,
    h("div", { class: "camera-row" }, h("label", { for: camera.id, class: "hint" }, "Or take a photo:"), camera),
    previews);
  let files = [];
  const setFiles = (list) => {
    files = Array.from(list).filter((f) => f.type.startsWith("image/")).slice(0, multiple ? MAX_REPORT_PHOTOS : 1);
    previews.replaceChildren(...files.map((f) => h("img", { src: URL.createObjectURL(f), alt: `Chosen photo ${f.name}` })));
    input.required = files.length === 0;
    if (onChange) onChange(files);
  };
  input.addEventListener("change", () => setFiles(input.files));
  camera.addEventListener("change", () => setFiles(camera.files));
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => { e.preventDefault(); zone.classList.remove("over"); setFiles(e.dataTransfer.files); });
  return { element: zone, files: () => files };
}

function select(name, label, options, { any } = {}) {
  return h("div", {},
    h("label", { for: name }, label),
    h("select", { id: name, name },
      any ? h("option", { value: "" }, any) : null,
      options.map((o) => h("option", { value: o }, o))));
}

/** Latitude, longitude (and a radius) with "use my location". */
function placeFields(withRadius) {
  const lat = h("input", { id: "latitude", name: "latitude", type: "number", step: "any", min: -90, max: 90, inputmode: "decimal" });
  const lon = h("input", { id: "longitude", name: "longitude", type: "number", step: "any", min: -180, max: 180, inputmode: "decimal" });
  const status = h("p", { class: "hint", "aria-live": "polite" });
  const locate = h("button", { type: "button", class: "secondary", onclick: () => {
    if (!navigator.geolocation) { status.textContent = "This browser cannot tell its location."; return; }
    status.textContent = "Finding your location…";
    navigator.geolocation.getCurrentPosition(
      (p) => { lat.value = p.coords.latitude.toFixed(5); lon.value = p.coords.longitude.toFixed(5); status.textContent = "Location filled in."; },
      () => { status.textContent = "Your location is not available; type it in instead."; });
  } }, "Use my location");
  return h("details", {},
    h("summary", {}, withRadius ? "Near a place (optional)" : "Where (optional)"),
    h("div", { class: "row" },
      h("div", {}, h("label", { for: "latitude" }, "Latitude"), lat),
      h("div", {}, h("label", { for: "longitude" }, "Longitude"), lon),
      withRadius ? h("div", {}, h("label", { for: "radius_km" }, "Within (km)"), h("input", { id: "radius_km", name: "radius_km", type: "number", min: 1, max: 20000, value: 25, inputmode: "numeric" })) : null),
    locate, status);
}

function badge(status) {
  return h("span", { class: `badge ${status}` }, status);
}

// ---------- search ----------

function searchView() {
  const picker = photoPicker({ name: "photo", multiple: false, label: "Photo of the pet" });
  const out = h("div", { "aria-live": "polite" });
  const form = h("form", { "aria-describedby": "search-hint" },
    picker.element,
    h("div", { class: "row" },
      h("fieldset", {},
        h("legend", {}, "Which reports"),
        h("div", { class: "choices" }, KINDS.map((k) => h("label", {}, h("input", { type: "checkbox", name: "kind", value: k, checked: k !== "lost" }), k)))),
      select("species", "Species", SPECIES, { any: "any species" })),
    placeFields(true),
    h("button", { type: "submit" }, "Search"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const [photo] = picker.files();
    if (!photo) { out.replaceChildren(notice("error", "Choose a photo first.")); return; }
    const data = new FormData();
    data.append("photo", photo);
    const kinds = [...form.querySelectorAll("input[name=kind]:checked")].map((c) => c.value);
    if (kinds.length) data.append("kind", kinds.join(","));
    const species = form.querySelector("#species").value;
    if (species) data.append("species", species);
    const [lat, lon, radius] = ["latitude", "longitude", "radius_km"].map((n) => form.querySelector(`#${n}`).value);
    if (lat && lon) { data.append("latitude", lat); data.append("longitude", lon); data.append("radius_km", radius || "25"); }
    data.append("k", "20");
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    out.replaceChildren(notice("info", "Comparing your photo with the reports…"));
    // `weaker`: the person asked to see the results below the relevance floor too.
    const run = async (weaker) => {
      if (weaker) data.set("min_score", "0");
      const answer = await api("/v1/search", { method: "POST", body: data });
      const more = () => run(true).catch((err) => out.replaceChildren(notice("error", err.message)));
      out.replaceChildren(...[readAs(answer), results(answer.results, answer, more)].filter(Boolean));
      const heading = out.querySelector("h2");
      if (heading) { heading.scrollIntoView({ block: "start" }); heading.focus({ preventScroll: true }); }
    };
    try {
      await run(false);
    } catch (err) {
      out.replaceChildren(notice("error", err.message));
    } finally {
      button.disabled = false;
    }
  });
  show(h("h1", {}, "Is your pet among the reports?"),
    h("p", { id: "search-hint" }, "Drop a photo of the pet: the reports whose photos look most alike come first."),
    form, out, breedSearch());
}

/** What the model read in the query photo, and how it was used. */
function readAs(answer) {
  const labels = answer.query_labels;
  if (!labels || labels.predicted_species === "other") return null;
  const breeds = (labels.breeds || []).map((b) => `${b.name} ${Math.round(b.probability * 100)}%`).join(", ");
  const used = answer.species_used
    ? (answer.species_used.how === "filter" ? ` Showing ${labels.predicted_species}s only.` : ` ${labels.predicted_species[0].toUpperCase()}${labels.predicted_species.slice(1)}s come first.`)
    : "";
  return h("p", { class: "hint" }, `Your photo looks like a ${labels.predicted_species}${breeds ? ` (${breeds})` : ""}.${used}`);
}

/** Search by breed name, without a photo. */
function breedSearch() {
  const out = h("div", { "aria-live": "polite" });
  const input = h("input", { id: "breed-q", name: "q", required: true, maxlength: 200, placeholder: "beagle, siamese, tabby, berger allemand…" });
  const form = h("form", {},
    h("div", {}, h("label", { for: "breed-q" }, "Or search by breed, without a photo"), input),
    h("button", { type: "submit", class: "secondary" }, "Search by breed"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const params = new URLSearchParams({ q: input.value.trim(), k: "20" });
    out.replaceChildren(notice("info", "Looking for that breed…"));
    try {
      const answer = await api(`/v1/search?${params}`);
      if (!answer.breeds.length) { out.replaceChildren(notice("info", "No dog or cat breed known by that name. Try another name, e.g. “labrador” or “siamese”.")); return; }
      const understood = h("p", { class: "hint" }, `Breeds: ${answer.breeds.slice(0, 8).join(", ")}${answer.breeds.length > 8 ? ", …" : ""}`);
      if (!answer.results.length) { out.replaceChildren(understood, notice("info", "No report shows that breed yet.")); return; }
      out.replaceChildren(understood, h("section", { "aria-label": "Reports by breed" },
        h("h2", { tabindex: -1 }, `${answer.results.length} report${answer.results.length === 1 ? "" : "s"}, most likely first`),
        h("ul", { class: "results" }, answer.results.map((r) => resultCard(r, `${Math.round(r.probability * 100)}% likely`)))));
    } catch (err) {
      out.replaceChildren(notice("error", err.message));
    }
  });
  return h("section", { "aria-label": "Search by breed" }, form, out);
}

function resultCard(r, score) {
  return h("li", { class: "card result" },
    h("a", { href: `#/report/${r.report.id}` },
      h("img", { src: r.thumbnail_url, alt: `Photo of ${r.report.title}`, loading: "lazy" }),
      h("div", { class: "body" },
        h("div", { class: "title" }, r.report.title),
        h("div", { class: "meta" }, `${r.report.kind} · ${r.report.species} · ${when(r.report.created_at)}`),
        h("div", { class: "score" }, score))));
}

/** Results at or above the relevance floor; a way to see the weaker ones when some were left out. */
function results(list, answer, showWeaker) {
  const hidden = (answer && answer.below_min_score) || 0;
  const weaker = hidden > 0
    ? h("button", { type: "button", class: "secondary", onclick: showWeaker }, `Show ${hidden} weaker match${hidden === 1 ? "" : "es"}`)
    : null;
  if (!list.length && hidden > 0) {
    return h("div", {}, notice("info", "No close look-alikes yet. Post a report so others can find you, or look at the weaker matches."), weaker);
  }
  if (!list.length) return notice("info", "No report matches these filters yet. Try fewer filters, or post a report so others can find you.");
  return h("section", { "aria-label": "Results" },
    h("h2", { tabindex: -1 }, `${list.length} look-alike report${list.length === 1 ? "" : "s"}, most alike first`),
    h("ul", { class: "results" }, list.map((r) => resultCard(r, percent(r.score)))),
    weaker);
}

// ---------- post a report ----------

function newReportView() {
  const guess = h("p", { class: "hint", "aria-live": "polite" });
  const picker = photoPicker({ name: "photos", multiple: true, label: `Photos (1 to ${MAX_REPORT_PHOTOS})`, onChange: (files) => prefill(files, form, guess) });
  const out = h("div", { "aria-live": "polite" });
  const form = h("form", {},
    guess,
    h("div", { class: "row" }, select("kind", "This pet is", KINDS), select("species", "Species", SPECIES)),
    h("div", {}, h("label", { for: "title" }, "Title"), h("input", { id: "title", name: "title", required: true, maxlength: 200, placeholder: "Brown labrador near the park" })),
    h("div", {}, h("label", { for: "description" }, "Description (optional)"), h("textarea", { id: "description", name: "description", rows: 3, maxlength: 5000 })),
    h("div", {}, h("label", { for: "contact" }, "How to reach you (optional)"), h("input", { id: "contact", name: "contact", maxlength: 200, autocomplete: "email", "aria-describedby": "contact-hint" }),
      h("p", { class: "hint", id: "contact-hint" }, "Only you see it: others write to you through this page, and the place is shown to them to about a kilometre."),
      h("label", {}, h("input", { type: "checkbox", id: "contact_public", name: "contact_public" }), " Show my contact to everyone")),
    placeFields(false),
    picker.element,
    h("button", { type: "submit" }, "Post the report"));
  form.querySelector("#species").addEventListener("change", (e) => { e.target.dataset.touched = "1"; });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const photos = picker.files();
    if (!photos.length) { out.replaceChildren(notice("error", "Add at least one photo.")); return; }
    const data = new FormData();
    for (const name of ["kind", "species", "title", "description", "contact", "latitude", "longitude"]) {
      const value = form.querySelector(`#${name}`).value.trim();
      if (value) data.append(name, value);
    }
    if (form.querySelector("#contact_public").checked) data.append("contact_public", "true");
    photos.forEach((p) => data.append("photos", p));
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    out.replaceChildren(notice("info", "Sending your report…"));
    try {
      const report = await api("/v1/reports", { method: "POST", body: data });
      tokens.set(report.id, report.owner_token);
      form.remove();
      out.replaceChildren(
        notice("success",
          h("strong", {}, "Your report is posted. "),
          "Keep this owner token: you need it to mark the report resolved or to delete it, and it is shown only now.",
          h("code", { class: "token", id: "owner-token" }, report.owner_token),
          "This browser remembers it too."),
        h("div", { id: "report-live" }));
      followReport(report.id, document.getElementById("report-live"));
    } catch (err) {
      out.replaceChildren(notice("error", err.message));
      button.disabled = false;
    }
  });
  show(h("h1", {}, "Post a report"),
    h("p", {}, "Lost a pet, found one, or saw one? Post it with photos: others searching by photo will find it, and it lists the reports that look alike."),
    form, out);
}

/** Pre-fills the species (and a title) from what the model reads in the first photo; the person
 *  can change both. A failure leaves the form as it is. */
let prefilled = 0;
async function prefill(files, form, guess) {
  const asked = ++prefilled;
  guess.textContent = "";
  if (!files.length) return;
  const data = new FormData();
  data.append("photos", files[0]);
  try {
    const answer = await api("/v1/embeddings", { method: "POST", body: data });
    const labels = answer.embeddings[0] && answer.embeddings[0].labels;
    if (asked !== prefilled || !labels || labels.predicted_species === "other") return;
    const species = form.querySelector("#species");
    // The person's own choice is never overwritten.
    if (species.dataset.touched) return;
    species.value = labels.predicted_species;
    const title = form.querySelector("#title");
    const breed = labels.breeds && labels.breeds[0];
    if (breed && !title.value) title.placeholder = `${breed.name[0].toUpperCase()}${breed.name.slice(1)} near the park`;
    guess.textContent = `The photo looks like a ${labels.predicted_species}${breed ? ` (maybe ${breed.name})` : ""}: species filled in; change it if it is wrong.`;
  } catch (err) {
    // The form works without the guess.
  }
}

// ---------- a report ----------

function reportView(id) {
  const place = h("div", {});
  show(h("h1", {}, "Report"), place);
  followReport(id, place);
}

/** `Authorization` for the report's owner, when this browser holds its owner token. */
function ownerHeaders(id) {
  const token = tokens.get(id);
  return token ? { Authorization: `Bearer ${token}` } : {};
}

/** Shows a report in `place`, refreshing it until its photos are ready and its matches in; its
 * messages (the owner's) or the form to write to its owner (anyone else's) below, made once so
 * that refreshing never loses what is being typed. */
function followReport(id, place) {
  let timer = null;
  let readySince = null;
  const stop = () => clearTimeout(timer);
  leaving.push(stop);
  const shown = h("div", {});
  const messages = h("div", {});
  place.replaceChildren(shown, messages);
  const load = async () => {
    try {
      const report = await api(`/v1/reports/${id}`, { headers: ownerHeaders(id) });
      shown.replaceChildren(renderReport(report, () => { stop(); load(); }));
      if (!messages.hasChildNodes()) messages.append(tokens.get(id) ? inbox(id) : writeToOwner(id));
      const pending = report.embedding_status === "pending";
      if (!pending && readySince === null) readySince = Date.now();
      // Matches are found just after the photos are ready: look again for a little while.
      if (pending || (report.possible_matches || []).length === 0 && Date.now() - readySince < 15000) {
        timer = setTimeout(load, pending ? 1000 : 2000);
      }
    } catch (err) {
      shown.replaceChildren(notice("error", err.message));
      if (err.status === 503 || err.status === 429 || err.status === 0) timer = setTimeout(load, 3000);
    }
  };
  load();
}

/** The form a visitor writes to the report's owner with (the contact stays private). */
function writeToOwner(id) {
  const out = h("div", { "aria-live": "polite" });
  const text = h("textarea", { id: "message-text", rows: 3, maxlength: 2000, required: true });
  const reply = h("input", { id: "message-reply-to", maxlength: 200, autocomplete: "email" });
  const form = h("form", {},
    h("label", { for: text.id }, "Message"), text,
    h("label", { for: reply.id }, "How to answer you (optional; only the owner sees it)"), reply,
    h("button", { type: "submit" }, "Send"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await api(`/v1/reports/${id}/messages`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ text: text.value, reply_to: reply.value.trim() || undefined }),
      });
      text.value = "";
      out.replaceChildren(notice("success", "Sent: the owner reads it here."));
    } catch (err) {
      out.replaceChildren(notice("error", err.message));
    } finally {
      button.disabled = false;
    }
  });
  return h("section", { "aria-labelledby": "write-title", class: "panel" },
    h("h2", { id: "write-title" }, "Write to the owner"), form, out);
}

/** The owner's messages, newest first. */
function inbox(id) {
  const list = h("div", { id: "messages", "aria-live": "polite" }, h("p", { class: "hint" }, "Loading messages…"));
  const load = async () => {
    try {
      const page = await api(`/v1/reports/${id}/messages?limit=50`, { headers: ownerHeaders(id) });
      list.replaceChildren(page.messages.length
        ? h("ul", { class: "messages" }, page.messages.map((m) => h("li", { class: "card message" },
            h("div", { class: "meta" }, when(m.created_at), m.reply_to ? ` · answer to: ${m.reply_to}` : ""),
            h("p", {}, m.text))))
        : h("p", { class: "hint" }, "No messages yet."));
    } catch (err) {
      list.replaceChildren(notice("error", err.message));
    }
  };
  load();
  return h("section", { "aria-labelledby": "inbox-title", class: "panel" },
    h("h2", { id: "inbox-title" }, "Messages to you"),
    h("button", { type: "button", class: "secondary", onclick: load }, "Refresh"),
    list);
}

function renderReport(report, reload) {
  const photos = report.photo_urls.map((urls, i) => {
    const photo = report.photos[i] || {};
    // The thumbnail is made with the photo's embedding: until then, a placeholder.
    const picture = photo.embedding_status === "ready"
      ? h("img", { src: urls.thumbnail_url, alt: `Photo ${i + 1} of ${report.title}` })
      : h("div", { class: "thumb-placeholder", role: "img", "aria-label": `Photo ${i + 1} of ${report.title}, ${photo.embedding_status === "failed" ? "unreadable" : "being prepared"}` },
        photo.embedding_status === "failed" ? "Unreadable" : "Preparing…");
    return h("li", {},
      h("a", { href: urls.url }, picture),
      h("div", { class: "meta" }, badge(photo.embedding_status || "pending")),
      photo.embedding_error ? h("div", { class: "meta" }, photo.embedding_error) : null);
  });
  const matches = report.possible_matches || [];
  const status = report.embedding_status;
  return h("article", { "aria-labelledby": "report-title", class: "report" },
    h("div", {},
      h("h2", { id: "report-title" }, report.title, " ", badge(report.status)),
      h("dl", { class: "facts" },
        h("dt", {}, "Kind"), h("dd", {}, `${report.kind} ${report.species}`),
        h("dt", {}, "Posted"), h("dd", {}, when(report.created_at)),
        report.latitude != null ? [h("dt", {}, "Where"), h("dd", {}, report.location_rounded
          ? `about ${report.latitude.toFixed(2)}, ${report.longitude.toFixed(2)} (to a kilometre)`
          : `${report.latitude.toFixed(5)}, ${report.longitude.toFixed(5)}`)] : null,
        report.contact ? [h("dt", {}, "Contact"), h("dd", { id: "contact-shown" }, report.contact, report.contact_public ? "" : " (only you see it)")] : null,
        h("dt", {}, "Photos"), h("dd", { id: "embedding-status" }, badge(status), status === "pending" ? " being compared… this page updates by itself." : status === "ready" ? " ready for matching." : " a photo could not be read.")),
      report.description ? h("p", {}, report.description) : null,
      h("ul", { class: "photos" }, photos),
      ownerActions(report, reload)),
    h("section", { "aria-labelledby": "matches-title" },
      h("h2", { id: "matches-title" }, "Possible matches"),
      matches.length
        ? h("ul", { class: "results", id: "matches" }, matches.map((m) => h("li", { class: "card match" },
            h("a", { href: `#/report/${m.report_id}` },
              h("img", { src: `/v1/photos/${m.matched_photo_id}/thumbnail`, alt: `Photo of ${m.title}`, loading: "lazy" }),
              h("div", { class: "body" },
                h("div", { class: "title" }, m.title),
                h("div", { class: "meta" }, m.kind),
                h("div", { class: "score" }, percent(m.score)))))))
        : h("p", { class: "hint" }, status === "ready" ? "None yet: reports posted later are compared with this one too." : "They appear once the photos are ready.")));
}

function ownerActions(report, reload) {
  const out = h("div", { "aria-live": "polite" });
  const token = h("input", { id: "owner-token-input", type: "password", autocomplete: "off", value: tokens.get(report.id) });
  const act = async (method, body, done) => {
    try {
      await api(`/v1/reports/${report.id}`, {
        method,
        headers: { Authorization: `Bearer ${token.value.trim()}`, ...(body ? { "Content-Type": "application/json" } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
      tokens.set(report.id, token.value.trim());
      done();
    } catch (err) {
      out.replaceChildren(notice("error", err.message));
    }
  };
  const next = report.status === "open" ? "resolved" : "open";
  return h("section", { "aria-labelledby": "owner-title", class: "panel" },
    h("h2", { id: "owner-title" }, "Your report?"),
    h("label", { for: token.id }, "Owner token"),
    token,
    h("div", { class: "actions" },
      h("button", { type: "button", onclick: () => act("PATCH", { status: next }, reload) }, next === "resolved" ? "Mark as resolved" : "Open it again"),
      h("button", { type: "button", class: "danger", onclick: () => {
        if (!confirm("Delete this report and its photos for good?")) return;
        act("DELETE", null, () => { tokens.forget(report.id); show(h("h1", {}, "Report deleted"), notice("success", "The report and its photos are deleted.")); });
      } }, "Delete")),
    out);
}

// ---------- operators ----------

function statusView() {
  const place = h("div", { "aria-live": "polite" });
  show(h("h1", {}, "Service status"), h("p", { class: "hint" }, "Refreshes every 2 seconds."), place);
  let timer = null;
  leaving.push(() => clearTimeout(timer));
  const load = async () => {
    try {
      place.replaceChildren(renderStatus(await api("/v1/status")));
    } catch (err) {
      place.replaceChildren(notice("error", err.message));
    }
    timer = setTimeout(load, 2000);
  };
  load();
}

function stat(title, big, ...rest) {
  return h("section", { class: "stat" }, h("h2", {}, title), h("div", { class: typeof big === "number" || /^[\d.]/.test(big) ? "big" : "name" }, big), ...rest);
}

function renderStatus(s) {
  // The load figures are for operators only (this host, or the operator key).
  if (!s.gate) return notice("info", `lookalike ${s.version}, model ${s.model.name} ${s.model.version}. ${s.detail || ""}`);
  const g = s.gate;
  const q = s.jobs.queue;
  const permits = h("meter", { min: 0, max: g.permits, value: g.permits_in_use, "aria-label": "Model permits in use" });
  return h("div", { class: "stats", id: "stats" },
    stat("Model permits in use", `${g.permits_in_use} / ${g.permits}`, permits,
      h("div", { class: "meta" }, `${g.waiting_interactive} searches and ${g.waiting_background} jobs waiting; batches of up to ${g.max_batch}`)),
    stat("Estimated wait", `${g.estimated_wait_seconds.toFixed(2)} s`, h("div", { class: "meta" }, `${g.images_total} photos embedded in ${g.runs_total} runs`)),
    stat("Jobs queued", q ? q.queued : "?", h("div", { class: "meta" }, q ? `${q.running} running, ${q.failed} failed; oldest waiting ${q.oldest_queued_age_seconds.toFixed(0)} s` : "the database is not answering")),
    stat("Uploads in progress", `${s.uploads.in_use} / ${s.uploads.permits}`, h("div", { class: "meta" }, `${s.uploads.waiting} waiting, ${s.uploads.rejected_total} turned away`)),
    stat("Decoding", `${s.decode.in_use} / ${s.decode.permits}`, h("div", { class: "meta" }, `${s.decode.waiting} waiting`)),
    stat("Database connections", `${s.database.in_use} / ${s.database.connections}`, h("div", { class: "meta" }, `${s.database.idle} idle`)),
    stat("Model", s.model.name, h("div", { class: "meta" }, `${s.model.version}, ${s.model.dim} dimensions`)),
    stat("Up for", duration(s.uptime_seconds), h("div", { class: "meta" }, `version ${s.version}`)));
}

function duration(seconds) {
  const d = Math.floor(seconds / 86400), hr = Math.floor(seconds % 86400 / 3600), m = Math.floor(seconds % 3600 / 60);
  return d ? `${d} d ${hr} h` : hr ? `${hr} h ${m} min` : `${m} min ${seconds % 60} s`;
}

// ---------- routing ----------

function route() {
  leaving.forEach((stop) => stop());
  leaving = [];
  const hash = location.hash.replace(/^#/, "") || "/";
  const report = hash.match(/^\/report\/([0-9a-f-]{36})$/i);
  let current = "search";
  if (report) { current = ""; reportView(report[1]); }
  else if (hash === "/new") { current = "new"; newReportView(); }
  else if (hash === "/status") { current = "status"; statusView(); }
  else searchView();
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `lookalike: ${main.querySelector("h1").textContent}`;
}

window.addEventListener("hashchange", route);
route();
