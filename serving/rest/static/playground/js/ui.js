// Pieces every panel shares: the model picker, probability bars, the request forms.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === "text") node.textContent = value;
    else if (name === "className") node.className = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children);
  return node;
}

// A labelled <select> of models in ``panel``'s .model-line; calls onChange(model) on a change.
export class ModelPicker {
  constructor(panel, id, emptyText, onChange) {
    this.line = panel.querySelector(".model-line");
    this.select = el("select", {id});
    this.note = el("span", {className: "help"});
    this.line.append(el("label", {for: id, text: "Model"}), this.select, this.note);
    this.emptyText = emptyText;
    this.models = [];
    this.select.addEventListener("change", () => onChange(this.current()));
  }

  // Replace the choices, keeping the one selected when it is still there.
  update(models, preferred) {
    const keep = this.select.value;
    const id = (list) => list.map((m) => `${m.name}@${m.version}`).join();
    if (id(models) === id(this.models) && models.length) return false;
    this.models = models;
    this.select.replaceChildren(...models.map((m) =>
      el("option", {value: m.name, text: `${m.name} (version ${m.version})`})));
    const choices = models.map((m) => m.name);
    this.select.value = choices.includes(keep) ? keep : (preferred ? preferred.name : choices[0] || "");
    this.select.disabled = models.length === 0;
    this.note.textContent = models.length ? "" : this.emptyText;
    return true;
  }

  current() {
    return this.models.find((m) => m.name === this.select.value) || null;
  }
}

function percent(p) {
  return `${(100 * p).toFixed(1)}%`;
}

// The answer, one bar per label (in the model's label order) and the call's facts.
export function showPrediction(box, model, result, ms) {
  const prediction = result.predictions[0];
  const byLabel = new Map(prediction.top.map((t) => [t.label, t.probability]));
  const labels = model.labels.length ? model.labels : prediction.top.map((t) => t.label);
  const bars = el("ul", {className: "bars", "aria-label": "Probability of each label"});
  for (const label of labels) {
    const p = byLabel.get(label) ?? 0;
    const fill = el("span", {className: "fill"});
    fill.style.width = `${(100 * p).toFixed(1)}%`;
    bars.append(el("li", {className: label === prediction.label ? "best" : ""},
      el("span", {className: "label", text: label}),
      el("span", {className: "track", "aria-hidden": "true"}, fill),
      el("span", {className: "pct", text: percent(p)})));
  }
  box.replaceChildren(
    el("p", {className: "answer"}, el("strong", {className: "answer-label", text: prediction.label}),
       ` ${percent(prediction.probability)}`),
    bars, facts(result.model_name, result.model_version, ms));
}

export function facts(name, version, ms) {
  return el("p", {className: "facts"},
    el("span", {className: "fact-model", text: `model ${name}`}), " · ",
    el("span", {className: "fact-version", text: `version ${version}`}), " · ",
    el("span", {className: "fact-latency", text: `${ms.toFixed(1)} ms round trip`}));
}

export function showError(box, err) {
  box.replaceChildren(el("p", {className: "error", role: "alert", text: err.message}));
}

const FORMS = [["curl", "curl"], ["python", "Python client"], ["grpc", "gRPC"]];

// Three copyable forms of the request just sent: curl, the Python client, gRPC.
export class RequestView {
  constructor(panel, prefix) {
    this.box = panel.querySelector(".request");
    this.codes = {};
    const tabs = el("div", {role: "tablist", className: "tabs",
                            "aria-label": "The request just sent, as"});
    const bodies = [];
    for (const [form, title] of FORMS) {
      const tab = el("button", {type: "button", role: "tab", id: `${prefix}-tab-${form}`,
                                "aria-controls": `${prefix}-req-${form}`, text: title});
      const code = el("code", {});
      const copy = el("button", {type: "button", className: "copy", text: "Copy",
                                 "aria-label": `Copy the ${title} form`});
      copy.addEventListener("click", () => copyText(code.textContent, copy));
      const body = el("div", {role: "tabpanel", id: `${prefix}-req-${form}`, className: "form",
                              "aria-labelledby": tab.id, "data-form": form},
                      el("pre", {tabindex: "0", "aria-label": `${title} form`}, code), copy);
      tab.addEventListener("click", () => this.show(form));
      tabs.append(tab);
      bodies.push(body);
      this.codes[form] = code;
    }
    this.box.append(el("h3", {text: "The request"}), tabs, ...bodies);
    this.show("curl");
    this.set({curl: "(nothing sent yet)", python: "(nothing sent yet)", grpc: "(nothing sent yet)"});
  }

  show(form) {
    for (const tab of this.box.querySelectorAll("[role=tab]")) {
      const on = tab.id.endsWith(`-${form}`);
      tab.setAttribute("aria-selected", String(on));
      document.getElementById(tab.getAttribute("aria-controls")).hidden = !on;
    }
  }

  set(forms) {
    for (const [form, text] of Object.entries(forms)) this.codes[form].textContent = text;
  }
}

async function copyText(text, button) {
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
  } catch {
    // No clipboard (plain http from another host): select it for Ctrl+C instead.
    const range = document.createRange();
    range.selectNodeContents(button.previousElementSibling);
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    button.textContent = "Selected: press Ctrl+C";
  }
  setTimeout(() => { button.textContent = "Copy"; }, 1500);
}

// Run ``task`` at most once at a time; calls made meanwhile collapse into one more run.
export function latest(task) {
  let running = false;
  let again = false;
  return async function run() {
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      do {
        again = false;
        await task();
      } while (again);
    } finally {
      running = false;
    }
  };
}
