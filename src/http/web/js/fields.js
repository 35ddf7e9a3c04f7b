// Form pieces shared by the views: the photo picker, selects, the place fields, badges.
import { h, mb, announce } from "./dom.js";
import { ACCEPTED_WORDS, checkFiles } from "./photos.js";
import { placePicker } from "./places.js";

export const KINDS = ["lost", "found", "sighting"];
export const SPECIES = ["dog", "cat", "other"];
export const MAX_REPORT_PHOTOS = 5;

/** A drop zone over a file input: drag and drop, the file picker, or (on phones) the camera. A file
 *  the service cannot read, or one too many, is named and explained, never dropped silently. */
export function photoPicker({ name, multiple, label, onChange }) {
  const max = multiple ? MAX_REPORT_PHOTOS : 1;
  const hint = `${name}-hint`;
  // image/* so that a HEIC can be chosen and then explained (or converted where the browser can).
  const input = h("input", { type: "file", id: `${name}-input`, name, accept: "image/*", multiple, required: true, "aria-describedby": hint });
  const camera = h("input", { type: "file", id: `${name}-camera`, accept: "image/*", capture: "environment", class: "camera" });
  const previews = h("div", { class: "previews" });
  const problems = h("div", { id: `${name}-problems` });
  const zone = h("div", { class: "drop" },
    h("label", { for: input.id }, label),
    h("p", { class: "hint", id: hint }, `${multiple ? `Drop up to ${max} photos here, or choose them` : "Drop a photo here, or choose one"} (${ACCEPTED_WORDS}; large ones are made smaller before sending).`),
    input,
    h("div", { class: "camera-row" }, h("label", { for: camera.id, class: "hint" }, "Or take a photo:"), camera),
    previews, problems);
  let files = [];
  const setFiles = async (list) => {
    const checked = await checkFiles(list, max);
    files = checked.files;
    previews.replaceChildren(...files.map((f) => h("figure", { class: "preview" },
      h("img", { src: URL.createObjectURL(f), alt: `Chosen photo ${f.name}` }),
      h("figcaption", { class: "hint" }, mb(f.size)))));
    problems.replaceChildren(checked.problems.length
      ? h("div", { class: "notice error", role: "alert" }, h("ul", { class: "file-problems" }, checked.problems.map((p) => h("li", {}, p))))
      : "");
    if (checked.problems.length) announce(checked.problems.join(" "), `${Date.now()}`);
    input.required = files.length === 0;
    if (onChange) onChange(files);
  };
  input.addEventListener("change", () => setFiles(input.files));
  camera.addEventListener("change", () => setFiles(camera.files));
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => { e.preventDefault(); zone.classList.remove("over"); setFiles(e.dataTransfer.files); });
  return { element: zone, files: () => files };
}

/** A select; `any` is a first choice meaning "no filter", `choose` one that must be changed. */
export function select(name, label, options, { any, choose } = {}) {
  return h("div", {},
    h("label", { for: name }, label),
    h("select", { id: name, name, required: choose ? true : undefined },
      any ? h("option", { value: "" }, any) : null,
      choose ? h("option", { value: "", disabled: true, selected: true }, choose) : null,
      options.map((o) => h("option", { value: o }, o))));
}

/** The place of a form: a town, "Near me" or coordinates (and a radius), see places.js. */
export function placeFields(withRadius) {
  return placePicker({ withRadius, legend: withRadius ? "Near a place (optional)" : "Where (optional)" }).element;
}

export function badge(status) {
  return h("span", { class: `badge ${status}` }, status);
}
