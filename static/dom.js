// Tiny DOM helpers, so the views read as structure rather than createElement noise.

/**
 * h("div.cell.python", {attrs}, ...children): class names after dots; attrs are set as
 * properties when the element has one (onclick, hidden, value) and as attributes otherwise
 * (aria-*, data-*, role).
 */
export function h(tag, attrs = {}, ...children) {
  const [name, ...classes] = tag.split(".");
  const el = document.createElement(name || "div");
  if (classes.length) el.className = classes.join(" ");
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      el.className += (el.className ? " " : "") + value;
    } else if (key in el && !key.includes("-") && key !== "list") {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

export const $ = (selector, root = document) => root.querySelector(selector);

/**
 * Shows a short message in the corner; errors stay longer. Announced by the live region.
 * `action` ({label, run}) adds a button; the close button dismisses at once.
 */
export function toast(message, kind = "info", { ms = kind === "error" ? 8000 : 4000, action } = {}) {
  const box = $("#toasts");
  const item = h(
    `div.toast.${kind}`,
    {},
    h("span.toast-text", {}, message),
    action && h("button.btn.small", { type: "button", onclick: () => (item.remove(), action.run()) }, action.label),
    h("button.icon-btn.toast-close", { type: "button", "aria-label": "Dismiss", onclick: () => item.remove() }, "×"),
  );
  box.append(item);
  setTimeout(() => item.remove(), action ? Math.max(ms, 15000) : ms);
}

/** Asks before something destructive; resolves to true when confirmed. */
export function confirmDialog(title, text, okLabel = "Delete") {
  const dialog = $("#confirm-dialog");
  $("#confirm-title").textContent = title;
  $("#confirm-text").textContent = text;
  $("#confirm-ok").textContent = okLabel;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

/** Calls fn at most once per `ms` of quiet; .flush() runs a pending call now. */
export function debounce(fn, ms) {
  let timer = null;
  let pendingArgs = null;
  const run = () => {
    timer = null;
    const args = pendingArgs;
    pendingArgs = null;
    return fn(...args);
  };
  const wrapped = (...args) => {
    pendingArgs = args;
    clearTimeout(timer);
    timer = setTimeout(run, ms);
  };
  wrapped.flush = () => {
    if (timer === null) return undefined;
    clearTimeout(timer);
    return run();
  };
  wrapped.pending = () => timer !== null;
  wrapped.cancel = () => {
    clearTimeout(timer);
    timer = null;
    pendingArgs = null;
  };
  return wrapped;
}

/** Loads a classic (UMD) script once; used for the big chart libraries, on first use only. */
const scripts = new Map();
export function loadScript(src) {
  if (!scripts.has(src)) {
    scripts.set(
      src,
      new Promise((resolve, reject) => {
        const el = document.createElement("script");
        el.src = src;
        el.onload = resolve;
        el.onerror = () => {
          scripts.delete(src);
          reject(new Error(`could not load ${src}`));
        };
        document.head.append(el);
      }),
    );
  }
  return scripts.get(src);
}
