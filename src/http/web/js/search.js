// The search view: by photo (with filters), and by breed name.
import { h, show, notice, percent, when, mb } from "./dom.js";
import { api, tokens } from "./api.js";
import { shrink } from "./photos.js";
import { KINDS, SPECIES, photoPicker, select, placeFields } from "./fields.js";

export function searchView() {
  const picker = photoPicker({ name: "photo", multiple: false, label: "Photo of the pet" });
  const out = h("div", { "aria-live": "polite" });
  const form = h("form", { "aria-describedby": "search-hint" },
    picker.element,
    h("div", { class: "row" },
      h("fieldset", {},
        h("legend", {}, "Which reports"),
        h("div", { class: "choices" }, KINDS.map((k) => h("label", {}, h("input", { type: "checkbox", name: "kind", value: k, checked: true }), k)))),
      select("species", "Species", SPECIES, { any: "any species" })),
    placeFields(true),
    h("button", { type: "submit" }, "Search"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const [chosen] = picker.files();
    if (!chosen) { out.replaceChildren(notice("error", "Choose a photo first.")); return; }
    const kinds = [...form.querySelectorAll("input[name=kind]:checked")].map((c) => c.value);
    if (!kinds.length) { out.replaceChildren(notice("error", "Tick at least one kind of report: lost, found or sighting.")); return; }
    const [lat, lon, radius] = ["latitude", "longitude", "radius_km"].map((n) => form.querySelector(`#${n}`).value.trim());
    // The radius belongs to the place picker and applies only with a place; half a place is refused.
    if ((lat === "") !== (lon === "")) {
      out.replaceChildren(notice("error", "A place needs both a latitude and a longitude: choose a town, use “Near me”, or clear the one you typed."));
      form.querySelector(lat ? "#longitude" : "#latitude").focus();
      return;
    }
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    out.replaceChildren(notice("info", "Preparing your photo…"));
    const photo = await shrink(chosen);
    const data = new FormData();
    data.append("photo", photo);
    data.append("kind", kinds.join(","));
    const species = form.querySelector("#species").value;
    if (species) data.append("species", species);
    const place = lat && lon ? { latitude: Number(lat), longitude: Number(lon) } : null;
    if (place) { data.append("latitude", lat); data.append("longitude", lon); data.append("radius_km", radius || "25"); }
    data.append("k", "20");
    out.replaceChildren(notice("info", `Comparing your photo (${mb(photo.size)}) with the reports…`));
    // `weaker`: the person asked to see the results below the relevance floor too.
    const run = async (weaker) => {
      if (weaker) data.set("min_score", "0");
      const answer = await api("/v1/search", { method: "POST", body: data });
      const more = () => run(true).catch((err) => out.replaceChildren(notice("error", err.message)));
      // A finder never sees their own report: those this browser posted are left out.
      const mine = new Set(tokens.ids());
      const others = answer.results.filter((r) => !mine.has(r.report.id));
      out.replaceChildren(...[readAs(answer), results(others, answer, more, place)].filter(Boolean));
      const heading = out.querySelector("h2");
      if (heading) { heading.scrollIntoView({ block: "start" }); heading.focus({ preventScroll: true }); }
    };
    try {
      await run(false);
    } catch (err) {
      // Said where the person looks: below the button, focused.
      const problem = h("div", { class: "notice error", role: "alert", tabindex: -1 }, err.message);
      out.replaceChildren(problem);
      problem.focus();
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

/** Kilometres between two places (haversine), for "about 3 km away". */
function kilometres(a, b) {
  const rad = (d) => d * Math.PI / 180;
  const dLat = rad(b.latitude - a.latitude), dLon = rad(b.longitude - a.longitude);
  const x = Math.sin(dLat / 2) ** 2 + Math.cos(rad(a.latitude)) * Math.cos(rad(b.latitude)) * Math.sin(dLon / 2) ** 2;
  return 6371 * 2 * Math.asin(Math.sqrt(x));
}

/** Where a report is, in words: its distance from `place` when both are known, else its rough
 *  position; nothing when the report has none. */
export function where(report, place) {
  if (report.distance_km != null) return `about ${Math.max(1, Math.round(report.distance_km))} km away`;
  if (report.latitude == null || report.longitude == null) return null;
  if (place) return `about ${Math.max(1, Math.round(kilometres(place, report)))} km away`;
  return `near ${report.latitude.toFixed(2)}, ${report.longitude.toFixed(2)}`;
}

export function resultCard(r, score, place) {
  return h("li", { class: "card result" },
    h("a", { href: `#/reports/${r.report.id}` },
      h("img", { src: r.thumbnail_url, alt: `Photo of ${r.report.title}`, loading: "lazy" }),
      h("div", { class: "body" },
        h("div", { class: "title" }, r.report.title),
        h("div", { class: "meta" }, `${r.report.kind} · ${r.report.species} · ${when(r.report.created_at)}`),
        where(r.report, place) ? h("div", { class: "meta where" }, where(r.report, place)) : null,
        h("div", { class: "score" }, score))));
}

/** Results at or above the relevance floor; a way to see the weaker ones when some were left out. */
export function results(list, answer, showWeaker, place) {
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
    h("ul", { class: "results" }, list.map((r) => resultCard(r, percent(r.score), place))),
    weaker);
}
