// Stale cells in the UI: "Run all", "Run stale", "Restart and run all" and the lazy-mode
// toggle. A stale cell keeps its last outputs, shown dimmed (style.css), until it runs again.
import { api } from "./api.js";
import { $, toast, confirmDialog } from "./dom.js";

/** Shows the notebook's lazy setting on the toggle. */
export function showLazy(lazy) {
  const box = $("#lazy-toggle");
  if (box) box.checked = Boolean(lazy);
}

async function runAll(controller, onlyStale) {
  if (!controller) return;
  try {
    await api.runAll(controller.id, onlyStale);
    // Without a live connection, poll until the run is over.
    controller.startPollingIfBusy(true);
  } catch (err) {
    toast(`Could not run: ${err.message}`, "error");
  }
}

async function restartAndRunAll(controller) {
  if (!controller) return;
  const ok = await confirmDialog(
    "Restart and run all?",
    "All Python variables are lost, then every cell runs again from the top.",
    "Restart and run all",
  );
  if (!ok) return;
  try {
    // The room handles requests in order: the run starts in the fresh kernel.
    await api.restart(controller.id);
    await api.runAll(controller.id, false);
    controller.startPollingIfBusy(true);
  } catch (err) {
    toast(`Could not restart and run: ${err.message}`, "error");
  }
}

async function setLazy(controller, box) {
  if (!controller) return;
  const lazy = box.checked;
  try {
    await api.setLazy(controller.id, lazy);
  } catch (err) {
    box.checked = !lazy;
    toast(`Could not change lazy mode: ${err.message}`, "error");
  }
}

/** Wires the toolbar controls to the open notebook (`current()` returns its controller). */
export function wireStaleControls(current) {
  $("#btn-run-all").addEventListener("click", () => runAll(current(), false));
  $("#btn-run-stale").addEventListener("click", () => runAll(current(), true));
  $("#btn-restart-run").addEventListener("click", () => restartAndRunAll(current()));
  const box = $("#lazy-toggle");
  box.addEventListener("change", () => setLazy(current(), box));
}
