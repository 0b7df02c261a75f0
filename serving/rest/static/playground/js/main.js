// Wires the page: the API key, the model list (refreshed, so models published while the
// page is open appear), the task panels, the tensor panel and the live view.

import {apiKey, onKeyRefused, pageConfig, setApiKey} from "./api.js";
import {DigitPanel} from "./digit.js";
import {ImagePanel} from "./image.js";
import {LiveView} from "./live.js";
import {TASKS, defaultModel, listModels} from "./models.js";
import {TensorPanel} from "./tensors.js";
import {TextPanel} from "./text.js";

const MODELS_POLL_MS = 3000;
const status = document.getElementById("server-status");
let models = [];
const defaults = (task) => () => defaultModel(models, task);

// A panel for each registered task the page has one for; the others' models are in the
// tensor panel, like every model.
const PANELS = {digit: DigitPanel, image: ImagePanel, text: TextPanel};
const panelTasks = TASKS.filter((task) => PANELS[task]);
const panels = {};
for (const task of Object.keys(PANELS)) {
  const element = document.getElementById(`${task}-panel`);
  if (panelTasks.includes(task)) panels[task] = new PANELS[task](element, defaults(task));
  else element.hidden = true;
}
const tensors = new TensorPanel(document.getElementById("tensor-panel"));
const live = new LiveView(document.getElementById("live-panel"));

function setUpKey() {
  const form = document.getElementById("key-form");
  const input = document.getElementById("api-key");
  if (!pageConfig().api_key_required) return;
  form.hidden = false;
  input.value = apiKey();
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    setApiKey(input.value.trim());
    refreshModels();
  });
  onKeyRefused(() => {
    status.textContent = apiKey() ? "The server refused this API key." :
      "This server needs an API key: enter it above.";
    status.classList.add("warn");
  });
}

async function refreshModels() {
  try {
    const {ready, index} = await listModels();
    models = ready;
    status.classList.remove("warn");
    status.textContent = describe(ready, index);
  } catch (err) {
    if (err.status !== 401) {
      status.textContent = `Cannot list the models: ${err.message}`;
      status.classList.add("warn");
    }
    return;
  }
  for (const task of panelTasks) {
    const picker = panels[task].picker;
    if (picker.update(models.filter((m) => m.task === task), defaultModel(models, task))) {
      if (panels[task].modelsChanged) panels[task].modelsChanged();
    }
  }
  if (tensors.picker.update(models, models[0])) tensors.modelsChanged();
}

function describe(ready, index) {
  const serving = ready.map((m) => `${m.name} v${m.version}`).join(", ") || "no models yet";
  const waiting = index.filter((e) => e.state !== "READY" && !ready.some((m) => m.name === e.name))
    .map((e) => `${e.name} v${e.version} ${e.reason ? "failed" : "loading"}`);
  const missing = panelTasks.filter((t) => !ready.some((m) => m.task === t));
  let text = `Serving ${serving}.`;
  if (waiting.length) text += ` Not ready: ${waiting.join(", ")}.`;
  if (missing.length) text += ` No ${missing.join(" or ")} model yet (it appears here once published).`;
  return text;
}

setUpKey();
live.start();
refreshModels();
setInterval(() => { if (!document.hidden) refreshModels(); }, MODELS_POLL_MS);
