// Messages about a report: the form a visitor writes to its owner with, and the owner's inbox.
import { h, notice, when } from "./dom.js";
import { api, ownerHeaders } from "./api.js";

/** The form a visitor writes to the report's owner with (the contact stays private). */
export function writeToOwner(id) {
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
export function inbox(id) {
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
