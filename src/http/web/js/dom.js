// Building the page: elements from data (every value from the API reaches the page as text,
// never as HTML), the view in <main>, and what a view must stop when another one opens.

/** An element with attributes (on* are listeners) and children (strings become text). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (value === true) el.setAttribute(name, "");
    else el.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export const main = document.getElementById("main");
let leaving = []; // what the current view must stop (timers, streams) when another one opens

/** Registers what to stop when the current view is left. */
export function onLeave(stop) {
  leaving.push(stop);
}

/** Stops what the current view started. */
export function leave() {
  leaving.forEach((stop) => stop());
  leaving = [];
}

/** Shows a view's nodes in <main>, focused at the top. */
export function show(...nodes) {
  main.replaceChildren(...nodes.filter((node) => node !== null && node !== undefined && node !== false));
  window.scrollTo(0, 0);
  main.focus({ preventScroll: true });
}

export function notice(kind, ...text) {
  return h("div", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" }, ...text);
}

export function percent(score) {
  return `${Math.round(Math.max(0, Math.min(1, score)) * 100)}% alike`;
}

export function when(iso) {
  return new Date(iso).toLocaleString();
}

/** A size in words: "3.1 MB", "420 KB". */
export function mb(bytes) {
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(1)} MB`;
  return `${Math.max(1, Math.round(bytes / 1e3))} KB`;
}

const announced = new Set();
/** Says `text` once to screen readers, through the page's one live region: what is new, never
 *  what was already said (`key` names it; the text alone when absent). */
export function announce(text, key = text) {
  if (announced.has(key)) return;
  announced.add(key);
  const region = document.getElementById("announcer");
  if (region) region.textContent = text;
}

/** Sets `el`'s text only when it changed (a screen reader re-reads what is rewritten). */
export function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

/** Makes `old` look like `fresh` by changing only what differs (text, attributes; a node whose
 *  tag changed is replaced): what did not change is not rewritten, so it keeps focus and is not
 *  re-read. */
export function morph(old, fresh) {
  if (old.nodeType !== fresh.nodeType || old.nodeName !== fresh.nodeName) { old.replaceWith(fresh); return; }
  if (old.nodeType === Node.TEXT_NODE) { if (old.data !== fresh.data) old.data = fresh.data; return; }
  if (old.nodeType !== Node.ELEMENT_NODE) return;
  for (const { name } of [...old.attributes]) if (!fresh.hasAttribute(name)) old.removeAttribute(name);
  for (const { name, value } of [...fresh.attributes]) if (old.getAttribute(name) !== value) old.setAttribute(name, value);
  // A meter's or progress's value is a property too.
  if ("value" in fresh && old.value !== fresh.value && (old.tagName === "METER" || old.tagName === "PROGRESS")) old.value = fresh.value;
  const oldKids = [...old.childNodes];
  const freshKids = [...fresh.childNodes];
  freshKids.forEach((kid, i) => { if (i < oldKids.length) morph(oldKids[i], kid); else old.append(kid); });
  oldKids.slice(freshKids.length).forEach((kid) => kid.remove());
}
