// The request a panel sent, written out as curl, Python client and gRPC commands.
// Each form sends the same input; an API key is read from $API_KEY, never written out.

import {pageConfig} from "./api.js";

const REST = location.origin;
const keyNeeded = () => pageConfig().api_key_required;

export function grpcTarget() {
  const port = pageConfig().grpc_port;
  return port ? `${location.hostname}:${port}` : null;
}

// Single-quoted for a POSIX shell.
export function sh(text) {
  return `'${String(text).replace(/'/g, `'\\''`)}'`;
}

function curl(path, lines) {
  const auth = keyNeeded() ? [`-H "authorization: Bearer $API_KEY"`] : [];
  return [`curl -s ${sh(REST + path)}`, ...auth, ...lines].join(" \\\n  ");
}

function pythonClient(module, call, setup = []) {
  const key = keyNeeded() ? ', api_key=os.environ["API_KEY"]' : "";
  const imports = [...(keyNeeded() ? ["import os"] : []), ...setup.filter((l) => l.startsWith("import")),
                   `from ${module} import Client`];
  const body = setup.filter((l) => !l.startsWith("import"));
  const target = module === "clients.grpc" ? grpcTarget() : REST;
  return [...imports, "", ...body, `with Client(${JSON.stringify(target)}${key}) as client:`,
          `    result = ${call}`, "print(result)"].join("\n");
}

function grpcurl(method, json) {
  const auth = keyNeeded() ? ` -H "authorization: Bearer $API_KEY"` : "";
  return `grpcurl -plaintext${auth} -d @ ${grpcTarget()} ${method} <<JSON\n${json}\nJSON`;
}

function cli(args) {
  const key = keyNeeded() ? ` --api-key "$API_KEY"` : "";
  return `modelserve predict ${args} --transport grpc --url ${grpcTarget()}${key}`;
}

function noGrpc() {
  return "# this server runs without gRPC (--grpc-port -1)";
}

function modelQuery(model, isDefault) {
  return isDefault ? "" : `?model=${encodeURIComponent(model.name)}`;
}

function modelArg(model, isDefault) {
  return isDefault ? "" : `, model=${JSON.stringify(model.name)}`;
}

function classify(model, feature, value) {
  return `{"model_spec": {"name": ${JSON.stringify(model.name)}}, "input": {"example_list": ` +
    `{"examples": [{"features": {"feature": {"${feature}": ${value}}}}]}}}`;
}

function rowsJson(rows, indent) {
  return rows.map((row) => `${indent}[${row.join(",")}]`).join(",\n");
}

// The JSON body the digit panel sends: one digit as 28 rows of 28 intensities 0-255.
export function digitBody(rows) {
  return `{"inputs": [[\n${rowsJson(rows, "  ")}\n]]}`;
}

// rows: 28 arrays of 28 intensities 0-255 (white digit on black), as sent.
export function digitForms(model, isDefault, rows) {
  const grpc = grpcTarget() ? grpcurl("tensorflow.serving.PredictionService/Classify",
    classify(model, "digit", `{"int64_list": {"value": [\n${rows.map((r) => r.join(",")).join(",\n")}\n]}}`))
    : noGrpc();
  return {
    curl: curl(`/v1/digit:predict${modelQuery(model, isDefault)}`,
               [`-H 'content-type: application/json'`,
                `-d '${digitBody(rows)}'`]),
    python: pythonClient("clients.rest", `client.predict_digit(digit${modelArg(model, isDefault)})`,
      ["import numpy as np",
       `# 28x28 intensities 0-255, a white digit on black\ndigit = np.array([\n${rowsJson(rows, "    ")},\n], dtype=np.float32)`]),
    grpc,
  };
}

function base64Text(text) {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

export function textForms(model, isDefault, text) {
  const grpc = grpcTarget()
    ? `${cli(`text ${sh(text)}${isDefault ? "" : ` --model ${sh(model.name)}`}`)}\n\n# or, with grpcurl (bytes are base64 in JSON):\n` +
      grpcurl("tensorflow.serving.PredictionService/Classify",
              classify(model, "text", `{"bytes_list": {"value": ["${base64Text(text)}"]}}`))
    : noGrpc();
  return {
    curl: curl(`/v1/text:predict${modelQuery(model, isDefault)}`,
               [`-H 'content-type: application/json'`, `-d ${sh(JSON.stringify({text}))}`]),
    python: pythonClient("clients.rest",
                         `client.predict_text(${JSON.stringify(text)}${modelArg(model, isDefault)})`),
    grpc,
  };
}

// file: what was sent (name, type); sample: its path on this server, when it is one.
export function imageForms(model, isDefault, file, sample) {
  // A plain name as it is (never read as an option); anything else quoted.
  const plain = /^[\w.-]+$/.test(file.name);
  const name = plain ? (file.name.startsWith("-") ? `./${file.name}` : file.name) : sh(file.name);
  const fetchSample = sample ? `${curl(sample, [`-o ${name}`])}\n` : "";
  const grpc = grpcTarget()
    ? `${fetchSample}${cli(`image ${name}${isDefault ? "" : ` --model ${sh(model.name)}`}`)}\n\n# or, with grpcurl:\n` +
      grpcurl("tensorflow.serving.PredictionService/Classify",
              classify(model, "image", `{"bytes_list": {"value": ["$(base64 -w0 ${name})"]}}`))
    : noGrpc();
  return {
    curl: fetchSample + curl(`/v1/image:predict${modelQuery(model, isDefault)}`,
                             [`-H ${sh(`content-type: ${file.type || "application/octet-stream"}`)}`,
                              `--data-binary @${name}`]),
    python: (sample ? `# ${fetchSample.trim().replace(/\n/g, "\n# ")}\n` : "") +
      pythonClient("clients.rest", `client.predict_image(${JSON.stringify(file.name)}${modelArg(model, isDefault)})`),
    grpc,
  };
}

const NUMPY = {BOOL: "bool", UINT8: "uint8", UINT16: "uint16", UINT32: "uint32", UINT64: "uint64",
               INT8: "int8", INT16: "int16", INT32: "int32", INT64: "int64", FP16: "float16",
               FP32: "float32", FP64: "float64", BYTES: "object"};
const CONTENTS = {BOOL: "bool_contents", INT8: "int_contents", INT16: "int_contents",
                  INT32: "int_contents", INT64: "int64_contents", UINT8: "uint_contents",
                  UINT16: "uint_contents", UINT32: "uint_contents", UINT64: "uint64_contents",
                  FP32: "fp32_contents", FP64: "fp64_contents", BYTES: "bytes_contents"};

function pythonLiteral(datatype, data) {
  const json = JSON.stringify(data);
  return datatype === "BOOL" ? json.replace(/true/g, "True").replace(/false/g, "False") : json;
}

function grpcContents(input) {
  const flat = [input.data].flat(Infinity);
  const values = input.datatype === "BYTES" ? flat.map((s) => base64Text(String(s))) : flat;
  return `{"name": ${JSON.stringify(input.name)}, "datatype": "${input.datatype}", ` +
    `"shape": ${JSON.stringify(input.shape)}, "contents": {"${CONTENTS[input.datatype]}": ${JSON.stringify(values)}}}`;
}

// inputs: [{name, datatype, shape, data}] as sent to /v2/models/{name}/infer.
export function tensorForms(model, inputs) {
  const path = `/v2/models/${encodeURIComponent(model.name)}/versions/${model.version}/infer`;
  const arrays = inputs.map((i) =>
    `    ${JSON.stringify(i.name)}: np.array(${pythonLiteral(i.datatype, i.data)}, ` +
    `dtype=np.${NUMPY[i.datatype] === "object" ? "object_" : NUMPY[i.datatype]}).reshape(${JSON.stringify(i.shape)}),`);
  const call = `client.infer(${JSON.stringify(model.name)}, {\n${arrays.join("\n")}\n    }, version=${model.version})`;
  let grpc = noGrpc();
  if (grpcTarget()) {
    grpc = inputs.some((i) => !CONTENTS[i.datatype])
      ? "# FP16 inputs go as raw_input_contents over gRPC: use the Python client (clients.grpc)"
      : grpcurl("inference.GRPCInferenceService/ModelInfer",
                `{"model_name": ${JSON.stringify(model.name)}, "model_version": "${model.version}", ` +
                `"inputs": [\n${inputs.map(grpcContents).join(",\n")}\n]}`);
  }
  return {
    curl: curl(path, [`-H 'content-type: application/json'`,
                      `-d ${sh(JSON.stringify({inputs}))}`]),
    python: pythonClient("clients.rest", call, ["import numpy as np"]),
    grpc,
  };
}
