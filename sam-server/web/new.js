import { api, el, privateAppNote, requireUser, showError } from "/assets/app.js";

const main = document.getElementById("main");
const me = await requireUser("/workspaces/new");
main.replaceChildren(el("h1", {}, "New workspace"), el("p", { class: "muted" }, "Loading your accounts…"));

let credentials = [], installations = [], workspaces = [], options = null;
try {
  [credentials, installations, workspaces, options] = await Promise.all([api("/api/credentials"), api("/api/github/installations"), api("/api/workspaces"), api("/api/workspace-options")]);
} catch (e) { showError(main, e); throw e; }
const hetzner = credentials.find((c) => c.provider === "hetzner");

if (!hetzner) {
  main.replaceChildren(el("h1", {}, "New workspace"), el("div", { class: "panel" },
    el("h2", {}, "Connect Hetzner first"), el("p", {}, "Workspaces run on your own Hetzner Cloud account."), el("a", { class: "button primary", href: "/settings" }, "Go to Settings")));
} else if (!installations.length) {
  const install = await api("/api/github/install-url");
  main.replaceChildren(el("h1", {}, "New workspace"), el("div", { class: "panel" },
    el("h2", {}, "Install the GitHub App first"), el("p", {}, "SAM clones repositories through its GitHub App. Install it on the account that owns your repository."),
    privateAppNote(install) ? el("p", { class: "notice", id: "private-app" }, privateAppNote(install)) : null,
    el("a", { class: "button primary", href: install.url }, "Install the GitHub App")));
} else {
  const error = el("div", { class: "error", role: "alert" });
  const field = (id, label, control, hint) => [el("label", { for: id }, label), control, hint ? el("div", { class: "hint" }, hint) : null];
  const installation = el("select", { id: "installation", name: "installation" }, installations.map((i) => el("option", { value: i.id }, i.accountLogin)));
  const search = el("input", { type: "search", id: "search", placeholder: "Filter repositories", autocomplete: "off" });
  const repository = el("select", { id: "repository", name: "repository", required: true, "aria-label": "Repository" });
  // Whether work can be pushed back from the workspace: the user's own
  // permission on GitHub.
  const access = el("div", { class: "hint", id: "repository-access" });
  const branch = el("select", { id: "branch", name: "branch", required: true });
  const name = el("input", { type: "text", id: "name", name: "name", required: true, maxlength: 64, pattern: "[A-Za-z0-9][A-Za-z0-9 ._-]*" });
  const size = el("select", { id: "vmSize", name: "vmSize" });
  const locationSelect = el("select", { id: "vmLocation", name: "vmLocation" }, hetzner.locations.map((l) => el("option", { value: l.code }, `${l.code} — ${l.city}, ${l.country}`)));
  // Idle timeouts the deployment allows: common choices within its bounds,
  // its default among them.
  const bounds = options.idleTimeoutSeconds;
  const choices = [...new Set([5, 10, 15, 30, 60, 120, 240, 480, 720, 1440].map((m) => m * 60).concat([bounds.default]))]
    .filter((s) => s >= bounds.min && s <= bounds.max).sort((a, b) => a - b);
  const label = (s) => (s % 3600 === 0 ? `${s / 3600} h` : s % 60 === 0 ? `${s / 60} min` : `${s} s`);
  const idle = el("select", { id: "idleTimeoutSeconds", name: "idleTimeoutSeconds" },
    choices.map((s) => el("option", { value: s, selected: s === bounds.default }, s === bounds.default ? `${label(s)} (default)` : label(s))));
  let repos = [];

  function priceFor(s, loc) {
    const offer = hetzner.sizes.find((o) => o.size === s && o.location === loc);
    const arm = offer && offer.architecture === "arm" ? " Arm64" : "";
    return offer ? `${offer.serverType},${arm} ${offer.cores} vCPU / ${offer.memoryGb} GB, €${Number(offer.hourly).toFixed(4)}/h` : "not offered here";
  }
  function renderSizes() {
    const current = size.value || "small";
    size.replaceChildren(...["small", "medium", "large"].map((s) => el("option", { value: s, selected: s === current }, `${s} — ${priceFor(s, locationSelect.value)}`)));
  }
  function renderRepos() {
    const q = search.value.trim().toLowerCase();
    const shown = repos.filter((r) => r.fullName.toLowerCase().includes(q));
    repository.replaceChildren(...shown.map((r) => el("option", { value: r.fullName }, r.fullName)));
    loadBranches();
  }
  async function loadRepos() {
    repos = [];
    let page = 1;
    const account = installations.find((i) => String(i.id) === installation.value);
    try {
      while (page && page <= 20) {
        const result = await api(`/api/github/repositories?installation_id=${installation.value}&page=${page}`);
        repos.push(...result.repositories);
        page = result.nextPage;
      }
    } catch (e) { error.textContent = e.message; }
    search.placeholder = `Filter ${repos.length} repositories of ${account ? account.accountLogin : ""}`;
    renderRepos();
  }
  async function loadBranches() {
    branch.replaceChildren();
    const full = repository.value;
    if (!full) return;
    const repo = repos.find((r) => r.fullName === full);
    access.textContent = !repo ? "" : repo.push
      ? "You can push from the workspace: git push works in its terminal."
      : "Read-only: you have no push permission on this repository, so the workspace can pull but not push.";
    try {
      const branches = await api(`/api/github/repositories/${full}/branches`);
      branch.replaceChildren(...branches.map((b) => el("option", { value: b, selected: repo && b === repo.defaultBranch }, b)));
    } catch (e) { error.textContent = e.message; }
    if (!name.value && full) name.value = full.split("/")[1].replace(/[^A-Za-z0-9 ._-]/g, "-").slice(0, 64);
  }
  installation.addEventListener("change", loadRepos);
  search.addEventListener("input", renderRepos);
  repository.addEventListener("change", loadBranches);
  locationSelect.addEventListener("change", renderSizes);

  const submit = el("button", { type: "submit", class: "primary" }, "Create workspace");
  const form = el("form", { class: "panel", onsubmit: async (event) => {
    event.preventDefault();
    error.textContent = "";
    submit.disabled = true;
    try {
      const ws = await api("/api/workspaces", { method: "POST", body: {
        name: name.value.trim(), repository: repository.value, branch: branch.value, vmSize: size.value, vmLocation: locationSelect.value,
        installationId: Number(installation.value), idleTimeoutSeconds: Number(idle.value) } });
      location.href = `/workspaces/${ws.id}`;
    } catch (e) {
      error.textContent = e.message;
      if (e.field) document.getElementById(e.field)?.focus();
      submit.disabled = false;
    }
  } },
    field("installation", "GitHub account", installation),
    field("search", "Repository", search),
    repository,
    access,
    field("branch", "Branch", branch),
    field("name", "Workspace name", name, "Letters, digits, spaces, '-', '_' and '.'; unique among your workspaces."),
    field("vmLocation", "Location", locationSelect),
    field("vmSize", "Size", size),
    field("idleTimeoutSeconds", "Stop when idle for", idle, `No terminal input or output for this long stops the workspace (a warning comes ${label(options.idleWarningSeconds)} before).`),
    error,
    el("div", { class: "row spaced" }, submit, el("a", { href: "/" }, "Cancel")));
  const active = workspaces.filter((w) => ["pending", "creating", "running", "stopping"].includes(w.status)).length;
  const quota = el("p", { class: "muted", id: "quota" }, `${active} of ${me.maxActiveWorkspaces} active workspaces in use.`);
  if (active >= me.maxActiveWorkspaces) {
    submit.disabled = true;
    quota.className = "notice";
    quota.textContent = `You have ${active} active workspaces, the most allowed. Stop or delete one first.`;
  }
  main.replaceChildren(el("h1", {}, "New workspace"), quota, form);
  renderSizes();
  await loadRepos();
}
