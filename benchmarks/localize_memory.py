"""Peak memory and time of localization against its ``[localize] memory_mb`` budget (issue 19).

    python benchmarks/localize_memory.py CORPUS_DIR [--budgets 256,0] [--json OUT]

``CORPUS_DIR`` is where ``fixtures/localize_corpus.py`` builds (or has built) its corpus. Two
graphs are measured, each with an int8 variant whose weights were damaged before quantization:

minilm    all-MiniLM-L6-v2 fp32 (90.4 MB) on synthesized tokens, 8 x 256 (its activations,
          reference and variant, come to ~2.5 GB);
encoder   the Whisper-style encoder (37.6 MB) on 30 s of features (1 x 80 x 3000), as Whisper
          pads every clip (~3 GB).

Each figure comes from a fresh process, which reports its own peak RSS (``ru_maxrss``) and wall
time: ``sessions`` opens the reference and the variant as a parity test does (onnxruntime's
default arena) and runs each once — the two sessions; ``localize`` localizes with a budget
(``0``: the default, an eighth of the machine's memory). The budget is respected when
``localize`` peaks at most ``sessions`` plus the budget.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
GRAPHS = {
    "minilm": ("minilm/model.onnx", "minilm/layer_1_fc1_zeroed_int8.onnx"),
    "encoder": ("encoder/encoder.onnx", "encoder/layer_3_fc1_zeroed_int8.onnx"),
}


def inputs(graph: str) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    if graph == "minilm":
        shape = (8, 256)
        return {
            "input_ids": rng.integers(0, 30522, shape).astype(np.int64),
            "attention_mask": np.ones(shape, np.int64),
            "token_type_ids": np.zeros(shape, np.int64),
        }
    return {"input_features": rng.uniform(-1, 1, (1, 80, 3000)).astype(np.float32)}


def child(mode: str, reference: Path, variant: Path, arrays: Path, budget: int) -> None:
    """One measurement in this process; prints a JSON line with its peak RSS and wall time."""
    from pytest_onnxparity.diagnose.localize.config import LocalizeOptions
    from pytest_onnxparity.diagnose.localize.measure import localize
    from pytest_onnxparity.runtime.sessions import SessionSettings, open_session

    feed = dict(np.load(arrays))
    start = time.perf_counter()
    result: dict[str, object] = {}
    if mode == "sessions":
        sessions = [open_session(path, SessionSettings()) for path in (reference, variant)]
        for session in sessions:
            session.run(feed)
    else:
        options = LocalizeOptions(memory_mb=budget or None)
        with tempfile.TemporaryDirectory() as workdir:
            found = localize(
                reference,
                variant,
                feed,
                graph="g",
                variant="v",
                options=options,
                workdir=Path(workdir),
            )
        first = found.first_damaged
        result = {
            "budget_mb": found.memory_mb,
            "batches": found.instrumented_runs,
            "largest_batch_mb": round(found.largest_batch_mb, 1),
            "tensors": len(found.matched),
            "first_damaged": None if first is None else first.node,
        }
    wall = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps({"mode": mode, "wall_s": round(wall, 2), "peak_rss_mb": round(peak_mb)} | result)
    )


def measure(corpus: Path, budgets: list[int]) -> list[dict[str, object]]:
    sys.path.insert(0, str(REPO / "fixtures"))
    import localize_corpus

    localize_corpus.build(corpus)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for graph, (reference, variant) in GRAPHS.items():
            arrays = Path(scratch) / f"{graph}.npz"
            np.savez(arrays, **inputs(graph))
            runs = [("sessions", 0)] + [("localize", budget) for budget in budgets]
            for mode, budget in runs:
                command = [
                    sys.executable,
                    __file__,
                    "--child",
                    mode,
                    str(corpus / reference),
                    str(corpus / variant),
                    str(arrays),
                    str(budget),
                ]
                output = subprocess.run(command, check=True, capture_output=True, text=True)
                row = {"graph": graph, **json.loads(output.stdout.strip().splitlines()[-1])}
                print(json.dumps(row), flush=True)
                rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("corpus", type=Path, nargs="?")
    parser.add_argument("--budgets", default="256,0", help="MB, comma-separated; 0: default")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", nargs=5, metavar=("MODE", "REF", "VAR", "NPZ", "MB"))
    args = parser.parse_args()
    if args.child:
        mode, reference, variant, arrays, budget = args.child
        child(mode, Path(reference), Path(variant), Path(arrays), int(budget))
        return
    if args.corpus is None:
        parser.error("give the corpus folder")
    rows = measure(args.corpus, [int(b) for b in args.budgets.split(",")])
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
