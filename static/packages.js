// Per-notebook packages: which distribution provides a missing module, and the panel that
// shows the notebook's packages with the live output of a running install.
import { h } from "./dom.js";

/** Import names whose distribution on PyPI is called something else. */
const DISTRIBUTIONS = {
  sklearn: "scikit-learn",
  cv2: "opencv-python",
  PIL: "pillow",
  yaml: "pyyaml",
  bs4: "beautifulsoup4",
  dateutil: "python-dateutil",
  dotenv: "python-dotenv",
  jwt: "pyjwt",
  skimage: "scikit-image",
  Crypto: "pycryptodome",
  serial: "pyserial",
  usb: "pyusb",
  OpenSSL: "pyopenssl",
  google: "protobuf",
  docx: "python-docx",
  pptx: "python-pptx",
  magic: "python-magic",
  attr: "attrs",
  psycopg2: "psycopg2-binary",
  MySQLdb: "mysqlclient",
  Levenshtein: "python-levenshtein",
  fitz: "pymupdf",
  tensorflow_hub: "tensorflow-hub",
  torchvision: "torchvision",
  umap: "umap-learn",
  slugify: "python-slugify",
  telegram: "python-telegram-bot",
};

/** The module a ModuleNotFoundError names (its top-level package), or null. */
export function missingModule(errorText) {
  const m = /ModuleNotFoundError: No module named '([A-Za-z_][\w.]*)'/.exec(errorText || "");
  return m ? m[1].split(".")[0] : null;
}

/** The distribution to install for an import name. */
export function distributionFor(module) {
  return DISTRIBUTIONS[module] || module.replace(/_/g, "-").toLowerCase();
}

/** PEP 503 normalized name, as the server reports packages. */
export function normalizeName(name) {
  return name.toLowerCase().replace(/[-_.]+/g, "-");
}

const LOG_LINES = 200;

/** The list of a notebook's packages; an install's output shows while it runs. */
export class PackagePanel {
  constructor(root) {
    this.root = root;
    this.packages = new Map(); // name -> {name, version, state, error}
    this.logs = new Map(); // name -> [lines]
  }

  /** The list from GET /api/notebooks/{id}. */
  setAll(list) {
    this.packages = new Map((list || []).map((p) => [p.name, p]));
    this.render();
  }

  /** A `package_install` broadcast. */
  onEvent(msg) {
    const { line, type, seq, ...entry } = msg;
    this.packages.set(entry.name, entry);
    if (line !== undefined) {
      const log = this.logs.get(entry.name) || [];
      log.push(line);
      if (log.length > LOG_LINES) log.splice(0, log.length - LOG_LINES);
      this.logs.set(entry.name, log);
    } else if (entry.state === "installing" && !this.logs.has(entry.name)) {
      this.logs.set(entry.name, []);
    }
    this.render();
  }

  state(name) {
    return this.packages.get(normalizeName(name))?.state;
  }

  render() {
    const root = this.root;
    root.hidden = this.packages.size === 0;
    root.replaceChildren(
      h("strong", {}, "Packages"),
      h(
        "ul.package-list",
        {},
        ...[...this.packages.values()].map((p) => {
          const label = `${p.name}${p.version || ""}`;
          const item = h(
            "li.package",
            { "data-name": p.name, "data-state": p.state },
            h("span.package-name", {}, label),
            " ",
            h(`span.package-state.${p.state}`, {}, p.state),
          );
          if (p.state === "installing") {
            const log = this.logs.get(p.name) || [];
            item.append(h("pre.package-log", { "aria-label": `pip output for ${p.name}` }, log.slice(-6).join("\n")));
          } else if (p.state === "failed" && p.error) {
            item.append(h("pre.package-log.failed", {}, p.error));
          }
          return item;
        }),
      ),
    );
  }
}
