"""The Hugging Face Hub's evaluation results (``model-index``) from the parity metadata block.

The Hub renders a model card's ``model-index`` (task, dataset, metric, value) as its evaluation
results. What belongs there is each pipeline's WER and CER against the ground-truth transcripts:
every sequence variant set's, the fp32 ONNX pipeline's and, with a reference pipeline, the
PyTorch model's. Parity against the reference (WER against the reference's transcripts, token
matches) is not an evaluation result and stays in the project's own block. Pure: metadata in,
plain data and YAML text out; validated against ``huggingface_hub`` when it is installed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_onnxparity.results.numbers import is_finite_number

TASK = {"type": "automatic-speech-recognition", "name": "Automatic Speech Recognition"}
LABELS = {"fp32": "fp32 ONNX", "pytorch": "PyTorch"}
METRICS = (("wer", "WER"), ("cer", "CER"))


class ModelIndexError(ValueError):
    """``huggingface_hub`` refused the model-index; the message says why."""


def model_index_results(metadata: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One entry per dataset: the task, the dataset, and each pipeline's WER/CER against its
    ground truth in percent (``{"type": "wer", "value": 4.27, "name": "WER (int8 ONNX)"}``)."""
    by_dataset: dict[str, dict[str, Any]] = {}
    for graph in (metadata.get("graphs") or {}).values():
        for tag, variant in (graph.get("variants") or {}).items():
            check = (variant.get("checks") or {}).get("sequence")
            if not check:
                continue
            about = check.get("about") or {}
            dataset = _dataset(about.get("dataset"))
            if dataset is None:
                continue
            entry = by_dataset.setdefault(
                json.dumps(dataset, sort_keys=True),
                {"task": dict(TASK), "dataset": dataset, "metrics": []},
            )
            reference = str(about.get("reference", "fp32"))
            pipelines = (
                (f"{tag} ONNX" if tag != "fp32" else LABELS["fp32"], ""),
                (LABELS.get(reference, reference), "reference_"),
            )
            for label, prefix in pipelines:
                for metric, title in METRICS:
                    rate = check.get(f"{prefix}{metric}_vs_truth")
                    name = f"{title} ({label})"
                    known = {m["name"] for m in entry["metrics"]}
                    if is_finite_number(rate) and name not in known:
                        entry["metrics"].append(
                            {"type": metric, "value": round(100.0 * rate, 2), "name": name}
                        )
    results = [entry for entry in by_dataset.values() if entry["metrics"]]
    for entry in results:
        entry["metrics"].sort(key=lambda m: (m["type"], m["name"]))
    return results


def _dataset(found: Any) -> dict[str, Any] | None:
    if not isinstance(found, Mapping) or not found.get("type"):
        return None
    dataset = {"type": str(found["type"]), "name": str(found.get("name") or found["type"])}
    for key in ("config", "split"):
        if found.get(key):
            dataset[key] = str(found[key])
    return dataset


def build_model_index(metadata: Mapping[str, Any], model_name: str) -> list[dict[str, Any]]:
    """The ``model-index`` list of a model card: one model, its evaluation results."""
    return [{"name": model_name, "results": model_index_results(metadata)}]


def validate_model_index(model_index: Sequence[Mapping[str, Any]]) -> str | None:
    """Parse ``model_index`` the way the Hub does (``huggingface_hub``'s
    ``model_index_to_eval_results`` and ``ModelCardData``); returns the ``huggingface_hub``
    version it was checked with, or None when it is not installed. Raises
    :class:`ModelIndexError` when it is refused."""
    try:
        import huggingface_hub
        from huggingface_hub import ModelCardData
        from huggingface_hub.repocard_data import model_index_to_eval_results
    except ImportError:
        return None
    try:
        name, results = model_index_to_eval_results([dict(entry) for entry in model_index])
        card = ModelCardData(model_name=name, eval_results=results or None)
        card.to_dict()
    except Exception as error:  # the hub's own parsing: any refusal is reported, not swallowed
        raise ModelIndexError(f"huggingface_hub refuses the model-index: {error}") from None
    return str(huggingface_hub.__version__)


def dumps_model_index(model_index: Sequence[Mapping[str, Any]], as_json: bool = False) -> str:
    """The ``model-index`` as YAML front matter to paste into a README (or JSON)."""
    if as_json:
        return json.dumps({"model-index": list(model_index)}, indent=2, sort_keys=True) + "\n"
    return "\n".join(_yaml("model-index", list(model_index), 0)) + "\n"


def _yaml(key: str, value: Any, depth: int) -> list[str]:
    """Block YAML for nested mappings and lists of mappings; scalars as JSON (valid YAML)."""
    pad = "  " * depth
    if isinstance(value, Mapping):
        lines = [f"{pad}{key}:"]
        for child, item in value.items():
            lines += _yaml(child, item, depth + 1)
        return lines
    if isinstance(value, list):
        lines = [f"{pad}{key}:"] if value else [f"{pad}{key}: []"]
        for item in value:
            block = [] if not isinstance(item, Mapping) else _mapping_lines(item, depth + 1)
            if not block:
                lines.append(f"{pad}- {json.dumps(item)}")
                continue
            lines.append(f"{pad}- {block[0].lstrip()}")
            lines += block[1:]
        return lines
    return [f"{pad}{key}: {json.dumps(value)}"]


def _mapping_lines(item: Mapping[str, Any], depth: int) -> list[str]:
    lines: list[str] = []
    for child, value in item.items():
        lines += _yaml(child, value, depth)
    return lines
