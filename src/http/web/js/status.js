// The operators' view: the service's load, from /v1/status.
import { h, show, notice, onLeave } from "./dom.js";
import { api } from "./api.js";

export function statusView() {
  const place = h("div", { "aria-live": "polite" });
  show(h("h1", {}, "Service status"), h("p", { class: "hint" }, "Refreshes every 2 seconds."), place);
  let timer = null;
  onLeave(() => clearTimeout(timer));
  const load = async () => {
    try {
      place.replaceChildren(renderStatus(await api("/v1/status")));
    } catch (err) {
      place.replaceChildren(notice("error", err.message));
    }
    timer = setTimeout(load, 2000);
  };
  load();
}

function stat(title, big, ...rest) {
  return h("section", { class: "stat" }, h("h2", {}, title), h("div", { class: typeof big === "number" || /^[\d.]/.test(big) ? "big" : "name" }, big), ...rest);
}

function renderStatus(s) {
  // The load figures are for operators only (this host, or the operator key).
  if (!s.gate) return notice("info", `lookalike ${s.version}, model ${s.model.name} ${s.model.version}. ${s.detail || ""}`);
  const g = s.gate;
  const q = s.jobs.queue;
  const permits = h("meter", { min: 0, max: g.permits, value: g.permits_in_use, "aria-label": "Model permits in use" });
  return h("div", { class: "stats", id: "stats" },
    stat("Model permits in use", `${g.permits_in_use} / ${g.permits}`, permits,
      h("div", { class: "meta" }, `${g.waiting_interactive} searches and ${g.waiting_background} jobs waiting; batches of up to ${g.max_batch}`)),
    stat("Estimated wait", `${g.estimated_wait_seconds.toFixed(2)} s`, h("div", { class: "meta" }, `${g.images_total} photos embedded in ${g.runs_total} runs`)),
    stat("Jobs queued", q ? q.queued : "?", h("div", { class: "meta" }, q ? `${q.running} running, ${q.failed} failed; oldest waiting ${q.oldest_queued_age_seconds.toFixed(0)} s` : "the database is not answering")),
    stat("Uploads in progress", `${s.uploads.in_use} / ${s.uploads.permits}`, h("div", { class: "meta" }, `${s.uploads.waiting} waiting, ${s.uploads.rejected_total} turned away`)),
    stat("Decoding", `${s.decode.in_use} / ${s.decode.permits}`, h("div", { class: "meta" }, `${s.decode.waiting} waiting`)),
    stat("Database connections", `${s.database.in_use} / ${s.database.connections}`, h("div", { class: "meta" }, `${s.database.idle} idle`)),
    stat("Model", s.model.name, h("div", { class: "meta" }, `${s.model.version}, ${s.model.dim} dimensions`)),
    stat("Up for", duration(s.uptime_seconds), h("div", { class: "meta" }, `version ${s.version}`)));
}

function duration(seconds) {
  const d = Math.floor(seconds / 86400), hr = Math.floor(seconds % 86400 / 3600), m = Math.floor(seconds % 3600 / 60);
  return d ? `${d} d ${hr} h` : hr ? `${hr} h ${m} min` : `${m} min ${seconds % 60} s`;
}
