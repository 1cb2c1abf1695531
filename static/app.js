// Entry point: sign-in, routing (/notebooks/<id>), the top bar, and wiring between the
// notebook list, the open notebook and the assistant panel.
import { api, unauthorized } from "./api.js";
import { auth } from "./auth.js";
import { $, toast, confirmDialog } from "./dom.js";
import { NotebookController } from "./notebook.js";
import { Sidebar } from "./sidebar.js";
import { ChatPanel } from "./chat.js";
import { openHelp } from "./help.js";
import { fillIcons } from "./icons.js";
import { EnvironmentBanner } from "./environment.js";
import { installTransfer } from "./transfer.js";
import { installSchedules } from "./schedules.js";
import { VariablesPanel } from "./variables.js";
import { setCompletionNotebook } from "./completion.js";
import { showLazy, wireStaleControls } from "./stale.js";
import { acceptInviteFromUrl, applyRole, installShare, Presence } from "./collab.js";

let current = null; // NotebookController
let chat = null;
let dbMasked = null;
let variables = null; // VariablesPanel

const sidebar = new Sidebar({
  open: (id, opts) => openNotebook(id, { push: true, ...opts }),
  currentId: () => current?.id ?? null,
  deleted: (id) => {
    if (current?.id === id) leaveDeletedNotebook();
  },
});

async function main() {
  fillIcons();
  let config;
  try {
    config = await api.config();
  } catch (err) {
    $("#boot").textContent = `The server cannot be reached: ${err.message}`;
    return;
  }
  let signedIn = false;
  try {
    signedIn = await auth.init(config);
  } catch (err) {
    showSignIn(config, err.message);
    return;
  }
  if (!signedIn) {
    showSignIn(config, auth.expiredNotice ? "Your sign-in token has expired. Get a new one." : "");
    return;
  }
  unauthorized.addEventListener("unauthorized", () => signedOut("Your session is no longer valid. Please sign in again."));
  startApp(config);
}

// --- Sign-in ------------------------------------------------------------------------------

function showSignIn(config, message = "") {
  $("#boot").hidden = true;
  $("#app").hidden = true;
  $("#signin").hidden = false;
  $("#signin-error").textContent = message;
  if (config.auth_mode === "clerk" && auth.clerk) {
    $("#signin-clerk").hidden = false;
    auth.mountClerkSignIn($("#signin-clerk"));
    return;
  }
  if (config.auth_mode === "clerk") {
    $("#signin-clerk").hidden = false;
    $("#signin-clerk").textContent = message || "Clerk sign-in is unavailable.";
    return;
  }
  $("#signin-local").hidden = false;
  $("#token-form").onsubmit = (ev) => {
    ev.preventDefault();
    auth.setLocalToken($("#token-input").value);
    location.reload();
  };
  $("#token-input").focus();
}

async function signedOut(message) {
  current?.presence?.close();
  current?.close();
  current = null;
  await auth.signOut();
  location.hash = "";
  const config = await api.config();
  showSignIn(config, message);
}

// --- The app ------------------------------------------------------------------------------

async function startApp(config) {
  $("#boot").hidden = true;
  $("#app").hidden = false;
  wireTopBar(config);
  installTransfer({
    currentId: () => current?.id ?? null,
    open: (id) => openNotebook(id, { push: true }),
    refresh: () => sidebar.refresh(),
  });
  installSchedules({
    currentId: () => current?.id ?? null,
    cellLabel: (cellId) => {
      const i = current?.order.indexOf(cellId) ?? -1;
      return i >= 0 ? `cell ${i + 1}` : cellId;
    },
  });
  variables = new VariablesPanel();
  new EnvironmentBanner($("#env-banner")).start();
  let notebooks = [];
  try {
    notebooks = await sidebar.refresh();
  } catch (err) {
    toast(`Could not list notebooks: ${err.message}`, "error");
  }
  installShare(() => current?.id ?? null);
  const invited = await acceptInviteFromUrl();
  if (invited) notebooks = await sidebar.refresh().catch(() => notebooks);
  const id = invited ?? routeId();
  if (id) await openNotebook(id, { push: Boolean(invited) });
  else if (notebooks.length) await openNotebook(notebooks[0].id, { push: false, replace: true });
  else showEmpty();
  window.addEventListener("popstate", () => {
    const next = routeId();
    if (next && next !== current?.id) openNotebook(next, { push: false });
    if (!next) showEmpty();
  });
}

/** The notebook id in the URL: /notebooks/<id>. */
function routeId() {
  const m = location.pathname.match(/^\/notebooks\/([^/]+)\/?$/);
  return m ? decodeURIComponent(m[1]) : null;
}

async function openNotebook(id, { push = true, replace = false, focusName = false } = {}) {
  const url = `/notebooks/${encodeURIComponent(id)}`;
  if (push && location.pathname !== url) history.pushState(null, "", url);
  if (replace) history.replaceState(null, "", url);
  if (current?.id === id) return;
  current?.presence?.close();
  current?.close();
  $("#notebook-empty").hidden = true;
  $("#notebook").hidden = false;
  $("#notebook-name").disabled = false;
  const controller = new NotebookController(id, {
    onName: (name) => {
      if (document.activeElement !== $("#notebook-name")) $("#notebook-name").value = name;
      document.title = `${name} · Reactive notebooks`;
      sidebar.setName(id, name);
    },
    onDb: (masked) => {
      dbMasked = masked;
      $("#btn-db").classList.toggle("set", Boolean(masked));
      $("#btn-db").title = masked ? `PostgreSQL: ${masked}` : "PostgreSQL connection for SQL cells (not set)";
    },
    onConnState: setConnState,
    onLazy: showLazy,
    onDeleted: () => leaveDeletedNotebook(),
    onFatal: (msg) => toast(`Live updates stopped: ${msg}`, "error"),
    onVariables: (list) => variables?.update(list),
    onPresence: (users) => presence?.render(users),
    onRole: applyRole,
  });
  const presence = new Presence(controller);
  controller.presence = presence;
  current = controller;
  setCompletionNotebook(id);
  variables?.setNotebook(controller);
  sidebar.render();
  chat?.setNotebook(id);
  try {
    await controller.open();
  } catch (err) {
    if (current !== controller) return;
    controller.close();
    current = null;
    toast(err.status === 404 ? "That notebook does not exist (or is not yours)." : `Could not open the notebook: ${err.message}`, "error");
    showEmpty();
    return;
  }
  if (controller.order.length === 0) {
    // An empty notebook: start with a cell to type in.
    controller.addCell("python", null, "below", { focus: !focusName });
  }
  if (focusName) {
    $("#notebook-name").focus();
    $("#notebook-name").select();
  }
}

function showEmpty() {
  current?.presence?.close();
  current?.close();
  current = null;
  setCompletionNotebook(null);
  variables?.setNotebook(null);
  $("#notebook").hidden = true;
  $("#notebook-empty").hidden = false;
  $("#notebook-name").value = "";
  $("#notebook-name").disabled = true;
  setConnState("offline");
  document.title = "Reactive notebooks";
  sidebar.render();
}

function leaveDeletedNotebook() {
  toast("This notebook was deleted.");
  history.replaceState(null, "", "/");
  showEmpty();
  sidebar.refresh().catch(() => {});
}

const CONN_TEXT = { live: "Live", connecting: "Connecting…", reconnecting: "Reconnecting…", offline: "Offline" };

function setConnState(state, detail) {
  const el = $("#conn");
  el.dataset.state = state;
  let text = CONN_TEXT[state] || state;
  if (state === "reconnecting" && typeof detail === "number") text = `Reconnecting in ${Math.ceil(detail / 1000)}s`;
  el.querySelector(".conn-text").textContent = text;
  el.title = state === "live" ? "Live: changes from other tabs appear as they happen" : `${text}${typeof detail === "string" ? ` (${detail})` : ""}`;
}

function wireTopBar(config) {
  // Rename on Enter or when leaving the field; Escape restores the old name.
  const name = $("#notebook-name");
  let before = "";
  name.addEventListener("focus", () => (before = name.value));
  name.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") name.blur();
    if (ev.key === "Escape") {
      name.value = before;
      name.blur();
    }
  });
  name.addEventListener("change", async () => {
    const value = name.value.trim();
    if (!current || !value || value === before) {
      name.value = before;
      return;
    }
    try {
      await sidebar.rename(current.id, value);
      document.title = `${value} · Reactive notebooks`;
    } catch (err) {
      name.value = before;
      toast(`Could not rename: ${err.message}`, "error");
    }
  });

  $("#btn-interrupt").addEventListener("click", () => current?.interrupt());
  wireStaleControls(() => current);
  $("#btn-restart").addEventListener("click", async () => {
    if (!current) return;
    const ok = await confirmDialog("Restart the kernel?", "All Python variables are lost; cells show as stale until they run again.", "Restart");
    if (ok) current.restart();
  });
  $("#btn-help").addEventListener("click", openHelp);
  $("#btn-signout").addEventListener("click", () => signedOut(""));
  $("#btn-db").addEventListener("click", openDbDialog);
  $("#add-python-end").addEventListener("click", () => current?.addCell("python", current.order.at(-1) ?? null));
  $("#add-sql-end").addEventListener("click", () => current?.addCell("sql", current.order.at(-1) ?? null));
  $("#add-markdown-end").addEventListener("click", () => current?.addCell("markdown", current.order.at(-1) ?? null));
  $("#btn-delete-notebook").addEventListener("click", () => {
    const nb = sidebar.notebooks.find((n) => n.id === current?.id);
    if (nb) sidebar.remove(nb);
  });
  $("#conn").addEventListener("click", () => current?.conn?.reconnectNow());

  // The sidebar collapses to a drawer on narrow windows.
  const toggle = $("#toggle-sidebar");
  const narrow = window.matchMedia("(max-width: 900px)");
  const setSidebar = (open) => {
    $("#app").classList.toggle("sidebar-closed", !open);
    toggle.setAttribute("aria-expanded", String(open));
  };
  setSidebar(!narrow.matches);
  narrow.addEventListener("change", () => setSidebar(!narrow.matches));
  toggle.addEventListener("click", () => setSidebar($("#app").classList.contains("sidebar-closed")));
  $("#notebook-list").addEventListener("click", (ev) => {
    if (narrow.matches && ev.target.closest(".nb-link")) setSidebar(false);
  });
  // On a narrow window the list is a drawer over the notebook: Escape closes it.
  $("#sidebar").addEventListener("keydown", (ev) => {
    if (ev.key === "Escape" && narrow.matches) {
      setSidebar(false);
      toggle.focus();
    }
  });

  if (config.assistant_enabled) {
    chat = new ChatPanel();
    if (current) chat.setNotebook(current.id);
    const btn = $("#btn-chat");
    btn.hidden = false;
    const setChat = (open) => {
      $("#chat").hidden = !open;
      $("#app").classList.toggle("chat-open", open);
      btn.setAttribute("aria-expanded", String(open));
      if (open) $("#chat-input").focus();
    };
    btn.addEventListener("click", () => setChat($("#chat").hidden));
    $("#chat-close").addEventListener("click", () => {
      setChat(false);
      btn.focus();
    });
  }

  document.addEventListener("keydown", (ev) => {
    if (ev.key === "F1") {
      ev.preventDefault();
      openHelp();
    } else if ((ev.ctrlKey || ev.metaKey) && ev.key === ".") {
      ev.preventDefault();
      current?.interrupt();
    } else if (ev.key === "?" && !isTyping(ev.target)) {
      ev.preventDefault();
      openHelp();
    }
  });
}

function isTyping(target) {
  return target.closest?.("input, textarea, .cm-editor, [contenteditable]");
}

// --- Database connection ------------------------------------------------------------------

function openDbDialog() {
  if (!current) return;
  const dialog = $("#db-dialog");
  $("#db-current").textContent = dbMasked || "none";
  $("#db-input").value = "";
  $("#db-error").textContent = "";
  $("#db-clear").hidden = !dbMasked;
  dialog.showModal();
  $("#db-input").focus();
}

async function saveDb(value) {
  try {
    await api.setDatabase(current.id, value);
    $("#db-dialog").close();
    toast(value ? "Database connection saved." : "Database connection removed.");
    await current.load();
  } catch (err) {
    $("#db-error").textContent = err.message;
  }
}

$("#db-form").addEventListener("submit", (ev) => {
  if (ev.submitter?.value !== "save") return;
  ev.preventDefault();
  const value = $("#db-input").value.trim();
  if (!value) {
    $("#db-error").textContent = "Enter a connection string, or use “Remove connection”.";
    return;
  }
  saveDb(value);
});
$("#db-clear").addEventListener("click", () => saveDb(""));

// Pasting a sign-in URL into a tab already showing the app only changes the fragment, which
// does not reload the page: start over so the new token is picked up.
window.addEventListener("hashchange", () => {
  if (/(?:^#|&)token=/.test(location.hash)) location.reload();
});

// Edits are saved a moment after typing stops; leaving before that would lose them.
window.addEventListener("beforeunload", (ev) => {
  if (current?.hasUnsavedEdits()) {
    current.flushAll();
    ev.preventDefault();
  }
});

main();
