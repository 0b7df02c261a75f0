// The tensor panel: any model over v2 infer, with a form built from its metadata
// (input names, datatypes, shapes) and the data edited as JSON.

import {postJson} from "./api.js";
import {tensorForms} from "./snippets.js";
import {ModelPicker, RequestView, el, facts, showError} from "./ui.js";

const SHOWN_VALUES = 64;

export class TensorPanel {
  constructor(panel) {
    this.form = panel.querySelector("#tensor-form");
    this.result = panel.querySelector(".result");
    this.picker = new ModelPicker(panel, "tensor-model", "No model is served yet.",
                                  () => this.build());
    this.builtFor = null;
    this.request = new RequestView(panel, "tensor");
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.send();
    });
  }

  // One fieldset per input: its shape (the batch dimension, -1, set to 1) and its data.
  build() {
    const model = this.picker.current();
    this.builtFor = model && `${model.name}@${model.version}`;
    this.result.replaceChildren();
    if (!model) {
      this.form.replaceChildren();
      return;
    }
    this.fields = model.inputs.map((spec, i) => inputFields(spec, i));
    this.form.replaceChildren(...this.fields.map((f) => f.fieldset),
      el("button", {type: "submit", className: "primary", text: `Infer with ${model.name}`}));
  }

  // After the model list changed: rebuild only if the chosen model did (keeps edits).
  modelsChanged() {
    const model = this.picker.current();
    if ((model && `${model.name}@${model.version}`) !== this.builtFor) this.build();
  }

  inputs() {
    return this.fields.map((f) => f.read());
  }

  async send() {
    const model = this.picker.current();
    let inputs;
    try {
      inputs = this.inputs();
    } catch (err) {
      showError(this.result, err);
      return;
    }
    this.request.set(tensorForms(model, inputs));
    try {
      const {data, ms} = await postJson(
        `/v2/models/${encodeURIComponent(model.name)}/versions/${model.version}/infer`, {inputs});
      this.result.replaceChildren(...data.outputs.map(outputView),
                                  facts(data.model_name, data.model_version, ms));
    } catch (err) {
      showError(this.result, err);
    }
  }
}

function inputFields(spec, index) {
  const id = `tensor-input-${index}`;
  const shape = el("input", {id: `${id}-shape`, type: "text", spellcheck: "false",
                             value: JSON.stringify(spec.shape.map((d) => (d < 0 ? 1 : d)))});
  const data = el("textarea", {id: `${id}-data`, rows: "4", spellcheck: "false",
                               className: "json"});
  const problem = el("p", {className: "error", role: "alert", hidden: true});
  const fill = (how) => {
    try {
      data.value = JSON.stringify(values(spec.datatype, count(parseShape(shape.value)), how));
      problem.hidden = true;
    } catch (err) {
      problem.textContent = `${spec.name}: ${err.message}`;
      problem.hidden = false;
    }
  };
  const zeros = el("button", {type: "button", text: "Zeros", "aria-label": `Fill ${spec.name} with zeros`});
  const random = el("button", {type: "button", text: "Random",
                               "aria-label": `Fill ${spec.name} with random values`});
  zeros.addEventListener("click", () => fill("zeros"));
  random.addEventListener("click", () => fill("random"));
  const fieldset = el("fieldset", {},
    el("legend", {text: `${spec.name}: ${spec.datatype}, shape ${JSON.stringify(spec.shape)}`}),
    el("label", {for: shape.id, text: `Shape of ${spec.name}`}), shape,
    el("label", {for: data.id, text: `Data of ${spec.name} (JSON, flat or nested)`}), data,
    el("div", {className: "buttons"}, zeros, random), problem);
  fill("zeros");
  const read = () => {
    try {
      const dims = parseShape(shape.value);
      const parsed = JSON.parse(data.value);
      const flat = [parsed].flat(Infinity);
      if (flat.length !== count(dims)) {
        throw new Error(`shape ${JSON.stringify(dims)} needs ${count(dims)} values; the data has ${flat.length}`);
      }
      problem.hidden = true;
      return {name: spec.name, datatype: spec.datatype, shape: dims, data: parsed};
    } catch (err) {
      problem.textContent = `${spec.name}: ${err.message}`;
      problem.hidden = false;
      throw new Error(`${spec.name}: ${err.message}`);
    }
  };
  return {fieldset, read};
}

function parseShape(text) {
  const dims = JSON.parse(text);
  if (!Array.isArray(dims) || !dims.every((d) => Number.isInteger(d) && d > 0)) {
    throw new Error("the shape must be a JSON list of positive integers, e.g. [1, 784]");
  }
  return dims;
}

function count(dims) {
  return dims.reduce((a, b) => a * b, 1);
}

function values(datatype, n, how) {
  const random = how === "random";
  if (datatype === "BYTES") return new Array(n).fill(random ? "text" : "");
  if (datatype === "BOOL") return Array.from({length: n}, () => random && Math.random() < 0.5);
  if (datatype.startsWith("FP")) {
    return Array.from({length: n}, () => (random ? Math.round(Math.random() * 1000) / 1000 : 0));
  }
  return Array.from({length: n}, () => (random ? Math.floor(Math.random() * 10) : 0));
}

function outputView(out) {
  const flat = [out.data].flat(Infinity);
  const shown = flat.slice(0, SHOWN_VALUES).map((v) => (typeof v === "number" ? +v.toPrecision(4) : v));
  const more = flat.length > SHOWN_VALUES ? ` … (${flat.length} values)` : "";
  return el("div", {className: "output"},
    el("p", {}, el("strong", {text: out.name}), ` ${out.datatype}, shape ${JSON.stringify(out.shape)}`),
    el("pre", {tabindex: "0", "aria-label": `Values of ${out.name}`},
       el("code", {text: JSON.stringify(shown) + more})));
}
