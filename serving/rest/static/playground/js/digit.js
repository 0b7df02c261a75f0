// The digit panel: draw on a canvas, see the 28x28 digit as sent and the ten probabilities.

import {call} from "./api.js";
import {digitBody, digitForms} from "./snippets.js";
import {ModelPicker, RequestView, latest, showError, showPrediction} from "./ui.js";

const SIZE = 280; // canvas pixels per side
const GRID = 28; // model pixels per side
const CELL = SIZE / GRID;
const BRUSH = 20; // stroke width in canvas pixels: about MNIST's pen once scaled
const BOX = 20 * CELL; // MNIST fits each digit's bounding box into 20x20 of the 28x28

export class DigitPanel {
  constructor(panel, defaults) {
    this.defaults = defaults; // () => the task's default model, for the request forms
    this.canvas = panel.querySelector("#digit-canvas");
    this.ctx = this.canvas.getContext("2d", {willReadFrequently: true});
    this.seen = panel.querySelector("#digit-seen");
    this.result = panel.querySelector(".result");
    this.picker = new ModelPicker(panel, "digit-model", "No digit model is served yet.",
                                  () => this.predict());
    this.request = new RequestView(panel, "digit");
    this.pen = {x: SIZE / 2, y: SIZE / 2, down: false};
    this.cursor = document.createElement("div");
    this.cursor.className = "pen-cursor";
    this.cursor.setAttribute("aria-hidden", "true");
    this.canvas.parentElement.append(this.cursor);
    this.predict = latest(() => this.send());
    this.clear();
    this.listen(panel);
  }

  listen(panel) {
    const c = this.canvas;
    c.addEventListener("pointerdown", (e) => {
      c.setPointerCapture(e.pointerId);
      this.stroke = this.point(e);
      this.line(this.stroke, this.stroke);
    });
    c.addEventListener("pointermove", (e) => {
      if (!this.stroke) return;
      const p = this.point(e);
      this.line(this.stroke, p);
      this.stroke = p;
    });
    const end = () => { this.stroke = null; };
    c.addEventListener("pointerup", end);
    c.addEventListener("pointercancel", end);
    c.addEventListener("keydown", (e) => this.key(e));
    c.addEventListener("focus", () => this.moveCursor());
    panel.querySelector("#digit-clear").addEventListener("click", () => this.clear());
  }

  point(e) {
    const r = this.canvas.getBoundingClientRect();
    return {x: (e.clientX - r.left) * SIZE / r.width, y: (e.clientY - r.top) * SIZE / r.height};
  }

  line(a, b) {
    const ctx = this.ctx;
    ctx.strokeStyle = "#fff";
    ctx.lineWidth = BRUSH;
    ctx.lineCap = ctx.lineJoin = "round";
    ctx.beginPath();
    ctx.moveTo(a.x, a.y);
    ctx.lineTo(b.x, b.y);
    ctx.stroke();
    this.predict();
  }

  clear() {
    this.ctx.fillStyle = "#000";
    this.ctx.fillRect(0, 0, SIZE, SIZE);
    this.showSeen(zeros());
    this.result.replaceChildren();
  }

  // Keyboard drawing: a digit key draws that digit; arrows move the pen; space lifts it.
  key(e) {
    const moves = {ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1]};
    if (/^[0-9]$/.test(e.key)) {
      this.clear();
      this.ctx.fillStyle = "#fff";
      this.ctx.font = "bold 200px sans-serif";
      this.ctx.textAlign = "center";
      this.ctx.textBaseline = "middle";
      this.ctx.fillText(e.key, SIZE / 2, SIZE / 2 + 10);
      this.predict();
    } else if (e.key in moves) {
      const [dx, dy] = moves[e.key];
      const step = CELL * (e.shiftKey ? 3 : 1);
      const from = {...this.pen};
      this.pen.x = Math.min(SIZE, Math.max(0, this.pen.x + dx * step));
      this.pen.y = Math.min(SIZE, Math.max(0, this.pen.y + dy * step));
      if (this.pen.down) this.line(from, this.pen);
      this.moveCursor();
    } else if (e.key === " ") {
      this.pen.down = !this.pen.down;
      if (this.pen.down) this.line(this.pen, this.pen);
      this.moveCursor();
    } else if (e.key === "Escape" || e.key === "Delete" || e.key === "Backspace") {
      this.clear();
    } else {
      return;
    }
    e.preventDefault();
  }

  moveCursor() {
    const scale = this.canvas.clientWidth / SIZE;
    this.cursor.style.left = `${this.canvas.offsetLeft + this.pen.x * scale}px`;
    this.cursor.style.top = `${this.canvas.offsetTop + this.pen.y * scale}px`;
    this.cursor.classList.toggle("down", this.pen.down);
  }

  showSeen(rows) {
    const ctx = this.seen.getContext("2d");
    const image = ctx.createImageData(GRID, GRID);
    rows.flat().forEach((v, i) => {
      image.data.set([v, v, v, 255], 4 * i);
    });
    ctx.putImageData(image, 0, 0);
  }

  async send() {
    const model = this.picker.current();
    if (!model) return;
    const rows = toRows(this.ctx);
    this.showSeen(rows);
    if (!rows.some((row) => row.some((v) => v > 0))) return; // nothing drawn yet
    const isDefault = this.defaults()?.name === model.name;
    const query = isDefault ? "" : `?model=${encodeURIComponent(model.name)}`;
    this.request.set(digitForms(model, isDefault, rows));
    try {
      const {data, ms} = await call(`/v1/digit:predict${query}`, {
        method: "POST", body: digitBody(rows), contentType: "application/json"});
      showPrediction(this.result, model, data, ms);
    } catch (err) {
      showError(this.result, err);
    }
  }
}

function zeros() {
  return Array.from({length: GRID}, () => new Array(GRID).fill(0));
}

// The drawing as MNIST presents digits: the ink's bounding box scaled into 20x20, its
// centre of mass at the centre of 28x28, each model pixel the mean of its 10x10 cells.
function toRows(ctx) {
  const box = inkBox(ctx.getImageData(0, 0, SIZE, SIZE).data);
  if (!box) return zeros();
  const scale = BOX / Math.max(box.w, box.h);
  const work = document.createElement("canvas");
  work.width = work.height = SIZE;
  const w = work.getContext("2d", {willReadFrequently: true});
  const place = (x, y) => {
    w.fillStyle = "#000";
    w.fillRect(0, 0, SIZE, SIZE);
    w.drawImage(ctx.canvas, box.x, box.y, box.w, box.h, x, y, box.w * scale, box.h * scale);
    return w.getImageData(0, 0, SIZE, SIZE).data;
  };
  const x0 = (SIZE - box.w * scale) / 2;
  const y0 = (SIZE - box.h * scale) / 2;
  const [cx, cy] = centreOfMass(place(x0, y0));
  return average(place(x0 + SIZE / 2 - cx, y0 + SIZE / 2 - cy));
}

function inkBox(data) {
  let minX = SIZE, minY = SIZE, maxX = -1, maxY = -1;
  for (let y = 0; y < SIZE; y++) {
    for (let x = 0; x < SIZE; x++) {
      if (data[4 * (y * SIZE + x)] > 16) {
        minX = Math.min(minX, x); maxX = Math.max(maxX, x);
        minY = Math.min(minY, y); maxY = Math.max(maxY, y);
      }
    }
  }
  return maxX < 0 ? null : {x: minX, y: minY, w: maxX - minX + 1, h: maxY - minY + 1};
}

function centreOfMass(data) {
  let sum = 0, sx = 0, sy = 0;
  for (let i = 0; i < SIZE * SIZE; i++) {
    const v = data[4 * i];
    sum += v; sx += v * (i % SIZE); sy += v * Math.floor(i / SIZE);
  }
  return sum ? [sx / sum, sy / sum] : [SIZE / 2, SIZE / 2];
}

function average(data) {
  const rows = zeros();
  for (let y = 0; y < SIZE; y++) {
    for (let x = 0; x < SIZE; x++) {
      rows[Math.floor(y / CELL)][Math.floor(x / CELL)] += data[4 * (y * SIZE + x)];
    }
  }
  return rows.map((row) => row.map((v) => Math.round(v / (CELL * CELL))));
}
