// The text panel: the sentiment of a review, updated as you type.

import {postJson} from "./api.js";
import {textForms} from "./snippets.js";
import {ModelPicker, RequestView, latest, showError, showPrediction} from "./ui.js";

const DEBOUNCE_MS = 200;

export class TextPanel {
  constructor(panel, defaults) {
    this.defaults = defaults;
    this.input = panel.querySelector("#text-input");
    this.result = panel.querySelector(".result");
    this.picker = new ModelPicker(panel, "text-model", "No text model is served yet.",
                                  () => this.predict());
    this.request = new RequestView(panel, "text");
    this.predict = latest(() => this.send());
    let timer = null;
    this.input.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(this.predict, DEBOUNCE_MS);
    });
  }

  async send() {
    const model = this.picker.current();
    const text = this.input.value;
    if (!model || !text.trim()) return;
    const isDefault = this.defaults()?.name === model.name;
    const query = isDefault ? "" : `?model=${encodeURIComponent(model.name)}`;
    this.request.set(textForms(model, isDefault, text));
    try {
      const {data, ms} = await postJson(`/v1/text:predict${query}`, {text});
      showPrediction(this.result, model, data, ms);
    } catch (err) {
      showError(this.result, err);
    }
  }
}
