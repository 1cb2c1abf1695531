// Markdown to sanitized DOM, for markdown cells and `text/markdown` outputs: markdown-it parses
// (raw HTML allowed, as in Jupyter), KaTeX typesets $…$ and $$…$$, and DOMPurify sanitizes the
// result, so markdown written by anyone (a shared notebook, a hostile cell's output) cannot run
// script in this page. The libraries (vendor/, see scripts/vendor-ui.sh) load on first use.
import { h, loadScript } from "./dom.js";

let renderer = null;

function loadCss(href) {
  if (document.querySelector(`link[href="${href}"]`)) return;
  document.head.append(h("link", { rel: "stylesheet", href }));
}

function load() {
  renderer ??= Promise.all([
    loadScript("/vendor/markdown-it.min.js"),
    loadScript("/vendor/purify.min.js"),
    loadScript("/vendor/katex/katex.min.js"),
  ])
    .then(() => {
      loadCss("/vendor/katex/katex.min.css");
      return makeRenderer();
    })
    .catch((err) => {
      renderer = null; // try again next time
      throw err;
    });
  return renderer;
}

function makeRenderer() {
  const md = window.markdownit({ html: true, linkify: true });
  md.use(mathPlugin);
  const purify = window.DOMPurify;
  // Links leave the app in a new tab, without access back to it.
  purify.addHook("afterSanitizeAttributes", (node) => {
    if (node.tagName === "A" && node.getAttribute("href")) {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer");
    }
  });
  return (text) =>
    purify.sanitize(md.render(String(text ?? "")), {
      // No forms or frames from markdown; KaTeX needs MathML and inline styles, which stay.
      FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select", "iframe"],
      FORBID_ATTR: ["id", "name"],
    });
}

function katexHtml(tex, displayMode) {
  return window.katex.renderToString(tex, { displayMode, throwOnError: false, output: "htmlAndMathml" });
}

/** $…$ inline and $$…$$ display math, as markdown-it rules so code spans keep their dollars. */
function mathPlugin(md) {
  md.inline.ruler.after("escape", "math_inline", (state, silent) => {
    const src = state.src;
    const start = state.pos;
    if (src[start] !== "$") return false;
    const display = src[start + 1] === "$";
    const open = display ? 2 : 1;
    // "$ 5" or "$5 and $6" read as money: inline math must hug its dollars.
    if (!display && (src[start + 1] === " " || src[start + 1] === undefined)) return false;
    let end = start + open;
    while ((end = src.indexOf(display ? "$$" : "$", end)) !== -1) {
      if (src[end - 1] !== "\\") break;
      end += 1;
    }
    if (end === -1 || end === start + open) return false;
    const tex = src.slice(start + open, end);
    if (!display && (tex.endsWith(" ") || /^\d/.test(src[end + 1] ?? ""))) return false;
    if (!silent) {
      const token = state.push(display ? "math_display" : "math_inline", "math", 0);
      token.content = tex;
      token.markup = display ? "$$" : "$";
    }
    state.pos = end + open;
    return true;
  });
  md.block.ruler.after(
    "blockquote",
    "math_block",
    (state, startLine, endLine, silent) => {
      const lineText = (n) => state.src.slice(state.bMarks[n] + state.tShift[n], state.eMarks[n]);
      const first = lineText(startLine);
      if (!first.startsWith("$$")) return false;
      let body = first.slice(2);
      let line = startLine;
      let closed = body.trimEnd().endsWith("$$");
      if (closed) {
        body = body.trimEnd().slice(0, -2);
      } else {
        const lines = [body];
        while (++line < endLine) {
          const text = lineText(line);
          if (text.trimEnd().endsWith("$$")) {
            lines.push(text.trimEnd().slice(0, -2));
            closed = true;
            break;
          }
          lines.push(text);
        }
        body = lines.join("\n");
      }
      if (!closed) return false;
      if (silent) return true;
      const token = state.push("math_display", "math", 0);
      token.block = true;
      token.content = body;
      token.map = [startLine, line + 1];
      state.line = line + 1;
      return true;
    },
    { alt: ["paragraph", "reference", "blockquote", "list"] },
  );
  md.renderer.rules.math_inline = (tokens, idx) => katexHtml(tokens[idx].content, false);
  md.renderer.rules.math_display = (tokens, idx) =>
    `<div class="math-display">${katexHtml(tokens[idx].content, true)}</div>`;
}

/**
 * Fills `el` with the rendered markdown (once the libraries are loaded) and returns the
 * promise of that; a failure shows the text as it is.
 */
export function renderMarkdownInto(el, text) {
  el.classList.add("markdown-body");
  const token = Symbol("render");
  el._mdToken = token;
  return load()
    .then((render) => {
      if (el._mdToken !== token) return; // a newer text was rendered meanwhile
      el.innerHTML = render(text);
    })
    .catch((err) => {
      el.replaceChildren(h("pre.out-text", {}, String(text ?? "")), h("div.error-text", {}, `Could not render markdown: ${err.message}`));
    });
}

/** A new element showing `text` rendered (filled in asynchronously). */
export function renderMarkdown(text) {
  const el = h("div.out-markdown");
  renderMarkdownInto(el, text);
  return el;
}
