import { api, el, privateAppNote, requireUser, showError, when } from "/assets/app.js";

const main = document.getElementById("main");
await requireUser("/settings");

const cloud = el("section", { class: "panel", "aria-labelledby": "cloud-title" });
const github = el("section", { class: "panel", "aria-labelledby": "github-title" });
const tokens = el("section", { class: "panel", "aria-labelledby": "tokens-title" });
main.replaceChildren(el("h1", {}, "Settings"), cloud, github, tokens);

async function renderCloud() {
  let credentials = [];
  try { credentials = await api("/api/credentials"); } catch (e) { showError(cloud, e); return; }
  const hetzner = credentials.find((c) => c.provider === "hetzner");
  const error = el("div", { class: "error", id: "token-error", role: "alert" });
  const input = el("input", { type: "password", id: "token", name: "token", autocomplete: "off", "aria-describedby": "token-help token-error", required: true });
  const form = el("form", { onsubmit: async (event) => {
    event.preventDefault();
    error.textContent = "";
    button.disabled = true;
    try {
      await api("/api/credentials", { method: "POST", body: { provider: "hetzner", token: input.value } });
      await renderCloud();
    } catch (e) { error.textContent = e.message; button.disabled = false; }
  } },
    el("label", { for: "token" }, hetzner ? "Replace the Hetzner API token" : "Hetzner API token"),
    input,
    el("div", { class: "hint", id: "token-help" }, "Create a Read & Write token in your Hetzner Cloud project (Security → API tokens). SAM checks it with Hetzner before storing it encrypted."),
    error);
  const button = el("button", { type: "submit", class: "primary" }, hetzner ? "Replace token" : "Connect Hetzner");
  form.append(el("div", { class: "row spaced" }, button));

  const parts = [el("h2", { id: "cloud-title" }, "Hetzner Cloud")];
  if (hetzner) {
    parts.push(el("p", {}, el("span", { class: "status running" }, "connected"), " ", el("span", { class: "muted" }, `checked ${when(hetzner.validatedAt)}`)));
    if (hetzner.catalogueError) parts.push(el("div", { class: "notice" }, hetzner.catalogueError));
    if (hetzner.sizes.length) {
      parts.push(el("table", { class: "responsive" },
        el("thead", {}, el("tr", {}, ["Location", "Size", "Server type", "CPU / RAM", "Price per hour"].map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, hetzner.sizes.map((s) => el("tr", {},
          el("td", { "data-label": "Location" }, s.location),
          el("td", { "data-label": "Size" }, s.size),
          el("td", { "data-label": "Server type" }, s.serverType),
          el("td", { "data-label": "CPU / RAM" }, `${s.cores} vCPU / ${s.memoryGb} GB`),
          el("td", { "data-label": "Price per hour" }, `€${Number(s.hourly).toFixed(4)}`))))));
    }
    const remove = el("button", { type: "button", class: "danger", onclick: async () => {
      try { await api("/api/credentials/hetzner", { method: "DELETE" }); await renderCloud(); } catch (e) { error.textContent = e.message; }
    } }, "Remove token");
    form.querySelector(".row").append(remove);
  } else {
    parts.push(el("p", { class: "muted" }, "Connect your Hetzner Cloud account. Workspaces run on it, so you only pay Hetzner for what you use."));
  }
  parts.push(form);
  cloud.replaceChildren(...parts);
}

async function renderGithub() {
  try {
    const [installations, install] = await Promise.all([api("/api/github/installations"), api("/api/github/install-url")]);
    // replaceChildren would print a null as "null".
    github.replaceChildren(...[
      el("h2", { id: "github-title" }, "GitHub App"),
      installations.length
        ? el("ul", {}, installations.map((i) => el("li", {}, `${i.accountLogin} (${i.accountType})`, i.suspended ? " — suspended" : "")))
        : el("p", { class: "muted" }, "The SAM GitHub App is not installed on any account you can access yet."),
      privateAppNote(install) ? el("p", { class: "notice", id: "private-app" }, privateAppNote(install)) : null,
      el("a", { class: "button", href: install.url }, "Install on another account")].filter((n) => n !== null));
  } catch (e) { showError(github, e); }
}

// Personal access tokens: for the `sam` command and scripts. A new token is
// shown once, here, and never again.
async function renderTokens(created) {
  let list = [];
  try { list = await api("/api/tokens"); } catch (e) { showError(tokens, e); return; }
  const error = el("div", { class: "error", id: "pat-error", role: "alert" });
  const name = el("input", { type: "text", id: "pat-name", name: "name", maxlength: 64, required: true, placeholder: "laptop CLI" });
  const scope = el("select", { id: "pat-scope", name: "scope" },
    el("option", { value: "write" }, "Read and write: create, stop, delete workspaces, open terminals"),
    el("option", { value: "read" }, "Read only: list workspaces and their history"));
  const expiry = el("select", { id: "pat-expiry", name: "expiry" },
    [["7", "7 days"], ["30", "30 days"], ["90", "90 days", true], ["366", "1 year"], ["", "Never (until revoked)"]]
      .map(([v, label, selected]) => el("option", { value: v, selected: !!selected }, label)));
  const submit = el("button", { type: "submit", class: "primary" }, "Create token");
  const form = el("form", { onsubmit: async (event) => {
    event.preventDefault();
    error.textContent = "";
    submit.disabled = true;
    try {
      const body = { name: name.value.trim(), scope: scope.value };
      if (expiry.value) body.expiresInDays = Number(expiry.value);
      await renderTokens(await api("/api/tokens", { method: "POST", body }));
    } catch (e) { error.textContent = e.message; submit.disabled = false; }
  } },
    el("label", { for: "pat-name" }, "Name"), name,
    el("label", { for: "pat-scope" }, "Scope"), scope,
    el("label", { for: "pat-expiry" }, "Expires"), expiry,
    error,
    el("div", { class: "row spaced" }, submit));
  const parts = [el("h2", { id: "tokens-title" }, "Personal access tokens"),
    el("p", { class: "muted" }, "For the sam command (sam login) and your scripts: they call the API as you. Revoking one ends its use at once, and the terminals opened with it.")];
  if (created) {
    const value = el("code", { id: "new-token" }, created.token);
    const copy = el("button", { type: "button", onclick: async () => {
      try { await navigator.clipboard.writeText(created.token); copy.textContent = "Copied"; } catch { copy.textContent = "Select and copy it"; }
    } }, "Copy");
    parts.push(el("div", { class: "notice", role: "status" },
      el("p", {}, el("strong", {}, `Token "${created.name}" created.`), " Copy it now: it is not shown again."),
      el("div", { class: "row" }, value, copy)));
  }
  if (list.length) {
    parts.push(el("table", { class: "responsive" },
      el("thead", {}, el("tr", {}, ["Name", "Scope", "Created", "Expires", "Last used", ""].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, list.map((t) => el("tr", { "data-token": t.id },
        el("td", { "data-label": "Name" }, t.name),
        el("td", { "data-label": "Scope" }, t.scope),
        el("td", { "data-label": "Created" }, when(t.createdAt)),
        el("td", { "data-label": "Expires" }, t.expiresAt ? (Date.parse(t.expiresAt) < Date.now() ? "expired" : new Date(t.expiresAt).toLocaleDateString()) : "never"),
        el("td", { "data-label": "Last used" }, t.lastUsedAt ? when(t.lastUsedAt) : "never"),
        el("td", {}, el("button", { type: "button", class: "danger", onclick: async () => {
          try { await api(`/api/tokens/${encodeURIComponent(t.id)}`, { method: "DELETE" }); await renderTokens(); } catch (e) { error.textContent = e.message; }
        } }, "Revoke")))))));
  }
  parts.push(form);
  tokens.replaceChildren(...parts);
}

await Promise.all([renderCloud(), renderGithub(), renderTokens()]);
