"""A graph's structure without its weights: nodes (subgraphs included), who produces and who
reads each tensor, and the float element types."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Ops a weight passes through unchanged in meaning, on their first input.
PASS_THROUGH_OPS = frozenset(
    {"Identity", "Transpose", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Cast"}
)


def iter_nodes(graph: Any) -> Iterator[Any]:
    """Every node of an ``onnx.GraphProto``, subgraphs (If, Loop, Scan bodies) included."""
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            if attribute.type == attribute.GRAPH:
                yield from iter_nodes(attribute.g)
            elif attribute.type == attribute.GRAPHS:
                for subgraph in attribute.graphs:
                    yield from iter_nodes(subgraph)


def node_label(node: Any) -> str:
    """``name (OpType)``, the domain added when it is not ai.onnx; unnamed nodes show outputs."""
    name = node.name or f"<unnamed, output {node.output[0] if node.output else '?'}>"
    op = f"{node.domain}::{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type
    return f"{name} ({op})"


@dataclass(frozen=True)
class GraphIndex:
    """The initializers of a model and who consumes and produces each tensor name."""

    initializers: Mapping[str, Any]
    consumers: Mapping[str, tuple[tuple[Any, int], ...]]
    producers: Mapping[str, Any]

    @classmethod
    def of(cls, model: Any, *, constants: bool = False) -> GraphIndex:
        """Index an ``onnx.ModelProto`` (loaded with or without its external data).

        With ``constants``, ``initializers`` also holds the initializers of subgraphs (If, Loop
        and Scan bodies) and the tensors of Constant nodes with more than one value, by output
        name: some exporters keep every weight there (silero-vad inlines both sample rates'
        weights as Constants in the branches of an If).
        """
        consumers: dict[str, list[tuple[Any, int]]] = {}
        producers: dict[str, Any] = {}
        tensors = {tensor.name: tensor for tensor in model.graph.initializer}
        for node in iter_nodes(model.graph):
            for slot, name in enumerate(node.input):
                if name:
                    consumers.setdefault(name, []).append((node, slot))
            for name in node.output:
                if name:
                    producers[name] = node
            if not constants:
                continue
            for attribute in node.attribute:
                if attribute.type == attribute.GRAPH:
                    tensors.update((t.name, t) for t in attribute.g.initializer)
                elif attribute.type == attribute.GRAPHS:
                    tensors.update((t.name, t) for g in attribute.graphs for t in g.initializer)
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and node.output:
                value = next((a.t for a in node.attribute if a.name == "value"), None)
                if value is not None and math.prod(value.dims) > 1:
                    tensors.setdefault(node.output[0], value)
        return cls(
            initializers=tensors,
            consumers={name: tuple(uses) for name, uses in consumers.items()},
            producers=producers,
        )

    def final_users(self, name: str) -> set[str]:
        """Op types that finally read ``name``, looking through DequantizeLinear and
        pass-through ops."""
        return {node.op_type for node, _ in self.reads(name, through_dequantize=True)}

    def reads(self, name: str, *, through_dequantize: bool = False) -> list[tuple[Any, int]]:
        """The ``(node, slot)`` pairs reading ``name``, directly or through pass-through ops on
        their first input (and DequantizeLinear with ``through_dequantize``), in the order found."""
        through = (
            PASS_THROUGH_OPS | {"DequantizeLinear"} if through_dequantize else PASS_THROUGH_OPS
        )
        found: list[tuple[Any, int]] = []
        pending, seen = [name], set()
        while pending:
            current = pending.pop()
            if current in seen:
                continue
            seen.add(current)
            for node, slot in self.consumers.get(current, ()):
                if slot == 0 and node.op_type in through:
                    pending.extend(output for output in node.output if output)
                else:
                    found.append((node, slot))
        return found


def load_structure(path: Path) -> Any:
    """The model at ``path`` without its external data: names, nodes, types, no weights."""
    import onnx

    return onnx.load(str(path), load_external_data=False)


def float_element_types() -> dict[int, str]:
    """ONNX float element types -> their names, widest first."""
    from onnx import TensorProto

    return {
        TensorProto.DOUBLE: "float64",
        TensorProto.FLOAT: "float32",
        TensorProto.FLOAT16: "float16",
        TensorProto.BFLOAT16: "bfloat16",
    }
