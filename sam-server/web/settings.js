import { api, el, privateAppNote, requireUser, showError, when } from "/assets/app.js";

const main = document.getElementById("main");
await requireUser("/settings");

const cloud = el("section", { class: "panel", "aria-labelledby": "cloud-title" });
const github = el("section", { class: "panel", "aria-labelledby": "github-title" });
main.replaceChildren(el("h1", {}, "Settings"), cloud, github);

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
    github.replaceChildren(
      el("h2", { id: "github-title" }, "GitHub App"),
      installations.length
        ? el("ul", {}, installations.map((i) => el("li", {}, `${i.accountLogin} (${i.accountType})`, i.suspended ? " — suspended" : "")))
        : el("p", { class: "muted" }, "The SAM GitHub App is not installed on any account you can access yet."),
      privateAppNote(install) ? el("p", { class: "notice", id: "private-app" }, privateAppNote(install)) : null,
      el("a", { class: "button", href: install.url }, "Install on another account"));
  } catch (e) { showError(github, e); }
}

await Promise.all([renderCloud(), renderGithub()]);
