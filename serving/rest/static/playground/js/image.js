// The image panel: a dropped, picked or sample photo; the model's input; label and probabilities.

import {call} from "./api.js";
import {imageForms} from "./snippets.js";
import {ModelPicker, RequestView, showError, showPrediction} from "./ui.js";

const SAMPLES = "/playground/static/samples/";

export class ImagePanel {
  constructor(panel, defaults) {
    this.defaults = defaults;
    this.result = panel.querySelector(".result");
    this.original = panel.querySelector("#image-original");
    this.seen = panel.querySelector("#image-seen");
    this.seenCaption = panel.querySelector("#image-seen-caption");
    this.labels = panel.querySelector("#image-labels");
    this.picker = new ModelPicker(panel, "image-model",
      "No image model is served yet: it may still be training; the server picks it up " +
      "when it is published.", () => this.resend());
    this.request = new RequestView(panel, "image");
    this.last = null;
    const input = panel.querySelector("#image-file");
    input.addEventListener("change", () => input.files[0] && this.send(input.files[0]));
    const drop = panel.querySelector("#image-drop");
    drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (e) => {
      e.preventDefault();
      drop.classList.remove("over");
      if (e.dataTransfer.files[0]) this.send(e.dataTransfer.files[0]);
    });
    for (const button of panel.querySelectorAll("[data-sample]")) {
      button.addEventListener("click", () => this.sample(button.dataset.sample, button.dataset.type));
    }
  }

  modelsChanged() {
    const model = this.picker.current();
    this.labels.textContent = model && model.labels.length
      ? `This model tells apart: ${model.labels.join(", ")}. Any photo gets one of them.` : "";
  }

  async sample(name, type) {
    try {
      const {data} = await call(SAMPLES + name, {accept: "blob"});
      await this.send(new File([data], name, {type}), SAMPLES + name);
    } catch (err) {
      showError(this.result, err);
    }
  }

  resend() {
    this.modelsChanged();
    if (this.last) this.send(...this.last);
  }

  async send(file, samplePath = null) {
    const model = this.picker.current();
    this.last = [file, samplePath];
    if (this.original.src) URL.revokeObjectURL(this.original.src);
    this.original.src = URL.createObjectURL(file);
    this.original.hidden = false;
    if (!model) return;
    const isDefault = this.defaults()?.name === model.name;
    const query = isDefault ? "" : `?model=${encodeURIComponent(model.name)}`;
    const type = file.type || "application/octet-stream";
    this.request.set(imageForms(model, isDefault, file, samplePath));
    const seen = call(`/playground/api/model-input/${encodeURIComponent(model.name)}`,
                      {method: "POST", body: file, contentType: type, accept: "blob"});
    try {
      const {data, ms} = await call(`/v1/image:predict${query}`,
                                    {method: "POST", body: file, contentType: type});
      showPrediction(this.result, model, data, ms);
    } catch (err) {
      showError(this.result, err);
    }
    try {
      const {data} = await seen;
      if (this.seen.src) URL.revokeObjectURL(this.seen.src);
      this.seen.onload = () => {
        this.seenCaption.textContent =
          `As the model sees it: ${this.seen.naturalWidth}×${this.seen.naturalHeight}`;
      };
      this.seen.src = URL.createObjectURL(data);
      this.seen.hidden = false;
    } catch {
      this.seen.hidden = true; // the prediction's error already says why
    }
  }
}
