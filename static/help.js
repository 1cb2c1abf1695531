// The keyboard shortcut list, shown in the help dialog (F1, or the “?” button).
import { $, h } from "./dom.js";

const mac = /Mac|iPhone|iPad/.test(navigator.platform);
const mod = mac ? "⌘" : "Ctrl";
const alt = mac ? "⌥" : "Alt";

export const SHORTCUTS = [
  ["In a cell (editing or selected)", [
    ["Shift+Enter", "Run the cell and go to the next one (adds a cell at the end)"],
    [`${mod}+Enter`, "Run the cell and stay"],
    [`${alt}+A`, "Add a Python cell above"],
    [`${alt}+B`, "Add a Python cell below"],
    [`${alt}+Shift+A`, "Add an SQL cell above"],
    [`${alt}+Shift+B`, "Add an SQL cell below"],
    [`${alt}+Shift+Backspace`, "Delete the cell"],
    ["Ctrl+Shift+↑ / ↓", "Move the cell up / down (or drag it by ⠿)"],
    [`${mod}+S`, "Save now (edits are also saved as you type)"],
    ["Esc", "Leave the editor and select the cell (then Tab moves on)"],
    ["Tab", "Complete the name or attribute at the cursor (Python; Ctrl+Space too)"],
    ["Shift+Tab", "Show the signature and docs of the name at the cursor (Python)"],
  ]],
  ["With a cell selected", [
    ["Enter", "Edit the cell (a markdown cell: Shift+Enter renders it)"],
    ["↑ / ↓ (or K / J)", "Select the previous / next cell"],
  ]],
  ["Anywhere", [
    [`${mod}+.`, "Interrupt the running cell"],
    ["F1", "This help"],
  ]],
];

export function openHelp() {
  const body = $("#help-body");
  if (!body.childElementCount) {
    for (const [title, rows] of SHORTCUTS) {
      body.append(
        h("h3", {}, title),
        h("table.shortcuts", {}, h("tbody", {}, rows.map(([keys, what]) =>
          h("tr", {}, h("td", {}, keys.split("+").map((k, i) => [i ? "+" : "", h("kbd", {}, k)])), h("td", {}, what))))),
      );
    }
  }
  $("#help-dialog").showModal();
}
