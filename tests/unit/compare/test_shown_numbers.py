"""Values and limits in tables and messages: enough digits that they differ where they do."""

from __future__ import annotations

import pytest

from pytest_onnxparity.compare.gates import shown_limit, shown_value


@pytest.mark.parametrize(
    ("value", "limit", "shown"),
    [
        (0.99989, 0.9999, "0.99989 / 0.9999"),  # 3 digits would print "1 >= 0.9999"
        (0.99999874, 0.99999, "0.999999 / 0.99999"),  # "1 >= 1" before
        (0.805, 1.0, "0.805 / 1"),
        (0.000164, 0.01, "0.000164 / 0.01"),
        (0.0464, 0.2, "0.0464 / 0.2"),
        (1e-9, 1e-9, "1e-09 / 1e-09"),
        (1.0, 1.0, "1 / 1"),
        (0.100000001, 0.1, "0.100000001 / 0.1"),
    ],
)
def test_a_value_shows_the_digits_that_tell_it_from_its_limit(
    value: float, limit: float, shown: str
) -> None:
    assert f"{shown_value(value, limit)} / {shown_limit(limit)}" == shown


@pytest.mark.parametrize(
    ("value", "limit"),
    [(0.99989, 0.9999), (0.99999874, 0.99999), (0.100000001, 0.1), (0.0999999, 0.1)],
)
def test_a_shown_value_compares_with_its_limit_as_the_measured_one(
    value: float, limit: float
) -> None:
    shown = float(shown_value(value, limit))
    assert (shown < limit, shown > limit) == (value < limit, value > limit)


def test_a_limit_shows_as_it_was_given() -> None:
    assert [shown_limit(x) for x in (0.9999, 0.99999, 1e-5, 0.05, 1.0, 0.123456789)] == [
        "0.9999",
        "0.99999",
        "1e-05",
        "0.05",
        "1",
        "0.123456789",
    ]
