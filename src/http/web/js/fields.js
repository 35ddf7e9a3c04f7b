// Form pieces shared by the views: the photo picker, selects, the place fields, badges.
import { h, mb, announce } from "./dom.js";
import { ACCEPTED_WORDS, checkFiles } from "./photos.js";

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

/** Latitude, longitude (and a radius) with "use my location". */
export function placeFields(withRadius) {
  const lat = h("input", { id: "latitude", name: "latitude", type: "number", step: "any", min: -90, max: 90, inputmode: "decimal" });
  const lon = h("input", { id: "longitude", name: "longitude", type: "number", step: "any", min: -180, max: 180, inputmode: "decimal" });
  const status = h("p", { class: "hint", "aria-live": "polite" });
  const locate = h("button", { type: "button", class: "secondary", onclick: () => {
    if (!navigator.geolocation) { status.textContent = "This browser cannot tell its location."; return; }
    status.textContent = "Finding your location…";
    navigator.geolocation.getCurrentPosition(
      (p) => { lat.value = p.coords.latitude.toFixed(5); lon.value = p.coords.longitude.toFixed(5); status.textContent = "Location filled in."; },
      () => { status.textContent = "Your location is not available; type it in instead."; });
  } }, "Use my location");
  return h("details", {},
    h("summary", {}, withRadius ? "Near a place (optional)" : "Where (optional)"),
    h("div", { class: "row" },
      h("div", {}, h("label", { for: "latitude" }, "Latitude"), lat),
      h("div", {}, h("label", { for: "longitude" }, "Longitude"), lon),
      withRadius ? h("div", {}, h("label", { for: "radius_km" }, "Within (km)"), h("input", { id: "radius_km", name: "radius_km", type: "number", min: 1, max: 20000, placeholder: "25", inputmode: "numeric" })) : null),
    locate, status);
}

export function badge(status) {
  return h("span", { class: `badge ${status}` }, status);
}
