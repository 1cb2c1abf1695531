// The code editor: CodeMirror 6 (vendor/codemirror.js, bundled once by scripts/vendor-ui.sh)
// with Python or PostgreSQL highlighting. Colours come from CSS variables so the editor
// follows the light/dark theme without swapping extensions.
import {
  EditorState, EditorView, Prec, Compartment, keymap, lineNumbers, highlightActiveLine, drawSelection,
  placeholder, defaultKeymap, history, historyKeymap, indentWithTab, syntaxHighlighting,
  HighlightStyle, indentOnInput, bracketMatching, closeBrackets, closeBracketsKeymap,
  python, sql, PostgreSQL, tags as t, setDiagnostics,
} from "./vendor/codemirror.js";
import { pythonIntrospection } from "./completion.js";

const highlight = HighlightStyle.define([
  { tag: [t.keyword, t.operatorKeyword, t.controlKeyword, t.definitionKeyword, t.moduleKeyword], color: "var(--syn-keyword)" },
  { tag: [t.string, t.special(t.string), t.regexp], color: "var(--syn-string)" },
  { tag: [t.number, t.bool, t.null, t.atom], color: "var(--syn-number)" },
  { tag: [t.comment, t.lineComment, t.blockComment], color: "var(--syn-comment)", fontStyle: "italic" },
  { tag: [t.function(t.variableName), t.function(t.propertyName)], color: "var(--syn-function)" },
  { tag: [t.definition(t.variableName), t.className, t.definition(t.className)], color: "var(--syn-def)" },
  { tag: [t.typeName, t.standard(t.variableName), t.self], color: "var(--syn-builtin)" },
  { tag: [t.operator, t.punctuation, t.bracket], color: "var(--syn-punct)" },
  { tag: [t.special(t.name), t.meta], color: "var(--syn-meta)" },
]);

const theme = EditorView.theme({
  "&": { backgroundColor: "transparent", color: "var(--fg)", fontSize: "13.5px" },
  ".cm-content": { fontFamily: "var(--mono)", caretColor: "var(--accent)", padding: "8px 0" },
  ".cm-scroller": { fontFamily: "var(--mono)", lineHeight: "1.5" },
  ".cm-gutters": { backgroundColor: "transparent", color: "var(--muted)", border: "none" },
  ".cm-activeLine": { backgroundColor: "var(--active-line)" },
  ".cm-activeLineGutter": { backgroundColor: "transparent", color: "var(--fg)" },
  "&.cm-focused": { outline: "none" },
  "&.cm-focused .cm-cursor": { borderLeftColor: "var(--accent)" },
  "&.cm-focused .cm-selectionBackground, .cm-selectionBackground, ::selection": {
    backgroundColor: "var(--selection) !important",
  },
  ".cm-matchingBracket": { backgroundColor: "var(--selection)", outline: "none" },
  ".cm-placeholder": { color: "var(--muted)" },
});

/**
 * Creates an editor in `parent`.
 * opts: { doc, language: "python"|"sql", label, onChange(text), keys: [{key, run}] }
 * `keys` take precedence over CodeMirror's own bindings (so Shift+Enter runs the cell
 * instead of inserting a newline).
 */
export function createEditor(parent, opts) {
  const languages = { sql: () => sql({ dialect: PostgreSQL, upperCaseKeywords: true }), python, markdown: () => [] };
  const language = (languages[opts.language] || python)();
  // Holds the Yjs binding (coedit.js) once the cell's shared document is known.
  const collab = new Compartment();
  const view = new EditorView({
    parent,
    state: EditorState.create({
      doc: opts.doc || "",
      extensions: [
        Prec.highest(keymap.of(opts.keys || [])),
        collab.of([]),
        lineNumbers(),
        history(),
        drawSelection(),
        indentOnInput(),
        bracketMatching(),
        closeBrackets(),
        highlightActiveLine(),
        syntaxHighlighting(highlight),
        language,
        placeholder(opts.placeholder || (opts.language === "sql" ? "SELECT … -- {name} binds a Python value" : "# Python")),
        keymap.of([...closeBracketsKeymap, ...defaultKeymap, ...historyKeymap, indentWithTab]),
        EditorView.lineWrapping,
        opts.language === "sql" ? [] : pythonIntrospection(),
        theme,
        EditorView.contentAttributes.of({ "aria-label": opts.label || "Code", "aria-multiline": "true" }),
        EditorView.updateListener.of((update) => {
          // Remote updates are dispatched with the "remote" annotation-free userEvent
          // "remote"; only the user's own typing triggers a save.
          if (update.docChanged && !update.transactions.some((tr) => tr.isUserEvent("remote"))) {
            opts.onChange?.(update.state.doc.toString());
          }
        }),
      ],
    }),
  });
  return {
    view,
    getText: () => view.state.doc.toString(),
    /** Replaces the text without triggering onChange (another tab or a reload changed it). */
    setText(text) {
      if (text === view.state.doc.toString()) return;
      const head = Math.min(view.state.selection.main.head, text.length);
      view.dispatch({
        changes: { from: 0, to: view.state.doc.length, insert: text },
        selection: { anchor: head },
        userEvent: "remote",
      });
    },
    focus(atEnd = false) {
      view.focus();
      if (atEnd) view.dispatch({ selection: { anchor: view.state.doc.length } });
    },
    hasFocus: () => view.hasFocus,
    /** Underlines a parse error from the server (1-based line and column), or clears it (null). */
    markError(error) {
      const doc = view.state.doc;
      const marks = [];
      if (error && doc.lines > 0) {
        const line = doc.line(Math.min(Math.max(1, error.line || 1), doc.lines));
        const from = Math.min(line.from + Math.max(0, (error.col || 1) - 1), line.to);
        const to = Math.min(Math.max(from + 1, line.to), doc.length);
        marks.push({ from, to, severity: "error", message: error.message || "syntax error" });
      }
      view.dispatch(setDiagnostics(view.state, marks));
    },
    /** Binds the editor to a shared text: shows `text`, then `extensions` [yCollab, undo keys]. */
    bindCollab(text, [sync, undoKeys]) {
      this.setText(text);
      view.dispatch({ effects: collab.reconfigure([Prec.high(keymap.of(undoKeys)), sync]) });
      view.dom.dataset.collab = "on";
    },
    /** Back to a plain editor (the shared document is gone). */
    unbindCollab() {
      view.dispatch({ effects: collab.reconfigure([]) });
      delete view.dom.dataset.collab;
    },
    destroy: () => view.destroy(),
  };
}
