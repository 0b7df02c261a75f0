"""One imported model called the way its users would, over every tensor protocol.

Blocking calls (run them with asyncio.to_thread next to an in-loop server). Each returns
{output name: numpy array}; string outputs come back as str.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx
import numpy as np


def _text(array: np.ndarray) -> np.ndarray:
    if array.dtype.kind in "OSU":
        return np.vectorize(lambda v: v.decode() if isinstance(v, bytes) else str(v),
                            otypes=[object])(array)
    return array


def assert_close(got: dict[str, Any], want: dict[str, np.ndarray], tolerance: float,
                 where: str) -> None:
    """Within the parity tolerance: |got - want| <= tolerance * max(1, max |want|)."""
    assert sorted(got) == sorted(want), f"{where}: outputs {sorted(got)} != {sorted(want)}"
    for name, expected in want.items():
        actual = _text(np.asarray(got[name]))
        expected = _text(np.asarray(expected))
        assert actual.shape == expected.shape, f"{where} {name}: {actual.shape} {expected.shape}"
        if expected.dtype.kind in "fc":
            scale = max(1.0, float(np.max(np.abs(expected))))
            np.testing.assert_allclose(actual.astype(np.float64), expected, rtol=0,
                                       atol=tolerance * scale, err_msg=f"{where} {name}")
        else:
            np.testing.assert_array_equal(actual, expected, err_msg=f"{where} {name}")


def _json_values(array: np.ndarray, b64: bool) -> Any:
    if array.dtype.kind == "O":
        if b64:
            return np.vectorize(lambda s: {"b64": base64.b64encode(s.encode()).decode()},
                                otypes=[object])(array).tolist()
        return array.tolist()
    return array.tolist()


def tf_rest(url: str, model: str, inputs: dict[str, np.ndarray], *, signature: str | None,
            row: bool) -> dict[str, np.ndarray]:
    """TF Serving REST: row format (named instances, strings as b64) or columnar."""
    body: dict[str, Any] = {"signature_name": signature} if signature else {}
    if row:
        n = len(next(iter(inputs.values())))
        body["instances"] = [{k: _json_values(np.asarray(v[i], v.dtype), True)
                              for k, v in inputs.items()} for i in range(n)]
    else:
        body["inputs"] = {k: _json_values(v, False) for k, v in inputs.items()}
    reply = httpx.post(f"{url}/v1/models/{model}:predict", json=body, timeout=30)
    assert reply.status_code == 200, reply.text
    data = reply.json()
    if not row:
        outputs = data["outputs"]
        return outputs if isinstance(outputs, dict) else {"_only": outputs}
    rows = data["predictions"]
    if rows and isinstance(rows[0], dict):
        return {k: np.array([r[k] for r in rows]) for k in rows[0]}
    return {"_only": np.array(rows)}


def tf_grpc_official(target: str, model: str, inputs: dict[str, np.ndarray], *,
                     signature: str, output_filter: tuple[str, ...] = ()
                     ) -> tuple[dict[str, np.ndarray], Any]:
    """tensorflow-serving-api's own stub (imports TensorFlow): Predict and GetModelMetadata;
    returns the outputs and the signature_def the server declares under ``signature``."""
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import (
        get_model_metadata_pb2,
        predict_pb2,
        prediction_service_pb2_grpc,
    )

    with grpc.insecure_channel(target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest(output_filter=list(output_filter))
        request.model_spec.name = model
        request.model_spec.signature_name = signature
        for name, array in inputs.items():
            value = array.astype(bytes) if array.dtype.kind == "O" else array
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
        response = stub.Predict(request, 30.0)
        assert response.model_spec.signature_name == signature
        outputs = {k: tf.make_ndarray(v) for k, v in response.outputs.items()}
        meta_request = get_model_metadata_pb2.GetModelMetadataRequest(
            metadata_field=["signature_def"])
        meta_request.model_spec.name = model
        meta = stub.GetModelMetadata(meta_request, 30.0)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    meta.metadata["signature_def"].Unpack(signatures)
    return outputs, signatures.signature_def[signature]


def triton(module: Any, url: str, model: str, inputs: dict[str, np.ndarray],
           outputs: list[str]) -> dict[str, np.ndarray]:
    """tritonclient (``tritonclient.http`` or ``tritonclient.grpc``): ModelInfer with every
    input and the named outputs (binary tensors over HTTP, its default)."""
    from tritonclient.utils import np_to_triton_dtype

    client = module.InferenceServerClient(url)
    try:
        tensors = []
        for name, array in inputs.items():
            value = array.astype(bytes) if array.dtype.kind == "O" else array
            tensor = module.InferInput(name, list(value.shape), np_to_triton_dtype(value.dtype))
            tensor.set_data_from_numpy(value)
            tensors.append(tensor)
        result = client.infer(model, tensors,
                              outputs=[module.InferRequestedOutput(n) for n in outputs])
        metadata = client.get_model_metadata(model)
    finally:
        client.close()
    names = ([t["name"] for t in metadata["inputs"]] if isinstance(metadata, dict)
             else [t.name for t in metadata.inputs])
    assert sorted(names) == sorted(inputs)
    return {n: result.as_numpy(n) for n in outputs}
