// The models the server has: the repository index (v2) and each model's v2 metadata.

import {call, pageConfig, postJson} from "./api.js";

// The tasks the server has registered (its task plug-ins), from the page's config.
export const TASKS = pageConfig().tasks || [];
const metadataCache = new Map(); // "name/version" -> metadata

// [{name, version, state, task, labels, inputs, outputs}] for every READY model version
// (the latest per name), and the states of the others (for the status line).
export async function listModels() {
  const {data: index} = await postJson("/v2/repository/index", {});
  const latest = new Map();
  for (const entry of index) {
    if (entry.state !== "READY") continue;
    const seen = latest.get(entry.name);
    if (!seen || Number(entry.version) > Number(seen.version)) latest.set(entry.name, entry);
  }
  const ready = await Promise.all([...latest.values()].map((entry) => describe(entry)));
  return {ready: ready.filter(Boolean), index};
}

async function describe(entry) {
  const key = `${entry.name}/${entry.version}`;
  if (!metadataCache.has(key)) {
    try {
      const {data} = await call(`/v2/models/${encodeURIComponent(entry.name)}/versions/${entry.version}`);
      metadataCache.set(key, data);
    } catch {
      return null; // unloaded between the index and this call: the next poll sees it
    }
  }
  const meta = metadataCache.get(key);
  const params = meta.parameters || {};
  return {name: entry.name, version: entry.version, task: params.task || null,
          labels: params.labels || [], inputs: meta.inputs, outputs: meta.outputs};
}

// The server's default for a task: the model named like it, else the first by name.
export function defaultModel(models, task) {
  const candidates = models.filter((m) => m.task === task);
  return candidates.find((m) => m.name === task) || candidates.sort(byName)[0] || null;
}

function byName(a, b) {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}
