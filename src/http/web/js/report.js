// A report's page: the report, its photos and possible matches, the owner's panel and messages,
// or the form to write to its owner.
import { h, show, notice, percent, when, onLeave } from "./dom.js";
import { api, tokens, ownerHeaders } from "./api.js";
import { badge } from "./fields.js";
import { shareLinks } from "./sharing.js";

export function reportView(id) {
  const place = h("div", {});
  show(h("h1", {}, "Report"), place);
  followReport(id, place);
}

/** Shows a report in `place`, refreshing it until its photos are ready and its matches in; its
 * messages (the owner's) or the form to write to its owner (anyone else's) below, made once so
 * that refreshing never loses what is being typed. */
export function followReport(id, place) {
  let timer = null;
  let readySince = null;
  const stop = () => clearTimeout(timer);
  onLeave(stop);
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
      ownerActions(report, reload),
      shareLinks(report)),
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
