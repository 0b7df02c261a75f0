"""Edits and checks on an ONNX graph (the onnx package only; no TensorFlow).

The converter's tensor names become the signature's own, so the names clients send
are the names the model declares, with no mapping layer at serving time.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from training.importing import ImportFailed

BATCH_DIM = "batch"
# Domains ONNX Runtime implements beyond the standard ones (schemas not in onnx.defs).
RUNTIME_DOMAINS = ("com.microsoft", "com.microsoft.nchwc")


def _graphs(graph: Any) -> Iterator[Any]:
    """The graph and every subgraph (If/Loop/Scan bodies), depth first."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.g.ByteSize():
                yield from _graphs(attr.g)
            for sub in attr.graphs:
                yield from _graphs(sub)


def rename_tensors(model: Any, mapping: dict[str, str]) -> None:
    """Rename graph inputs/outputs (and every use of them) as ``mapping`` says.

    An internal tensor that already bears a wanted name is renamed out of the way first.
    """
    wanted = set(mapping.values())
    taken = {name for g in _graphs(model.graph) for name in _names(g)} - set(mapping)
    clashes = {name: f"{name}__internal" for name in wanted & taken}
    _apply(model.graph, clashes)
    _apply(model.graph, mapping)


def _names(graph: Any) -> set[str]:
    names = {v.name for v in [*graph.input, *graph.output, *graph.value_info]}
    names |= {t.name for t in graph.initializer}
    for node in graph.node:
        names |= set(node.input) | set(node.output)
    return names


def _apply(graph: Any, mapping: dict[str, str]) -> None:
    if not mapping:
        return
    for g in _graphs(graph):
        for value in [*g.input, *g.output, *g.value_info, *g.initializer]:
            if value.name in mapping:
                value.name = mapping[value.name]
        for node in g.node:
            node.input[:] = [mapping.get(n, n) for n in node.input]
            node.output[:] = [mapping.get(n, n) for n in node.output]


def name_batch_dims(model: Any) -> None:
    """Call a dynamic first dimension "batch" instead of the converter's unk__N."""
    for value in [*model.graph.input, *model.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_param = BATCH_DIM


def unsupported_ops(model: Any) -> list[str]:
    """Nodes no ONNX schema or ONNX Runtime domain defines, as "OpType (node name)".

    tf2onnx leaves a TensorFlow op it cannot convert in the graph as it was (and only
    logs it), so the converted graph is searched for them.
    """
    from onnx import defs

    found = []
    for graph in _graphs(model.graph):
        for node in graph.node:
            domain = node.domain or ""
            if domain in RUNTIME_DOMAINS:
                continue
            if domain not in ("", "ai.onnx", "ai.onnx.ml") or not defs.has(node.op_type,
                                                                            domain):
                found.append(f"{node.op_type} ({node.name})" if node.name else node.op_type)
    return found


def check_ops(model: Any, source: str) -> None:
    bad = unsupported_ops(model)
    if bad:
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise ImportFailed(f"tf2onnx cannot convert the TensorFlow op "
                           f"{', '.join(bad[:3])}{more} in {source}")


def default_opset(model: Any) -> int | None:
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx"):
            return int(opset.version)
    return None
