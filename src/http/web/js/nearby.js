// "Reports near a place" (#/nearby): no photo needed; a town, "Near me" or coordinates, a radius
// and the usual filters; nearest first, each with its distance (to the report's public position,
// which is rounded to about a kilometre).

import { h, show, notice } from "./dom.js";
import { api } from "./api.js";
import { KINDS, SPECIES } from "./fields.js";
import { placePicker } from "./places.js";

/** "850 m away", "12 km away". */
export function distanceText(km) {
  if (km < 1) return `${Math.max(100, Math.round(km * 10) * 100)} m away`;
  return `${km < 10 ? km.toFixed(1) : Math.round(km)} km away`;
}

/** The view. */
export function nearbyView() {
  const out = h("div", { id: "nearby-results" });
  const picker = placePicker({ withRadius: true, radius: 25, legend: "Near", onPick: () => run() });
  const choice = (name, label, options, any, value) => h("div", {},
    h("label", { for: name }, label),
    h("select", { id: name, name },
      any ? h("option", { value: "" }, any) : null,
      options.map((o) => h("option", { value: o, selected: o === value }, o))));
  const form = h("form", { "aria-describedby": "nearby-hint" },
    picker.element,
    h("div", { class: "row" },
      choice("kind", "Kind", KINDS, "any kind"),
      choice("species", "Species", SPECIES, "any species"),
      choice("status", "Status", ["open", "resolved"], "any status", "open")),
    h("button", { type: "submit" }, "Show reports"));

  let request = 0;
  async function run(cursor) {
    const place = picker.place();
    if (!place) { out.replaceChildren(notice("error", "Choose a place first: a town, “Near me” or coordinates.")); return; }
    const params = new URLSearchParams({
      latitude: place.latitude.toFixed(5),
      longitude: place.longitude.toFixed(5),
      radius_km: form.querySelector("#radius_km").value,
      limit: "20",
    });
    for (const name of ["kind", "species", "status"]) {
      const value = form.querySelector(`#${name}`).value;
      if (value) params.set(name, value);
    }
    if (cursor) params.set("cursor", cursor);
    const mine = ++request;
    if (!cursor) out.replaceChildren(notice("info", `Looking for reports near ${place.label}…`));
    try {
      const page = await api(`/v1/reports?${params}`);
      if (mine !== request) return;
      render(page, place, Boolean(cursor));
    } catch (err) {
      if (mine === request) out.replaceChildren(notice("error", err.message));
    }
  }

  function card(r) {
    const photo = r.photo_urls && r.photo_urls[0];
    return h("li", { class: "card" },
      h("a", { href: `#/reports/${r.id}` },
        photo ? h("img", { src: photo.thumbnail_url, alt: "", loading: "lazy", onerror: (e) => { e.target.src = photo.url; } }) : null,
        h("div", { class: "body" },
          h("div", { class: "title" }, r.title),
          h("div", { class: "meta" }, `${r.kind} · ${r.species}`),
          h("div", { class: "distance" }, distanceText(r.distance_km)))));
  }

  function render(page, place, more) {
    let list = out.querySelector("ul.results");
    if (!more || !list) {
      const heading = h("h2", { tabindex: "-1" }, page.reports.length
        ? `Reports near ${place.label}, nearest first`
        : `No reports within ${form.querySelector("#radius_km").value} km of ${place.label}`);
      list = h("ul", { class: "results" });
      out.replaceChildren(heading, list);
    }
    list.append(...page.reports.map(card));
    const old = out.querySelector("button.more");
    if (old) old.remove();
    if (page.next_cursor) {
      out.append(h("button", { type: "button", class: "secondary more", onclick: () => run(page.next_cursor) }, "More reports"));
    }
  }

  form.addEventListener("submit", (e) => { e.preventDefault(); run(); });
  show(h("h1", {}, "Reports near a place"),
    h("p", { id: "nearby-hint" }, "No photo needed: see the reports posted around a town or around you. Places are shown to about a kilometre."),
    form, out);
}
