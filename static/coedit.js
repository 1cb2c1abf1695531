// Co-editing cell text with Yjs: one Y.Doc per cell (its Y.Text "code"), fed by the room's
// `yjs` events and bound to the cell's editor with y-codemirror.next. Local edits go out as
// `{"type":"yjs","cellId","update"}` (base64 Yjs v1 updates) on the notebook's socket.
// The room sends every cell's full state on each (re)join; a rejoin may meet a restarted
// room whose documents have new histories, so the documents start over on every join.
import { Y, yCollab, yUndoManagerKeymap } from "./vendor/codemirror.js";

/** The origin of updates that came from the room (they are not sent back). */
const REMOTE = "remote";

function toBase64(bytes) {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

function fromBase64(text) {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

export class Collab {
  /** send(msg): puts a message on the socket (dropped while it is not live). */
  constructor(send) {
    this.send = send;
    this.docs = new Map(); // cell id -> { doc, text, editor }
    this.editors = new Map(); // cell id -> editor (see editor.js)
  }

  /** (Re)joined: forget every document; the room sends fresh ones. */
  reset() {
    for (const [id, entry] of this.docs) {
      entry.editor?.unbindCollab();
      entry.doc.destroy();
      this.docs.delete(id);
    }
  }

  /** Whether the cell's editor is bound to its document (its edits travel as Yjs updates). */
  bound(id) {
    return Boolean(this.docs.get(id)?.editor);
  }

  /** A `yjs` event from the room. */
  onUpdate(msg) {
    if (typeof msg.cellId !== "string" || typeof msg.update !== "string") return;
    let entry = this.docs.get(msg.cellId);
    if (!entry) {
      const doc = new Y.Doc();
      entry = { doc, text: doc.getText("code"), editor: null };
      const cellId = msg.cellId;
      doc.on("update", (update, origin) => {
        if (origin !== REMOTE) this.send({ type: "yjs", cellId, update: toBase64(update) });
      });
      this.docs.set(cellId, entry);
    }
    try {
      Y.applyUpdate(entry.doc, fromBase64(msg.update), REMOTE);
    } catch (err) {
      console.warn("bad yjs update:", err);
      return;
    }
    const editor = this.editors.get(msg.cellId);
    if (editor && !entry.editor) this.bind(entry, editor);
  }

  /** A cell's editor appeared; bound as soon as its document is known. */
  attach(id, editor) {
    this.editors.set(id, editor);
    const entry = this.docs.get(id);
    if (entry && entry.editor !== editor) this.bind(entry, editor);
  }

  /** The cell (or its editor) is gone. */
  detach(id) {
    this.editors.delete(id);
    const entry = this.docs.get(id);
    if (entry) {
      entry.doc.destroy();
      this.docs.delete(id);
    }
  }

  bind(entry, editor) {
    entry.editor = editor;
    const undo = new Y.UndoManager(entry.text);
    editor.bindCollab(entry.text.toString(), [
      yCollab(entry.text, null, { undoManager: undo }),
      yUndoManagerKeymap,
    ]);
  }
}
