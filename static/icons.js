// Inline SVG icons (stroke = currentColor), so buttons look the same on every system:
// emoji and rare symbols are missing from many fonts (minimal Linux desktops, CI browsers).
const paths = {
  play: '<path d="M5 3.5v9l8-4.5z" fill="currentColor" stroke="none"/>',
  trash: '<path d="M3 4.5h10M6.5 4.5V3h3v1.5M4.5 4.5l.6 8.5h5.8l.6-8.5M7 7v4M9 7v4"/>',
  db: '<ellipse cx="8" cy="4" rx="5" ry="2"/><path d="M3 4v8c0 1.1 2.2 2 5 2s5-.9 5-2V4M3 8c0 1.1 2.2 2 5 2s5-.9 5-2"/>',
  stop: '<rect x="4" y="4" width="8" height="8" rx="1" fill="currentColor" stroke="none"/>',
  restart: '<path d="M12.5 8A4.5 4.5 0 1 1 11 4.6M11.5 1.8v3h-3"/>',
  chat: '<path d="M2.5 3.5h11v7h-6l-3 2.5v-2.5h-2z"/>',
  help: '<circle cx="8" cy="8" r="6"/><path d="M6.2 6.3a1.9 1.9 0 1 1 2.6 1.8c-.5.2-.8.6-.8 1.1v.4M8 11.6v.1"/>',
  signout: '<path d="M6 2.5H3v11h3M10 5l3 3-3 3M13 8H6"/>',
  menu: '<path d="M2.5 4h11M2.5 8h11M2.5 12h11"/>',
  close: '<path d="M4 4l8 8M12 4l-8 8"/>',
};

/** An <svg> element for `name`, hidden from screen readers (the button has a label). */
export function icon(name) {
  const t = document.createElement("template");
  t.innerHTML = `<svg class="icon" viewBox="0 0 16 16" width="16" height="16" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="1.5" stroke-linecap="round" stroke-linejoin="round">${paths[name]}</svg>`;
  return t.content.firstChild;
}

/** Replaces each <span data-icon="name"> in the page with its SVG. */
export function fillIcons(root = document) {
  for (const el of root.querySelectorAll("[data-icon]")) el.replaceWith(icon(el.dataset.icon));
}
