// Renders one output (a MIME bundle item) into DOM. Chart libraries are loaded on first use
// only, so a notebook of plain text never pays for 5 MB of Plotly.
import { h, loadScript } from "./dom.js";
import { renderMarkdown } from "./markdown.js";
import { renderTable } from "./table.js";

const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g;
export const stripAnsi = (s) => String(s ?? "").replace(ANSI, "");

export function renderOutput(output) {
  const { mime_type: mime, data } = output || {};
  switch (mime) {
    case "text/plain":
      return h("pre.out-text", {}, stripAnsi(data));
    case "text/html":
      return renderHtml(String(data ?? ""));
    case "text/markdown":
      return renderMarkdown(String(data ?? ""));
    case "image/png":
      return h("img.out-image", { src: `data:image/png;base64,${data}`, alt: "Image output" });
    case "image/svg+xml":
      // An SVG can carry script: show it as an image, never inline.
      return h("img.out-image", { src: `data:image/svg+xml;charset=utf-8,${encodeURIComponent(data)}`, alt: "Image output" });
    case "application/json":
      return data && data.type === "table" ? renderTable(data) : h("pre.out-text", {}, JSON.stringify(data, null, 2));
    case "application/vnd.plotly.v1+json":
      return renderPlotly(data);
    case "application/vnd.vegalite.v6+json":
    case "application/vnd.vegalite.v5+json":
      return renderVega(data);
    default:
      return h("pre.out-text.muted", {}, `[${mime}] `, typeof data === "string" ? data : JSON.stringify(data));
  }
}

// HTML output runs in a sandboxed iframe: scripts may run (widgets, styled tables) but in an
// opaque origin, so they cannot touch this page, its token or the API. A tiny script inside
// reports the content height so the frame fits without a scrollbar.
const RESIZER = `<script>(function(){function s(){parent.postMessage({rnFrameHeight:document.documentElement.scrollHeight},"*")}
addEventListener("load",s);new ResizeObserver(s).observe(document.documentElement);})()</script>`;
const FRAME_STYLE = `<style>body{margin:0;font:13px system-ui,sans-serif;color:#1f2328;background:#fff}
table{border-collapse:collapse}td,th{border:1px solid #d0d7de;padding:2px 6px}</style>`;

function renderHtml(html) {
  const frame = h("iframe.out-html", {
    sandbox: "allow-scripts",
    title: "HTML output",
    srcdoc: FRAME_STYLE + html + RESIZER,
    loading: "lazy",
  });
  frame.style.height = "60px";
  return frame;
}

window.addEventListener("message", (ev) => {
  const height = ev.data?.rnFrameHeight;
  if (typeof height !== "number") return;
  for (const frame of document.querySelectorAll("iframe.out-html")) {
    if (frame.contentWindow === ev.source) frame.style.height = `${Math.min(Math.ceil(height) + 2, 2000)}px`;
  }
});

function renderPlotly(figure) {
  const el = h("div.out-chart.plotly", { role: "img", "aria-label": "Plotly chart" });
  loadScript("/vendor/plotly.min.js")
    .then(() => {
      const fig = figure || {};
      return window.Plotly.newPlot(el, fig.data || [], { autosize: true, ...(fig.layout || {}) }, {
        responsive: true,
        displaylogo: false,
        ...(fig.config || {}),
      });
    })
    .catch((err) => el.replaceChildren(h("pre.out-text.error-text", {}, `Could not draw the chart: ${err.message}`)));
  return el;
}

async function loadVega() {
  // The UMD builds find each other through globals, so the order matters.
  await loadScript("/vendor/vega.min.js");
  await loadScript("/vendor/vega-lite.min.js");
  await loadScript("/vendor/vega-embed.min.js");
}

function renderVega(spec) {
  const el = h("div.out-chart.vega", { role: "img", "aria-label": "Vega-Lite chart" });
  loadVega()
    .then(() => window.vegaEmbed(el, spec, { actions: false, renderer: "svg" }))
    .catch((err) => el.replaceChildren(h("pre.out-text.error-text", {}, `Could not draw the chart: ${err.message}`)));
  return el;
}
