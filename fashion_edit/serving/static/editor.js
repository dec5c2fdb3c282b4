// fashion-edit page: paint a hole, sketch lines and colour strokes over a photo, move attribute sliders or pick a
// garment category to swap to; the server edits it.
// Layers are kept at the photo's own size, so the PNGs sent (and offered for download) are exactly the
// files `fashion-edit edit` takes: mask and sketch white on black, colour strokes on transparent RGBA.
"use strict";

const PALETTE = ["#c0303a", "#e07a1f", "#e8c83a", "#3a9a4a", "#2a6fdb", "#6a3ab0", "#f2f2f2", "#202020", "#8a5a3a"];
const LIVE_LIMIT_MS = 1000;   // live re-edit after each stroke only while a round trip takes less
const UNDO_DEPTH = 20;
const UNDO_BYTES = 256 * 1024 * 1024;  // fewer undo steps for big photos: each keeps three full-size layers
const VARIATIONS = 4;
const STAGE_PX = 448;         // the side of the drawing and result areas (editor.css .stage)
const TINT = { erase: "rgba(255, 0, 255, 0.5)", sketch: "#1030ff" };
const STRENGTH_STEP = 0.05;   // attribute sliders

const $ = (id) => document.getElementById(id);
const state = {
  status: null, photo: null, layers: null, tool: "erase", sizes: { erase: 16, sketch: 2, colour: 8 },
  colour: PALETTE[0], undo: [], drawing: null, lastRoundTrip: null, busy: false, pending: false, sent: null,
};

function canvasOf(width, height) {
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  return canvas;
}

// a drawing layer: read back for undo and the hole check, so kept in memory the CPU reads fast
function layerOf(width, height) {
  const layer = canvasOf(width, height);
  layer.getContext("2d", { willReadFrequently: true });
  return layer;
}

function showMessage(text, isError) {
  const box = $("message");
  box.hidden = !text;
  box.textContent = text || "";
  box.classList.toggle("error", Boolean(isError));
}

// ---------------------------------------------------------------- model status
async function loadStatus(url, options) {
  let status;
  try {
    status = await (await fetch(url || "/api/status", options)).json();
  } catch (err) {
    status = { ready: false, error: `the page's server does not answer (${err}); restart \`fashion-edit serve\`` };
  }
  state.status = status;
  $("retry").hidden = status.ready;
  buildSliders(status);
  buildCategories(status);
  const model = $("model");
  model.textContent = "";
  if (!status.ready) {
    model.textContent = "no model loaded";
    showMessage(status.error, true);
    return;
  }
  model.append(`serving ${status.description}`);
  for (const [key, value] of Object.entries(status.metrics || {})) {
    if (key.endsWith("_se")) continue;
    const chip = document.createElement("span");
    chip.className = "metric";
    chip.textContent = `${key} ${Number(value).toPrecision(4)}`;
    model.append(chip);
  }
  if ($("message").classList.contains("error")) showMessage("");
}

// ---------------------------------------------------------------- attribute sliders
// one per attribute the served model learned (none for a model without), from -max_strength to +max_strength
function buildSliders(status) {
  const names = (status.ready && status.attributes) || [];
  const box = $("attributes");
  box.textContent = "";
  $("attribute-bar").hidden = !names.length;
  // the range is kept on the step grid, so 0 (no edit) is a value the slider can take
  const limit = (Math.floor((status.max_strength || 0) / STRENGTH_STEP + 1e-9) * STRENGTH_STEP).toFixed(2);
  for (const name of names) {
    const slider = document.createElement("input");
    Object.assign(slider, { type: "range", id: `attribute-${name}`, min: `-${limit}`, max: limit,
                            step: String(STRENGTH_STEP), value: "0" });
    slider.dataset.attribute = name;
    const shown = document.createElement("output");
    shown.textContent = strengthText(0);
    slider.addEventListener("input", () => { shown.textContent = strengthText(Number(slider.value)); });
    slider.addEventListener("change", maybeLiveEdit);  // once on release, not at every step of a drag
    const label = document.createElement("label");
    label.append(`${name.replace(/_/g, " ")} `, slider, shown);
    box.append(label);
  }
}

function strengthText(value) {
  return (value > 0 ? "+" : "") + value.toFixed(2);
}

// the non-zero strengths: what an edit sends (0 is no edit)
function attributeStrengths() {
  const strengths = {};
  for (const slider of document.querySelectorAll("#attributes input[data-attribute]")) {
    if (Number(slider.value) !== 0) strengths[slider.dataset.attribute] = Number(slider.value);
  }
  return strengths;
}

// ---------------------------------------------------------------- category swap
// "keep" plus each category the served model swaps to (none for a model without label strokes)
function buildCategories(status) {
  const names = (status.ready && status.categories) || [];
  const select = $("category");
  select.textContent = "";
  for (const name of ["keep", ...names]) {
    const option = document.createElement("option");
    option.value = option.textContent = name;
    select.append(option);
  }
  $("category-bar").hidden = !names.length;
}

// the category to swap the lower garment to, or null to keep it
function toCategory() {
  const value = $("category").value;
  return $("category-bar").hidden || !value || value === "keep" ? null : value;
}

// an edit needs a hole, an attribute to change or a category to swap to (both erase their own region)
function hasEdit() {
  return hasHole() || Object.keys(attributeStrengths()).length > 0 || toCategory() !== null;
}

function noEditMessage() {
  const sliders = !$("attribute-bar").hidden ? ", or move an attribute slider" : "";
  const category = !$("category-bar").hidden ? ", or pick a garment category" : "";
  return `Paint the region to change with the Erase brush first (the hole)${sliders}${category}.`;
}

// ---------------------------------------------------------------- photos
async function loadExamples() {
  const answer = await (await fetch("/api/examples")).json();
  const strip = $("examples");
  for (const example of answer.examples) {
    const thumb = document.createElement("img");
    thumb.src = `/api/examples/${example.index}`;
    thumb.alt = thumb.title = example.stem;
    thumb.className = "example";
    thumb.addEventListener("click", () => {
      strip.querySelectorAll("img").forEach((img) => img.classList.remove("selected"));
      thumb.classList.add("selected");
      // a click before the thumbnail has loaded would otherwise make a 1x1 photo of it
      thumb.decode().then(() => usePhoto(thumb, example.stem),
                          () => showMessage(`example ${example.stem} could not be loaded; pick another`, true));
    });
    strip.append(thumb);
  }
  $("examples-note").hidden = !answer.note;
  $("examples-note").textContent = answer.note || "";
}

function usePhoto(img, name) {
  const maxSide = (state.status && state.status.max_side) || 2048;
  const scale = Math.min(1, maxSide / Math.max(img.naturalWidth, img.naturalHeight));
  const width = Math.max(1, Math.round(img.naturalWidth * scale));
  const height = Math.max(1, Math.round(img.naturalHeight * scale));
  state.photo = canvasOf(width, height);
  state.photo.getContext("2d").drawImage(img, 0, 0, width, height);
  state.layers = { erase: layerOf(width, height), sketch: layerOf(width, height), colour: layerOf(width, height) };
  state.undo = [];
  const canvas = $("canvas");
  canvas.width = width;
  canvas.height = height;
  for (const id of ["canvas", "result", "parsing-overlay", "hole-overlay"]) fitDisplay($(id), width, height);
  render();
  clearResult();
  showMessage(scale < 1 ? `${name} is ${img.naturalWidth}x${img.naturalHeight} pixels: downscaled to ` +
    `${width}x${height} (long side ${maxSide} px), the size that is edited and downloaded` : "");
}

// small photos are shown enlarged, large ones reduced: the stage's size, aspect kept
function fitDisplay(element, width, height) {
  const scale = STAGE_PX / Math.max(width, height);
  element.style.width = `${Math.round(width * scale)}px`;
  element.style.height = `${Math.round(height * scale)}px`;
}

function uploadPhoto(file) {
  const url = URL.createObjectURL(file);
  const img = new Image();
  img.onload = () => { usePhoto(img, file.name); URL.revokeObjectURL(url); };
  img.onerror = () => {
    URL.revokeObjectURL(url);
    showMessage(`${file.name} is not an image this browser can read: upload a PNG or JPEG photo`, true);
  };
  img.src = url;
}

// ---------------------------------------------------------------- drawing
function render() {
  const canvas = $("canvas");
  const ctx = canvas.getContext("2d");
  ctx.globalCompositeOperation = "source-over";
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!state.photo) return;
  ctx.drawImage(state.photo, 0, 0);
  for (const name of ["erase", "sketch"]) ctx.drawImage(tinted(state.layers[name], TINT[name]), 0, 0);
  ctx.drawImage(state.layers.colour, 0, 0);
}

function tinted(layer, colour) {
  const out = canvasOf(layer.width, layer.height);
  const ctx = out.getContext("2d");
  ctx.drawImage(layer, 0, 0);
  ctx.globalCompositeOperation = "source-in";
  ctx.fillStyle = colour;
  ctx.fillRect(0, 0, out.width, out.height);
  return out;
}

function photoPoint(event) {
  const canvas = $("canvas");
  const rect = canvas.getBoundingClientRect();
  return { x: (event.clientX - rect.left) * canvas.width / rect.width,
           y: (event.clientY - rect.top) * canvas.height / rect.height, scale: canvas.width / rect.width };
}

function strokeTo(point) {
  const stroke = state.drawing;
  const ctx = state.layers[stroke.tool].getContext("2d");
  ctx.strokeStyle = stroke.tool === "colour" ? state.colour : "#ffffff";
  ctx.lineWidth = state.sizes[stroke.tool] * (stroke.tool === "sketch" ? 1 : point.scale);
  ctx.lineCap = ctx.lineJoin = "round";
  ctx.beginPath();
  ctx.moveTo(stroke.last.x, stroke.last.y);
  ctx.lineTo(point.x + 0.01, point.y);  // a click is a dot
  ctx.stroke();
  stroke.last = point;
  render();
}

function snapshot() {
  const copy = {};
  for (const [name, layer] of Object.entries(state.layers)) {
    copy[name] = layer.getContext("2d").getImageData(0, 0, layer.width, layer.height);
  }
  state.undo.push(copy);
  const bytesPerStep = 3 * 4 * state.photo.width * state.photo.height;
  const depth = Math.max(1, Math.min(UNDO_DEPTH, Math.floor(UNDO_BYTES / bytesPerStep)));
  while (state.undo.length > depth) state.undo.shift();
}

function restore(copy) {
  for (const [name, data] of Object.entries(copy)) state.layers[name].getContext("2d").putImageData(data, 0, 0);
  render();
}

function clearLayers() {
  for (const layer of Object.values(state.layers)) layer.getContext("2d").clearRect(0, 0, layer.width, layer.height);
  render();
}

function hasHole() {
  const layer = state.layers.erase;
  const alpha = layer.getContext("2d").getImageData(0, 0, layer.width, layer.height).data;
  for (let i = 3; i < alpha.length; i += 4) if (alpha[i] >= 128) return true;
  return false;
}

// ---------------------------------------------------------------- the files sent (and downloaded)
function onBlack(layer) {
  const out = canvasOf(layer.width, layer.height);
  const ctx = out.getContext("2d");
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, out.width, out.height);
  ctx.drawImage(layer, 0, 0);
  return out.toDataURL("image/png");
}

function editFiles() {
  return { image: state.photo.toDataURL("image/png"), mask: onBlack(state.layers.erase),
           sketch: onBlack(state.layers.sketch), colour: state.layers.colour.toDataURL("image/png"),
           attributes: attributeStrengths(), to_category: toCategory() };
}

// ---------------------------------------------------------------- editing
function seed() {
  return Math.max(0, parseInt($("seed").value, 10) || 0);
}

async function requestEdit(files, seedValue) {
  const response = await fetch("/api/edit", { method: "POST", headers: { "Content-Type": "application/json" },
                                              body: JSON.stringify({ ...files, seed: seedValue }) });
  const answer = await response.json().catch(() => ({ error: `the server answered HTTP ${response.status}` }));
  if (!response.ok) throw new Error(answer.error || `HTTP ${response.status}`);
  return answer;
}

async function edit() {
  if (!state.photo) { showMessage("Pick an example photo or upload one first.", true); return; }
  if (!hasEdit()) { showMessage(noEditMessage(), true); return; }
  if (state.busy) { state.pending = true; return; }
  state.busy = true;
  const started = performance.now();
  const files = editFiles();
  try {
    const answer = await requestEdit(files, seed());
    await showResult(answer, files);
    state.lastRoundTrip = performance.now() - started;
    $("timing").textContent = `${Math.round(state.lastRoundTrip)} ms (networks ${Math.round(answer.networks_ms)} ms)`;
    showMessage(answer.notice || "");
  } catch (err) {
    showMessage(err.message, true);
  } finally {
    state.busy = false;
    if (state.pending) { state.pending = false; edit(); }
  }
}

function showResult(answer, files) {
  state.sent = { files, answer };
  $("parsing-overlay").src = answer.parsing;
  $("hole-overlay").src = answer.hole;
  for (const name of ["image", "mask", "sketch", "colour"]) $(`download-${name}`).href = files[name];
  $("download-result").href = answer.image;
  const model = (state.status && state.status.replay) || "";
  const attributes = Object.entries(files.attributes || {})
    .map(([name, value]) => `--attribute ${name}=${strengthText(value)} `).join("");
  const swap = files.to_category ? `--to ${files.to_category} ` : "";
  $("replay").textContent = `fashion-edit edit --image image.png --mask mask.png --sketch sketch.png ` +
    `--colour colour.png ${attributes}${swap}--seed ${answer.seed} --out result.png ${model}`;
  const result = $("result");
  result.src = answer.image;
  return result.decode().then(() => { result.dataset.seed = String(answer.seed); });
}

function clearResult() {
  for (const id of ["result", "parsing-overlay", "hole-overlay"]) $(id).removeAttribute("src");
  delete $("result").dataset.seed;
  $("variation-strip").textContent = "";
  for (const link of document.querySelectorAll(".downloads a")) link.removeAttribute("href");
  $("replay").textContent = "";
}

async function variations() {
  if (!state.photo || !hasEdit()) {
    showMessage(`${noEditMessage()} Variations re-edit with other seeds.`, true);
    return;
  }
  const strip = $("variation-strip");
  strip.textContent = "";
  const files = editFiles();
  try {
    for (let k = 1; k <= VARIATIONS; k++) {
      const answer = await requestEdit(files, seed() + k);
      const thumb = document.createElement("img");
      thumb.src = answer.image;
      thumb.title = `seed ${answer.seed}`;
      thumb.className = "variation";
      thumb.addEventListener("click", () => { $("seed").value = answer.seed; showResult(answer, files); });
      strip.append(thumb);
    }
  } catch (err) {
    showMessage(err.message, true);
  }
}

function maybeLiveEdit() {
  const fast = state.lastRoundTrip === null || state.lastRoundTrip < LIVE_LIMIT_MS;
  if ($("live").checked && fast && state.photo && hasEdit()) edit();
}

// ---------------------------------------------------------------- wiring
function selectTool(tool) {
  state.tool = tool;
  document.querySelectorAll(".tool").forEach((b) => b.classList.toggle("active", b.dataset.tool === tool));
  $("size").value = state.sizes[tool];
  $("size-value").textContent = state.sizes[tool];
}

function buildPalette() {
  for (const colour of PALETTE) {
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = colour;
    swatch.dataset.colour = colour;
    swatch.addEventListener("click", () => pickColour(colour));
    $("palette").append(swatch);
  }
  pickColour(PALETTE[0]);
}

function pickColour(colour) {
  state.colour = colour;
  $("picker").value = colour;
  document.querySelectorAll(".swatch").forEach((s) => s.classList.toggle("active", s.dataset.colour === colour));
  if (state.tool !== "colour") selectTool("colour");
}

function wire() {
  const canvas = $("canvas");
  canvas.addEventListener("pointerdown", (event) => {
    if (!state.photo) return;
    canvas.setPointerCapture(event.pointerId);
    snapshot();
    const point = photoPoint(event);
    state.drawing = { tool: state.tool, last: point };
    strokeTo(point);
  });
  canvas.addEventListener("pointermove", (event) => { if (state.drawing) strokeTo(photoPoint(event)); });
  const finish = () => { if (state.drawing) { state.drawing = null; maybeLiveEdit(); } };
  canvas.addEventListener("pointerup", finish);
  canvas.addEventListener("pointercancel", finish);
  document.querySelectorAll(".tool").forEach((b) => b.addEventListener("click", () => selectTool(b.dataset.tool)));
  $("size").addEventListener("input", () => {
    state.sizes[state.tool] = Number($("size").value);
    $("size-value").textContent = $("size").value;
  });
  $("picker").addEventListener("input", () => pickColour($("picker").value));
  $("undo").addEventListener("click", () => { if (state.undo.length) restore(state.undo.pop()); });
  $("clear").addEventListener("click", () => { if (state.layers) { snapshot(); clearLayers(); } });
  $("edit").addEventListener("click", edit);
  $("variations").addEventListener("click", variations);
  $("upload").addEventListener("change", () => { if ($("upload").files[0]) uploadPhoto($("upload").files[0]); });
  $("retry").addEventListener("click", () => loadStatus("/api/reload", { method: "POST" }));
  $("show-parsing").addEventListener("change", () => { $("parsing-overlay").hidden = !$("show-parsing").checked; });
  $("show-hole").addEventListener("change", () => { $("hole-overlay").hidden = !$("show-hole").checked; });
  $("category").addEventListener("change", maybeLiveEdit);
}

buildPalette();
selectTool("erase");
wire();
loadStatus().then(loadExamples);
