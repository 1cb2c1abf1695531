// Export and import: a Download menu in the top bar (ipynb / py / html), an Import button in the
// notebook list (file picker), and dropping .ipynb / .py files anywhere on the page.
import { auth } from "./auth.js";
import { request } from "./api.js";
import { $, h, toast } from "./dom.js";

const FORMATS = [
  ["ipynb", "Jupyter notebook (.ipynb)"],
  ["py", "Python script, percent format (.py)"],
  ["html", "Web page (.html)"],
];
const IMPORTABLE = /\.(ipynb|py)$/i;
const MAX_IMPORT_BYTES = 12 * 1024 * 1024; // the server takes 16 MiB of JSON; content is escaped

/** hooks: { currentId(), open(id), refresh() } */
export function installTransfer(hooks) {
  installDownloadMenu(hooks);
  installImport(hooks);
}

// --- Download --------------------------------------------------------------------------------

function installDownloadMenu(hooks) {
  const menu = h("div.transfer-menu-list", { role: "menu", id: "export-menu", hidden: true },
    ...FORMATS.map(([format, label]) =>
      h("button.transfer-item", {
        type: "button",
        role: "menuitem",
        "data-format": format,
        onclick: () => {
          close();
          download(hooks.currentId(), format).catch((err) => toast(`Could not download: ${err.message}`, "error"));
        },
      }, label),
    ),
  );
  const button = h("button.btn", {
    id: "btn-export",
    type: "button",
    "aria-label": "Download this notebook",
    "aria-haspopup": "menu",
    "aria-controls": "export-menu",
    "aria-expanded": "false",
    title: "Download as .ipynb, .py or .html",
    onclick: () => (menu.hidden ? openMenu() : close()),
  }, h("span.label", {}, "Download"));
  const wrap = h("div.transfer-menu", {}, button, menu);
  $(".topbar-actions").insertBefore(wrap, $("#btn-help"));

  function openMenu() {
    if (!hooks.currentId()) {
      toast("Open a notebook first.");
      return;
    }
    menu.hidden = false;
    button.setAttribute("aria-expanded", "true");
    menu.querySelector("button")?.focus();
  }
  function close() {
    menu.hidden = true;
    button.setAttribute("aria-expanded", "false");
  }
  document.addEventListener("click", (ev) => {
    if (!wrap.contains(ev.target)) close();
  });
  wrap.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape" && !menu.hidden) {
      close();
      button.focus();
    }
    if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
      const items = [...menu.querySelectorAll("button")];
      const i = items.indexOf(document.activeElement);
      if (i < 0) return;
      ev.preventDefault();
      items[(i + (ev.key === "ArrowDown" ? 1 : items.length - 1)) % items.length].focus();
    }
  });
}

/** The file name a Content-Disposition header gives (RFC 5987 form first). */
function fileName(disposition, fallback) {
  const star = /filename\*=UTF-8''([^;]+)/i.exec(disposition || "");
  if (star) {
    try {
      return decodeURIComponent(star[1]);
    } catch {
      /* fall through to the plain name */
    }
  }
  const plain = /filename="([^"]+)"/i.exec(disposition || "");
  return plain ? plain[1] : fallback;
}

async function download(id, format) {
  if (!id) throw new Error("no notebook is open");
  const headers = {};
  const token = await auth.token();
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(`/api/notebooks/${encodeURIComponent(id)}/export?format=${format}`, { headers });
  if (!res.ok) {
    let detail = "";
    try {
      detail = (await res.json()).detail;
    } catch {
      /* not JSON */
    }
    throw new Error(detail || `HTTP ${res.status}`);
  }
  const blob = await res.blob();
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: fileName(res.headers.get("Content-Disposition"), `notebook.${format}`) });
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 30_000);
}

// --- Import ----------------------------------------------------------------------------------

function installImport(hooks) {
  const input = h("input", { id: "import-file", type: "file", accept: ".ipynb,.py", hidden: true });
  input.setAttribute("aria-label", "Notebook file to import");
  input.addEventListener("change", async () => {
    const file = input.files?.[0];
    input.value = "";
    if (file) await importFile(file, hooks);
  });
  const button = h("button.btn.small", {
    id: "btn-import",
    type: "button",
    "aria-label": "Import a notebook",
    title: "Import a Jupyter notebook (.ipynb) or a percent-format script (.py); you can also drop the file on the page",
    onclick: () => input.click(),
  }, "Import");
  $(".sidebar-head").append(button, input);

  // Capture phase: a dropped notebook file is imported, not pasted into a cell's editor.
  const isFileDrag = (ev) => [...(ev.dataTransfer?.types || [])].includes("Files");
  window.addEventListener("dragover", (ev) => {
    if (!isFileDrag(ev)) return;
    ev.preventDefault();
    document.body.classList.add("drop-import");
  }, true);
  window.addEventListener("dragleave", (ev) => {
    if (!ev.relatedTarget) document.body.classList.remove("drop-import");
  }, true);
  window.addEventListener("drop", async (ev) => {
    document.body.classList.remove("drop-import");
    const files = [...(ev.dataTransfer?.files || [])];
    if (!files.length) return;
    const wanted = files.filter((f) => IMPORTABLE.test(f.name));
    if (!wanted.length) return; // not ours: let the page (or an editor) handle it
    ev.preventDefault();
    ev.stopPropagation();
    for (const file of wanted) await importFile(file, hooks);
  }, true);
}

async function importFile(file, hooks) {
  const ext = IMPORTABLE.exec(file.name)?.[1]?.toLowerCase();
  if (!ext) {
    toast(`${file.name}: only .ipynb and .py files can be imported.`, "error");
    return;
  }
  if (file.size > MAX_IMPORT_BYTES) {
    toast(`${file.name} is too large to import (the limit is ${MAX_IMPORT_BYTES / 1024 / 1024} MiB).`, "error");
    return;
  }
  const name = file.name.replace(IMPORTABLE, "").trim().slice(0, 200) || "Imported notebook";
  try {
    const content = await file.text();
    const res = await request("POST", "/api/notebooks/import", { format: ext, content, name });
    await hooks.refresh();
    await hooks.open(res.notebook_id);
    const flagged = res.warnings?.length || 0;
    const cells = `${res.cells} cell${res.cells === 1 ? "" : "s"}`;
    toast(
      flagged
        ? `Imported “${name}” (${cells}). ${flagged} cell${flagged === 1 ? " uses" : "s use"} IPython magics or !shell lines, which do not run here; they are marked with a comment.`
        : `Imported “${name}” (${cells}).`,
      flagged ? "warning" : "info",
      { ms: flagged ? 12_000 : 4000 },
    );
  } catch (err) {
    toast(`Could not import ${file.name}: ${err.message}`, "error");
  }
}
