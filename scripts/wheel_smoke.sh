#!/usr/bin/env bash
# The wheel as a user gets it: build it (nothing left in the tree), install it into a fresh venv
# with the base dependencies only (no torch, no pytest-xdist), and gate the bundled example from
# an empty folder under -W error --strict-markers: first without any onnxruntime (one line naming
# what to install), then with the cpu extra (6 passed, not one warning).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd)"
PYTHON="${PYTHON:-python3}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

fail() { echo "wheel smoke: FAIL: $*" >&2; exit 1; }

before="$(git status --porcelain --ignored --untracked-files=all -- build dist '*.egg-info' 2>/dev/null || true)"
"$PYTHON" -m pip wheel -q . -w "$WORK/dist" --no-deps
after="$(git status --porcelain --ignored --untracked-files=all -- build dist '*.egg-info' 2>/dev/null || true)"
[ "$before" = "$after" ] || fail "pip wheel left files in the tree: $after"
wheel="$(ls "$WORK"/dist/pytest_onnxparity-*.whl)"
echo "wheel smoke: built $(basename "$wheel"); the tree is as it was"

"$PYTHON" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install -q "$wheel"
for absent in torch pytest-xdist onnxruntime; do
    if "$WORK/venv/bin/python" -m pip show -q "$absent" >/dev/null 2>&1; then
        fail "$absent was installed with the base dependencies"
    fi
done
echo "wheel smoke: installed with its base dependencies ($("$WORK/venv/bin/python" -m pip list --format=freeze 2>/dev/null | grep -ciE '^(pytest|numpy|onnx)=') of pytest, numpy, onnx; no torch, xdist, onnxruntime)"

mkdir "$WORK/empty"
cd "$WORK/empty"
run_example() {
    "$WORK/venv/bin/python" -m pytest -W error --strict-markers -p no:cacheprovider \
        "--onnx-dir=$REPO/fixtures/example" "--parity-json=$WORK/results.json" "$@"
}

set +e
output="$(run_example 2>&1)"
status=$?
set -e
[ "$status" = 4 ] || fail "without onnxruntime the run exited $status, not 4 (usage error): $output"
echo "$output" | grep -qx "ERROR: onnxparity: no ONNX Runtime is installed: pip install onnxruntime (CPU) or onnxruntime-gpu (CUDA); any other onnxruntime build (onnxruntime-directml, onnxruntime-openvino, ...) works too" \
    || fail "without onnxruntime the run did not say what to install: $output"
echo "wheel smoke: without onnxruntime the run stops with one line naming onnxruntime and onnxruntime-gpu"

"$WORK/venv/bin/python" -m pip install -q "$wheel[cpu]"
output="$(run_example 2>&1)" || fail "the example run failed: $output"
echo "$output" | grep -q "^=* 12 passed in " || fail "the example run did not pass its 12 tests (6 parity, 6 weights): $output"
if echo "$output" | grep -qi "warning"; then fail "the example run printed a warning: $output"; fi
"$WORK/venv/bin/python" -m pytest_onnxparity render "$WORK/results.json" | grep -qx "6 parity tests (6 passed), 6 checks (6 passed); 8 sessions opened (main: 8)" \
    || fail "python -m pytest_onnxparity render did not print the run's counts"
[ -z "$(ls -A "$WORK/empty")" ] || fail "the run wrote into the working folder: $(ls -A "$WORK/empty")"
echo "wheel smoke: with the cpu extra, the bundled example passes from an empty folder (12 passed, no warning) and renders from its results file"
