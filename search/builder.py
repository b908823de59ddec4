"""Your own Keras model, with the places noise may go marked by the model itself.

``[model] builder = "models/digits_cnn.py:build"`` names a function ``build(noise)`` that
returns an uncompiled ``keras.Model``. ``noise`` is a :class:`NoiseSites`: ``noise("conv1")``
returns a Keras layer for the site ``conv1`` -- the identity, unless the configuration
being trained puts noise there; then Gaussian noise of that configuration's σ, additive
(``GaussianNoise``) or multiplicative (``GaussianDropout``) per ``noise.kind``, active in
training only. The engine (engine/keras_builder.py) compiles and trains the model.

A study file is checked against its builder once, when it is loaded: the model is built
with every site off, and the sites it asked for must include every site the placements and
``noise.site_std`` name (:func:`site_problems`). Keras is imported only here, for builder
studies; other study files still validate without TensorFlow.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from search.errors import NoiseSearchError
from search.noise import NoiseConfig, is_site_name, site_name
from search.usercode import UserCodeError, call, load_function

if TYPE_CHECKING:
    from search.spec import StudySpec

Problems = list[tuple[str, str]]


class NoiseSites:
    """The ``noise`` a builder is called with: ``noise(site)`` -> a Keras layer.

    ``sigmas`` are the configuration's σ per site (empty: every site is the identity).
    Active noise layers are seeded ``seed + 1``, ``seed + 2``, ... in the order the builder
    asks for them, as the built-in Keras engine seeds its noise layers, so repeat r's noise
    is the same draw in every configuration that puts noise on the same sites.
    ``repeat`` and ``study_seed`` say which repeat is being built, for builders that want
    them (initial weights of their own, say).
    """

    def __init__(self, sigmas: Mapping[str, float], kind: str, seed: int | None = None,
                 repeat: int = 0, study_seed: int = 0) -> None:
        self.sigmas = dict(sigmas)
        self.kind = kind
        self.seed = seed
        self.repeat = repeat
        self.study_seed = study_seed
        self.asked: list[str] = []
        self._active = 0

    def __call__(self, site: str) -> Any:
        import keras

        if not is_site_name(site):
            raise NoiseSearchError(f"noise({site!r}): a site name is letters, digits and _ "
                                   "(not starting with a digit, not 'none')")
        if site in self.asked:
            raise NoiseSearchError(f"noise({site!r}) asked for twice: each site is one place "
                                   "in the model (name the places apart: conv1, conv2)")
        self.asked.append(site)
        sigma = self.sigmas.get(site, 0.0)
        if site not in self.sigmas:
            return keras.layers.Identity(name=f"noise_{site}")
        self._active += 1
        layer_seed = None if self.seed is None else self.seed + self._active
        from search.engine.keras_ref import noise_layer

        return noise_layer(sigma, self.kind, layer_seed, name=f"noise_{site}")


def _where(spec: StudySpec) -> str:
    return f"{spec.source}: 'model.builder' {spec.model.builder!r}"


def build(spec: StudySpec, noise: NoiseSites) -> Any:
    """Call the builder; UserCodeError unless it returns a keras.Model."""
    import keras

    assert spec.model.builder is not None
    function = load_function(spec.source, "model.builder", spec.model.builder)
    try:
        model = call(function, _where(spec), noise)
    except UserCodeError:
        raise
    except NoiseSearchError as exc:  # noise() refused a site: say which builder asked
        raise UserCodeError(f"{_where(spec)}: {exc}") from None
    if not isinstance(model, keras.Model):
        raise UserCodeError(f"{_where(spec)} must return a keras.Model (uncompiled); got "
                            f"{type(model).__module__}.{type(model).__qualname__}")
    return model


def for_config(config: NoiseConfig, seed: int | None = None, repeat: int = 0,
               study_seed: int = 0) -> NoiseSites:
    sigmas = {site_name(site): sigma for site, sigma in config.sigmas}
    return NoiseSites(sigmas, config.kind, seed, repeat, study_seed)


_DECLARED: dict[tuple[str, str, int], tuple[str, ...]] = {}


def declared_sites(spec: StudySpec) -> tuple[str, ...]:
    """The sites the builder asks for, in its order: it is built once, every site off.

    Remembered per file and modification time, so that loading a study file twice (a report,
    a resumed run) does not build it again.
    """
    import keras

    from search.usercode import resolve

    assert spec.model.builder is not None
    path, _ = resolve(spec.source, spec.model.builder)
    stamp = path.stat().st_mtime_ns if path.is_file() else 0
    key = (str(path.resolve()), spec.model.builder, stamp)
    if key not in _DECLARED:
        noise = NoiseSites({}, spec.noise.kind)
        build(spec, noise)
        keras.backend.clear_session()
        _DECLARED[key] = tuple(noise.asked)
    return _DECLARED[key]


def site_problems(spec: StudySpec, declared: tuple[str, ...]) -> Problems:
    """Sites the study file names that the builder never asks for."""
    asked = ", ".join(declared) if declared else "no site: it never calls noise(...)"
    tail = f"that {spec.model.builder} never asks for (it asks for: {asked})"
    for placement in spec.noise.placements:
        missing = [site for site in placement.split("+") if site not in declared]
        if missing:
            return [("noise.placements", f"names site {missing[0]!r} {tail}; got placement "
                                         f"{placement!r}")]
    for site, _ in spec.noise.site_std:
        if site not in declared:
            return [(f"noise.site_std.{site}", f"names a site {tail}")]
    return []
