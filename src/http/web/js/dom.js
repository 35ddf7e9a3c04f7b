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
  main.replaceChildren(...nodes);
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
