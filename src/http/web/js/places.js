// The place picker: a town search over the vendored list (/assets/cities.json, served by this
// service: nothing is fetched from elsewhere), "Near me" (the browser's location), and, for those
// who have them, coordinates typed in. It fills the inputs #latitude and #longitude (and offers
// #radius_km), which the forms read.

import { h } from "./dom.js";

let towns = null; // the list, loaded once, on first use

/** The towns: [name, country, latitude, longitude, region?], biggest first. */
async function loadTowns() {
  if (!towns) {
    towns = fetch("/assets/cities.json").then((r) => {
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      return r.json();
    }).then((list) => list.map((t) => ({ town: t, key: fold(t[0]) })));
    towns.catch(() => { towns = null; });
  }
  return towns;
}

/** Lower case without accents: "Zürich" and "zurich" are the same search. */
function fold(text) {
  return text.normalize("NFD").replace(/[\u0300-\u036f]/g, "").toLowerCase();
}

/** "Springfield, MO, US". */
export function townLabel(t) {
  return [t[0], t[4], t[1]].filter(Boolean).join(", ");
}

/** Up to `max` towns whose name starts with `query` (then those containing it), biggest first. */
export async function findTowns(query, max = 8) {
  const q = fold(query.trim());
  if (q.length < 2) return [];
  const all = await loadTowns();
  const starts = [];
  const inside = [];
  for (const { town, key } of all) {
    if (key.startsWith(q)) starts.push(town);
    else if (inside.length < max && key.includes(q)) inside.push(town);
    if (starts.length >= max) break;
  }
  return starts.concat(inside).slice(0, max);
}

const RADII = [2, 5, 10, 25, 50, 100, 250];

/**
 * A place picker. `withRadius` adds "Within"; `onPick(place)` is told each chosen place
 * ({ latitude, longitude, label }). Returns { element, place() }.
 */
export function placePicker({ withRadius = false, radius = 25, legend = "Where", onPick } = {}) {
  const lat = h("input", { id: "latitude", name: "latitude", type: "number", step: "any", min: -90, max: 90, inputmode: "decimal" });
  const lon = h("input", { id: "longitude", name: "longitude", type: "number", step: "any", min: -180, max: 180, inputmode: "decimal" });
  const status = h("p", { class: "hint place-status", role: "status", "aria-live": "polite" });
  const matches = h("ul", { class: "place-matches", id: "place-matches" });
  const search = h("input", {
    id: "place-search", type: "search", autocomplete: "off", placeholder: "e.g. Lyon",
    "aria-describedby": "place-hint", "aria-controls": "place-matches",
  });
  let chosen = null;

  const pick = (latitude, longitude, label) => {
    lat.value = latitude.toFixed(5);
    lon.value = longitude.toFixed(5);
    chosen = { latitude, longitude, label };
    status.textContent = `Place: ${label}.`;
    matches.replaceChildren();
    if (onPick) onPick(chosen);
  };

  let typed = 0;
  search.addEventListener("input", async () => {
    const mine = ++typed;
    let found;
    try {
      found = await findTowns(search.value);
    } catch {
      status.textContent = "The list of towns could not be loaded; use “Near me” or coordinates.";
      return;
    }
    if (mine !== typed) return; // a later keystroke answers instead
    matches.replaceChildren(...found.map((t) => h("li", {},
      h("button", { type: "button", class: "secondary", onclick: () => {
        search.value = townLabel(t);
        pick(t[2], t[3], townLabel(t));
      } }, townLabel(t)))));
    if (search.value.trim().length >= 2) {
      status.textContent = found.length ? `${found.length} town${found.length === 1 ? "" : "s"} found: choose one.` : "No town by that name in the list.";
    }
  });
  search.addEventListener("keydown", (e) => {
    // Enter takes the first match rather than sending the form half-filled.
    if (e.key === "Enter" && matches.firstElementChild) {
      e.preventDefault();
      matches.querySelector("button").click();
    }
  });
  for (const input of [lat, lon]) {
    input.addEventListener("change", () => {
      const [a, b] = [Number(lat.value), Number(lon.value)];
      if (lat.value && lon.value && Math.abs(a) <= 90 && Math.abs(b) <= 180) {
        chosen = { latitude: a, longitude: b, label: `${a.toFixed(2)}, ${b.toFixed(2)}` };
        if (onPick) onPick(chosen);
      }
    });
  }

  const nearMe = h("button", { type: "button", class: "secondary", id: "near-me", onclick: () => {
    if (!navigator.geolocation) { status.textContent = "This browser cannot tell its location: search for a town instead."; return; }
    status.textContent = "Finding your location…";
    navigator.geolocation.getCurrentPosition(
      (p) => { search.value = ""; pick(p.coords.latitude, p.coords.longitude, "your location"); },
      () => { status.textContent = "Your location is not available: search for a town instead."; },
      { timeout: 15000, maximumAge: 300000 });
  } }, "Near me");

  const within = withRadius
    ? h("div", {}, h("label", { for: "radius_km" }, "Within"),
      h("select", { id: "radius_km", name: "radius_km" },
        RADII.map((r) => h("option", { value: r, selected: r === radius }, `${r} km`))))
    : null;

  const element = h("fieldset", { class: "place" },
    h("legend", {}, legend),
    h("div", { class: "row" },
      h("div", {},
        h("label", { for: "place-search" }, "Town or city"),
        search,
        h("p", { class: "hint", id: "place-hint" }, "Type a few letters, then choose a town; or use “Near me”.")),
      within),
    matches,
    h("div", { class: "actions" }, nearMe),
    status,
    h("details", {},
      h("summary", {}, "Enter coordinates instead"),
      h("div", { class: "row" },
        h("div", {}, h("label", { for: "latitude" }, "Latitude"), lat),
        h("div", {}, h("label", { for: "longitude" }, "Longitude"), lon))));
  return { element, place: () => chosen };
}
