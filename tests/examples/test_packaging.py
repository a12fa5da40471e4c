"""What the package metadata claims is in the checkout: the MIT license text beside an SPDX
license expression, no onnxruntime build forced on a user, pytest-xdist not required."""

from __future__ import annotations

import sys

from tests.paths import REPO

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def test_the_mit_license_of_the_metadata_is_shipped() -> None:
    assert PROJECT["license"] == "MIT"  # an SPDX expression, not the deprecated table
    assert PROJECT["license-files"] == ["LICENSE"]
    assert (REPO / "LICENSE").read_text().startswith("MIT License\n")


def test_no_onnxruntime_build_is_a_hard_dependency() -> None:
    assert not [d for d in PROJECT["dependencies"] if d.startswith("onnxruntime")]
    extras = PROJECT["optional-dependencies"]
    assert extras["cpu"] == ["onnxruntime>=1.17"]
    assert extras["gpu"] == ["onnxruntime-gpu>=1.17"]


def test_pytest_xdist_and_torch_are_extras_only() -> None:
    base = " ".join(PROJECT["dependencies"])
    assert "xdist" not in base and "torch" not in base
