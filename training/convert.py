"""SavedModel → ONNX with tf2onnx, and the tensor specs the ONNX graph declares."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from training.errors import ExportError

logger = logging.getLogger(__name__)
DEFAULT_OPSET = 17  # tf2onnx 1.17 converts opsets 15-18 reliably
BATCH_DIM = "batch"


def convert_saved_model(saved_model_dir: Path, spec: dict[str, Any], output_name: str,
                        onnx_path: Path, opset: int = DEFAULT_OPSET) -> None:
    """Convert the SavedModel's ``serve`` endpoint with a dynamic batch dimension.

    The endpoint is wrapped in a tf.function whose input is named as the serving contract
    and whose dict output key becomes the ONNX output name (tf2onnx.convert.from_keras
    does not work with Keras 3).
    """
    import tensorflow as tf
    import tf2onnx

    loaded = tf.saved_model.load(str(saved_model_dir))
    signature = [tf.TensorSpec([None, *spec["shape"][1:]], tf.as_dtype(spec["dtype"]),
                               name=spec["name"])]

    @tf.function(input_signature=signature)
    def serve(x: Any) -> dict[str, Any]:
        return {output_name: loaded.serve(x)}

    try:
        model_proto, _ = tf2onnx.convert.from_function(serve, input_signature=signature,
                                                       opset=opset)
    except Exception as exc:  # tf2onnx raises many types
        raise ExportError(f"tf2onnx could not convert {saved_model_dir}: {exc}") from exc
    _name_batch_dim(model_proto)
    onnx_path.write_bytes(model_proto.SerializeToString())
    logger.info("converted %s to %s (opset %d)", saved_model_dir, onnx_path, opset)


def _name_batch_dim(model_proto: Any) -> None:
    """Call the dynamic first dimension "batch" instead of tf2onnx's generated unk__N."""
    for value in [*model_proto.graph.input, *model_proto.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_param = BATCH_DIM


def onnx_specs(onnx_path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Inputs and outputs as the ONNX graph declares them (dtype name, -1 for dynamic)."""
    import onnx
    from onnx import helper

    graph = onnx.load(str(onnx_path), load_external_data=False).graph

    def spec(value: Any) -> dict[str, Any]:
        tensor = value.type.tensor_type
        dtype = helper.tensor_dtype_to_np_dtype(tensor.elem_type).name
        shape = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim]
        return {"name": value.name, "dtype": dtype, "shape": shape}

    initializers = {init.name for init in graph.initializer}
    inputs = [spec(v) for v in graph.input if v.name not in initializers]
    return inputs, [spec(v) for v in graph.output]
