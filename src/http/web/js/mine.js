// "My reports" (`#/mine`): the reports this browser posted or was given the owner token of, each
// with its status and how many possible matches its owner has not seen yet.
import { h, show, notice } from "./dom.js";
import { api, tokens, seen, ownerHeaders } from "./api.js";
import { badge } from "./fields.js";

export function mineView() {
  const list = h("ul", { class: "mine", id: "my-reports" });
  const ids = tokens.ids();
  show(h("h1", {}, "My reports"),
    h("p", { class: "hint" }, "The reports this browser keeps the owner token of. To see one on another device, open it here and use its owner link."),
    ids.length ? list : notice("info", "No reports from this browser yet. ", h("a", { href: "#/new" }, "Post a report"), "."));
  for (const id of ids) {
    const item = h("li", { "data-id": id }, h("span", { class: "hint" }, "Loading…"));
    list.append(item);
    fill(item, id);
  }
}

async function fill(item, id) {
  try {
    const report = await api(`/v1/reports/${id}`, { headers: ownerHeaders(id) });
    const matches = report.possible_matches || [];
    const known = seen.get(id);
    const fresh = matches.filter((m) => !known.has(m.report_id)).length;
    item.replaceChildren(
      h("a", { href: `#/reports/${id}`, class: "title" }, report.title),
      h("div", { class: "meta" }, `${report.kind} ${report.species} · `, badge(report.status), " · photos ", badge(report.embedding_status)),
      h("div", { class: fresh ? "new-matches" : "meta" },
        matches.length === 0 ? "No possible match yet."
          : `${matches.length} possible match${matches.length === 1 ? "" : "es"}${fresh ? `, ${fresh} new` : ""}`));
  } catch (err) {
    if (err.status === 404) {
      item.replaceChildren(h("span", {}, "A report that has been deleted. "),
        h("button", { type: "button", class: "secondary", onclick: () => { tokens.forget(id); item.remove(); } }, "Forget it"));
    } else {
      item.replaceChildren(notice("error", err.message));
    }
  }
}
