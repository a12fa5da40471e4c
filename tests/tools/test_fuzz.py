"""The fuzz run of fixtures/fuzzkit.py, bounded for CI: a few hundred seeded mutants of the
example's models through discovery, the wire-format scan, loading and one comparison.

It runs in a subprocess, so a native crash in onnxruntime fails this test (naming the mutant)
instead of the suite. The long run is ``python fixtures/fuzzkit.py --mutants 5000`` and its last
figures are in docs/reliability.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.paths import FIXTURES

MUTANTS = 400
BUDGET_S = 40


def test_no_mutant_crashes_hangs_errors_inside_or_passes_damaged(tmp_path: Path) -> None:
    out = tmp_path / "fuzz.json"
    command = [
        sys.executable,
        str(FIXTURES / "fuzzkit.py"),
        "--mutants",
        str(MUTANTS),
        "--seed",
        "17",
        "--budget-s",
        str(BUDGET_S),
        "--json",
        str(out),
    ]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=BUDGET_S + 20)
    last_mutant = [line for line in completed.stderr.splitlines() if line.startswith("mutant ")]
    assert completed.returncode in (0, 1), (
        f"the fuzz process died (status {completed.returncode}) at "
        f"{last_mutant[-1:] or 'start'}:\n{completed.stderr[-3000:]}"
    )
    summary = json.loads(out.read_text())
    assert summary["findings"] == [], completed.stdout
    assert completed.returncode == 0
    # A bound on time, not on work: a slow machine runs fewer, but never too few to mean much.
    assert summary["mutants"] >= 50
    assert set(summary["verdicts"]) <= {"passed", "failed", "problem"}
