"""Noise sites, placements and the expansion of a study's noise grid into configurations.

A *site* is one place noise enters training (docs/ARCHITECTURE.md, "Noise sites"); a
*placement* is a set of sites used together ("input+hidden_pre"); a
*configuration* is a placement with a σ for each of its sites. The baseline is
the empty placement, written "none".

The built-in MLP's sites are the members of :class:`Site`. A study whose model comes from a
builder (``model.builder``) names its own sites ("conv1"); those are plain strings. A ``Site``
is a ``str`` that compares and hashes like its value, so ``Site.INPUT`` and ``"input"`` are
the same key everywhere. The canonical order of a placement's sites is the built-in sites in
``Site`` order, then any others alphabetically: it follows from the names alone, so a key
read back from storage is the key that was written.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum


class Site(str, Enum):
    INPUT = "input"
    HIDDEN_PRE = "hidden_pre"
    HIDDEN_POST = "hidden_post"
    WEIGHTS = "weights"
    GRADIENTS = "gradients"
    TARGETS = "targets"


SiteName = Site | str  # a built-in site, or a site a model builder asked for
SITE_NAMES: tuple[str, ...] = tuple(s.value for s in Site)
KINDS: tuple[str, ...] = ("additive", "multiplicative")
BASELINE = "none"
# A builder's site name: it becomes part of keys ("conv1:0.1"), Optuna parameters (std_conv1),
# trial attributes (sigma_conv1) and Keras layer names, so none of + : , = or spaces.
SITE_NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def site_name(site: SiteName) -> str:
    return site.value if isinstance(site, Site) else str(site)


def is_site_name(name: object) -> bool:
    return (isinstance(name, str) and name != BASELINE
            and SITE_NAME_PATTERN.fullmatch(name) is not None)


def canonical_sites(names: Iterable[SiteName]) -> tuple[SiteName, ...]:
    """Built-in sites (as ``Site``) in ``Site`` order, then the others alphabetically."""
    given = {site_name(n) for n in names}
    others = sorted(n for n in given if n not in SITE_NAMES)
    return (*(s for s in Site if s.value in given), *others)


def parse_placement(text: str, allowed: Collection[str] | None = SITE_NAMES
                    ) -> tuple[SiteName, ...]:
    """"input+hidden_pre" -> (Site.INPUT, Site.HIDDEN_PRE), in the canonical site order.

    ``allowed``: the site names a placement may use (default: the built-in sites); None
    allows any site name. Raises ValueError naming the offending part; "none" is the empty
    placement.
    """
    if text == BASELINE:
        return ()
    parts = [p.strip() for p in text.split("+")]
    unknown = [p for p in parts if not is_site_name(p)
               or (allowed is not None and p not in allowed)]
    if unknown:
        raise ValueError(f"unknown site {unknown[0]!r} in placement {text!r}")
    if len(set(parts)) != len(parts):
        raise ValueError(f"placement {text!r} names a site twice")
    return canonical_sites(parts)


def placement_name(sites: Iterable[SiteName]) -> str:
    names = [site_name(s) for s in canonical_sites(sites)]
    return "+".join(names) if names else BASELINE


def format_std(value: float) -> str:
    """Short text that reads back as the same float: 0.1, 1, 1e-05."""
    short = format(float(value), "g")
    return short if float(short) == float(value) else repr(float(value))


@dataclass(frozen=True, order=True)
class NoiseConfig:
    """One point of the search: which sites get noise, and how much at each.

    ``sigmas`` pairs each site of the placement with its σ, in canonical site
    order; it is empty for the baseline.
    """

    sigmas: tuple[tuple[SiteName, float], ...]
    kind: str = "additive"

    @property
    def sites(self) -> tuple[SiteName, ...]:
        return tuple(site for site, _ in self.sigmas)

    @property
    def placement(self) -> str:
        return placement_name(self.sites)

    @property
    def is_baseline(self) -> bool:
        return not self.sigmas

    @property
    def shared_std(self) -> float | None:
        """The σ when every site has the same one (or 0.0 for the baseline), else None."""
        values = {sigma for _, sigma in self.sigmas}
        if not values:
            return 0.0
        return values.pop() if len(values) == 1 else None

    def std_value(self) -> float | dict[str, float]:
        """σ as results show it: a number, or site -> σ when the sites differ."""
        shared = self.shared_std
        if shared is not None:
            return shared
        return {site_name(site): sigma for site, sigma in self.sigmas}

    def sigma(self, site: SiteName) -> float:
        return dict(self.sigmas).get(site, 0.0)

    @property
    def key(self) -> str:
        """The name users type: "none", "hidden_pre:0.1", "input+weights:input=0.01,weights=0.1".
        """
        if self.is_baseline:
            return BASELINE
        shared = self.shared_std
        if shared is not None:
            return f"{self.placement}:{format_std(shared)}"
        parts = ",".join(f"{site_name(site)}={format_std(sigma)}" for site, sigma in self.sigmas)
        return f"{self.placement}:{parts}"


def baseline(kind: str = "additive") -> NoiseConfig:
    return NoiseConfig(sigmas=(), kind=kind)


def parse_config_key(key: str, kind: str = "additive",
                     allowed: Collection[str] | None = SITE_NAMES) -> NoiseConfig:
    """Inverse of NoiseConfig.key; raises ValueError with the reason. ``allowed`` as in
    parse_placement (None: any site name, for keys of builder studies)."""
    key = key.strip()
    if key == BASELINE:
        return baseline(kind)
    placement, sep, std_text = key.partition(":")
    if not sep:
        raise ValueError(f"expected PLACEMENT:STD (e.g. hidden_pre:0.1) or 'none', got {key!r}")
    sites = parse_placement(placement, allowed)
    if not sites:
        raise ValueError(f"'none' takes no σ, got {key!r}")
    if "=" in std_text:
        given: dict[str, float] = {}
        for item in std_text.split(","):
            name, _, value = item.partition("=")
            given[name.strip()] = float(value)
        if set(given) != {site_name(s) for s in sites}:
            raise ValueError(f"{key!r} must give a σ for each of its sites and no other")
        return NoiseConfig(tuple((s, given[site_name(s)]) for s in sites), kind)
    sigma = float(std_text)
    return NoiseConfig(tuple((s, sigma) for s in sites), kind)


def expand_grid(
    placements: Iterable[str],
    std: Iterable[float],
    site_std: Mapping[str, Iterable[float]],
    kind: str,
    allowed: Collection[str] | None = SITE_NAMES,
) -> list[NoiseConfig]:
    """Every configuration of a grid study, baseline first.

    Sites of a combined placement share one σ from ``std``; when ``site_std``
    gives a grid for some of them, each site takes its own grid (the
    placement's configurations are then the product of its sites' grids).
    """
    configs = [baseline(kind)]
    std = tuple(std)
    for placement in placements:
        sites = parse_placement(placement, allowed)
        if not sites:
            continue  # the baseline is always there, once
        if any(site_name(site) in site_std for site in sites):
            grids = [tuple(site_std.get(site_name(site), std)) for site in sites]
            for combo in itertools.product(*grids):
                configs.append(NoiseConfig(tuple(zip(sites, combo)), kind))
        else:
            for sigma in std:
                configs.append(NoiseConfig(tuple((site, sigma) for site in sites), kind))
    seen: set[NoiseConfig] = set()
    unique = []
    for config in configs:
        if config not in seen:
            seen.add(config)
            unique.append(config)
    return unique
