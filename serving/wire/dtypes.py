"""Element types by protocol: the manifest's numpy dtype names, TensorFlow's DataType
names, and the Open Inference Protocol's datatypes. One table each, for REST and gRPC.

Every dtype the manifest allows (serving.models.manifest.DType) is in both tables;
``object`` is a string tensor (ONNX ``tensor(string)``, TF ``DT_STRING``, v2 ``BYTES``).
Lookups take a numpy dtype (of either byte order) or its name. numpy only.
"""

from __future__ import annotations

import numpy as np

from serving.errors import InvalidInput

NUMPY_TO_TF = {
    "float16": "DT_HALF", "float32": "DT_FLOAT", "float64": "DT_DOUBLE",
    "int8": "DT_INT8", "int16": "DT_INT16", "int32": "DT_INT32", "int64": "DT_INT64",
    "uint8": "DT_UINT8", "uint16": "DT_UINT16", "uint32": "DT_UINT32", "uint64": "DT_UINT64",
    "bool": "DT_BOOL", "object": "DT_STRING",
}
TF_TO_NUMPY = {tf: name for name, tf in NUMPY_TO_TF.items()}

NUMPY_TO_V2 = {
    "float16": "FP16", "float32": "FP32", "float64": "FP64",
    "int8": "INT8", "int16": "INT16", "int32": "INT32", "int64": "INT64",
    "uint8": "UINT8", "uint16": "UINT16", "uint32": "UINT32", "uint64": "UINT64",
    "bool": "BOOL", "object": "BYTES",
}
V2_TO_NUMPY = {v2: name for name, v2 in NUMPY_TO_V2.items()}

TF_INVALID = "DT_INVALID"
# By dtype object too: response encoding looks every output up, and dtype.name costs
# more than the lookup.
_TF_BY_DTYPE = {np.dtype(name): tf for name, tf in NUMPY_TO_TF.items()}
_V2_BY_DTYPE = {np.dtype(name): v2 for name, v2 in NUMPY_TO_V2.items()}


def tf_datatype(dtype: np.dtype | str) -> str:
    """The TensorFlow DataType name of a numpy dtype; DT_INVALID when it has none."""
    found = _TF_BY_DTYPE.get(dtype) if isinstance(dtype, np.dtype) else None
    return found or NUMPY_TO_TF.get(np.dtype(dtype).name, TF_INVALID)


def v2_datatype(dtype: np.dtype | str) -> str:
    """The Open Inference Protocol datatype of a numpy dtype; InvalidInput when none."""
    found = _V2_BY_DTYPE.get(dtype) if isinstance(dtype, np.dtype) else None
    if found is not None:
        return found
    name = np.dtype(dtype).name
    if name not in NUMPY_TO_V2:
        raise InvalidInput(f"dtype {name} has no Open Inference Protocol datatype")
    return NUMPY_TO_V2[name]
