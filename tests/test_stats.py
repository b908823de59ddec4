"""Repeat statistics against independent computations."""

from __future__ import annotations

import math
import statistics

import pytest

from search.stats import summarize


def test_summary_matches_textbook_formulas():
    values = [0.7, 0.75, 0.8, 0.78, 0.74]
    s = summarize(values)
    mean = statistics.fmean(values)
    sd = statistics.stdev(values)
    sem = sd / math.sqrt(len(values))
    t975_df4 = 2.7764451051977987  # Student t quantile, 4 degrees of freedom
    assert s.n == 5
    assert s.mean == pytest.approx(mean)
    assert s.sd == pytest.approx(sd)
    assert s.sem == pytest.approx(sem)
    assert s.ci_low == pytest.approx(mean - t975_df4 * sem)
    assert s.ci_high == pytest.approx(mean + t975_df4 * sem)


def test_identical_values_have_zero_spread():
    s = summarize([0.8] * 6)
    assert (s.mean, s.sd, s.sem, s.ci_low, s.ci_high) == (0.8, 0.0, 0.0, 0.8, 0.8)


def test_single_value_has_no_spread():
    s = summarize([0.5])
    assert s.n == 1 and s.mean == 0.5 and s.sd is None and s.ci_low is None


def test_empty_is_an_error():
    with pytest.raises(ValueError):
        summarize([])
