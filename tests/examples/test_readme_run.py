"""README command 1 prints what the README shows: its output block is run and compared line by
line, with the float digits (which differ between CPUs) left free and ``...`` standing for the
lines that depend on the machine (platform, plugins, rootdir)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.paths import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")
COMMAND_1 = re.search(
    r"^bash scripts/setup\.sh && (\.venv/bin/python -m pytest --onnx-dir .*)$", README, re.M
)
JSON_NAME = "parity-results.json"
DECIMAL = re.compile(r"\d+\.\d+(?:e[+-]?\d+)?|\d+e[+-]\d+")
RULE = re.compile(r"-{3,}|={3,}")


def code_blocks(text: str) -> list[list[str]]:
    """The lines of each fenced code block, fences paired in order."""
    blocks: list[list[str]] = []
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("```"):
            if current is None:
                current = []
            else:
                blocks.append(current)
                current = None
        elif current is not None:
            current.append(line)
    return blocks


def output_block(command: str) -> list[str]:
    """The README's code block that starts with ``$ <command>``: its output lines."""
    for lines in code_blocks(README):
        if lines and lines[0] == f"$ {command}":
            return lines[1:]
    raise AssertionError(f"README has no output block for `{command}`")


TOKEN = re.compile(
    rf"(?P<duration>\b\d+\.\d+s\b)|(?P<number>{DECIMAL.pattern})|(?P<rule>{RULE.pattern})"
)


def number_pattern(text: str) -> str:
    """A float of the README as a regex: its first two significant digits as written, the
    rest free (CPUs differ in the last digits; a limit like ``0.2`` stays exact)."""
    mantissa, e, exponent = text.partition("e")
    kept, significant = "", 0
    for char in mantissa:
        if significant == 2:
            break
        kept += char
        if char.isdigit() and (significant or char != "0"):
            significant += 1
    rest = mantissa[len(kept) :]
    if not rest:
        free = ""  # two significant digits or fewer: a limit, exact
    elif "." in kept:
        free = r"\d*"
    else:
        free = r"\d" * len(rest.partition(".")[0]) + r"(?:\.\d*)?"
    return re.escape(kept) + free + (re.escape(e + exponent) if e else "")


def pattern(line: str) -> re.Pattern[str]:
    """A README line as a regex: literal text, floats as :func:`number_pattern`, a duration,
    rules and padding of any length."""
    parts, last = [], 0
    for match in TOKEN.finditer(line):
        parts.append(re.escape(line[last : match.start()]))
        if match.group("duration"):
            parts.append(r"[\d.]+s")
        elif match.group("number"):
            parts.append(number_pattern(match.group()))
        else:
            parts.append(f"{re.escape(match.group()[0])}+")
        last = match.end()
    parts.append(re.escape(line[last:]))
    return re.compile("".join(parts))


def match_lines(expected: list[str], actual: list[str]) -> str | None:
    """None when ``actual`` is ``expected`` with each ``...`` as any run of lines; else where
    they part."""
    patterns = [None if line == "..." else pattern(line) for line in expected]
    # reachable[i] = output positions after matching the first i README lines
    reachable = {0}
    for index, compiled in enumerate(patterns):
        if compiled is None:
            reachable = set(range(min(reachable), len(actual) + 1)) if reachable else set()
            continue
        reachable = {
            pos + 1 for pos in reachable if pos < len(actual) and compiled.fullmatch(actual[pos])
        }
        if not reachable:
            return f"README block line {index + 1} ({expected[index]!r}) matches no output line"
    if len(actual) not in reachable:
        return f"output goes on after the README block ends: {actual[max(reachable) :]!r}"
    return None


def test_readme_command_1_prints_the_readme_block(tmp_path: Path) -> None:
    assert COMMAND_1 is not None, "README command 1 moved"
    command = COMMAND_1.group(1)
    expected = output_block(command)
    results = tmp_path / JSON_NAME
    args = command.split()[1:]  # python -m pytest ...
    args[args.index(JSON_NAME)] = str(results)  # not into the checkout
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COLUMNS"))}

    process = subprocess.run(
        [sys.executable, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**env, "COLUMNS": "80"},
    )

    assert process.returncode == 0, process.stdout + process.stderr
    expected = [
        line.replace(f"written to {JSON_NAME}", f"written to {results}") for line in expected
    ]
    problem = match_lines(expected, process.stdout.splitlines())
    assert problem is None, f"{problem}\n--- output ---\n{process.stdout}"


def test_the_block_matcher_catches_a_changed_line_and_allows_float_digits() -> None:
    block = ["header", "...", "a  0.000164 <= 0.01", "---  -----", "=== 6 passed in 0.47s ==="]
    assert pattern("x 0.000164 <= 0.2").fullmatch("x 0.00016 <= 0.2")
    assert not pattern("x 0.000164 <= 0.2").fullmatch("x 0.000164 <= 0.25")
    assert not pattern("x 0.000164 <= 0.2").fullmatch("x 0.000164 <= 0.3")
    assert not pattern("x 0.000164 <= 0.2").fullmatch("x 0.000174 <= 0.2")
    assert pattern("y 95.1 kB 1.83x").fullmatch("y 95.12 kB 1.8x")
    assert not pattern("y 95.1 kB").fullmatch("y 950.1 kB")
    output = ["header", "platform x", "plugins y", "a  0.000165 <= 0.01", "---  --------",
              "==== 6 passed in 12.5s ===="]  # fmt: skip
    assert match_lines(block, output) is None
    assert match_lines(block, [*output[:3], "b  0.000165 <= 0.01", *output[4:]]) is not None
    assert match_lines(block, [*output, "extra"]) is not None
    assert match_lines(block, [line.replace("6 passed", "5 passed") for line in output]) is not None
