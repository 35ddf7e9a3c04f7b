// Form pieces shared by the views: the photo picker, selects, the place fields, badges.
import { h } from "./dom.js";
import { placePicker } from "./places.js";

export const KINDS = ["lost", "found", "sighting"];
export const SPECIES = ["dog", "cat", "other"];
export const MAX_REPORT_PHOTOS = 5;

/** A drop zone over a file input: drag and drop, the file picker, or (on phones) the camera. */
export function photoPicker({ name, multiple, label, onChange }) {
  const input = h("input", { type: "file", id: `${name}-input`, name, accept: "image/jpeg,image/png,image/webp", multiple, required: true });
  const camera = h("input", { type: "file", id: `${name}-camera`, accept: "image/*", capture: "environment", class: "camera" });
  const previews = h("div", { class: "previews", "aria-live": "polite" });
  const zone = h("div", { class: "drop" },
    h("label", { for: input.id }, label),
    h("p", { class: "hint" }, multiple ? `Drop up to ${MAX_REPORT_PHOTOS} photos here, or choose them.` : "Drop a photo here, or choose one."),
    input,
    h("div", { class: "camera-row" }, h("label", { for: camera.id, class: "hint" }, "Or take a photo:"), camera),
    previews);
  let files = [];
  const setFiles = (list) => {
    files = Array.from(list).filter((f) => f.type.startsWith("image/")).slice(0, multiple ? MAX_REPORT_PHOTOS : 1);
    previews.replaceChildren(...files.map((f) => h("img", { src: URL.createObjectURL(f), alt: `Chosen photo ${f.name}` })));
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

export function select(name, label, options, { any } = {}) {
  return h("div", {},
    h("label", { for: name }, label),
    h("select", { id: name, name },
      any ? h("option", { value: "" }, any) : null,
      options.map((o) => h("option", { value: o }, o))));
}

/** The place of a form: a town, "Near me" or coordinates (and a radius), see places.js. */
export function placeFields(withRadius) {
  return placePicker({ withRadius, legend: withRadius ? "Near a place (optional)" : "Where (optional)" }).element;
}

export function badge(status) {
  return h("span", { class: `badge ${status}` }, status);
}
