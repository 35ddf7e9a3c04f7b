// Views by address (`#/...`): each view module registers its own, so a new view is a new module
// imported by app.js. The menu marks the current view; the page title names it.
import { main, leave } from "./dom.js";

const routes = [];
let fallback = null;

/** Registers `view(...groups)` for the addresses `pattern` matches (the part after `#`, without
 *  its `?query`); `nav` is the menu item it marks. The first registered with `fallback` answers
 *  every other address. */
export function addRoute(pattern, view, { nav = "", isFallback = false } = {}) {
  const entry = { pattern, view, nav };
  routes.push(entry);
  if (isFallback) fallback = entry;
}

/** The `?query` of the current address, e.g. `#/reports/{id}?token=...`. */
export function hashQuery() {
  const hash = location.hash.replace(/^#/, "");
  const at = hash.indexOf("?");
  return new URLSearchParams(at < 0 ? "" : hash.slice(at + 1));
}

/** Names the page after its view (and the menu after the page). */
export function setTitle(text) {
  document.title = `${text} · lookalike`;
}

/** Shows the view for the current address. */
export function route() {
  leave();
  const hash = (location.hash.replace(/^#/, "") || "/").split("?")[0];
  let chosen = fallback;
  let groups = [];
  for (const entry of routes) {
    const found = hash.match(entry.pattern);
    if (found) { chosen = entry; groups = found.slice(1); break; }
  }
  if (!chosen) return;
  chosen.view(...groups);
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === chosen.nav) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const heading = main.querySelector("h1");
  if (heading) setTitle(heading.textContent);
}

/** Follows the address from now on. */
export function start() {
  window.addEventListener("hashchange", route);
  route();
}
