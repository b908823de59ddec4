"""The SQL views: `noise_search_trials`, every trial as one flat row, and
`noise_search_robustness`, one row per trial and test σ of a [robustness] study; for `sqlite3`
and `psql`.

A trial of a [robustness] study also gets its corruption errors against the study's baseline
(the completed `none` trial) in `noise_search_trials`: `ce` and `relative_ce`, computed in SQL
from the stored mean profiles exactly as search.analysis.robustness.corruption_errors does
(the same error table, E_0 at test σ = 0 or else the clean test mean, NULL where undefined).

Optuna keeps what we record about a trial as key / JSON-text rows in
`trial_user_attributes`; the view pivots them into columns (placement, σ per
site, mean test metric, ...) so the database stays useful without our CLI. It
reads Optuna's tables live, so it only has to be (re)created when it is missing
or its definition changed; `refresh_view` is called whenever a study is opened
or a trial finishes and costs one catalogue lookup when nothing needs doing.

Creation is safe with many workers at once: on PostgreSQL the replacement runs
in one transaction under an advisory lock, on SQLite in one `BEGIN IMMEDIATE`
transaction (SQLite serialises writers), and each re-checks the definition once
it holds the lock, so the second worker finds the first one's view and does
nothing.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from search import metrics
from search.analysis.robustness import DEGRADATION_TOLERANCE
from search.noise import BASELINE, Site
from search.storage.locks import lock_in_transaction
from search.study import record

VIEW_NAME = "noise_search_trials"
# One row per (study, trial, configuration, test σ) of a study with [robustness]: the profile
# stored in the trial's ROBUSTNESS_ATTR, unnested.
ROBUSTNESS_VIEW = "noise_search_robustness"

# The trial user attributes the view shows, each a column of the same name, in view order;
# the type is the SQL type to cast to, None for text.
_COLUMNS: tuple[tuple[str, str | None], ...] = (
    (record.CONFIG_ATTR, None),
    (record.PLACEMENT_ATTR, None),
    *((record.sigma_attr(site), "REAL") for site in Site),
    (record.KIND_ATTR, None),
    (record.REPEATS_ATTR, "INTEGER"),
    (record.METRIC_ATTR, None),
    *((record.summary_attr("test", field), "REAL") for field in record.SUMMARY_FIELDS),
    (record.summary_attr("train", "mean"), "REAL"),
    (record.DURATION_ATTR, "REAL"),
    (record.FAILURE_ATTR, None),
    (record.summary_attr("robust", "mean"), "REAL"),  # [robustness]: the robust score
    (record.PRUNED_REASON_ATTR, None),  # racing stopped it (state PRUNED): why
)
# The numbers of each ROBUSTNESS_ATTR entry the robustness view shows, with their SQL types.
_PROFILE_FIELDS = (("test_std", "REAL"), ("n", "INTEGER"), ("mean", "REAL"), ("sd", "REAL"),
                   ("ci_low", "REAL"), ("ci_high", "REAL"))

_COMMENT_PREFIX = "noise-search view "
log = logging.getLogger("noise_search")


def _extract(column: str, sql_type: str | None, dialect: str) -> str:
    """SQL for the scalar in a JSON-text column, as text or as ``sql_type``."""
    if dialect == "postgresql":
        # #>> '{}' is ->> for a top-level scalar: the JSON value as text, NULL for null.
        text = f"(CAST({column} AS JSON) #>> '{{}}')"
        numeric = {"REAL": "DOUBLE PRECISION", "INTEGER": "INTEGER"}
    else:
        text = f"json_extract({column}, '$')"
        numeric = {"REAL": "REAL", "INTEGER": "INTEGER"}
    if sql_type is None:
        return text
    # Python's json writes NaN / Infinity, which are not JSON (PostgreSQL would reject the
    # whole query); we never store them, but a value written by other code must not break it.
    return (f"CASE WHEN {column} IN ('NaN', 'Infinity', '-Infinity') THEN NULL "
            f"ELSE CAST({text} AS {numeric[sql_type]}) END")


def view_sql(dialect: str) -> str:
    """The SELECT behind the view, for ``dialect`` ("sqlite" or "postgresql")."""
    pivot = ",\n".join(
        f"    MAX(CASE WHEN key = '{name}' THEN value_json END) AS {name}" for name, _ in _COLUMNS)
    columns = ",\n".join(f"  {_extract(f'a.{name}', sql_type, dialect)} AS {name}"
                         for name, sql_type in _COLUMNS)
    keys = ", ".join(f"'{name}'" for name, _ in _COLUMNS)
    spec = record.SPEC_ATTR  # a noise-search study is one with a stored spec
    return f"""{_corruption_sql(dialect)}
SELECT
  s.study_name AS study_name,
  t.number AS trial_number,
  CAST(t.state AS TEXT) AS state,
{columns},
  ce.ce AS ce,
  ce.relative_ce AS relative_ce,
  t.datetime_start AS datetime_start,
  t.datetime_complete AS datetime_complete
FROM trials t
JOIN studies s ON s.study_id = t.study_id
LEFT JOIN (
  SELECT trial_id,
{pivot}
  FROM trial_user_attributes
  WHERE key IN ({keys})
  GROUP BY trial_id
) a ON a.trial_id = t.trial_id
LEFT JOIN corruption ce ON ce.trial_id = t.trial_id
WHERE EXISTS (
  SELECT 1 FROM study_user_attributes u WHERE u.study_id = s.study_id AND u.key = '{spec}'
)"""


def _error(metric: str, value: str) -> str:
    """SQL for the metric ``value`` as an error (its error form in search.metrics); NULL for
    another metric."""
    # The metrics taken as 1 − value first: the order the view was first written in, so that
    # its definition (and the fingerprint that says it is current) stays the same.
    forms = sorted(metrics.METRICS.values(), key=lambda m: -m.error_offset)
    cases = " ".join(f"WHEN '{m.name}' THEN {m.error_offset!r} + {m.error_sign!r} * {value}"
                     for m in forms)
    return f"CASE {metric} {cases} END"


def _corruption_sql(dialect: str) -> str:
    """The WITH clause of `noise_search_trials`: ``corruption`` (trial_id, ce, relative_ce).

    ``points`` is one row per trial and test σ, the mean metric as an error, with the trial's
    E_0 (the error at test σ = 0, else of the clean test mean); ``baseline`` is each study's
    completed baseline trial (the last one, as `results` takes it); the ratios are over the
    σ > 0 points, NULL unless the denominator is positive (beyond rounding, for the relative
    CE), as in robustness.corruption_errors.
    """
    if dialect == "postgresql":
        element, find = "e.v", "strpos"
        unnest = "CROSS JOIN LATERAL json_array_elements(CAST(r.value_json AS JSON)) AS e(v)"
    else:
        element, find = "e.value", "instr"
        unnest = "CROSS JOIN json_each(r.value_json) AS e"
    metric = _extract("m.value_json", None, dialect)
    clean = _extract("c.value_json", "REAL", dialect)
    config = _extract("k.value_json", None, dialect)
    test_std = _profile_field(element, "test_std", "REAL", dialect)
    mean = _profile_field(element, "mean", "REAL", dialect)
    tolerance = repr(DEGRADATION_TOLERANCE)
    return f"""WITH profile AS (
  SELECT t.trial_id, t.study_id, {metric} AS metric, {test_std} AS test_std,
         {mean} AS mean, {clean} AS clean
  FROM trials t
  JOIN trial_user_attributes r ON r.trial_id = t.trial_id AND r.key = '{record.ROBUSTNESS_ATTR}'
   AND {find}(r.value_json, 'NaN') = 0 AND {find}(r.value_json, 'Infinity') = 0
  JOIN trial_user_attributes m ON m.trial_id = t.trial_id AND m.key = '{record.METRIC_ATTR}'
  LEFT JOIN trial_user_attributes c ON c.trial_id = t.trial_id
   AND c.key = '{record.summary_attr("test", "mean")}'
  {unnest}
), points AS (
  SELECT p.trial_id, p.study_id, p.test_std, {_error("p.metric", "p.mean")} AS err,
         COALESCE((SELECT {_error("z.metric", "z.mean")} FROM profile z
                   WHERE z.trial_id = p.trial_id AND z.test_std = 0),
                  {_error("p.metric", "p.clean")}) AS e0
  FROM profile p
), baseline AS (
  SELECT t.study_id, MAX(t.trial_id) AS trial_id
  FROM trials t
  JOIN trial_user_attributes k ON k.trial_id = t.trial_id AND k.key = '{record.CONFIG_ATTR}'
  WHERE CAST(t.state AS TEXT) = 'COMPLETE' AND {config} = '{BASELINE}'
  GROUP BY t.study_id
), corruption AS (
  SELECT p.trial_id,
         CASE WHEN SUM(b.err) > 0 THEN SUM(p.err) / SUM(b.err) END AS ce,
         CASE WHEN SUM(b.err - b.e0) > {tolerance} * (SUM(ABS(b.err)) + SUM(ABS(b.e0)))
              THEN SUM(p.err - p.e0) / SUM(b.err - b.e0) END AS relative_ce
  FROM points p
  JOIN baseline bt ON bt.study_id = p.study_id
  JOIN points b ON b.trial_id = bt.trial_id AND b.test_std = p.test_std
  WHERE p.test_std > 0
  GROUP BY p.trial_id
)"""


def _profile_field(element: str, name: str, sql_type: str, dialect: str) -> str:
    if dialect == "postgresql":
        numeric = {"REAL": "DOUBLE PRECISION", "INTEGER": "INTEGER"}[sql_type]
        return f"CAST({element} ->> '{name}' AS {numeric})"
    return f"CAST(json_extract({element}, '$.{name}') AS {sql_type})"


def robustness_view_sql(dialect: str) -> str:
    """The SELECT behind the robustness view: each trial's profile entries as rows."""
    if dialect == "postgresql":
        element = "e.v"
        unnest = ("CROSS JOIN LATERAL json_array_elements(CAST(r.value_json AS JSON)) "
                  "AS e(v)")
        config = "(CAST(c.value_json AS JSON) #>> '{}')"
    else:
        element, unnest = "e.value", "CROSS JOIN json_each(r.value_json) AS e"
        config = "json_extract(c.value_json, '$')"
    fields = ",\n".join(f"  {_profile_field(element, name, sql_type, dialect)} AS {name}"
                        for name, sql_type in _PROFILE_FIELDS)
    return f"""SELECT
  s.study_name AS study_name,
  t.number AS trial_number,
  CAST(t.state AS TEXT) AS state,
  {config} AS config,
{fields}
FROM trials t
JOIN studies s ON s.study_id = t.study_id
JOIN trial_user_attributes r ON r.trial_id = t.trial_id AND r.key = '{record.ROBUSTNESS_ATTR}'
LEFT JOIN trial_user_attributes c ON c.trial_id = t.trial_id AND c.key = '{record.CONFIG_ATTR}'
{unnest}
WHERE EXISTS (
  SELECT 1 FROM study_user_attributes u WHERE u.study_id = s.study_id
  AND u.key = '{record.SPEC_ATTR}'
)"""


def _views(dialect: str) -> list[tuple[str, str]]:
    """Every view as (name, SELECT); created and replaced together."""
    return [(VIEW_NAME, view_sql(dialect)), (ROBUSTNESS_VIEW, robustness_view_sql(dialect))]


def _fingerprint(select: str) -> str:
    return _COMMENT_PREFIX + hashlib.sha256(select.encode()).hexdigest()[:16]


def _create_sqlite(name: str, select: str) -> str:
    return f"CREATE VIEW {name} AS\n{select}"


def _is_current(conn: sa.Connection, dialect: str, views: list[tuple[str, str]]) -> bool:
    return all(_view_is_current(conn, dialect, name, select) for name, select in views)


def _view_is_current(conn: sa.Connection, dialect: str, name: str, select: str) -> bool:
    if dialect == "postgresql":
        stored = conn.exec_driver_sql(
            "SELECT obj_description(c.oid, 'pg_class') FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            f"WHERE c.relname = '{name}' AND c.relkind = 'v' "
            "AND n.nspname = current_schema()").scalar()
        return stored == _fingerprint(select)
    stored = conn.exec_driver_sql(
        f"SELECT sql FROM sqlite_master WHERE type = 'view' AND name = '{name}'").scalar()
    return stored == _create_sqlite(name, select)


def ensure_view(engine: sa.Engine, force: bool = False) -> bool:
    """Create or replace the view unless it is already current. Returns whether it was written.

    Raises SQLAlchemyError (and ValueError for a database other than SQLite or PostgreSQL).
    """
    dialect = engine.dialect.name
    if dialect not in ("sqlite", "postgresql"):
        raise ValueError(f"the {VIEW_NAME} view supports sqlite and postgresql, not {dialect}")
    views = _views(dialect)
    if not force:
        with engine.connect() as conn:
            if _is_current(conn, dialect, views):
                return False
    if dialect == "postgresql":
        return _replace_postgresql(engine, views, force)
    return _replace_sqlite(engine, views, force)


def _replace_postgresql(engine: sa.Engine, views: list[tuple[str, str]], force: bool) -> bool:
    with engine.begin() as conn:
        # A reader in a long transaction holds a lock on the view; give up rather than stall
        # the worker (the caller warns, the next trial tries again).
        conn.exec_driver_sql("SET LOCAL lock_timeout = '10s'")
        # Concurrent CREATE / DROP of one view can fail on PostgreSQL's catalogue ("tuple
        # concurrently updated", duplicate pg_type row); the lock makes workers take turns.
        lock_in_transaction(conn, f"view:{VIEW_NAME}")
        if not force and _is_current(conn, "postgresql", views):
            return False
        # DROP + CREATE, not CREATE OR REPLACE: a new version may change or drop columns,
        # which CREATE OR REPLACE refuses. Readers see the old or the new view, never none.
        for name, select in views:
            conn.exec_driver_sql(f"DROP VIEW IF EXISTS {name}")
            conn.exec_driver_sql(f"CREATE VIEW {name} AS\n{select}")
            conn.exec_driver_sql(f"COMMENT ON VIEW {name} IS '{_fingerprint(select)}'")
    return True


def _replace_sqlite(engine: sa.Engine, views: list[tuple[str, str]], force: bool) -> bool:
    # Python's sqlite3 does not open a transaction for DDL by itself; in AUTOCOMMIT mode we
    # issue BEGIN IMMEDIATE ourselves, so DROP and CREATE happen as one write-locked step.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            if not force and _is_current(conn, "sqlite", views):
                conn.exec_driver_sql("ROLLBACK")
                return False
            for name, select in views:
                conn.exec_driver_sql(f"DROP VIEW IF EXISTS {name}")
                conn.exec_driver_sql(_create_sqlite(name, select))
            conn.exec_driver_sql("COMMIT")
        except BaseException:
            conn.exec_driver_sql("ROLLBACK")
            raise
    return True


def refresh_view(storage: Any) -> None:
    """Make sure the view exists in the storage's database; never fails the caller.

    The view is a convenience next to the study, so a failure to create it (an
    unsupported database, a lock held too long) is reported on stderr and the
    study goes on; the next call tries again.
    """
    engine = getattr(storage, "engine", None)
    if not isinstance(engine, sa.Engine) or engine.dialect.name not in ("sqlite", "postgresql"):
        return  # not an SQL database we know: nothing to do
    try:
        ensure_view(engine)
    except SQLAlchemyError as exc:
        from search.storage import mask_password

        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        log.warning("noise-search: could not create the SQL view %s: %s", VIEW_NAME,
                    mask_password(reason))
