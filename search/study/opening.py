"""Create a study, or resume it only from the spec it was created from."""

from __future__ import annotations

import warnings

import optuna

from search import spec as spec_module
from search.engine._common import ENGINE_VERSION
from search.errors import StudyError
from search.spec import StudySpec
from search.storage import retrying, study_lock
from search.study import record

optuna.logging.set_verbosity(optuna.logging.WARNING)


def open_study(spec: StudySpec, storage: optuna.storages.RDBStorage) -> optuna.Study:
    """Create the study, or load it and refuse if it was made from a different spec.

    Under the study lock: workers that start together create it, and store its spec, once.
    """
    def locked() -> optuna.Study:
        with study_lock(storage, spec.study.name):
            return _open_study(spec, storage)

    return retrying(locked, f"opening study {spec.study.name!r}")


def _describe(study: optuna.Study, spec: StudySpec) -> None:
    for key, value in record.StudyMeta.from_spec(spec, ENGINE_VERSION).to_attrs().items():
        study.set_user_attr(key, value)
    _name_objectives(study, spec)


def objective_names(spec: StudySpec) -> list[str]:
    """What Optuna is told, by name (record.TrialRecord.objective_value): optuna-dashboard
    shows these instead of "Objective 0"."""
    clean, robust = f"mean test {spec.metric}", f"robust {spec.metric}"
    return {"clean": [clean], "robust": [robust], "both": [clean, robust]}[spec.study.objective]


def _name_objectives(study: optuna.Study, spec: StudySpec) -> None:
    """Name the study's objectives, unless they have these names already (a study created
    before they were named gets them when it is next opened)."""
    names = objective_names(spec)
    if study.metric_names == names:
        return
    with warnings.catch_warnings():
        # set_metric_names is experimental in Optuna; the warning says so to every user.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(names)


def _open_study(spec: StudySpec, storage: optuna.storages.RDBStorage) -> optuna.Study:
    name = spec.study.name
    direction = (optuna.study.StudyDirection.MAXIMIZE if spec.direction == "maximize"
                 else optuna.study.StudyDirection.MINIMIZE)
    # objective = "both": a multi-objective study (clean metric, robust score), same direction.
    directions = [direction] * (2 if spec.study.objective == "both" else 1)
    try:
        study = optuna.create_study(study_name=name, storage=storage, directions=directions)
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=storage)
        if not study.user_attrs and not study.get_trials(deepcopy=False):
            _describe(study, spec)  # its creator died before storing its spec: adopt it
        else:
            _check_resumable(study, spec)
            _name_objectives(study, spec)
        return study
    _describe(study, spec)
    return study


def _check_resumable(study: optuna.Study, spec: StudySpec) -> None:
    """Refuse a study that another spec or engine version made; follow a resumable change."""
    name = spec.study.name
    meta = record.StudyMeta.read(study)
    if meta is None:
        raise StudyError(f"study {name!r} exists but was not created by noise-search; "
                               "choose another name with --study-name")
    current = spec.to_dict()
    diffs = spec_module.differences(meta.spec, current)
    if diffs:
        raise StudyError(
            f"study {name!r} was created from a different spec: {'; '.join(diffs[:3])}"
            + (f" (+{len(diffs) - 3} more)" if len(diffs) > 3 else "")
            + "; results would mix. Run it as stored, or start a new study with --study-name")
    if meta.engine_version != ENGINE_VERSION:
        raise StudyError(
            f"study {name!r} was run by engine version {meta.engine_version} and this is "
            f"version {ENGINE_VERSION}, whose random streams differ; results would mix. Start a "
            "new study with --study-name")
    if meta.spec != current:
        # Only resumable keys differ (a sampler's n_trials): the stored spec, and with it the
        # study's total, follows the file.
        study.set_user_attr(record.SPEC_ATTR, current)
