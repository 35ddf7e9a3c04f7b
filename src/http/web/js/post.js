// Posting a report: the form, the species guessed from the first photo, photos made smaller and
// sent with their progress shown; on success the report's own page (with the owner token).
import { h, show, mb, announce } from "./dom.js";
import { api, upload, tokens } from "./api.js";
import { shrink, describe } from "./photos.js";
import { KINDS, SPECIES, MAX_REPORT_PHOTOS, photoPicker, select, placeFields } from "./fields.js";
import { justPosted } from "./report.js";

export function newReportView() {
  const guess = h("p", { class: "hint", "aria-live": "polite" });
  const picker = photoPicker({ name: "photos", multiple: true, label: `Photos (1 to ${MAX_REPORT_PHOTOS})`, onChange: (files) => prefill(files, form, guess) });
  // Beside the button, where the person looks: progress, then what went wrong.
  const out = h("div", { id: "post-outcome" });
  const form = h("form", {},
    guess,
    h("div", { class: "row" }, select("kind", "This pet is", KINDS), select("species", "Species", SPECIES, { choose: "Choose… (other if not sure)" })),
    h("div", {}, h("label", { for: "title" }, "Title"), h("input", { id: "title", name: "title", required: true, maxlength: 200, placeholder: "Brown labrador near the park" })),
    h("div", {}, h("label", { for: "description" }, "Description (optional)"), h("textarea", { id: "description", name: "description", rows: 3, maxlength: 5000 })),
    h("div", {}, h("label", { for: "contact" }, "How to reach you (optional)"), h("input", { id: "contact", name: "contact", maxlength: 200, autocomplete: "email", "aria-describedby": "contact-hint" }),
      h("p", { class: "hint", id: "contact-hint" }, "Only you see it: others write to you through this page, and the place is shown to them to about a kilometre."),
      h("label", {}, h("input", { type: "checkbox", id: "contact_public", name: "contact_public" }), " Show my contact to everyone")),
    placeFields(false),
    picker.element,
    h("button", { type: "submit" }, "Post the report"),
    out);
  form.querySelector("#species").addEventListener("change", (e) => { e.target.dataset.touched = "1"; });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const chosen = picker.files();
    if (!chosen.length) { failed(out, "Add at least one photo."); return; }
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    const progress = h("progress", { id: "upload-progress", max: 100, value: 0, "aria-label": "Sent" });
    const words = h("p", { id: "upload-words" }, "Preparing the photos…");
    out.replaceChildren(h("div", { class: "sending" }, words, progress));
    const photos = await Promise.all(chosen.map(smaller));
    const data = new FormData();
    for (const name of ["kind", "species", "title", "description", "contact", "latitude", "longitude"]) {
      const value = form.querySelector(`#${name}`).value.trim();
      if (value) data.append(name, value);
    }
    if (form.querySelector("#contact_public").checked) data.append("contact_public", "true");
    photos.forEach((p) => data.append("photos", p));
    words.textContent = `Sending ${describe(photos)}…`;
    announce(words.textContent, `${Date.now()}`);
    try {
      const report = await upload("/v1/reports", data, (sent, total) => {
        progress.max = total;
        progress.value = sent;
        words.textContent = sent < total
          ? `Sending: ${mb(sent)} of ${mb(total)} (${Math.floor(sent / total * 100)}%)`
          : "Sent; the service is storing your report…";
      });
      tokens.set(report.id, report.owner_token);
      justPosted.set(report.id, report.owner_token);
      location.hash = `#/reports/${report.id}`;
    } catch (err) {
      // The form stays as it was: the same photos and words go again with one press.
      failed(out, err.message);
      button.textContent = "Try again";
      button.disabled = false;
    }
  });
  show(h("h1", {}, "Post a report"),
    h("p", {}, "Lost a pet, found one, or saw one? Post it with photos: others searching by photo will find it, and it lists the reports that look alike."),
    form);
}

/** A problem shown beside the button, and focused, so it is seen and read. */
function failed(out, message) {
  const problem = h("div", { class: "notice error", role: "alert", tabindex: -1, id: "post-error" }, message);
  out.replaceChildren(problem);
  problem.focus();
}

// Each chosen photo is made smaller once (for the species guess, then for the report).
const shrunk = new WeakMap();
function smaller(file) {
  if (!shrunk.has(file)) shrunk.set(file, shrink(file));
  return shrunk.get(file);
}

/** Pre-fills the species (and a title) from what the model reads in the first photo; the person
 *  can change both. A failure leaves the form as it is. */
let prefilled = 0;
async function prefill(files, form, guess) {
  const asked = ++prefilled;
  guess.textContent = "";
  if (!files.length) return;
  const data = new FormData();
  data.append("photos", await smaller(files[0]));
  try {
    const answer = await api("/v1/embeddings", { method: "POST", body: data });
    const labels = answer.embeddings[0] && answer.embeddings[0].labels;
    if (asked !== prefilled || !labels || labels.predicted_species === "other") return;
    const species = form.querySelector("#species");
    // The person's own choice is never overwritten.
    if (species.dataset.touched) return;
    species.value = labels.predicted_species;
    const title = form.querySelector("#title");
    const breed = labels.breeds && labels.breeds[0];
    if (breed && !title.value) title.placeholder = `${breed.name[0].toUpperCase()}${breed.name.slice(1)} near the park`;
    guess.textContent = `The photo looks like a ${labels.predicted_species}${breed ? ` (maybe ${breed.name})` : ""}: species filled in; change it if it is wrong.`;
  } catch (err) {
    // The form works without the guess.
  }
}
