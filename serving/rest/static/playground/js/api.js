// Calls to the server: the API key (when the server wants one), timing, errors.

const config = JSON.parse(document.getElementById("playground-config").textContent);
const KEY_STORE = "modelserve-api-key";

export function pageConfig() {
  return config;
}

export function apiKey() {
  return sessionStorage.getItem(KEY_STORE) || "";
}

export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY_STORE, key);
  else sessionStorage.removeItem(KEY_STORE);
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

const keyListeners = [];

// Called with the error whenever the server refuses the key (401).
export function onKeyRefused(listener) {
  keyListeners.push(listener);
}

// fetch with the key; resolves to {response, ms} (ms: the round trip, body read included).
export async function call(path, {method = "GET", body, contentType, accept = "json"} = {}) {
  const headers = {};
  if (contentType) headers["content-type"] = contentType;
  const key = apiKey();
  if (key) headers["authorization"] = `Bearer ${key}`;
  const started = performance.now();
  let response;
  try {
    response = await fetch(path, {method, body, headers, cache: "no-store"});
  } catch (err) {
    throw new ApiError(0, `cannot reach the server (${err.message})`);
  }
  const data = accept === "blob" && response.ok ? await response.blob() : await readBody(response);
  const ms = performance.now() - started;
  if (!response.ok) {
    const message = (data && data.error) || `HTTP ${response.status}`;
    const err = new ApiError(response.status, message);
    if (response.status === 401) keyListeners.forEach((listener) => listener(err));
    throw err;
  }
  return {data, ms};
}

async function readBody(response) {
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return {error: text.slice(0, 300)};
  }
}

export function postJson(path, value) {
  return call(path, {method: "POST", body: JSON.stringify(value), contentType: "application/json"});
}
