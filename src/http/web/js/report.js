// A report's page (`#/reports/{id}`): the report, its photos and possible matches, the owner's
// panel and messages, or the form to write to its owner. Built once, then kept up to date in
// place from the report's event stream: focus, typed text and scroll stay where they are, and
// only what is new is announced.
import { h, show, notice, percent, when, onLeave, leave, announce, setText } from "./dom.js";
import { api, tokens, seen, ownerHeaders, ownerLink } from "./api.js";
import { badge } from "./fields.js";
import { hashQuery, route, setTitle } from "./router.js";
import { follow } from "./live.js";
import { writeToOwner, inbox } from "./messages.js";
import { shareLinks } from "./sharing.js";

/** Owner tokens of reports posted from this page a moment ago, shown once on their page. */
export const justPosted = new Map();

export function reportView(id) {
  // An owner link (`?token=`) opened here: this browser keeps the token, the address drops it.
  const given = hashQuery().get("token");
  if (given) {
    tokens.set(id, given);
    history.replaceState(null, "", `#/reports/${id}`);
  }
  const heading = h("h1", {}, "Report");
  const posted = justPosted.get(id);
  justPosted.delete(id);
  const place = h("div", {}, h("p", { class: "hint" }, "Loading the report…"));
  show(heading, posted ? postedNotice(id, posted) : null, place);
  const page = new ReportPage(id, heading, place);
  const refresh = coalesce(() => page.load());
  page.refresh = refresh;
  const stop = follow(id, {
    changed: refresh,
    deleted: () => page.deleted(),
    pending: () => page.pending,
  });
  onLeave(stop);
  refresh();
}

/** `run` at most once at a time; asked for again meanwhile, it runs once more after. */
function coalesce(run) {
  let running = false;
  let again = false;
  const go = async () => {
    if (running) { again = true; return; }
    running = true;
    try { await run(); } finally {
      running = false;
      if (again) { again = false; go(); }
    }
  };
  return go;
}

function postedNotice(id, token) {
  return notice("success",
    h("strong", {}, "Your report is posted. "),
    "Keep this owner token: you need it to mark the report resolved or to delete it, and it is shown only now.",
    h("code", { class: "token", id: "owner-token" }, token),
    "This browser remembers it (see “My reports”); to open the report as its owner on another device, use the owner link below.");
}

class ReportPage {
  constructor(id, heading, place) {
    this.id = id;
    this.heading = heading;
    this.place = place;
    this.built = false;
    this.pending = true;
    this.status = null;
    this.seenBefore = seen.get(id);
  }

  async load() {
    let report;
    try {
      report = await api(`/v1/reports/${this.id}`, { headers: ownerHeaders(this.id) });
    } catch (err) {
      if (err.status === 404 && this.built) { this.deleted(); return; }
      if (!this.built) this.place.replaceChildren(notice("error", err.message));
      return;
    }
    if (!this.built) this.build(report);
    this.update(report);
  }

  deleted() {
    this.built = false;
    setText(this.heading, "Report deleted");
    setTitle("Report deleted");
    this.place.replaceChildren(notice("info", "This report has been deleted."));
    announce("This report has been deleted.");
  }

  /** The page's parts, made once; `update` fills them. */
  build(report) {
    this.built = true;
    this.titleText = h("span", {});
    this.badge = badge(report.status);
    this.facts = h("dl", { class: "facts" });
    this.description = h("p", {});
    this.photos = h("ul", { class: "photos" });
    this.matches = h("ul", { class: "results", id: "matches" });
    this.empty = h("p", { class: "hint", id: "matches-empty" });
    // The poster and share link: made once, shown while the report is open.
    this.share = h("div", {}, shareLinks({ ...report, status: "open" }));
    const owned = Boolean(tokens.get(this.id));
    this.owner = owned ? ownerPanel(this.id, () => this.refresh()) : claimPanel(this.id);
    this.place.replaceChildren(
      h("article", { "aria-labelledby": "report-title", class: "report" },
        h("div", {},
          h("h2", { id: "report-title" }, this.titleText, " ", this.badge),
          this.facts, this.description, this.photos, this.owner.element, this.share),
        h("section", { "aria-labelledby": "matches-title" },
          h("h2", { id: "matches-title" }, "Possible matches"), this.matches, this.empty)),
      owned ? inbox(this.id) : writeToOwner(this.id));
  }

  update(report) {
    setText(this.heading, report.title);
    setTitle(report.title);
    setText(this.titleText, report.title);
    setText(this.badge, report.status);
    this.badge.className = `badge ${report.status}`;
    this.updateFacts(report);
    setText(this.description, report.description || "");
    this.description.hidden = !report.description;
    this.updatePhotos(report);
    this.updateMatches(report);
    this.owner.update(report);
    this.share.hidden = report.status !== "open";
    const wasPending = this.pending;
    this.pending = report.embedding_status === "pending";
    if (wasPending && report.embedding_status === "ready" && this.status !== null) {
      announce("The photos are ready: this report is now compared with the others.", `ready:${this.id}`);
    }
    if (this.status !== null && this.status !== report.status) {
      announce(`This report is now ${report.status}.`, `status:${this.id}:${report.status}:${Date.now()}`);
    }
    this.status = report.status;
  }

  updateFacts(report) {
    const status = report.embedding_status;
    const rows = [
      ["Kind", `${report.kind} ${report.species}`],
      ["Posted", when(report.created_at)],
      report.latitude != null ? ["Where", report.location_rounded
        ? `about ${report.latitude.toFixed(2)}, ${report.longitude.toFixed(2)} (to a kilometre)`
        : `${report.latitude.toFixed(5)}, ${report.longitude.toFixed(5)}`] : null,
      report.contact ? ["Contact", `${report.contact}${report.contact_public ? "" : " (only you see it)"}`] : null,
      ["Photos", status === "pending" ? " being compared… this page updates by itself."
        : status === "ready" ? " ready for matching." : " a photo could not be read."],
    ].filter(Boolean);
    const key = JSON.stringify([rows, status]);
    if (this.factsKey === key) return;
    this.factsKey = key;
    this.facts.replaceChildren(...rows.flatMap(([name, value]) => [
      h("dt", {}, name),
      name === "Photos" ? h("dd", { id: "embedding-status" }, badge(status), value)
        : h("dd", { id: name === "Contact" ? "contact-shown" : undefined }, value),
    ]));
  }

  updatePhotos(report) {
    const items = report.photo_urls.map((urls, i) => {
      const photo = report.photos[i] || {};
      const state = photo.embedding_status || "pending";
      const known = this.photos.querySelector(`li[data-id="${urls.id}"]`);
      if (known && known.dataset.state === state) return known;
      // The thumbnail is made with the photo's embedding: until then, a placeholder.
      const picture = state === "ready"
        ? h("img", { src: urls.thumbnail_url, alt: `Photo ${i + 1} of ${report.title}` })
        : h("div", { class: "thumb-placeholder", role: "img", "aria-label": `Photo ${i + 1} of ${report.title}, ${state === "failed" ? "unreadable" : "being prepared"}` },
          state === "failed" ? "Unreadable" : "Preparing…");
      return h("li", { "data-id": urls.id, "data-state": state },
        h("a", { href: urls.url }, picture),
        h("div", { class: "meta" }, badge(state)),
        photo.embedding_error ? h("div", { class: "meta" }, photo.embedding_error) : null);
    });
    syncChildren(this.photos, items);
  }

  updateMatches(report) {
    const matches = report.possible_matches || [];
    const first = !this.matchesShown;
    this.matchesShown = true;
    const items = matches.map((m) => {
      let li = this.matches.querySelector(`li[data-report="${m.report_id}"]`);
      if (!li) {
        const fresh = !this.seenBefore.has(m.report_id) && tokens.get(this.id);
        li = h("li", { class: "card match", "data-report": m.report_id },
          h("a", { href: `#/reports/${m.report_id}` },
            h("img", { src: `/v1/photos/${m.matched_photo_id}/thumbnail`, alt: `Photo of ${m.title}`, loading: "lazy" }),
            h("div", { class: "body" },
              h("div", { class: "title" }, m.title),
              h("div", { class: "meta" }, m.kind, fresh ? h("span", { class: "new-matches" }, " · new") : null),
              h("div", { class: "score" }, percent(m.score)))));
        if (!first) announce(`New possible match: ${m.title}, ${percent(m.score)}.`, `match:${this.id}:${m.report_id}`);
      } else {
        setText(li.querySelector(".score"), percent(m.score));
      }
      return li;
    });
    syncChildren(this.matches, items);
    this.matches.hidden = matches.length === 0;
    const status = report.embedding_status;
    setText(this.empty, matches.length ? ""
      : report.status === "resolved" ? "None: this report is resolved, so no new matches are looked for."
      : status === "ready" ? "None yet: reports posted later are compared with this one too, and appear here as they come."
      : status === "failed" ? "None: no photo of this report could be read."
      : "They appear once the photos are ready.");
    this.empty.hidden = matches.length > 0;
    if (tokens.get(this.id)) seen.set(this.id, matches.map((m) => m.report_id));
  }
}

/** Makes `parent`'s children `items`, in order, moving only what changed (a node kept in place
 *  keeps its focus). */
function syncChildren(parent, items) {
  items.forEach((item, i) => {
    if (parent.children[i] !== item) parent.insertBefore(item, parent.children[i] || null);
  });
  while (parent.children.length > items.length) parent.lastElementChild.remove();
}

/** The owner's panel: the owner link, resolve or reopen, delete. */
function ownerPanel(id, refresh) {
  const out = h("div", {});
  const link = h("input", { id: "owner-link", class: "owner-link", readonly: true, value: ownerLink(id, tokens.get(id)), "aria-describedby": "owner-link-hint" });
  const toggle = h("button", { type: "button", id: "toggle-status" }, "Mark as resolved");
  let next = "resolved";
  const act = async (method, body, done) => {
    try {
      await api(`/v1/reports/${id}`, {
        method,
        headers: { ...ownerHeaders(id), ...(body ? { "Content-Type": "application/json" } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
      out.replaceChildren();
      done();
    } catch (err) {
      out.replaceChildren(notice("error", err.message));
    }
  };
  toggle.addEventListener("click", () => act("PATCH", { status: next }, refresh));
  const element = h("section", { "aria-labelledby": "owner-title", class: "panel", id: "owner-panel" },
    h("h2", { id: "owner-title" }, "Your report"),
    h("label", { for: link.id }, "Owner link"),
    h("p", { class: "hint", id: "owner-link-hint" }, "Opens this report as its owner on another device. Keep it private: it holds the owner token."),
    link,
    h("div", { class: "actions" },
      h("button", { type: "button", class: "secondary", onclick: async () => {
        link.select();
        try { await navigator.clipboard.writeText(link.value); announce("Owner link copied.", `${Date.now()}`); } catch (e) { document.execCommand("copy"); }
      } }, "Copy the owner link"),
      toggle,
      h("button", { type: "button", class: "danger", onclick: () => {
        if (!confirm("Delete this report and its photos for good?")) return;
        act("DELETE", null, () => { tokens.forget(id); leave(); show(h("h1", {}, "Report deleted"), notice("success", "The report and its photos are deleted.")); setTitle("Report deleted"); });
      } }, "Delete")),
    out);
  return {
    element,
    update(report) {
      next = report.status === "open" ? "resolved" : "open";
      setText(toggle, next === "resolved" ? "Mark as resolved" : "Open it again");
    },
  };
}

/** For a visitor: the owner, on a browser without the token, can give it here. */
function claimPanel(id) {
  const input = h("input", { id: "owner-token-input", type: "password", autocomplete: "off", required: true });
  const form = h("form", {},
    h("label", { for: input.id }, "Owner token"),
    h("p", { class: "hint" }, "Shown when the report was posted; the owner link holds it too."),
    input,
    h("button", { type: "submit", class: "secondary" }, "Open as its owner"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    tokens.set(id, input.value.trim());
    route();
  });
  return {
    element: h("details", { class: "claim" }, h("summary", {}, "Is this your report?"), form),
    update() {},
  };
}
