import { api, el, requireUser, showError, statusBadge, when, REASONS, reasonText } from "/assets/app.js";

const main = document.getElementById("main");
await requireUser("");
const id = location.pathname.split("/").pop();

// "stop finished" on a failed workspace means its leftovers were removed.
function eventText(e) {
  if (e.event === "stop_finished" && e.to === "error") return "server and DNS record removed";
  return e.event.replaceAll("_", " ");
}
const message = el("div");

// The events of the last boot: from the last time the workspace entered
// `creating` (a create or a restart).
function lastBoot(events) {
  let start = 0;
  events.forEach((e, i) => { if (e.to === "creating" && e.from !== "creating") start = i; });
  return events.slice(start);
}

// While the workspace boots: the step it is at and what that step printed
// last (the agent sends its newest lines every few seconds).
function bootPanel(ws, events) {
  if (ws.status !== "creating") return null;
  const boot = lastBoot(events);
  const step = boot.filter((e) => e.event === "agent_progress").pop();
  const output = boot.filter((e) => e.event === "agent_output").pop();
  const [outputStep, ...lines] = (output?.message || "").split("\n");
  return el("section", { class: "panel", id: "boot" }, el("h2", {}, "Boot"),
    el("p", { class: "muted" }, step ? step.message : "waiting for the VM to start its agent"),
    output ? el("pre", { class: "boot-output", "aria-label": `output of ${outputStep}` }, lines.join("\n")) : null);
}

// A message of one line, or its first line and the output below it (a
// failed step carries its last 50 lines).
function messageBlock(text, attrs) {
  const [first, ...rest] = text.split("\n");
  return el("div", attrs, first, rest.length ? el("pre", { class: "boot-output" }, rest.join("\n")) : null);
}

// Where terminals run, as the agent reported it at its last boot
// ("shell done: in the devcontainer <id> as <user>", "…: on the host").
function shellText(events) {
  const shell = events.filter((e) => e.event === "agent_progress" && e.message?.startsWith("shell done: ")).pop();
  return shell ? shell.message.slice("shell done: ".length) : "known once the workspace has started";
}

async function render() {
  let ws, events;
  try {
    [ws, events] = await Promise.all([api(`/api/workspaces/${id}`), api(`/api/workspaces/${id}/events`)]);
  } catch (e) {
    if (e.status === 404) { main.replaceChildren(el("h1", {}, "Workspace not found"), el("p", {}, el("a", { href: "/" }, "Back to your workspaces"))); return false; }
    showError(message, e); return true;
  }
  const open = el("button", { type: "button", class: "primary", disabled: ws.status !== "running", onclick: async () => {
    try { const access = await api("/api/terminal/token", { method: "POST", body: { workspaceId: id } }); window.open(access.url, "_blank", "noopener"); }
    catch (e) { showError(message, e); }
  } }, "Open Terminal");
  // replaceChildren would show a null child as the text "null".
  main.replaceChildren(...[
    el("p", {}, el("a", { href: "/" }, "← Workspaces")),
    el("div", { class: "row" }, el("h1", {}, ws.name), el("span", { class: "spacer" }), open),
    ws.status === "running" ? null : el("p", { class: "hint", id: "terminal-hint" },
      ws.status === "stopped" || ws.status === "error"
        ? "The terminal opens while the workspace runs: restart it from the dashboard first."
        : "The terminal opens once the workspace is running."),
    message,
    el("section", { class: "panel" },
      el("p", {}, statusBadge(ws.status), " ", el("span", { class: "muted" }, reasonText(ws))),
      ws.errorMessage ? messageBlock(ws.errorMessage, { class: "notice bad", role: "alert" }) : null,
      el("table", {}, el("tbody", {},
        [["Repository", `${ws.repository} @ ${ws.branch}`], ["Terminals", shellText(events)], ["Size", ws.vmSize], ["Location", ws.vmLocation],
         ["Terminal URL", ws.url || "available while running"],
         ["Ports", ws.ports?.length
           ? el("span", { class: "ports" }, ...ws.ports.map((p) => el("a", { href: p.openUrl, target: "_blank", rel: "noopener", class: "port" }, p.process ? `${p.port} (${p.process})` : String(p.port))))
           : (ws.status === "running" ? "none listening (a server started in the workspace appears here)" : "available while running")],
         ["Last activity", when(ws.lastActivityAt)], ["Created", new Date(ws.createdAt).toLocaleString()]]
          .map(([k, v]) => el("tr", {}, el("th", { scope: "row" }, k), el("td", {}, v)))))),
    bootPanel(ws, events),
    el("section", { class: "panel" }, el("h2", {}, "History"),
      // A step's live output is shown while it runs (above), not kept here.
      el("ol", { class: "timeline" }, events.filter((e) => e.event !== "agent_output").reverse().map((e) => el("li", {},
        el("strong", {}, `${e.from} → ${e.to}`), " ", el("span", { class: "muted" }, `${eventText(e)} · ${REASONS[e.reason] || e.reason} · ${new Date(e.at).toLocaleString()}`),
        e.message ? messageBlock(e.message, { class: e.to === "error" ? "error" : "hint" }) : null))))].filter(Boolean));
  // The newest lines are the useful ones: show the end of each output.
  for (const pre of main.querySelectorAll("pre.boot-output")) pre.scrollTop = pre.scrollHeight;
  return true;
}

if (await render()) {
  const stream = new EventSource("/api/workspaces/stream");
  stream.addEventListener("workspace", (e) => { if (JSON.parse(e.data).id === id) render(); });
  stream.addEventListener("removed", (e) => { if (JSON.parse(e.data).id === id) render(); });
}
