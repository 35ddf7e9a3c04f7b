// Posting a report: the form, the species guessed from the first photo, the owner token.
import { h, show, notice } from "./dom.js";
import { api, tokens } from "./api.js";
import { KINDS, SPECIES, MAX_REPORT_PHOTOS, photoPicker, select, placeFields } from "./fields.js";
import { followReport } from "./report.js";

export function newReportView() {
  const guess = h("p", { class: "hint", "aria-live": "polite" });
  const picker = photoPicker({ name: "photos", multiple: true, label: `Photos (1 to ${MAX_REPORT_PHOTOS})`, onChange: (files) => prefill(files, form, guess) });
  const out = h("div", { "aria-live": "polite" });
  const form = h("form", {},
    guess,
    h("div", { class: "row" }, select("kind", "This pet is", KINDS), select("species", "Species", SPECIES)),
    h("div", {}, h("label", { for: "title" }, "Title"), h("input", { id: "title", name: "title", required: true, maxlength: 200, placeholder: "Brown labrador near the park" })),
    h("div", {}, h("label", { for: "description" }, "Description (optional)"), h("textarea", { id: "description", name: "description", rows: 3, maxlength: 5000 })),
    h("div", {}, h("label", { for: "contact" }, "How to reach you (optional)"), h("input", { id: "contact", name: "contact", maxlength: 200, autocomplete: "email", "aria-describedby": "contact-hint" }),
      h("p", { class: "hint", id: "contact-hint" }, "Only you see it: others write to you through this page, and the place is shown to them to about a kilometre."),
      h("label", {}, h("input", { type: "checkbox", id: "contact_public", name: "contact_public" }), " Show my contact to everyone")),
    placeFields(false),
    picker.element,
    h("button", { type: "submit" }, "Post the report"));
  form.querySelector("#species").addEventListener("change", (e) => { e.target.dataset.touched = "1"; });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const photos = picker.files();
    if (!photos.length) { out.replaceChildren(notice("error", "Add at least one photo.")); return; }
    const data = new FormData();
    for (const name of ["kind", "species", "title", "description", "contact", "latitude", "longitude"]) {
      const value = form.querySelector(`#${name}`).value.trim();
      if (value) data.append(name, value);
    }
    if (form.querySelector("#contact_public").checked) data.append("contact_public", "true");
    photos.forEach((p) => data.append("photos", p));
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    out.replaceChildren(notice("info", "Sending your report…"));
    try {
      const report = await api("/v1/reports", { method: "POST", body: data });
      tokens.set(report.id, report.owner_token);
      form.remove();
      out.replaceChildren(
        notice("success",
          h("strong", {}, "Your report is posted. "),
          "Keep this owner token: you need it to mark the report resolved or to delete it, and it is shown only now.",
          h("code", { class: "token", id: "owner-token" }, report.owner_token),
          "This browser remembers it too."),
        h("div", { id: "report-live" }));
      followReport(report.id, document.getElementById("report-live"));
    } catch (err) {
      out.replaceChildren(notice("error", err.message));
      button.disabled = false;
    }
  });
  show(h("h1", {}, "Post a report"),
    h("p", {}, "Lost a pet, found one, or saw one? Post it with photos: others searching by photo will find it, and it lists the reports that look alike."),
    form, out);
}

/** Pre-fills the species (and a title) from what the model reads in the first photo; the person
 *  can change both. A failure leaves the form as it is. */
let prefilled = 0;
async function prefill(files, form, guess) {
  const asked = ++prefilled;
  guess.textContent = "";
  if (!files.length) return;
  const data = new FormData();
  data.append("photos", files[0]);
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
