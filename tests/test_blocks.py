"""Racing trains a configuration's seeds in blocks: ``train(..., repeats=range(5, 10))`` must
give exactly the numbers a full run gives for repeats 5-9 (docs/ARCHITECTURE.md, decision 3),
in both engines, or a raced configuration would not be the configuration the full grid runs."""

from __future__ import annotations

import numpy as np
import pytest

from search import spec as spec_module
from search.data import load_dataset
from search.engine import fast
from search.noise import Site, parse_config_key
from tests.conftest import TINY_STUDY

ALL_SITES = "+".join(s.value for s in Site)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("blocks") / "tiny.toml"
    path.write_text(TINY_STUDY)
    spec = spec_module.load(path, ["study.repeats=12", "model.batch_size=8"])
    return spec, load_dataset(spec)


def _same(block, full, repeats: range, exact: bool) -> None:
    rows = slice(repeats.start, repeats.stop)
    for name, values in block.curves.items():
        if exact:
            np.testing.assert_array_equal(values, full.curves[name][rows], err_msg=name)
        else:
            np.testing.assert_allclose(values, full.curves[name][rows], rtol=1e-6, atol=1e-7,
                                       err_msg=name)
    np.testing.assert_array_equal(block.test_metric, full.test_metric[rows])
    np.testing.assert_array_equal(block.diverged_at, full.diverged_at[rows])


@pytest.mark.parametrize("config", [
    "none", pytest.param(f"{ALL_SITES}:0.2", marks=pytest.mark.slow)])  # 47 s: every site
def test_fast_engine_block_is_the_full_runs_slice_exactly(tiny, config):
    spec, data = tiny
    noise = parse_config_key(config)
    full = fast.train(spec, data, noise)
    # Racing's blocks (5 aligned with the engine's own blocks of 5; 5-9; 10-11 the rest) and
    # an unaligned one: repeat r's numbers depend on r alone, bit for bit.
    for repeats in (range(0, 5), range(5, 10), range(10, 12), range(3, 8)):
        block = fast.train(spec, data, noise, repeats=repeats)
        _same(block, full, repeats, exact=True)
    first = fast.train(spec, data, noise, repeats=range(0, 5))
    assert first.weights is not None and full.weights is not None
    for a, b in zip(first.weights, full.weights):  # the first block's repeat 0 is repeat 0
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_keras_engine_block_is_the_full_runs_slice(tiny):
    from search.engine import keras_ref

    spec, data = tiny
    small = spec_module.load(spec.source, ["study.repeats=3", "model.batch_size=8"])
    noise = parse_config_key("input+hidden_pre:0.2")
    full = keras_ref.train(small, data, noise)
    block = keras_ref.train(small, data, noise, repeats=range(1, 3))
    _same(block, full, range(1, 3), exact=False)
