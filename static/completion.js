// Completion and docs for Python editors, answered by the notebook's kernel (jedi against the
// live namespace): Tab or Ctrl+Space completes, hovering a name (or Shift+Tab at the cursor)
// shows its signature and docstring. The server answers `busy` instead of waiting when the
// kernel cannot answer in time; then nothing is shown.
//
// Positions: CodeMirror counts UTF-16 code units, the server counts code points.
import { autocompletion, completionKeymap, keymap, Prec, EditorView } from "./vendor/codemirror.js";
import { request } from "./api.js";
import { h } from "./dom.js";

let notebookId = null;

/** The notebook whose kernel answers (set when a notebook opens). */
export function setCompletionNotebook(id) {
  notebookId = id;
  hideDocs();
}

const path = (what) => `/api/notebooks/${encodeURIComponent(notebookId)}/${what}`;

// The bundle exports the keymap, not the commands: take them from their bindings.
const command = (key) => completionKeymap.find((b) => b.key === key)?.run ?? (() => false);
const startCompletion = command("Ctrl-Space");
const acceptCompletion = command("Enter");

/** Code points in text[0, utf16). */
export function toCodePoints(text, utf16) {
  return [...text.slice(0, utf16)].length;
}

/** The UTF-16 offset of code point `points`. */
export function toUtf16(text, points) {
  let i = 0;
  for (const ch of text) {
    if (points-- <= 0) break;
    i += ch.length;
  }
  return i;
}

// jedi's kinds -> CodeMirror's icons.
const KINDS = {
  module: "namespace", class: "class", instance: "variable", function: "function",
  param: "variable", path: "text", keyword: "keyword", property: "property", statement: "variable",
};

async function kernelCompletions(context) {
  if (!notebookId) return null;
  const code = context.state.doc.toString();
  let answer;
  try {
    answer = await request("POST", path("complete"), { code, cursor: toCodePoints(code, context.pos) });
  } catch {
    return null;
  }
  if (context.aborted || answer.busy || !answer.matches?.length) return null;
  return {
    from: toUtf16(code, answer.cursor_start ?? toCodePoints(code, context.pos)),
    options: answer.matches.map((m) => ({ label: m.text, type: KINDS[m.type] || "variable" })),
    validFor: /^[\w$]*$/,
  };
}

/** Tab completes after a name or a dot; elsewhere (line start, selection) it indents. */
function tabComplete(view) {
  if (acceptCompletion(view)) return true;
  const sel = view.state.selection.main;
  if (!sel.empty) return false;
  const line = view.state.doc.lineAt(sel.head);
  const before = line.text.slice(0, sel.head - line.from);
  if (!/[\w.]$/.test(before)) return false;
  return startCompletion(view);
}

/** Shift+Tab on a name shows its docs; elsewhere it keeps dedenting. */
function shiftTabDocs(view) {
  const sel = view.state.selection.main;
  if (!sel.empty || !view.state.wordAt(sel.head)) return false;
  showDocs(view, sel.head, true);
  return true;
}

// --- Docs tooltip ------------------------------------------------------------------------

let tooltip = null;
let tooltipByKey = false; // shown by Shift+Tab: mouse moves do not hide it
let tooltipFrom = -1; // where the word it describes starts
let hoverTimer = null;
let hoverSeq = 0;

// A click anywhere but on the tooltip closes it.
document.addEventListener(
  "mousedown",
  (ev) => {
    if (tooltip && !tooltip.contains(ev.target)) hideDocs();
  },
  true,
);

// The tooltip is fixed on screen: any scroll but its own moves the text away from it.
document.addEventListener(
  "scroll",
  (ev) => {
    if (tooltip && !tooltip.contains(ev.target)) hideDocs();
  },
  true,
);

function hideDocs() {
  clearTimeout(hoverTimer);
  tooltipByKey = false;
  hoverSeq++;
  tooltip?.remove();
  tooltip = null;
}

async function showDocs(view, pos, byKey = false) {
  if (!notebookId) return;
  const word = view.state.wordAt(pos);
  const at = word ? word.to : pos;
  const code = view.state.doc.toString();
  const seq = ++hoverSeq;
  let answer;
  try {
    answer = await request("POST", path("inspect"), { code, cursor: toCodePoints(code, at) });
  } catch {
    return;
  }
  if (seq !== hoverSeq || !answer.found || !view.dom.isConnected) return;
  const coords = view.coordsAtPos(word ? word.from : pos);
  if (!coords) return;
  tooltip?.remove();
  tooltipByKey = byKey;
  tooltipFrom = word ? word.from : pos;
  tooltip = h(
    "div.doc-tooltip",
    {
      role: "tooltip",
      onmouseleave: (ev) => {
        if (!tooltipByKey && !view.dom.contains(ev.relatedTarget)) hideDocs();
      },
    },
    h("div.doc-name", {}, answer.name || ""),
    answer.signature && h("pre.doc-signature", {}, answer.signature),
    answer.docstring && h("pre.doc-text", {}, answer.docstring),
  );
  document.body.append(tooltip);
  const top = coords.bottom + 4;
  tooltip.style.left = `${Math.max(4, Math.min(coords.left, window.innerWidth - tooltip.offsetWidth - 8))}px`;
  tooltip.style.top = top + tooltip.offsetHeight > window.innerHeight
    ? `${Math.max(4, coords.top - tooltip.offsetHeight - 4)}px`
    : `${top}px`;
}

const hoverDocs = EditorView.domEventHandlers({
  mousemove(ev, view) {
    if (tooltipByKey || tooltip?.contains(ev.target)) return false;
    clearTimeout(hoverTimer);
    const pos = view.posAtCoords({ x: ev.clientX, y: ev.clientY }, false);
    const word = pos === null ? null : view.state.wordAt(pos);
    if (!word) {
      hideDocs();
      return false;
    }
    if (tooltip && word.from === tooltipFrom) return false;
    hoverTimer = setTimeout(() => showDocs(view, pos), 450);
    return false;
  },
  mouseleave(ev) {
    // Moving onto the tooltip keeps it (to scroll a long docstring).
    if (!tooltipByKey && !tooltip?.contains(ev.relatedTarget)) hideDocs();
    return false;
  },
  keydown(ev) {
    if (ev.key !== "Shift" && !(ev.key === "Tab" && ev.shiftKey)) hideDocs();
    return false;
  },
});

/** Extensions for a Python editor: kernel completion, Tab, hover docs, Shift+Tab docs. */
export function pythonIntrospection() {
  return [
    autocompletion({ override: [kernelCompletions], activateOnTyping: false }),
    Prec.high(
      keymap.of([
        { key: "Tab", run: tabComplete },
        { key: "Shift-Tab", run: shiftTabDocs },
      ]),
    ),
    hoverDocs,
  ];
}
