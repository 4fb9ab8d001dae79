// SAM terminal page: xterm.js over /ws/terminal (protocol in the sam-agent crate docs).
import { Terminal } from '/assets/vendor/xterm.mjs';
import { FitAddon } from '/assets/vendor/addon-fit.mjs';

const statusEl = document.getElementById('status');
const warningEl = document.getElementById('idle-warning');
const ACK_EVERY = 64 * 1024;

const term = new Terminal({ cursorBlink: true, scrollback: 5000, convertEol: false });
const fit = new FitAddon();
term.loadAddon(fit);
term.open(document.getElementById('terminal'));
fit.fit();
term.focus();

const encoder = new TextEncoder();
const SESSION_KEY = 'sam.session';
function newSessionId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}
let sessionId = sessionStorage.getItem(SESSION_KEY);
if (!sessionId) { sessionId = newSessionId(); sessionStorage.setItem(SESSION_KEY, sessionId); }

let ws = null;
let received = null;     // stream offset of the next byte; null = unknown (fresh page)
let acked = 0;
let attempts = 0;
let reconnectTimer = null;
let finished = false;     // shell exited or workspace stopped: no automatic reconnect
let warningTimer = null;

function setStatus(state, text) {
  statusEl.dataset.state = state;
  statusEl.textContent = text;
}

function send(obj) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(obj));
}

function connect() {
  clearTimeout(reconnectTimer);
  setStatus(attempts ? 'reconnecting' : 'connecting', attempts ? 'reconnecting…' : 'connecting…');
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const params = new URLSearchParams({ session: sessionId, rows: String(term.rows), cols: String(term.cols), ack: '1' });
  if (received !== null) params.set('offset', String(received));
  const socket = new WebSocket(`${proto}//${location.host}/ws/terminal?${params}`);
  socket.binaryType = 'arraybuffer';
  ws = socket;
  socket.onmessage = (ev) => {
    if (ws !== socket) return;
    if (typeof ev.data === 'string') { control(JSON.parse(ev.data)); return; }
    const bytes = new Uint8Array(ev.data);
    received += bytes.length;
    const end = received;
    // xterm.js decodes UTF-8 as a stream, so frames may split code points.
    term.write(bytes, () => {
      if (end - acked >= ACK_EVERY) { acked = end; send({ type: 'ack', offset: end }); }
    });
  };
  socket.onclose = (ev) => {
    if (ws !== socket) return;
    ws = null;
    if (finished) return;
    if (ev.code === 1000 || ev.code === 4001) {
      finished = true;
      setStatus('exited', ev.code === 4001 ? 'opened in another tab' : 'shell ended — press Enter for a new shell');
      return;
    }
    if (ev.code === 1001) { finished = true; setStatus('stopped', 'workspace stopped'); return; }
    // Signed out of SAM: reconnecting would only be refused; open it again
    // from the dashboard after signing in (the shell is still there).
    if (ev.code === 4003) { finished = true; setStatus('stopped', 'signed out — open the terminal from SAM again'); return; }
    attempts += 1;
    const delay = Math.min(10000, 250 * 2 ** Math.min(attempts, 6)) * (0.75 + Math.random() * 0.5);
    setStatus('reconnecting', `reconnecting in ${Math.ceil(delay / 1000)} s…`);
    reconnectTimer = setTimeout(connect, delay);
  };
}

function control(msg) {
  switch (msg.type) {
    case 'hello':
      attempts = 0;
      if (received !== null && msg.offset !== received && !msg.resumed) term.reset();
      if (msg.lostBytes > 0) term.write('\r\n\x1b[33m[output lost while disconnected]\x1b[0m\r\n');
      received = msg.offset;
      acked = msg.offset;
      setStatus('connected', msg.resumed ? 'connected (resumed)' : 'connected');
      sendSize();
      break;
    case 'idle_warning': showWarning(msg); break;
    case 'shutdown': finished = true; setStatus('stopped', 'workspace stopping'); break;
    case 'exit': finished = true; setStatus('exited', 'shell ended — press Enter for a new shell'); break;
    case 'pong': break;
  }
}

function showWarning(msg) {
  const deadline = new Date(msg.deadline);
  const update = () => {
    const mins = Math.max(0, Math.ceil((deadline.getTime() - Date.now()) / 60000));
    warningEl.textContent = `This workspace is idle and stops in ${mins} min. Press any key to keep it running.`;
    setStatus('stopping', `stopping in ${mins} min`);
  };
  update();
  warningEl.hidden = false;
  scheduleFit();
  clearInterval(warningTimer);
  warningTimer = setInterval(update, 15000);
}

function dismissWarning() {
  if (warningEl.hidden) return;
  warningEl.hidden = true;
  scheduleFit();
  clearInterval(warningTimer);
  if (ws) setStatus('connected', 'connected');
}

term.onData((data) => {
  dismissWarning();
  if (finished && statusEl.dataset.state === 'exited' && data === '\r') {
    // Start a new shell in this tab.
    finished = false;
    sessionId = newSessionId();
    sessionStorage.setItem(SESSION_KEY, sessionId);
    received = null;
    term.reset();
    connect();
    return;
  }
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(encoder.encode(data));
});
term.onBinary((data) => {
  if (!ws || ws.readyState !== WebSocket.OPEN) return;
  const bytes = new Uint8Array(data.length);
  for (let i = 0; i < data.length; i++) bytes[i] = data.charCodeAt(i) & 0xff;
  ws.send(bytes);
});

// Copy: Ctrl+Shift+C, or Ctrl+C while text is selected (otherwise Ctrl+C is
// an interrupt). Paste: Ctrl+V / Ctrl+Shift+V go through the browser's paste
// event, which xterm.js turns into input.
term.attachCustomKeyEventHandler((ev) => {
  if (ev.type !== 'keydown') return true;
  const key = ev.key.toLowerCase();
  if (ev.ctrlKey && key === 'c' && (ev.shiftKey || term.hasSelection())) {
    const text = term.getSelection();
    if (text && navigator.clipboard) navigator.clipboard.writeText(text).catch(() => {});
    term.clearSelection();
    ev.preventDefault();
    return false;
  }
  if (ev.ctrlKey && ev.shiftKey && key === 'v') return false;
  // Any key dismisses the idle warning (keys that send no data included).
  dismissWarning();
  return true;
});

function sendSize() { send({ type: 'resize', rows: term.rows, cols: term.cols }); }
let resizeTimer = null;
function scheduleFit() {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => fit.fit(), 100);
}
window.addEventListener('resize', scheduleFit);
term.onResize(() => sendSize());

// A tab closed on purpose ends its shell; a reload reattaches within the
// short delay the agent waits before ending it.
window.addEventListener('pagehide', (ev) => {
  if (!ev.persisted) send({ type: 'close', after: 3 });
});

// Keep NATs and proxies from dropping an idle socket.
setInterval(() => send({ type: 'ping', id: Date.now() }), 30000);

connect();
