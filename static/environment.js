// The banner about the kernels' Python environment: a progress bar while the server provisions
// it (polling GET /api/environment), pip's error and a Retry button when it failed, nothing
// when it is ready.
import { api } from "./api.js";

const POLL_MS = 1500;

export class EnvironmentBanner {
  constructor(root) {
    this.root = root;
    this.timer = null;
  }

  /** Starts watching; polls only while provisioning. */
  async start() {
    clearTimeout(this.timer);
    let env;
    try {
      env = await api.environment();
    } catch {
      // Unknown state (offline, signed out): hide rather than guess, and look again later.
      this.root.hidden = true;
      this.timer = setTimeout(() => this.start(), POLL_MS * 4);
      return;
    }
    this.render(env);
    if (env.state === "provisioning") this.timer = setTimeout(() => this.start(), POLL_MS);
  }

  render(env) {
    const root = this.root;
    root.replaceChildren();
    root.hidden = env.state === "ready";
    root.dataset.state = env.state;
    if (root.hidden) return;
    const { done = 0, total = 0, current = "" } = env.progress || {};
    const title = document.createElement("strong");
    const detail = document.createElement("span");
    detail.className = "env-detail";
    if (env.state === "provisioning") {
      title.textContent = "Setting up the Python environment…";
      detail.textContent = ` ${current} (${done}/${total}). Cells you run now wait and start once it is ready.`;
      const bar = document.createElement("progress");
      bar.max = Math.max(total, 1);
      bar.value = done;
      bar.setAttribute("aria-label", "Python environment set-up progress");
      root.append(title, detail, bar);
    } else {
      title.textContent = "The Python environment could not be set up.";
      detail.textContent = ` Kernels use the bare ${env.python} meanwhile.`;
      const error = document.createElement("pre");
      error.className = "env-error";
      error.textContent = env.error || "";
      const retry = document.createElement("button");
      retry.className = "btn small";
      retry.textContent = "Retry";
      retry.onclick = async () => {
        retry.disabled = true;
        try {
          await api.retryEnvironment();
        } catch {
          // The next poll shows the state either way.
        }
        this.start();
      };
      root.append(title, detail, retry, error);
    }
  }
}
