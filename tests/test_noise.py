from __future__ import annotations

import pytest

from search.noise import NoiseConfig, Site, parse_config_key, parse_placement


@pytest.mark.parametrize("key", ["none", "hidden_pre:0.1", "input+hidden_pre:0.005",
                                 "input+weights:input=0.01,weights=0.2", "targets:1e-05"])
def test_config_keys_round_trip(key):
    config = parse_config_key(key)
    assert config.key == key
    assert parse_config_key(config.key) == config


def test_placement_order_is_canonical():
    assert parse_placement("hidden_pre+input") == (Site.INPUT, Site.HIDDEN_PRE)
    assert parse_config_key("hidden_pre+input:0.1").key == "input+hidden_pre:0.1"


@pytest.mark.parametrize("bad", ["hidden:0.1", "input", "input:abc", "none:0.1",
                                 "input+weights:input=0.1"])
def test_bad_config_keys(bad):
    with pytest.raises(ValueError):
        parse_config_key(bad)


def test_std_value():
    shared = NoiseConfig(((Site.INPUT, 0.1), (Site.HIDDEN_PRE, 0.1)))
    assert shared.std_value() == 0.1
    mixed = NoiseConfig(((Site.INPUT, 0.1), (Site.HIDDEN_PRE, 0.2)))
    assert mixed.std_value() == {"input": 0.1, "hidden_pre": 0.2}
