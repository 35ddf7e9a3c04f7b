// Photos before they leave the browser: which files are accepted (and why not, in words), and
// shrinking them for a weak signal: the longest side to about 2048 px, the orientation applied,
// re-encoded as JPEG (which drops the metadata, GPS position included).
import { mb } from "./dom.js";

/** What the service reads. */
export const ACCEPTED = ["image/jpeg", "image/png", "image/webp"];
export const ACCEPTED_WORDS = "JPEG, PNG or WebP photos";
const LONGEST_SIDE = 2048;
const QUALITY = 0.85;

const isHeic = (f) => /^image\/hei[cf]/i.test(f.type) || /\.hei[cf]$/i.test(f.name);

/** Whether this browser decodes HEIC itself (Safari does): then it is converted to JPEG here. */
let heicDecodes = null;
async function decodes(file) {
  try {
    const bitmap = await createImageBitmap(file);
    bitmap.close();
    return true;
  } catch (e) {
    return false;
  }
}

/** The files of `list` that can be sent (at most `max`), and a sentence for each one left out. */
export async function checkFiles(list, max) {
  const files = [];
  const problems = [];
  for (const file of Array.from(list)) {
    if (ACCEPTED.includes(file.type)) { files.push(file); continue; }
    if (isHeic(file)) {
      if (heicDecodes !== false && await decodes(file)) { heicDecodes = true; files.push(file); continue; }
      heicDecodes = false;
      problems.push(`${file.name} is a HEIC photo, which this browser cannot convert. Export it as JPEG (on an iPhone: share it, or set Camera › Formats to “Most Compatible”) and choose it again.`);
      continue;
    }
    problems.push(`${file.name} is not a photo this service reads (${file.type || "unknown kind"}). Choose ${ACCEPTED_WORDS}.`);
  }
  if (files.length > max) {
    problems.push(`You chose ${files.length} photos; a report takes up to ${max}, so the first ${max} are kept.`);
    files.length = max;
  }
  return { files, problems };
}

/** `file` made smaller for sending; the file itself when it cannot be decoded here (the service
 *  then says what is wrong) or when re-encoding would not make it smaller. */
export async function shrink(file) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
  } catch (e) {
    return file;
  }
  try {
    const scale = Math.min(1, LONGEST_SIDE / Math.max(bitmap.width, bitmap.height));
    const width = Math.max(1, Math.round(bitmap.width * scale));
    const height = Math.max(1, Math.round(bitmap.height * scale));
    const canvas = document.createElement("canvas");
    canvas.width = width;
    canvas.height = height;
    const context = canvas.getContext("2d");
    // JPEG has no transparency: a transparent PNG gets a white background, not a black one.
    context.fillStyle = "#fff";
    context.fillRect(0, 0, width, height);
    context.drawImage(bitmap, 0, 0, width, height);
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", QUALITY));
    if (!blob || (blob.size >= file.size && scale === 1 && !isHeic(file))) return file;
    const name = file.name.replace(/\.[^.]*$/, "") + ".jpg";
    return new File([blob], name, { type: "image/jpeg" });
  } finally {
    bitmap.close();
  }
}

/** "2 photos, 6.1 MB". */
export function describe(files) {
  const total = files.reduce((sum, f) => sum + f.size, 0);
  return `${files.length} photo${files.length === 1 ? "" : "s"}, ${mb(total)}`;
}
