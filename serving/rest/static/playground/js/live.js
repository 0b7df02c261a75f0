// The live server view: per model, the last minute from GET /playground/api/stats.

import {call} from "./api.js";
import {el} from "./ui.js";

const POLL_MS = 1000;
const RECENT_S = 5; // requests/s: the mean of the last complete seconds
const UNKNOWN_MODEL = "_unknown";

export class LiveView {
  constructor(section) {
    this.box = section.querySelector("#live-models");
    this.updated = section.querySelector("#live-updated");
    section.querySelector("#load-command").textContent =
      `modelserve loadtest --host ${location.origin} -u 16 -t 30`;
  }

  start() {
    const tick = async () => {
      if (!document.hidden) await this.refresh();
      setTimeout(tick, POLL_MS);
    };
    tick();
  }

  async refresh() {
    try {
      const {data} = await call("/playground/api/stats");
      this.render(data);
      this.updated.textContent = `Updated ${new Date().toLocaleTimeString()}.`;
    } catch (err) {
      this.updated.textContent = `Live figures unavailable: ${err.message}`;
    }
  }

  render(stats) {
    const names = Object.keys(stats.models).filter((n) => n !== UNKNOWN_MODEL);
    if (!names.length) {
      this.box.replaceChildren(el("p", {className: "help",
        text: "No requests yet: try a panel above or run a load test."}));
      return;
    }
    const head = el("tr", {}, ...["model", "requests/s", "p50 latency", "p99 latency",
      "batch sizes (mean, max)", "queue depth (now, max)", "requests/s and p99, last minute"]
      .map((h) => el("th", {scope: "col", text: h})));
    const rows = names.map((name) => row(name, stats.models[name]));
    this.box.replaceChildren(el("table", {className: "live"},
      el("caption", {text: `Per model, over the last ${stats.window_s} s`}),
      el("thead", {}, head), el("tbody", {}, ...rows)));
  }
}

function row(name, m) {
  const w = m.window;
  const complete = m.seconds.slice(-1 - RECENT_S, -1);
  const rps = complete.reduce((a, s) => a + s.requests, 0) / RECENT_S;
  const ms = (v) => (v === null ? "–" : `${v < 10 ? v.toFixed(2) : v.toFixed(1)} ms`);
  const sizes = Object.entries(w.batch_sizes).map(([size, n]) => `${n}×${size}`).join(", ");
  return el("tr", {"data-model": name, "data-requests": String(w.requests)},
    el("th", {scope: "row", text: m.version ? `${name} v${m.version}` : name}),
    el("td", {className: "rps", text: rps.toFixed(1)}),
    el("td", {className: "p50", text: ms(w.p50_ms)}),
    el("td", {className: "p99", text: ms(w.p99_ms)}),
    el("td", {className: "batch", title: sizes ? `batches formed (count×size): ${sizes}` : "",
              text: w.batches ? `${w.mean_batch}, ${w.max_batch} (${w.batches} batches)` : "–"}),
    el("td", {className: "queue", text: `${m.queue_depth}, ${w.queue_max}`}),
    el("td", {}, sparkline(m.seconds.map((s) => s.requests), "requests per second"),
       sparkline(m.seconds.map((s) => s.p99_ms ?? 0), "p99 latency per second", "p99")));
}

// A small SVG chart of one value per second (decorative: the figures are in the row).
function sparkline(values, title, kind = "rps") {
  const width = 180, height = 28, max = Math.max(...values, 1e-9);
  const points = values.map((v, i) =>
    `${(i * width / (values.length - 1)).toFixed(1)},${(height - 1 - v / max * (height - 2)).toFixed(1)}`);
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("class", `spark ${kind}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `${title}, peak ${max.toFixed(1)}`);
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", points.join(" "));
  svg.append(line);
  return svg;
}
