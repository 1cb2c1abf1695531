#!/usr/bin/env bash
# Vendors the web UI's third-party code into static/vendor/ from npm, at exact versions.
# The output is committed: the server never fetches anything from the internet at run time.
# Re-run only to upgrade (edit the versions below), then commit static/vendor/.
#
#   codemirror.js       CodeMirror 6 (editor + Python/SQL languages), bundled ONCE here with
#                       esbuild into a single ES module, because CM6 is ~15 small packages that
#                       import each other by bare name and the UI has no build step.
#                       The same bundle carries yjs + y-codemirror.next (co-editing cell text),
#                       so yjs and @codemirror/state exist once (two copies break both).
#   plotly.min.js       plotly.js-dist-min (UMD, sets window.Plotly), loaded on first use.
#   vega*.min.js        vega, vega-lite, vega-embed UMD builds, loaded on first use, in order.
#   markdown-it.min.js  markdown-it (UMD, window.markdownit): markdown cells and text/markdown.
#   katex/              KaTeX (window.katex + its CSS and woff2 fonts) for $…$ and $$…$$.
#   purify.min.js       DOMPurify (window.DOMPurify): every rendered markdown is sanitized.
#   licenses/           the license text of each package copied here.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  codemirror@6.0.2
  @codemirror/state@6.7.6
  @codemirror/view@6.43.15
  @codemirror/language@6.13.1
  @codemirror/commands@6.11.1
  @codemirror/autocomplete@6.20.4
  @codemirror/lang-python@6.2.1
  @codemirror/lang-sql@6.10.0
  @codemirror/lint@6.9.8
  @lezer/highlight@1.2.5
  yjs@13.6.33
  y-codemirror.next@0.3.6
  plotly.js-dist-min@4.1.2
  vega@6.4.0
  vega-lite@6.5.0
  vega-embed@7.3.0
  markdown-it@15.0.3
  katex@0.19.1
  dompurify@3.5.0
)
ESBUILD=esbuild@0.28.2

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
out="static/vendor"

cd "$work"
echo '{"private":true}' > package.json
npm install --no-audit --no-fund --save-exact "${PACKAGES[@]}" "$ESBUILD" >/dev/null

# The entry point re-exports exactly what static/editor.js uses.
cat > cm-entry.js <<'JS'
export { EditorState, Compartment, Prec } from "@codemirror/state";
export { EditorView, keymap, lineNumbers, highlightActiveLine, highlightActiveLineGutter,
         drawSelection, placeholder } from "@codemirror/view";
export { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
export { syntaxHighlighting, HighlightStyle, indentOnInput, bracketMatching,
         defaultHighlightStyle } from "@codemirror/language";
export { closeBrackets, closeBracketsKeymap, autocompletion, completionKeymap } from "@codemirror/autocomplete";
export { python } from "@codemirror/lang-python";
export { sql, PostgreSQL } from "@codemirror/lang-sql";
export { tags } from "@lezer/highlight";
export { setDiagnostics } from "@codemirror/lint";
export * as Y from "yjs";
export { yCollab, yUndoManagerKeymap } from "y-codemirror.next";
JS
./node_modules/.bin/esbuild cm-entry.js --bundle --format=esm --minify --legal-comments=eof \
  --target=es2020 --outfile=codemirror.js --log-level=warning

cd - >/dev/null
rm -rf "$out"
mkdir -p "$out"
cp "$work/codemirror.js" "$out/codemirror.js"
cp "$work/node_modules/plotly.js-dist-min/plotly.min.js" "$out/plotly.min.js"
cp "$work/node_modules/vega/build/vega.min.js" "$out/vega.min.js"
cp "$work/node_modules/vega-lite/build/vega-lite.min.js" "$out/vega-lite.min.js"
cp "$work/node_modules/vega-embed/build/vega-embed.min.js" "$out/vega-embed.min.js"
cp "$work/node_modules/markdown-it/dist/browser/markdown-it.umd.min.js" "$out/markdown-it.min.js"
cp "$work/node_modules/dompurify/dist/purify.min.js" "$out/purify.min.js"
mkdir -p "$out/katex/fonts"
cp "$work/node_modules/katex/dist/katex.min.js" "$work/node_modules/katex/dist/katex.min.css" "$out/katex/"
# Browsers take the first format they support, woff2 everywhere today; the others stay out.
cp "$work"/node_modules/katex/dist/fonts/*.woff2 "$out/katex/fonts/"
mkdir -p "$out/licenses"
for pkg in codemirror yjs y-codemirror.next lib0 plotly.js-dist-min vega vega-lite vega-embed markdown-it entities linkify-it mdurl \
    punycode.js uc.micro katex dompurify; do
  for f in "$work/node_modules/$pkg"/LICENSE*; do
    if [ -e "$f" ]; then cp "$f" "$out/licenses/$pkg-$(basename "$f" .txt).txt"; fi
  done
done

# Record the versions actually installed (including CM6's transitive packages in the bundle).
{
  echo "# Written by scripts/vendor-ui.sh; do not edit by hand."
  echo "# package@version (license)"
  (cd "$work" && node -e '
    const fs = require("fs"), path = require("path");
    const seen = [];
    const walk = (dir) => {
      for (const name of fs.readdirSync(dir)) {
        if (name.startsWith(".")) continue;
        const p = path.join(dir, name);
        if (name.startsWith("@")) { walk(p); continue; }
        const pj = path.join(p, "package.json");
        if (fs.existsSync(pj)) {
          const j = JSON.parse(fs.readFileSync(pj));
          seen.push([j.name, `${j.name}@${j.version} (${j.license || "see package"})`]);
        }
      }
    };
    walk("node_modules");
    const wanted = /^(codemirror|yjs|y-codemirror\.next|lib0|@codemirror\/.*|@lezer\/.*|crelt|style-mod|w3c-keyname|plotly\.js-dist-min|vega|vega-lite|vega-embed|markdown-it|entities|linkify-it|mdurl|punycode\.js|uc\.micro|katex|dompurify|esbuild)$/;
    console.log(seen.filter(([n]) => wanted.test(n)).map(([, s]) => s).sort().join("\n"));
  ')
} > "$out/VERSIONS.txt"
ls -la "$out"
