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

function explain(status, body, retryAfter) {
  const message = (body && body.message) || "";
  const wait = retryAfter ? ` Please try again in ${retryAfter} second${retryAfter === "1" ? "" : "s"}.` : " Please try again in a moment.";
  switch (status) {
    case 503: return `The service is busy right now.${wait}`;
    case 429: return `Too many requests from here.${wait}`;
    case 413: return `That photo is too large. ${message}`;
    case 415: return `That file is not a photo this service reads (JPEG, PNG or WebP). ${message}`;
    case 401: return "This service needs an API key: enter it below.";
    case 403: return "That owner token does not belong to this report.";
    case 404: return "Not found: it may have been deleted.";
    case 409: return message || "That does not fit your storage quota.";
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
    if (response.status === 401) askForKey();
    throw new ApiError(response.status, body, response.headers.get("Retry-After"));
  }
  return body;
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
export const tokens = {
  get: (id) => localStorage.getItem(`lookalike.token.${id}`) || "",
  set: (id, token) => localStorage.setItem(`lookalike.token.${id}`, token),
  forget: (id) => localStorage.removeItem(`lookalike.token.${id}`),
};

/** `Authorization` for the report's owner, when this browser holds its owner token. */
export function ownerHeaders(id) {
  const token = tokens.get(id);
  return token ? { Authorization: `Bearer ${token}` } : {};
}
