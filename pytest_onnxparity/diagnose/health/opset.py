"""``health:opset`` and ``health:domains``: the ai.onnx opset and IR version within configured
bounds, and every node's operator domain among ``allowed_domains``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pytest_onnxparity.diagnose.health.common import DETAIL_ITEMS, Outcome, listed, load_model
from pytest_onnxparity.diagnose.health.config import (
    CONFIG_TABLE,
    DEFAULT_DOMAIN,
    HealthOptions,
    domain,
)
from pytest_onnxparity.onnxfile.graph import (
    iter_nodes,
    node_label,
)


def check_opset(path: Path, options: HealthOptions) -> Outcome:
    model = load_model(path)
    imports = {domain(entry.domain): int(entry.version) for entry in model.opset_import}
    opset = imports.get(DEFAULT_DOMAIN)
    ir_version = int(model.ir_version)
    details = {
        "opset": opset,
        "ir_version": ir_version,
        "opset_imports": imports,
        "opset_bounds": None if options.opset is None else list(options.opset),
        "ir_version_bounds": None if options.ir_version is None else list(options.ir_version),
    }
    problems = []
    if options.opset is not None:
        low, high = options.opset
        if opset is None or not low <= opset <= high:
            problems.append(
                f"{path}: ai.onnx opset {opset} is outside opset [{low}, {high}]; re-export with "
                f"an opset from {low} to {high} (torch.onnx.export(..., opset_version=...)) or "
                f"change opset in {CONFIG_TABLE}"
            )
    if options.ir_version is not None:
        low, high = options.ir_version
        if not low <= ir_version <= high:
            problems.append(
                f"{path}: IR version {ir_version} is outside ir_version [{low}, {high}]; save the "
                f"model with an onnx release that writes IR {low} to {high} or change "
                f"ir_version in {CONFIG_TABLE}"
            )
    return Outcome(problems, details)


def check_domains(path: Path, options: HealthOptions, variant: str) -> Outcome:
    model = load_model(path)
    counts: dict[str, int] = {}
    offenders = []
    allowed = None if options.allowed_domains is None else set(map(domain, options.allowed_domains))
    for node in iter_nodes(model.graph):
        name = domain(node.domain)
        counts[name] = counts.get(name, 0) + 1
        if allowed is not None and name not in allowed:
            offenders.append(node)
    details: dict[str, Any] = {
        "nodes_by_domain": dict(sorted(counts.items())),
        "allowed_domains": None if allowed is None else sorted(allowed),
        "offending_nodes": [
            {"name": node.name, "op_type": node.op_type, "domain": domain(node.domain)}
            for node in offenders[:DETAIL_ITEMS]
        ],
    }
    if not offenders:
        return Outcome([], details)
    outside = sorted({domain(node.domain) for node in offenders})
    return Outcome(
        [
            f"{path}: {len(offenders)} nodes use domain(s) {', '.join(outside)} outside "
            f"allowed_domains {sorted(allowed or ())}; produce the variant without those "
            f"operators or allow the domain in {CONFIG_TABLE} allowed_domains (for this variant "
            f"only: [tool.onnxparity.health.variants.{variant}])",
            *listed([node_label(node) for node in offenders]),
        ],
        details,
    )
