"""Which values each batch's runs read and keep, so that no run recomputes what an earlier one
computed.

Each run of a model computes only its batch's *region*: the nodes its tensors need that no
earlier run computed. Where a region reads a tensor an earlier region produced (the residual
stream crossing from one batch to the next), the earlier run exposes it, the value is held, fed
into the later run, and dropped after its last reader. So the runs of one model together cost
about one ordinary forward pass, however many batches the memory budget asks for. Values no
run can be fed (a constant computed from initializers, an untyped value) are recomputed instead.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pytest_onnxparity.diagnose.localize.replay import segment


@dataclass(frozen=True)
class Step:
    """One run of one model: the tensors it exposes, the held values it reads, and the values
    it keeps for later runs (exposed too)."""

    exposes: tuple[str, ...]
    reads: tuple[str, ...]
    keeps: tuple[str, ...]
    releases: tuple[str, ...]
    """Held values no later run reads: dropped after this run."""


def plan_runs(
    wanted: Sequence[Sequence[str]],
    nodes: Sequence[Any],
    producer: Mapping[str, int],
    feedable: Collection[str],
    reads_by_node: Sequence[Sequence[str]] | None = None,
) -> list[Step]:
    """One :class:`Step` per entry of ``wanted`` (the tensors each run must return, in run
    order) for a model whose top-level ``nodes`` and ``producer`` map are given (and what each
    node reads, where known); only tensors in ``feedable`` (typed activations) are held and
    fed."""
    computed: set[int] = set()
    available: set[str] = set()
    regions: list[set[int]] = []
    reads: list[tuple[str, ...]] = []
    for names in wanted:
        read = dict.fromkeys(name for name in names if name in available)
        found, frontier = segment(
            nodes, producer, [name for name in names if name not in read], available, reads_by_node
        )
        region = set(found)
        read.update(dict.fromkeys(frontier))
        regions.append(region)
        reads.append(tuple(read))
        computed |= region
        available |= {
            output for index in region for output in nodes[index].output if output in feedable
        }
    made_in: dict[str, int] = {}
    for run, region in enumerate(regions):
        for index in region:
            for output in nodes[index].output:
                made_in.setdefault(output, run)
    keeps: list[dict[str, None]] = [{} for _ in wanted]
    last_read: dict[str, int] = {}
    for run, names in enumerate(reads):
        for name in names:
            keeps[made_in[name]][name] = None
            last_read[name] = run
    releases: list[list[str]] = [[] for _ in wanted]
    for name, run in last_read.items():
        releases[run].append(name)
    return [
        Step(
            exposes=tuple(dict.fromkeys([*(n for n in names if n not in reads[run]), *keeps[run]])),
            reads=reads[run],
            keeps=tuple(keeps[run]),
            releases=tuple(releases[run]),
        )
        for run, names in enumerate(wanted)
    ]


def held_bytes(steps: Sequence[Step], sizes: Mapping[str, int], unknown: int) -> list[int]:
    """Bytes of one model's values alive during each step: what the step's run returns and
    reads, and what earlier runs kept for later ones."""
    alive: set[str] = set()
    during = []
    for step in steps:
        now = alive | set(step.exposes) | set(step.reads)
        during.append(sum(sizes.get(name, unknown) for name in now))
        alive |= set(step.keeps)
        alive -= set(step.releases)
    return during
