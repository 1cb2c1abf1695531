// A third-party Yjs client for tests/yjs.rs: the JS `yjs` package under node joins a notebook's
// socket, applies the cells' states, prints the cell's text, appends to it and waits for the
// room to relay its own update back. Usage: node yjs_client.mjs WS_URL TOKEN CELL_ID TEXT
import * as Y from "yjs";

const [url, token, cellId, append] = process.argv.slice(2);
const doc = new Y.Doc();
const text = doc.getText("code");
const b64 = (bytes) => Buffer.from(bytes).toString("base64");
const fail = (why) => {
  console.error(why);
  process.exit(1);
};
setTimeout(() => fail("timed out"), 15000);

const socket = new WebSocket(url);
let mine = null;
socket.onopen = () => socket.send(JSON.stringify({ type: "authenticate", token }));
socket.onmessage = (ev) => {
  const msg = JSON.parse(ev.data);
  if (msg.type === "error") fail(`error: ${msg.message}`);
  if (msg.type !== "yjs" || msg.cellId !== cellId) return;
  Y.applyUpdate(doc, Buffer.from(msg.update, "base64"), "remote");
  if (mine === null) {
    console.log(`saw: ${JSON.stringify(text.toString())}`);
    doc.once("update", (update) => {
      mine = b64(update);
      socket.send(JSON.stringify({ type: "yjs", cellId, update: mine }));
    });
    text.insert(text.length, append);
  } else if (msg.update === mine) {
    console.log(`now: ${JSON.stringify(text.toString())}`);
    socket.close();
    process.exit(0);
  }
};
