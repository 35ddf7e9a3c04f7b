// Form pieces shared by the views: the photo picker, selects, the place fields, badges.
import { h } from "./dom.js";

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
      withRadius ? h("div", {}, h("label", { for: "radius_km" }, "Within (km)"), h("input", { id: "radius_km", name: "radius_km", type: "number", min: 1, max: 20000, value: 25, inputmode: "numeric" })) : null),
    locate, status);
}

export function badge(status) {
  return h("span", { class: `badge ${status}` }, status);
}
