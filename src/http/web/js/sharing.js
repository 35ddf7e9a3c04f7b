// A report's poster and share link, for its page: the poster (/r/{id}/poster) prints with a QR
// code; the share link (/r/{id}) shows a preview in messengers and opens the report.

import { h } from "./dom.js";

/** The links of an open report; nothing for a resolved one. */
export function shareLinks(report) {
  if (report.status !== "open") return null;
  const link = `${location.origin}/r/${report.id}`;
  const said = h("span", { class: "hint", role: "status", "aria-live": "polite" });
  const copy = h("button", { type: "button", class: "secondary", onclick: async () => {
    try {
      await navigator.clipboard.writeText(link);
      said.textContent = "Link copied.";
    } catch {
      said.textContent = `Copy this link: ${link}`;
    }
  } }, "Copy share link");
  return h("section", { class: "share", "aria-labelledby": "share-heading" },
    h("h2", { id: "share-heading" }, "Share and print"),
    h("div", { class: "actions" },
      h("a", { class: "button", href: `/r/${report.id}/poster`, id: "poster-link" }, "Print a poster"),
      copy, said),
    h("img", { class: "share-qr", src: `/v1/reports/${report.id}/qr.svg`, alt: `QR code of ${link}`, width: 128, height: 128 }));
}
