// The search view: by photo (with filters), and by breed name.
import { h, show, notice, percent, when } from "./dom.js";
import { api } from "./api.js";
import { KINDS, SPECIES, photoPicker, select, placeFields } from "./fields.js";

export function searchView() {
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

export function resultCard(r, score) {
  return h("li", { class: "card result" },
    h("a", { href: `#/report/${r.report.id}` },
      h("img", { src: r.thumbnail_url, alt: `Photo of ${r.report.title}`, loading: "lazy" }),
      h("div", { class: "body" },
        h("div", { class: "title" }, r.report.title),
        h("div", { class: "meta" }, `${r.report.kind} · ${r.report.species} · ${when(r.report.created_at)}`),
        h("div", { class: "score" }, score))));
}

/** Results at or above the relevance floor; a way to see the weaker ones when some were left out. */
export function results(list, answer, showWeaker) {
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
