"""Baselines: compare this run's parity metadata with a stored run's, metric by metric.

``--parity-baseline-fail max_abs:2x,wer:+0.5pp,rtf:+10%`` is parsed once into
:class:`RegressionRule` objects; :func:`compare` applies them to two metadata blocks (see
``metadata.py``) and returns each regression and improvement. Standard library only: the option
parser is imported while pytest parses the command line.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_onnxparity.results.metadata import METADATA_SCHEMA, METADATA_VERSION
from pytest_onnxparity.results.numbers import is_finite_number
from pytest_onnxparity.results.records import SCHEMA_NAME, SCHEMA_VERSION

READABLE_VERSIONS = {SCHEMA_NAME: (1, SCHEMA_VERSION), METADATA_SCHEMA: (1, METADATA_VERSION)}
"""Schema versions this release reads, per document kind: (oldest, newest)."""

DEFAULT_FAIL_SPEC = (
    "max_abs:2x,mean_abs:2x,p99_abs:2x,rel_l2:2x,cosine:2x,wer:+0.5pp,cer:+0.5pp,"
    "nonfinite_in_variant:+0,nonfinite_in_reference:+0"
)
"""A NaN/Inf count that grows is a regression; the statistics of an output with NaN/Inf are
null, so they are never compared (and never read as an improvement)."""
HIGHER_IS_BETTER = frozenset({"cosine", "argmax_agreement", "topk_overlap", "fraction"})
"""Rates that get worse as they fall towards 0 from 1: rules compare ``1 - value``. Every other
number (errors, WER, counts, sizes, timings) gets worse as it grows."""

SPEC_USAGE = (
    "expected METRIC:LIMIT[,METRIC:LIMIT...] where LIMIT is Nx (ratio), +N% (relative), "
    "+Npp (percentage points of a rate) or +N (absolute), e.g. max_abs:2x,wer:+0.5pp,rtf:+10%"
)
_RULE = re.compile(
    r"(?P<metric>[A-Za-z_][A-Za-z0-9_.]*):(?P<sign>\+?)(?P<amount>\d+(?:\.\d*)?|\.\d+)"
    r"(?P<unit>x|%|pp)?"
)
_KINDS = {"x": "ratio", "%": "percent", "pp": "points", "": "absolute"}


class BaselineError(ValueError):
    """The baseline file cannot be used; the message names the file and what to do."""


@dataclass(frozen=True)
class RegressionRule:
    """How much worse one metric may get: ``max_abs:2x``, ``rtf:+10%``, ``wer:+0.5pp``, ``+3``.

    A rule compares *badness*: the value itself for error-like metrics, ``1 - value`` for
    cosine, argmax agreement and coverage fraction. ``ratio`` and ``percent`` scale the
    baseline's badness, so a baseline of exactly zero allows nothing more.
    """

    metric: str
    kind: str
    amount: float

    @property
    def text(self) -> str:
        amount = f"{self.amount:g}"
        return {
            "ratio": f"{self.metric}:{amount}x",
            "percent": f"{self.metric}:+{amount}%",
            "points": f"{self.metric}:+{amount}pp",
            "absolute": f"{self.metric}:+{amount}",
        }[self.kind]

    def matches(self, subject: str, metric: str) -> bool:
        """``wer`` matches every ``wer``; ``latency.median_ms`` only that check's number."""
        return self.metric in (metric, f"{subject}.{metric}")

    def allowed(self, badness: float) -> float:
        """The worst badness this rule accepts after a baseline of ``badness``."""
        if self.kind == "ratio":
            return badness * self.amount
        if self.kind == "percent":
            return badness * (1.0 + self.amount / 100.0)
        if self.kind == "points":
            return badness + self.amount / 100.0
        return badness + self.amount

    def regressed(self, metric: str, old: float, new: float) -> bool:
        return badness(metric, new) > self.allowed(badness(metric, old))

    def improved(self, metric: str, old: float, new: float) -> bool:
        """The mirror of a regression: going back from ``new`` to ``old`` would break the rule."""
        return self.regressed(metric, new, old)


def badness(metric: str, value: float) -> float:
    """What a rule compares: the value, or its distance from 1 for a higher-is-better rate."""
    return 1.0 - value if metric in HIGHER_IS_BETTER else value


def parse_fail_spec(text: str) -> tuple[RegressionRule, ...]:
    """``max_abs:2x,wer:+0.5pp,rtf:+10%`` -> rules; anything else is a usage error."""
    rules: dict[str, RegressionRule] = {}
    for part in (piece.strip() for piece in text.split(",")):
        match = _RULE.fullmatch(part)
        if match is None:
            raise argparse.ArgumentTypeError(f"{SPEC_USAGE}; got {part!r} in {text!r}")
        unit = match["unit"] or ""
        amount = float(match["amount"])
        kind = _KINDS[unit]
        if kind == "ratio" and (match["sign"] or amount < 1):
            raise argparse.ArgumentTypeError(
                f"{part!r}: a ratio is written without '+' and must be >= 1 (2x allows twice the "
                "baseline's error); for a relative increase write +N%"
            )
        if kind != "ratio" and not match["sign"]:
            raise argparse.ArgumentTypeError(
                f"{part!r}: write an increase with '+' (e.g. {match['metric']}:+{match['amount']}"
                f"{unit}), or a ratio as Nx"
            )
        if match["metric"] in rules:
            raise argparse.ArgumentTypeError(
                f"{match['metric']!r} is given twice in {text!r}; keep one limit per metric"
            )
        rules[match["metric"]] = RegressionRule(match["metric"], kind, amount)
    return tuple(rules.values())


# --------------------------------------------------------------------------------------------
# Reading a baseline
# --------------------------------------------------------------------------------------------


def read_baseline(path: Path, what: str = "baseline") -> dict[str, Any]:
    """Read a results file (``--parity-json``) or a metadata block (``--parity-metadata``).

    Raises BaselineError for a missing or unreadable file, a file of another kind, and a
    schema version this release cannot read (with the versions it can); ``what`` names the
    file's role in the messages.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BaselineError(
            f"{what} {path}: no such file; write one on the run to compare against with "
            "--parity-json PATH (or --parity-metadata PATH)"
        ) from None
    except OSError as error:
        raise BaselineError(f"{what} {path}: cannot be read ({error.strerror})") from None
    except UnicodeDecodeError:
        raise BaselineError(
            f"{what} {path}: not UTF-8 text, so not a file written by --parity-json or "
            "--parity-metadata; pass one of those"
        ) from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise BaselineError(
            f"{what} {path}: not valid JSON ({error.msg} at line {error.lineno}); a run that "
            "was killed while writing leaves the previous file, so regenerate this one"
        ) from None
    kind = document.get("schema") if isinstance(document, dict) else None
    if not isinstance(kind, str) or kind not in READABLE_VERSIONS:
        raise BaselineError(
            f"{what} {path}: not a pytest-onnxparity results or metadata file (schema "
            f"{kind!r}); pass a file written by --parity-json or --parity-metadata"
        )
    version = document.get("schema_version")
    oldest, newest = READABLE_VERSIONS[kind]
    if not isinstance(version, int) or isinstance(version, bool):
        raise BaselineError(f"{what} {path}: {kind} without an integer schema_version")
    if version > newest:
        raise BaselineError(
            f"{what} {path}: {kind} schema version {version} is newer than this "
            f"pytest-onnxparity reads ({oldest}..{newest}); upgrade pytest-onnxparity, or "
            "regenerate the baseline with this version"
        )
    if version < oldest:
        raise BaselineError(
            f"{what} {path}: {kind} schema version {version} is older than this "
            f"pytest-onnxparity reads ({oldest}..{newest}); regenerate the baseline by "
            "running the old commit with this version"
        )
    return document


# --------------------------------------------------------------------------------------------
# Comparing two runs
# --------------------------------------------------------------------------------------------

MetricKey = tuple[str, str, str, str]
"""(graph, variant, subject, metric): subject is an output name, a check name or ``file``."""


def metric_table(metadata: Mapping[str, Any]) -> dict[MetricKey, float]:
    """Every number of a metadata block that a rule can compare, by where it was measured."""
    table: dict[MetricKey, float] = {}
    for graph_name, graph in metadata.get("graphs", {}).items():
        entries = dict(graph.get("variants", {}))
        if graph.get("reference"):
            entries[graph["reference"].get("variant", "reference")] = graph["reference"]
        for variant_name, entry in entries.items():
            for (subject, metric), value in _numbers(entry):
                table[(graph_name, variant_name, subject, metric)] = value
    return table


def _numbers(entry: Mapping[str, Any]) -> Iterator[tuple[tuple[str, str], float]]:
    if is_finite_number(entry.get("size_bytes")):
        yield ("file", "size_bytes"), float(entry["size_bytes"])
    for output, stats in entry.get("outputs", {}).items():
        for metric, value in stats.items():
            if is_finite_number(value):
                yield (output, metric), float(value)
    for check, numbers in entry.get("checks", {}).items():
        for metric, value in numbers.items():
            if metric not in ("passed", "enforced") and is_finite_number(value):
                yield (check, metric), float(value)


@dataclass(frozen=True)
class Change:
    """One metric that moved past a rule, in either direction."""

    graph: str
    variant: str
    subject: str
    metric: str
    old: float
    new: float
    rule: RegressionRule

    def line(self) -> str:
        old_bad, new_bad = badness(self.metric, self.old), badness(self.metric, self.new)
        if self.rule.kind == "ratio" and old_bad > 0:
            change = f"x{new_bad / old_bad:.3g}"
            if self.metric in HIGHER_IS_BETTER:
                change += f" of 1-{self.metric}"
        elif self.rule.kind == "percent" and old_bad != 0:
            change = f"{100.0 * (new_bad - old_bad) / abs(old_bad):+.3g}%"
        elif self.rule.kind == "points":
            change = f"{100.0 * (new_bad - old_bad):+.3g}pp"
        else:
            change = f"{new_bad - old_bad:+.3g}"
        return (
            f"{self.graph}/{self.variant} {self.subject}.{self.metric}: "
            f"{self.old:.6g} -> {self.new:.6g} ({change}; rule {self.rule.text})"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "graph": self.graph,
            "variant": self.variant,
            "subject": self.subject,
            "metric": self.metric,
            "old": self.old,
            "new": self.new,
            "rule": self.rule.text,
        }


@dataclass(frozen=True)
class BaselineComparison:
    """This run against a baseline: regressions, improvements, and what was not compared."""

    source: str
    rules: tuple[RegressionRule, ...]
    regressions: tuple[Change, ...]
    improvements: tuple[Change, ...]
    compared: int
    missing: tuple[str, ...]
    """``graph/variant`` entries of the baseline that this run did not measure."""
    unmatched_rules: tuple[str, ...]

    @property
    def failed(self) -> bool:
        return bool(self.regressions)

    def lines(self, fail_option: str = "--parity-baseline-fail") -> list[str]:
        """The terminal summary's baseline section: headline, each regression, each improvement;
        ``fail_option`` is how the reader relaxes the rules (the CLI's is ``--fail``)."""
        rules = ", ".join(rule.text for rule in self.rules)
        lines = [
            f"baseline {self.source}: {len(self.regressions)} regression(s), "
            f"{len(self.improvements)} improvement(s) over {self.compared} compared metric(s) "
            f"(rules {rules})"
        ]
        lines.extend(f"  REGRESSED {change.line()}" for change in self.regressions)
        lines.extend(f"  improved  {change.line()}" for change in self.improvements)
        if self.missing:
            shown = ", ".join(self.missing[:5]) + (" …" if len(self.missing) > 5 else "")
            lines.append(f"  not measured in this run: {shown}")
        if self.unmatched_rules:
            lines.append(
                f"  rule(s) that matched no metric of both runs: {', '.join(self.unmatched_rules)}"
            )
        if self.regressions:
            lines.append(
                "  next step: fix the variants, or if the change is intended, relax "
                f"{fail_option} or store this run's file as the new baseline"
            )
        return lines

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "rules": [rule.text for rule in self.rules],
            "compared": self.compared,
            "regressions": [change.to_json() for change in self.regressions],
            "improvements": [change.to_json() for change in self.improvements],
            "missing": list(self.missing),
            "unmatched_rules": list(self.unmatched_rules),
        }


def compare(
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    rules: Sequence[RegressionRule],
    source: str = "baseline",
) -> BaselineComparison:
    """Apply ``rules`` to every metric both metadata blocks hold."""
    old_table, new_table = metric_table(old), metric_table(new)
    regressions: list[Change] = []
    improvements: list[Change] = []
    used: set[str] = set()
    compared = 0
    for key in sorted(old_table.keys() & new_table.keys()):
        graph, variant, subject, metric = key
        for rule in rules:
            if not rule.matches(subject, metric):
                continue
            used.add(rule.text)
            compared += 1
            before, after = old_table[key], new_table[key]
            change = Change(graph, variant, subject, metric, before, after, rule)
            if rule.regressed(metric, before, after):
                regressions.append(change)
            elif rule.improved(metric, before, after):
                improvements.append(change)
    measured = {key[:2] for key in new_table}
    missing = sorted({f"{g}/{v}" for g, v, *_ in old_table if (g, v) not in measured})
    return BaselineComparison(
        source=source,
        rules=tuple(rules),
        regressions=tuple(regressions),
        improvements=tuple(improvements),
        compared=compared,
        missing=tuple(missing),
        unmatched_rules=tuple(rule.text for rule in rules if rule.text not in used),
    )
