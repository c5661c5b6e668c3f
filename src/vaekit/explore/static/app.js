// vaekit explore: the map of a run's latent means on a canvas, and the decoder behind it.
// Points are written straight into an ImageData buffer (one typed-array write per pixel), so tens of
// thousands of them redraw in a few milliseconds while zooming and panning. No libraries, no network
// beyond this page's own server.
"use strict";

const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                 "#bcbd22", "#17becf"];
// typical (blue) ... anomalous (red): RdYlBu, reversed
const RAMP = [[49, 54, 149], [116, 173, 209], [254, 224, 144], [244, 109, 67], [165, 0, 38]];
const HOVER_PX = 8;  // a point within this many CSS pixels of the cursor is "under" it

const state = {
  info: null, n: 0, x: null, y: null, label: null, score: null, elbo: null,
  colours: {}, order: {}, mode: "label",
  view: { cx: 0, cy: 0, scale: 1 }, sx: null, sy: null,
  hover: -1, a: null, code: null, drag: null, image: null, pending: false,
};
// What tests and the benchmark read: readiness, counts and frame times.
const probe = window.vaekitExplore = { ready: false, n: 0, visible: 0, frames: 0, frameTimes: [],
                                       screenOf: (i) => ({ x: state.sx[i], y: state.sy[i] }) };

const $ = (id) => document.getElementById(id);
const canvas = $("map");
const ctx = canvas.getContext("2d");

async function api(path, body) {
  const options = body === undefined ? {} :
    { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const response = await fetch(path, options);
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;  // text, never HTML: sentences come from the data
  return node;
}

function hexToRgb(hex) { const v = parseInt(hex.slice(1), 16); return [v >> 16, (v >> 8) & 255, v & 255]; }
function packed([r, g, b]) { return ((255 << 24) | (b << 16) | (g << 8) | r) >>> 0; }  // little-endian RGBA
function labelColour(k) {
  if (k < PALETTE.length) return hexToRgb(PALETTE[k]);
  const h = (k * 137.508) % 360;  // golden-angle hues beyond ten classes
  const c = 0.6, x = c * (1 - Math.abs(((h / 60) % 2) - 1)), m = 0.25;
  const [r, g, b] = h < 60 ? [c, x, 0] : h < 120 ? [x, c, 0] : h < 180 ? [0, c, x] : h < 240 ? [0, x, c] :
                    h < 300 ? [x, 0, c] : [c, 0, x];
  return [(r + m) * 255, (g + m) * 255, (b + m) * 255].map(Math.round);
}
function rampColour(t) {
  const s = Math.min(Math.max(t, 0), 1) * (RAMP.length - 1), i = Math.min(Math.floor(s), RAMP.length - 2), f = s - i;
  return RAMP[i].map((v, j) => Math.round(v + f * (RAMP[i + 1][j] - v)));
}

// ---- colours and drawing order per mode ---------------------------------------------------------
function prepareColours() {
  const n = state.n;
  const byLabel = new Uint32Array(n);
  for (let i = 0; i < n; i++) byLabel[i] = packed(state.label ? labelColour(state.label[i]) : [38, 70, 140]);
  state.colours.label = byLabel;
  state.order.label = null;
  for (const mode of ["score", "elbo"]) {
    const values = state[mode];
    const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => values[b] - values[a]);
    const colours = new Uint32Array(n);
    // rank, not value: a few extreme scores would otherwise leave everything else one colour
    order.forEach((i, rank) => { colours[i] = packed(rampColour(n > 1 ? rank / (n - 1) : 0)); });
    state.colours[mode] = colours;
    state.order[mode] = Uint32Array.from(order);  // typical first, the most anomalous drawn last, on top
  }
}

function fitView() {
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (let i = 0; i < state.n; i++) {
    x0 = Math.min(x0, state.x[i]); x1 = Math.max(x1, state.x[i]);
    y0 = Math.min(y0, state.y[i]); y1 = Math.max(y1, state.y[i]);
  }
  const w = canvas.clientWidth, h = canvas.clientHeight;
  state.view.cx = (x0 + x1) / 2; state.view.cy = (y0 + y1) / 2;
  state.view.scale = 0.9 * Math.min(w / Math.max(x1 - x0, 1e-9), h / Math.max(y1 - y0, 1e-9));
}

function toData(px, py) {  // CSS pixels on the canvas -> map coordinates
  const v = state.view;
  return [v.cx + (px - canvas.clientWidth / 2) / v.scale, v.cy - (py - canvas.clientHeight / 2) / v.scale];
}
function toScreen(x, y) {
  const v = state.view;
  return [(x - v.cx) * v.scale + canvas.clientWidth / 2, (v.cy - y) * v.scale + canvas.clientHeight / 2];
}

let frameRequested = false;
function schedule() { if (!frameRequested) { frameRequested = true; requestAnimationFrame(draw); } }

function draw() {
  frameRequested = false;
  if (!state.n) return;
  const started = performance.now();
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(canvas.clientWidth * dpr)), h = Math.max(1, Math.round(canvas.clientHeight * dpr));
  if (canvas.width !== w || canvas.height !== h || !state.image) {
    canvas.width = w; canvas.height = h;
    state.image = ctx.createImageData(w, h);
  }
  const pixels = new Uint32Array(state.image.data.buffer);
  pixels.fill(0xffffffff);
  const colours = state.colours[state.mode], order = state.order[state.mode];
  const { cx, cy, scale } = state.view, halfW = canvas.clientWidth / 2, halfH = canvas.clientHeight / 2;
  const r = state.n > 20000 ? 1 : 2;  // dot radius in device pixels: small dots for big maps
  const sx = state.sx, sy = state.sy;
  let visible = 0;
  for (let k = 0; k < state.n; k++) {
    const i = order ? order[k] : k;
    const px = (state.x[i] - cx) * scale + halfW, py = (cy - state.y[i]) * scale + halfH;
    sx[i] = px; sy[i] = py;
    const dx = Math.round(px * dpr), dy = Math.round(py * dpr);
    if (dx < r || dy < r || dx >= w - r || dy >= h - r) continue;
    visible++;
    const c = colours[i];
    for (let yy = dy - r; yy <= dy + r; yy++) {
      const row = yy * w;
      for (let xx = dx - r; xx <= dx + r; xx++) pixels[row + xx] = c;
    }
  }
  ctx.putImageData(state.image, 0, 0);
  drawOverlay(dpr);
  probe.visible = visible;
  probe.frames++;
  probe.frameTimes.push(performance.now() - started);
  if (probe.frameTimes.length > 200) probe.frameTimes.shift();
}

function ring(px, py, radius, colour, dpr) {
  ctx.beginPath();
  ctx.arc(px * dpr, py * dpr, radius * dpr, 0, 2 * Math.PI);
  ctx.strokeStyle = colour; ctx.lineWidth = 2 * dpr; ctx.stroke();
}

function drawOverlay(dpr) {
  if (state.hover >= 0) ring(state.sx[state.hover], state.sy[state.hover], 6, "#000", dpr);
  const marks = [state.a, state.b].filter(Boolean);
  if (marks.length === 2) {
    const [p, q] = marks.map((m) => toScreen(m.x, m.y));
    ctx.beginPath(); ctx.moveTo(p[0] * dpr, p[1] * dpr); ctx.lineTo(q[0] * dpr, q[1] * dpr);
    ctx.strokeStyle = "rgba(0,0,0,0.6)"; ctx.lineWidth = 1.5 * dpr; ctx.setLineDash([5 * dpr, 4 * dpr]);
    ctx.stroke(); ctx.setLineDash([]);
  }
  marks.forEach((m, k) => {
    const [px, py] = toScreen(m.x, m.y);
    ring(px, py, 7, k ? "#c2185b" : "#00796b", dpr);
    ctx.fillStyle = "#000"; ctx.font = `${12 * dpr}px system-ui, sans-serif`;
    ctx.fillText(k ? "B" : "A", (px + 9) * dpr, (py - 9) * dpr);
  });
}

function nearest(px, py) {
  let best = -1, bestD = HOVER_PX * HOVER_PX;
  const sx = state.sx, sy = state.sy;
  for (let i = 0; i < state.n; i++) {
    const dx = sx[i] - px, dy = sy[i] - py, d = dx * dx + dy * dy;
    if (d < bestD) { bestD = d; best = i; }
  }
  return best;
}

// ---- rendering decoded outputs ------------------------------------------------------------------
function renderItem(item, caption) {
  const box = el("div", "item");
  if (item.image !== undefined) {
    const img = el("img", "decoded"); img.src = item.image; img.alt = caption || "decoded image"; box.append(img);
  } else if (item.text !== undefined) {
    box.className = "item sentence-item";
    box.append(el("div", "sentence", item.text || "(empty)"));
  } else if (item.row !== undefined) {
    box.append(rowTable([item.row]));
  }
  if (caption) box.append(el("span", "caption", caption));
  return box;
}

function rowTable(rows, captions) {
  const table = el("table", "row");
  const head = el("tr");
  if (captions) head.append(el("th", null, ""));
  (state.info.columns || rows[0].map((_, j) => `x${j}`)).forEach((c) => head.append(el("th", null, c)));
  table.append(head);
  rows.forEach((row, k) => {
    const tr = el("tr");
    if (captions) tr.append(el("th", null, captions[k]));
    row.forEach((v) => tr.append(el("td", null, String(v))));
    table.append(tr);
  });
  return table;
}

function renderItems(container, items, captions) {
  container.replaceChildren();
  if (items.length && items[0].row !== undefined) {
    container.append(rowTable(items.map((it) => it.row), captions));
    return;
  }
  container.classList.toggle("text", items.length > 0 && items[0].text !== undefined);
  items.forEach((item, k) => container.append(renderItem(item, captions ? captions[k] : undefined)));
}

function showError(container, error) { container.replaceChildren(el("p", "error", String(error.message || error))); }

// ---- hover: the example beside its reconstruction -----------------------------------------------
const exampleCache = new Map();
let hoverToken = 0;
async function showExample(i) {
  const token = ++hoverToken;
  try {
    let data = exampleCache.get(i);
    if (!data) { data = await api(`/api/example?i=${i}`); exampleCache.set(i, data); }
    if (token !== hoverToken) return;
    const box = $("hover");
    box.replaceChildren();
    if (data.input.row !== undefined) box.append(rowTable([data.input.row, data.reconstruction.row],
                                                         ["input", "reconstruction"]));
    else box.append(renderItem(data.input, "input"), renderItem(data.reconstruction, "reconstruction"));
    const meta = el("p", "meta",
      `#${data.i}` + (data.label_name !== null ? ` · label ${data.label_name}` : "") +
      ` · anomaly score (${state.info.score_method}) ${data.score.toFixed(3)} · ELBO ${data.elbo.toFixed(2)} nats`);
    box.append(meta);
    box.dataset.index = String(data.i);
  } catch (e) { if (token === hoverToken) showError($("hover"), e); }
}

// ---- click: decode; shift-click: interpolate ----------------------------------------------------
async function decodeAt(px, py, shift) {
  const [x, y] = toData(px, py);
  const under = nearest(px, py);
  try {
    const started = performance.now();
    const data = await api(`/api/decode?x=${x}&y=${y}`);
    probe.lastDecodeMs = performance.now() - started;
    const point = { x, y, z: data.z };
    if (shift && state.a) {
      state.b = point;
      interpolate();
    } else {
      state.a = point; state.b = null;
      const box = $("decoded");
      box.replaceChildren(renderItem(data.output, `at (${x.toFixed(2)}, ${y.toFixed(2)})`));
      box.dataset.count = String((Number(box.dataset.count) || 0) + 1);
      setCode(data.z);
      if (state.info.variations && under >= 0) vary(under);
    }
    schedule();
  } catch (e) { showError($("decoded"), e); }
}

async function interpolate() {
  const box = $("interpolation");
  try {
    const data = await api("/api/interpolate", { a: state.a.z, b: state.b.z, steps: 8 });
    renderItems(box, data.outputs, data.outputs.map((_, k) => (k === 0 ? "A" : k === data.outputs.length - 1 ? "B" : "")));
  } catch (e) { showError(box, e); }
}

async function vary(i) {
  const box = $("variations");
  try {
    const data = await api("/api/vary", { i, n: 5 });
    box.replaceChildren(el("h2", null, "Variations of the nearest sentence"), el("div", "sentence", data.sentence));
    data.variations.forEach((s) => box.append(el("div", "sentence", "→ " + s)));
  } catch (e) { showError(box, e); }
}

// ---- sliders: the selected code, one dimension each ---------------------------------------------
const MAX_SLIDERS = 64;
function buildSliders() {
  const box = $("sliders");
  box.replaceChildren();
  const kl = state.info.kl_per_dim, top = Math.max(...kl, 1e-9);
  const span = state.info.traverse_span;
  kl.slice(0, MAX_SLIDERS).forEach((value, d) => {
    const row = el("div", "slider");
    const input = el("input"); input.type = "range"; input.min = -span - 1; input.max = span + 1; input.step = 0.01;
    input.value = 0; input.dataset.dim = String(d); input.disabled = true;
    const klBox = el("span", null, value.toFixed(2));
    const bar = el("div", "kl-bar"); bar.style.width = `${Math.round(100 * value / top)}%`;
    klBox.append(bar);
    klBox.title = "KL of this dimension, averaged over the data: near 0 means the model does not use it";
    const sweep = el("button", null, "sweep"); sweep.type = "button"; sweep.disabled = true;
    sweep.addEventListener("click", () => traverse(d));
    input.addEventListener("input", () => {
      state.code[d] = Number(input.value); decodeCode();
    });
    row.append(el("span", null, `z${d}`), input, klBox, sweep);
    box.append(row);
  });
  if (kl.length > MAX_SLIDERS) box.append(el("p", "note", `the first ${MAX_SLIDERS} of ${kl.length} dimensions`));
}

function setCode(z) {
  state.code = z.slice();
  document.querySelectorAll("#sliders input").forEach((input) => {
    input.disabled = false; input.value = state.code[Number(input.dataset.dim)];
  });
  document.querySelectorAll("#sliders button").forEach((b) => { b.disabled = false; });
  decodeCode();
}

let sliderBusy = false;
async function decodeCode() {
  if (sliderBusy) { state.pending = true; return; }  // the latest value is sent once this answer is in
  sliderBusy = true;
  try {
    const data = await api("/api/decode", { z: state.code });
    $("slider-output").replaceChildren(renderItem(data.output, "the code set by the sliders"));
  } catch (e) { showError($("slider-output"), e); }
  sliderBusy = false;
  if (state.pending) { state.pending = false; decodeCode(); }
}

async function traverse(d) {
  const box = $("traversal");
  try {
    const data = await api("/api/traverse", { z: state.code, dim: d });
    renderItems(box, data.outputs, data.values.map((v) => `z${d}=${v.toFixed(1)}`));
  } catch (e) { showError(box, e); }
}

// ---- events -------------------------------------------------------------------------------------
function canvasPoint(e) { const r = canvas.getBoundingClientRect(); return [e.clientX - r.left, e.clientY - r.top]; }

canvas.addEventListener("wheel", (e) => {
  e.preventDefault();
  const [px, py] = canvasPoint(e);
  const [x, y] = toData(px, py);
  state.view.scale *= Math.exp(-e.deltaY * 0.0015);
  const [nx, ny] = toData(px, py);  // keep the point under the cursor where it is
  state.view.cx += x - nx; state.view.cy += y - ny;
  schedule();
}, { passive: false });

canvas.addEventListener("mousedown", (e) => {
  const [px, py] = canvasPoint(e);
  state.drag = { px, py, cx: state.view.cx, cy: state.view.cy, moved: false };
});
window.addEventListener("mouseup", (e) => {
  const drag = state.drag;
  state.drag = null;
  if (drag && !drag.moved && e.target === canvas) {
    const [px, py] = canvasPoint(e);
    decodeAt(px, py, e.shiftKey);
  }
});
canvas.addEventListener("mousemove", (e) => {
  const [px, py] = canvasPoint(e);
  const drag = state.drag;
  if (drag) {
    if (Math.abs(px - drag.px) + Math.abs(py - drag.py) > 3) drag.moved = true;
    if (drag.moved) {
      state.view.cx = drag.cx - (px - drag.px) / state.view.scale;
      state.view.cy = drag.cy + (py - drag.py) / state.view.scale;
      schedule();
    }
    return;
  }
  const i = nearest(px, py);
  if (i !== state.hover) {
    state.hover = i;
    schedule();
    if (i >= 0) showExample(i);
  }
});
$("colour-by").addEventListener("change", (e) => { state.mode = e.target.value; drawLegend(); schedule(); });
$("reset-view").addEventListener("click", () => { fitView(); schedule(); });
window.addEventListener("resize", schedule);

function drawLegend() {
  const box = $("legend");
  box.replaceChildren();
  if (state.mode === "label") {
    if (!state.label) { box.append(el("span", null, "no labels")); return; }
    const k = Math.max(...state.label) + 1, names = state.info.classes;
    for (let c = 0; c < Math.min(k, 30); c++) {
      const line = el("div"), sw = el("span", "swatch");
      sw.style.background = `rgb(${labelColour(c).join(",")})`;
      line.append(sw, document.createTextNode(names && names[c] !== undefined ? names[c] : String(c)));
      box.append(line);
    }
    return;
  }
  const what = state.mode === "score" ? `anomaly score (${state.info.score_method})` : "ELBO";
  [[0, "typical (high " + what + ")"], [1, "anomalous (low)"]].forEach(([t, text]) => {
    const line = el("div"), sw = el("span", "swatch");
    sw.style.background = `rgb(${rampColour(t).join(",")})`;
    line.append(sw, document.createTextNode(text));
    box.append(line);
  });
}

async function start() {
  try {
    const info = state.info = await api("/api/info");
    $("run-name").textContent = `${info.run} · ${info.kind} · ${info.model} · ${info.latent_dim}-D latent`;
    $("view-note").textContent = `${info.view} (${info.n} examples). Decoding: ${info.decoding}.`;
    const started = performance.now();
    const points = await api("/api/points");
    state.n = points.x.length;
    state.x = Float32Array.from(points.x); state.y = Float32Array.from(points.y);
    state.label = points.label ? Int32Array.from(points.label) : null;
    state.score = Float32Array.from(points.score); state.elbo = Float32Array.from(points.elbo);
    state.sx = new Float32Array(state.n); state.sy = new Float32Array(state.n);
    if (!state.label) { $("colour-by").value = "score"; state.mode = "score"; }
    prepareColours();
    buildSliders();
    drawLegend();
    fitView();
    draw();
    probe.loadMs = performance.now() - started;
    probe.n = state.n;
    $("status").textContent = `${state.n} points`;
    canvas.dataset.points = String(state.n);
    probe.ready = true;
    document.body.dataset.ready = "1";  // for scripts that wait with a selector (the CSP forbids their eval)
  } catch (e) {
    $("status").textContent = "error: " + (e.message || e);
    $("status").classList.add("error");
  }
}
start();
