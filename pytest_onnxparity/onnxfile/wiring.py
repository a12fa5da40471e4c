"""Whether a model's main graph is wired: every node reads values made before it.

onnxruntime builds some graphs whose nodes are out of topological order (as some fp16
conversions write them) or read values nothing makes; some of its builds crash on them rather
than refuse them, which would take the whole run down without naming the file. This check reads
only names from the wire format (no onnx import, no weights) and runs during discovery, so such
a file fails its own tests with one line before onnxruntime sees it.
"""

from __future__ import annotations

from collections.abc import Iterator

from pytest_onnxparity.onnxfile.wire import (
    GRAPH_INITIALIZER,
    GRAPH_INPUT,
    GRAPH_NODE,
    GRAPH_OUTPUT,
    GRAPH_SPARSE_INITIALIZER,
    LENGTH_DELIMITED,
    SPARSE_VALUES,
    VALUE_INFO_NAME,
    fields,
    read_node,
    tensor_name,
    text,
)


def wiring_problem(buffer: memoryview, graph_spans: list[tuple[int, int]]) -> str | None:
    """The first node input no earlier node, graph input or initializer makes, or a graph output
    nothing makes. Several graph fields are merged, as protobuf parsers do. Subgraphs may read
    outer values, so only the main graph's own node list is checked."""
    available: set[str] = {""}  # an empty name is an omitted optional input
    nodes: list[tuple[int, int]] = []
    outputs: list[str] = []
    for start, end in graph_spans:
        for number, wire, field_start, field_end in fields(buffer, start, end):
            if wire != LENGTH_DELIMITED:
                continue
            if number == GRAPH_NODE:
                nodes.append((field_start, field_end))
            elif number == GRAPH_INPUT:
                available.add(_value_info_name(buffer, field_start, field_end))
            elif number == GRAPH_OUTPUT:
                outputs.append(_value_info_name(buffer, field_start, field_end))
            elif number == GRAPH_INITIALIZER:
                available.add(tensor_name(buffer, field_start, field_end))
            elif number == GRAPH_SPARSE_INITIALIZER:
                available.update(_sparse_names(buffer, field_start, field_end))
    wiring = [_node_wiring(buffer, start, end) for start, end in nodes]
    made_later = {name: label for label, _, made in wiring for name in made}
    for index, (label, reads, made) in enumerate(wiring):
        for name in reads:
            if name not in available:
                return _miswired(label, name, made_later.get(name), index)
        available.update(made)
    missing = [name for name in outputs if name not in available]
    if missing:
        return f"graph output {missing[0]!r} is made by no node, input or initializer"
    return None


def _miswired(label: str, name: str, producer: str | None, index: int) -> str:
    if producer is None:
        return f"node {index} ({label}) reads {name!r}, which no node, input or initializer makes"
    return (
        f"node {index} ({label}) reads {name!r} before {producer} makes it: the nodes are not "
        "in topological order"
    )


def _node_wiring(buffer: memoryview, start: int, end: int) -> tuple[str, list[str], list[str]]:
    node = read_node(buffer, start, end)
    label = f"{node.op_type} {node.name!r}" if node.name else node.op_type or "an unnamed node"
    return label, list(node.inputs), [output for output in node.outputs if output]


def _value_info_name(buffer: memoryview, start: int, end: int) -> str:
    for number, wire, field_start, field_end in fields(buffer, start, end):
        if number == VALUE_INFO_NAME and wire == LENGTH_DELIMITED:
            return text(buffer, field_start, field_end)
    return ""


def _sparse_names(buffer: memoryview, start: int, end: int) -> Iterator[str]:
    for number, wire, field_start, field_end in fields(buffer, start, end):
        if number == SPARSE_VALUES and wire == LENGTH_DELIMITED:
            yield tensor_name(buffer, field_start, field_end)
