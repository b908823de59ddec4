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
studies; other study files still validate without TensorFlow. Once the data is loaded, and
before any storage is opened, the model is checked against the data (:func:`check_fits_data`):
one forward pass on a few training rows, its input and output shapes, and probabilities out
for classification.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from search import format as fmt
from search.errors import NoiseSearchError
from search.noise import NoiseConfig, is_site_name, site_name
from search.usercode import UserCodeError, call, load_function, load_tensorflow

if TYPE_CHECKING:
    from search.data import Dataset
    from search.spec import StudySpec

Problems = list[tuple[str, str]]


class NoiseSites:
    """The ``noise`` a builder is called with: ``noise(site)`` -> a Keras layer.

    ``sigmas`` are the configuration's σ per site (empty: every site is the identity).
    Active noise layers are seeded ``seed + 1``, ``seed + 2``, ... in the order the builder
    asks for them, as the built-in Keras engine seeds its noise layers, so repeat r's noise
    is the same draw in every configuration that puts noise on the same sites.
    ``repeat`` and ``study_seed`` say which repeat is being built, for builders that want
    them (initial weights of their own, say). ``layer``, if given, makes every site's layer
    instead, from (site, its σ or None if the site is off): the jax engine's noise layers
    (search.engine._replicas), one at every site, with σ a value the program is given.
    """

    def __init__(self, sigmas: Mapping[str, float], kind: str, seed: int | None = None,
                 repeat: int = 0, study_seed: int = 0,
                 layer: Callable[[str, float | None], Any] | None = None) -> None:
        self.sigmas = dict(sigmas)
        self.kind = kind
        self.seed = seed
        self.repeat = repeat
        self.study_seed = study_seed
        self.layer = layer
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
        if self.layer is not None:
            return self.layer(site, self.sigmas.get(site))
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
    load_tensorflow()
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
    load_tensorflow()
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


CHECK_ROWS = 64  # training rows of the check's forward pass: enough that a linear output
# is all but certain to leave [0, 1] somewhere, few enough to cost nothing
PROBABILITY_TOLERANCE = 1e-3  # float32 softmax rows sum to 1 within ~1e-6


def check_fits_data(spec: StudySpec, data: Dataset) -> None:
    """The builder's model against the data it will train on, before any storage is opened.

    Built with every site off, seeded by the study's seed, and called once on the first
    training rows: UserCodeError (one line naming the builder, what the model gives and what
    the data needs) if it takes rows of another shape, gives another number of outputs than
    the task needs (binary: 1, the probability of class 1; multiclass: one per class;
    regression: 1), or, for classification, outputs that are not probabilities (sigmoid /
    softmax): a multiclass model without softmax would otherwise train silently at chance.
    """
    load_tensorflow()
    import keras

    keras.utils.set_random_seed(spec.study.seed)  # the same model, so the same verdict
    model = build(spec, NoiseSites({}, spec.noise.kind))
    try:
        x = data.x_train[:CHECK_ROWS]
        _check_input(spec, model, x)
        out = call(lambda: model(x, training=False),
                   f"{_where(spec)}: its model, called on {len(x)} training rows of shape "
                   f"{_shape(x.shape[1:])},")
        if isinstance(out, (list, tuple, dict)):
            raise UserCodeError(f"{_where(spec)}: its model gives {len(out)} outputs (a "
                                f"{type(out).__name__}); the engine trains a model with one "
                                "output")
        pred = np.asarray(out, dtype=np.float64)
        _check_width(spec, data, pred)
        _check_probabilities(spec, data, pred, _last_activation(model))
    finally:
        keras.backend.clear_session()


def _shape(shape: tuple[Any, ...]) -> str:
    """(8, 8), (30,), (None, 8): plain numbers, as Python writes a tuple."""
    return str(tuple(None if d is None else int(d) for d in shape))


def _check_input(spec: StudySpec, model: Any, x: np.ndarray) -> None:
    try:
        inputs = list(model.inputs)
    except (AttributeError, ValueError):  # a subclassed or unbuilt model: the forward pass says
        return
    rows = _shape(x.shape[1:])
    if len(inputs) != 1:
        raise UserCodeError(f"{_where(spec)}: its model takes {len(inputs)} inputs; the data "
                            f"gives one array, rows of shape {rows}")
    takes = tuple(inputs[0].shape)[1:]
    fits = len(takes) == x.ndim - 1 and all(
        want is None or want == have for want, have in zip(takes, x.shape[1:]))
    if not fits:
        raise UserCodeError(f"{_where(spec)}: its model takes rows of shape {_shape(takes)}; "
                            f"the data's rows have shape {rows}: make its input "
                            f"keras.Input(shape={rows})")


def _the_data(data: Dataset) -> str:
    """What the data is, ending in a verb for what it needs."""
    if data.task == "regression":
        return "the data is for regression, which needs"
    binary = " (binary)" if data.task == "binary" else ""
    return f"the data has {data.n_classes} classes{binary}, which need"


def _last_layer(data: Dataset) -> str:
    if data.task == "binary":
        return 'Dense(1, activation="sigmoid")'
    if data.task == "multiclass":
        return f'Dense({data.n_classes}, activation="softmax")'
    return "Dense(1)"


def _check_width(spec: StudySpec, data: Dataset, pred: np.ndarray) -> None:
    per_row = pred.shape[1:]
    width = per_row[0] if len(per_row) == 1 else 1 if not per_row else None
    if width == data.n_outputs:
        return
    needs = {"binary": "1 output, the probability of class 1",
             "multiclass": f"{data.n_classes} outputs, a probability per class",
             "regression": "1 output, the predicted value"}[data.task]
    gives = (f"{width} output{'' if width == 1 else 's'} per row" if width is not None
             else f"outputs of shape {_shape(per_row)} per row")
    raise UserCodeError(f"{_where(spec)}: its model gives {gives}; {_the_data(data)} {needs}: "
                        f"end the model with {_last_layer(data)}")


def _last_activation(model: Any) -> str | None:
    """The activation of the layer that makes a functional or Sequential model's one output
    (None for a subclassed model: its layers are in no particular order)."""
    try:
        outputs = model.outputs
        activation = getattr(model.layers[-1], "activation", None)
    except (AttributeError, ValueError, IndexError):
        return None
    return getattr(activation, "__name__", None) if len(outputs) == 1 else None


def _check_probabilities(spec: StudySpec, data: Dataset, pred: np.ndarray,
                         activation: str | None) -> None:
    if data.task == "regression":
        return
    low, high = float(pred.min()), float(pred.max())
    sums = pred.reshape(len(pred), -1).sum(axis=1)
    inside = low >= -PROBABILITY_TOLERANCE and high <= 1 + PROBABILITY_TOLERANCE
    summing = data.task == "binary" or bool(np.all(np.abs(sums - 1) <= PROBABILITY_TOLERANCE))
    if inside and summing and activation != "linear":
        return
    seen = f"values from {fmt.number(low, 2)} to {fmt.number(high, 2)}"
    if data.task == "multiclass":
        seen += (f", rows summing to {fmt.number(float(sums.min()), 2)} to "
                 f"{fmt.number(float(sums.max()), 2)}")
    seen += f" on {len(pred)} training rows"
    if activation is not None:
        seen += f"; its last layer's activation is {activation}"
    what = "softmax" if data.task == "multiclass" else "a sigmoid"
    raise UserCodeError(f"{_where(spec)}: its model's outputs are not probabilities ({seen}); "
                        f"{_the_data(data)} {what} on the last layer: end the model with "
                        f"{_last_layer(data)}")
