// Sharing and presence in the UI: accept invite links, the share dialog (invites and
// members), avatars in the header, a coloured edge on cells others are in, focus reports,
// and a read-only notebook for viewers.
import { request } from "./api.js";
import { auth } from "./auth.js";
import { toast } from "./dom.js";

/** The signed-in user's id, read from the token (only to tell "me" from others). */
async function myId() {
  try {
    const token = await auth.token();
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(payload)).sub ?? null;
  } catch {
    return null;
  }
}

/** Accepts `#invite=CODE` (the link /invite/CODE lands there); answers the notebook id. */
export async function acceptInviteFromUrl() {
  const m = location.hash.match(/(?:^#|&)invite=([A-Za-z0-9_-]+)/);
  if (!m) return null;
  history.replaceState(null, "", location.pathname);
  try {
    const { notebook_id, role } = await request("POST", `/api/invites/${m[1]}/accept`);
    toast(`You joined a notebook as ${role}.`);
    return notebook_id;
  } catch (err) {
    toast(err.status === 404 ? "That invite is unknown or has expired." : `Could not accept the invite: ${err.message}`, "error");
    return null;
  }
}

/** Reports which cell the user is in, and shows where everyone else is. */
export class Presence {
  constructor(controller) {
    this.controller = controller;
    this.me = null;
    this.current = undefined;
    myId().then((id) => (this.me = id));
    this.onFocus = (ev) => this.report(ev.target.closest?.("[data-cell-id]")?.dataset.cellId ?? null);
    document.addEventListener("focusin", this.onFocus);
  }

  report(cellId) {
    if (cellId === this.current) return;
    this.current = cellId;
    this.controller.conn?.send({ type: "focus", cellId });
  }

  /** Renders a `presence` broadcast. */
  render(users) {
    let bar = document.getElementById("presence");
    if (!bar) {
      bar = document.createElement("span");
      bar.id = "presence";
      bar.className = "presence";
      bar.setAttribute("aria-label", "People in this notebook");
      document.getElementById("conn")?.before(bar);
    }
    bar.replaceChildren(
      ...users.map((u) => {
        const label = u.name || u.user_id;
        const el = document.createElement("span");
        el.className = "avatar";
        el.style.background = u.color;
        el.title = u.user_id === this.me ? `${label} (you)` : label;
        el.textContent = label.trim().charAt(0).toUpperCase() || "?";
        el.dataset.userId = u.user_id;
        return el;
      }),
    );
    for (const view of this.controller.views.values()) {
      view.el.style.removeProperty("--presence-color");
      view.el.classList.remove("others-here");
    }
    for (const u of users) {
      if (!u.cell_id || u.user_id === this.me) continue;
      const view = this.controller.views.get(u.cell_id);
      if (!view) continue;
      view.el.classList.add("others-here");
      view.el.style.setProperty("--presence-color", u.color);
      view.el.title = `${u.name || u.user_id} is here`;
    }
  }

  close() {
    document.removeEventListener("focusin", this.onFocus);
    document.getElementById("presence")?.replaceChildren();
  }
}

/** Marks the notebook read-only for a viewer (the server refuses their edits anyway). */
export function applyRole(role) {
  const notebook = document.getElementById("notebook");
  const readOnly = role === "viewer";
  notebook?.classList.toggle("read-only", readOnly);
  notebook?.toggleAttribute("inert", readOnly);
  for (const id of ["btn-db", "btn-interrupt", "btn-restart", "notebook-name"]) {
    const el = document.getElementById(id);
    if (el) el.disabled = readOnly || (role !== "owner" && (id === "btn-db" || id === "notebook-name"));
  }
  const share = document.getElementById("btn-share");
  if (share) share.hidden = role !== "owner";
}

/** Adds the Share button and its dialog (owner: invites and members). */
export function installShare(currentId) {
  if (document.getElementById("btn-share")) return;
  const button = document.createElement("button");
  button.id = "btn-share";
  button.className = "btn";
  button.textContent = "Share";
  button.title = "Invite people and manage members";
  button.hidden = true;
  document.getElementById("btn-db")?.before(button);
  const dialog = document.createElement("dialog");
  dialog.id = "share-dialog";
  dialog.className = "share-dialog";
  dialog.innerHTML = `<h2>Share</h2>
    <p><select id="share-role" aria-label="Role"><option value="viewer">viewer</option><option value="editor">editor</option></select>
    <button id="share-create" class="btn">Create invite link</button></p>
    <p><input id="share-link" readonly aria-label="Invite link" size="60"> <button id="share-copy" class="btn">Copy</button></p>
    <h3>Members</h3><ul id="share-members"></ul>
    <p><button id="share-close" class="btn">Close</button></p>`;
  document.body.append(dialog);
  const members = async () => {
    const id = currentId();
    const { members } = await request("GET", `/api/notebooks/${id}/members`);
    document.getElementById("share-members").replaceChildren(
      ...members.map((m) => {
        const li = document.createElement("li");
        li.textContent = `${m.user_id} (${m.role}) `;
        if (m.role !== "owner") {
          const remove = document.createElement("button");
          remove.className = "btn small";
          remove.textContent = "Remove";
          remove.onclick = async () => {
            await request("DELETE", `/api/notebooks/${id}/members/${encodeURIComponent(m.user_id)}`);
            members();
          };
          li.append(remove);
        }
        return li;
      }),
    );
  };
  button.onclick = () => {
    dialog.showModal();
    members().catch((err) => toast(err.message, "error"));
  };
  dialog.querySelector("#share-close").onclick = () => dialog.close();
  dialog.querySelector("#share-create").onclick = async () => {
    try {
      const role = dialog.querySelector("#share-role").value;
      const { url } = await request("POST", `/api/notebooks/${currentId()}/invites`, { role });
      dialog.querySelector("#share-link").value = url;
    } catch (err) {
      toast(err.message, "error");
    }
  };
  dialog.querySelector("#share-copy").onclick = () => {
    navigator.clipboard?.writeText(dialog.querySelector("#share-link").value).then(() => toast("Link copied."));
  };
}
