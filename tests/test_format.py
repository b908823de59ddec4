"""search.format: one text for each number, whichever output shows it."""

from __future__ import annotations

import math

import pytest

from search import format as fmt


@pytest.mark.parametrize("p, text", [(0.5, "0.5000"), (0.03125, "0.0312"), (1e-4, "0.0001"),
                                     (3.2e-7, "3.2e-07"), (None, "-"), (math.nan, "-")])
def test_p_values_read_the_same_everywhere(p, text):
    assert fmt.p_value(p) == text


def test_sigma_keeps_every_digit_it_was_given():
    # `:g` would print 0.123457: a configuration key that names another σ.
    assert fmt.std(0.123456789) == "0.123456789"
    assert float(fmt.std(0.123456789)) == 0.123456789
    assert fmt.std(0.1) == "0.1" and fmt.std(1e-5) == "1e-05"
    assert fmt.std({"input": 0.1, "hidden_pre": 0.123456789}) == "input=0.1,hidden_pre=0.123456789"


def test_numbers_differences_and_intervals():
    assert fmt.number(0.81254) == "0.8125" and fmt.number(30) == "30"
    assert fmt.number(None) == fmt.number(math.inf) == "-"
    assert fmt.signed(0.0125) == "+0.0125" and fmt.signed(-0.03) == "-0.0300"
    assert fmt.ci(0.75, 0.875) == "0.7500–0.8750"
    assert fmt.ci(-0.01, 0.03, is_signed=True) == "-0.0100–+0.0300"
    assert fmt.ci(None, 0.3) == "-"
    assert fmt.wins({"win_share": 0.7, "n": 10}) == "7/10"
    assert fmt.wins({"win_share": None, "n": 10}) == "-"


def test_one_table_builder_for_every_output():
    row = {"config": "input:0.1", "placement": "input", "std": 0.1, "mean": 0.8, "sd": 0.01,
           "ci_low": 0.79, "ci_high": 0.81, "bootstrap_ci_low": 0.795, "bootstrap_ci_high": 0.805,
           "n": 3, "diff": 0.02, "diff_ci_low": -0.01, "diff_ci_high": 0.05, "p_paired": 0.2,
           "p_holm": 0.4, "p_wilcoxon": 0.25, "p_welch": 0.3, "p_improve": 2 / 3,
           "p_improve_low": 1 / 3, "p_improve_high": 1.0, "cohen_d": 1.234, "win_share": 2 / 3,
           "train_mean": 0.9, "state": "COMPLETE"}
    header, cells = fmt.summary_table([row], "accuracy", fmt.RESULTS_COLUMNS)
    assert header[:3] == ["placement", "std", "mean accuracy"]
    assert cells == ["input", "0.1", "0.8000", "0.0100", "0.7900–0.8100", "0.7950–0.8050", "3",
                     "+0.0200", "-0.0100–+0.0500", "0.2000", "0.4000", "0.2500", "0.3000",
                     "0.67 (0.33–1.00)", "1.23", "2/3", "0.9000", "complete"]
    header, cells = fmt.summary_table([row], "accuracy", fmt.REPORT_COLUMNS)
    assert header[0] == "configuration" and cells[0] == "input:0.1"
    assert cells[header.index("gap")] == "0.1000"  # train − test
    assert cells[header.index("p paired")] == "0.2000"  # the same p text as the results table


def _table(columns: int, cell: str = "0.1234") -> list[list[str]]:
    """Keys `placement`, `std`, then ``columns`` numbered columns of ``cell``s."""
    head = ["placement", "std", *(f"c{i}" for i in range(columns))]
    return [head, *(["hidden_pre", "0.1", *[cell] * columns] for _ in range(3))]


@pytest.mark.parametrize("width", [30, 50, 80, 120])
def test_blocks_fit_the_width_and_keep_every_column_in_order(width):
    table = _table(20)
    cut = fmt.blocks(table, width, keys=2)
    assert not cut.dropped and cut.note(width) is None
    shown = []
    for block in cut.tables:
        assert [row[:2] for row in block] == [row[:2] for row in table]  # the keys every time
        assert all(len(line) <= width for line in fmt.aligned(block))
        shown += block[0][2:]
    assert shown == table[0][2:]
    # Greedy: a block is only closed when the next column would not fit on it.
    for block, following in zip(cut.tables, cut.tables[1:]):
        longer = [row + [next_row[2]] for row, next_row in zip(block, following)]
        assert max(len(line) for line in fmt.aligned(longer)) > width


def test_a_wide_enough_terminal_gets_the_table_whole():
    table = _table(5)
    whole = fmt.aligned(table)
    cut = fmt.blocks(table, max(len(line) for line in whole), keys=2)
    assert cut.tables == [table] and not cut.dropped


def test_a_column_too_wide_beside_the_keys_is_dropped_with_a_note():
    table = _table(3)
    for row in table[1:]:
        row[3] = "x" * 60
    cut = fmt.blocks(table, 40, keys=2)
    assert cut.dropped == ["c1"]
    assert [block[0] for block in cut.tables] == [["placement", "std", "c0", "c2"]]
    assert cut.note(40) == "not shown, too wide for 40 columns: c1; --wide shows every column"
    # Keys wider than the terminal: nothing is gained by cutting, the table stays whole.
    assert fmt.blocks(table, 10, keys=2).tables == [table]
