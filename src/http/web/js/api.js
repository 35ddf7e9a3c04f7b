// The service's API: requests with the API key this browser keeps, errors in words a person can
// act on, and the owner tokens of this browser's reports.
import { route } from "./router.js";

/** An API answer that is not 2xx, in words a person can act on. */
export class ApiError extends Error {
  constructor(status, body, retryAfter) {
    super(explain(status, body, retryAfter));
    this.status = status;
    this.code = body && body.code;
  }
}

/** An API key is what the service asks for (not a report's owner token). */
const KEY_CODES = ["api_key_required", "invalid_api_key"];

/** A quota answer (`used_bytes`, `max_bytes`, `requested_bytes`) in megabytes, not bytes. */
function sized(body) {
  if (!body || typeof body.max_bytes !== "number") return "";
  const inMb = (n) => `${(n / 1e6).toFixed(1)} MB`;
  const what = body.code === "daily_limit_exceeded" ? "of today's uploads from here" : body.code === "storage_full" ? "of the service's storage" : "of your storage";
  return `These photos (${inMb(body.requested_bytes || 0)}) do not fit: ${inMb(body.used_bytes || 0)} of ${inMb(body.max_bytes)} ${what} are used. Try fewer or smaller photos.`;
}

function explain(status, body, retryAfter) {
  const message = (body && body.message) || "";
  if (status === 401 && body && !KEY_CODES.includes(body.code)) return "This needs the report's owner token (shown when it was posted, and kept by the browser that posted it).";
  const wait = retryAfter ? ` Please try again in ${retryAfter} second${retryAfter === "1" ? "" : "s"}.` : " Please try again in a moment.";
  switch (status) {
    case 503: return `The service is busy right now.${wait}`;
    case 429: return sized(body) ? `${sized(body)}${wait}` : `Too many requests from here.${wait}`;
    case 413: return `That is too large to send. ${message}`;
    case 415: return `That file is not a photo this service reads (JPEG, PNG or WebP). ${message}`;
    case 401: return "This service needs an API key: enter it below.";
    case 403: return "That owner token does not belong to this report.";
    case 404: return "Not found: it may have been deleted.";
    case 409: return sized(body) || message || "That does not fit your storage quota.";
    case 507: return sized(body) || "The service's storage is full. Please try again later.";
    default: return message || `Something went wrong (HTTP ${status}).`;
  }
}

export async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  const key = localStorage.getItem("lookalike.apiKey");
  if (key) headers.set("X-API-Key", key);
  let response;
  try {
    response = await fetch(path, { ...options, headers });
  } catch (e) {
    throw new ApiError(0, { message: "Could not reach the service. Check your connection and try again." });
  }
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
  if (!response.ok) {
    if (response.status === 401 && body && KEY_CODES.includes(body.code)) askForKey();
    throw new ApiError(response.status, body, response.headers.get("Retry-After"));
  }
  return body;
}

/** Sends `data` (multipart) with `XMLHttpRequest`, for its upload progress: `onProgress(sent,
 *  total)`. Gives up after `timeoutMs`; errors as `api`'s. */
export function upload(path, data, onProgress, timeoutMs = 600000) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    const key = localStorage.getItem("lookalike.apiKey");
    if (key) xhr.setRequestHeader("X-API-Key", key);
    xhr.timeout = timeoutMs;
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded, e.total); };
    const unreachable = (words) => () => reject(new ApiError(0, { message: words }));
    xhr.onerror = unreachable("The connection was lost while sending. Your report is kept here: try again when the signal is better.");
    xhr.ontimeout = unreachable("Sending took too long. Your report is kept here: try again when the signal is better.");
    xhr.onload = () => {
      let body = null;
      try { body = xhr.responseText ? JSON.parse(xhr.responseText) : null; } catch (e) { body = null; }
      if (xhr.status >= 200 && xhr.status < 300) { resolve(body); return; }
      if (xhr.status === 401 && body && KEY_CODES.includes(body.code)) askForKey();
      reject(new ApiError(xhr.status, body, xhr.getResponseHeader("Retry-After")));
    };
    xhr.send(data);
  });
}

export function askForKey() {
  const panel = document.getElementById("key-panel");
  panel.hidden = false;
  document.getElementById("api-key").focus();
}

document.getElementById("key-form").addEventListener("submit", (e) => {
  e.preventDefault();
  localStorage.setItem("lookalike.apiKey", document.getElementById("api-key").value.trim());
  document.getElementById("key-panel").hidden = true;
  route();
});

// Owner tokens are shown once by the service; this browser keeps them so that their owner can
// act on their reports later.
const TOKEN = "lookalike.token.";
export const tokens = {
  get: (id) => localStorage.getItem(`${TOKEN}${id}`) || "",
  set: (id, token) => localStorage.setItem(`${TOKEN}${id}`, token),
  forget: (id) => { localStorage.removeItem(`${TOKEN}${id}`); localStorage.removeItem(`${SEEN}${id}`); },
  /** The reports this browser holds a token of. */
  ids: () => Object.keys(localStorage).filter((k) => k.startsWith(TOKEN)).map((k) => k.slice(TOKEN.length)),
};

// The matches of a report its owner has seen (on its page), to count the new ones.
const SEEN = "lookalike.seen.";
export const seen = {
  get: (id) => { try { return new Set(JSON.parse(localStorage.getItem(`${SEEN}${id}`) || "[]")); } catch (e) { return new Set(); } },
  set: (id, matchIds) => localStorage.setItem(`${SEEN}${id}`, JSON.stringify([...matchIds])),
};

/** The address that opens a report as its owner on another device (the token stays in the
 *  fragment: browsers do not send it to the server). */
export function ownerLink(id, token) {
  return `${location.origin}${location.pathname}#/reports/${id}?token=${encodeURIComponent(token)}`;
}

/** `Authorization` for the report's owner, when this browser holds its owner token. */
export function ownerHeaders(id) {
  const token = tokens.get(id);
  return token ? { Authorization: `Bearer ${token}` } : {};
}
