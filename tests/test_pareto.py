"""Tests for nas.pareto on hand-made point sets with known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from nas.pareto import front_table, hypervolume, knee_point, non_dominated, pareto_ranks

# Rows 0, 1, 3 and the duplicate 5 are non-dominated; 2 is dominated by 1; 4 by 2.
POINTS = np.array([[1.0, 5.0], [2.0, 3.0], [3.0, 4.0], [4.0, 1.0], [5.0, 5.0], [2.0, 3.0]])


# ----------------------------------------------------------------------------- sorting


def test_non_dominated_known_front():
    np.testing.assert_array_equal(non_dominated(POINTS), [0, 1, 3, 5])


def test_pareto_ranks_known_layers():
    np.testing.assert_array_equal(pareto_ranks(POINTS), [0, 0, 1, 0, 2, 0])


def test_three_objectives():
    F = np.array([[1, 2, 3], [3, 2, 1], [2, 2, 2], [3, 3, 3], [1, 2, 4]], dtype=float)
    np.testing.assert_array_equal(non_dominated(F), [0, 1, 2])
    np.testing.assert_array_equal(pareto_ranks(F), [0, 0, 0, 1, 1])


def test_nan_rows_are_ignored_and_ranked_nan():
    # Row 1 is a failed candidate; its 0.0 must not make it dominate anything.
    F = np.array([[1.0, 2.0], [np.nan, 0.0], [2.0, 1.0], [3.0, 3.0]])
    np.testing.assert_array_equal(non_dominated(F), [0, 2])
    ranks = pareto_ranks(F)
    assert math.isnan(ranks[1])
    np.testing.assert_array_equal(ranks[[0, 2, 3]], [0, 0, 1])


def test_empty_and_all_nan_inputs():
    assert non_dominated(np.empty((0, 2))).size == 0
    assert pareto_ranks(np.empty((0, 2))).size == 0
    assert non_dominated(np.full((2, 2), np.nan)).size == 0
    assert np.isnan(pareto_ranks(np.full((2, 2), np.nan))).all()


def test_objectives_must_be_2d():
    with pytest.raises(ValueError, match=r"2-D array .* got shape \(3,\)"):
        non_dominated(np.array([1.0, 2.0, 3.0]))


# ----------------------------------------------------------------------------- hypervolume


def test_hypervolume_2d_by_hand():
    # Staircase under (1,3), (2,2), (3,1) up to (4,4): columns of width 1 and heights 1, 2, 3.
    F = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]])
    assert hypervolume(F, [4.0, 4.0]) == pytest.approx(6.0)
    # A dominated point adds nothing.
    assert hypervolume(np.vstack([F, [3.0, 3.0]]), [4.0, 4.0]) == pytest.approx(6.0)
    # One box: (3 - 1) * (2 - 1).
    assert hypervolume([[1.0, 1.0]], [3.0, 2.0]) == pytest.approx(2.0)


def test_hypervolume_3d_by_hand():
    # Two boxes [0,2]x[0,1]x[0,1] and [0,1]x[0,2]x[0,1] overlapping in a unit cube: 2 + 2 - 1.
    F = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    assert hypervolume(F, [2.0, 2.0, 1.0]) == pytest.approx(3.0)


def test_hypervolume_ignores_points_not_dominating_the_reference():
    F = np.array([[1.0, 3.0], [5.0, 0.0], [4.0, 0.5], [np.nan, 1.0]])
    assert hypervolume(F, [4.0, 4.0]) == pytest.approx(3.0)  # only (1, 3): 3 * 1
    assert hypervolume([[5.0, 5.0]], [4.0, 4.0]) == 0.0
    assert hypervolume(np.empty((0, 2)), [4.0, 4.0]) == 0.0


def test_hypervolume_reference_must_match():
    with pytest.raises(ValueError, match="ref_point must hold 2 finite values"):
        hypervolume([[1.0, 1.0]], [4.0, 4.0, 4.0])


# ----------------------------------------------------------------------------- knee


def test_knee_of_a_symmetric_convex_front():
    theta = np.linspace(0.0, np.pi / 2, 11)
    F = np.column_stack([1 - np.cos(theta), 1 - np.sin(theta)])  # bulges towards the ideal
    assert knee_point(F) == 5  # theta = pi / 4


def test_knee_by_hand_with_dominated_and_failed_rows():
    # Normalised front: (0, 1), (0.1, 0.25), (0.2, 0.2), (1, 0); distance to x + y = 1 is
    # (1 - x - y) / sqrt(2): 0, 0.65, 0.6, 0 -> the point (1, 2.5), row 3 of F.
    F = np.array([[0.0, 10.0], [5.0, 5.0], [np.nan, np.nan], [1.0, 2.5], [2.0, 2.0], [10.0, 0.0]])
    assert knee_point(F) == 3


def test_knee_scales_objectives():
    # Same front as above with MACs-sized numbers in the first objective.
    F = np.array([[0.0, 10.0], [1e8, 2.5], [2e8, 2.0], [1e9, 0.0]])
    assert knee_point(F) == 1


def test_knee_degenerate_fronts():
    assert knee_point([[3.0, 3.0], [4.0, 4.0]]) == 0  # one-point front
    # 3-D: normalised sums are 1, 1, 1, 0.87 and 0.8 -> the balanced point (row 4) is
    # farthest from the plane x + y + z = 1 through the extremes.
    F = np.array(
        [[3, 0, 0], [0, 3, 0], [0, 0, 3], [2, 0.3, 0.3], [0.8, 0.8, 0.8], [4, 4, 4]], dtype=float
    )
    assert knee_point(F) == 4
    with pytest.raises(ValueError, match="at least one row without NaN"):
        knee_point(np.full((2, 2), np.nan))


# ----------------------------------------------------------------------------- table


def test_front_table_maximises_accuracy_and_ranks_failures_last():
    df = pd.DataFrame(
        {
            "arch_id": ["a", "b", "c", "d", "e"],
            "accuracy": [0.90, 0.80, 0.92, np.nan, 0.85],
            "macs": [100, 50, 200, 10, 100],
        }
    )
    table = front_table(df, objectives=["accuracy", "macs"], senses=["max", "min"])
    # Front: c (best accuracy), a, b (cheapest); e is dominated by a; d failed.
    assert list(table["arch_id"]) == ["c", "a", "b", "e", "d"]
    assert str(table["rank"].dtype) == "Int64"
    assert table["rank"].tolist()[:4] == [0, 0, 0, 1]
    assert table["rank"].isna().tolist() == [False] * 4 + [True]
    assert list(table.index) == [2, 0, 1, 4, 3]  # original index kept
    assert "rank" not in df.columns  # input untouched


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"objectives": ["accuracy"], "senses": ["up"]}, "unknown sense"),
        ({"objectives": ["acc"], "senses": ["max"]}, r"objective column\(s\) \['acc'\]"),
        ({"objectives": ["accuracy", "macs"], "senses": ["max"]}, "one sense per objective"),
        ({"objectives": ["arch_id"], "senses": ["min"]}, "must be numeric"),
    ],
)
def test_front_table_errors(kwargs, match):
    df = pd.DataFrame({"arch_id": ["a"], "accuracy": [0.9], "macs": [1]})
    with pytest.raises(ValueError, match=match):
        front_table(df, **kwargs)
