"""The `noise-search` command: parse, call the library, print. ``main(argv) -> int``.

Every NoiseSearchError becomes one line on stderr and exit code 2; a usage
error is click's message and exit code 2; an interrupted run exits 130.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import traceback
from pathlib import Path
from typing import Any

import click

from search import format as fmt_
from search.errors import DEBUG_ENV, NoiseSearchError, debugging
from search.interrupts import sigterm_as_interrupt

# TensorFlow's C++ start-up chatter (no GPU found, oneDNN notes) is not for users; this must be
# set before TensorFlow is first imported.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

STORAGE_HELP = (
    "Database URL of the study storage (default: $NOISE_SEARCH_STORAGE, else "
    "sqlite:///noise-search.db in the working directory)."
)


# Each command's line in the top-level --help is a whole phrase (click would cut a long first
# sentence mid-phrase): short_help where the docstring's first sentence is long.
@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="noise-search", prog_name="noise-search")
@click.option("--debug", is_flag=True,
              help="Show what is normally hidden: TensorFlow's start-up messages and the "
                   "traceback behind an error.")
def cli(debug: bool) -> None:
    """Find where to inject noise while training a neural network, and how much."""
    if debug:  # an environment variable, so that worker processes inherit it
        os.environ[DEBUG_ENV] = "1"


def _engines_epilog() -> str:
    """`run --help`'s list of engines (study.engine), from the engines' own declarations."""
    from search import engine

    lines = engine.described().splitlines()
    # \b: click keeps the paragraph's line breaks.
    return "\b\nEngines (study.engine in the study file, or --set study.engine=NAME):\n" + \
        "\n".join(f"  {line}" for line in lines)


@cli.command(epilog=_engines_epilog())
@click.argument("study_file", type=click.Path(path_type=Path, dir_okay=True))
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Override a key of the study file; VALUE is parsed as TOML. Repeatable.")
@click.option("--storage", default=None, help=STORAGE_HELP)
@click.option("--study-name", default=None, help="Study name (default: study.name of the file).")
@click.option("--quiet", is_flag=True, help="No progress bar, only the final summary.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes on this machine sharing the study.")
def run(study_file: Path, overrides: tuple[str, ...], storage: str | None,
        study_name: str | None, quiet: bool, workers: int) -> int:
    """Run (or resume) the study described by STUDY_FILE."""
    from search import api
    from search.storage import resolve_url

    url = resolve_url(storage)

    def lines(spec: Any, study: Any, data: Any) -> _ProgressLines:
        return _ProgressLines(spec, study, url, quiet, data)

    # search.run validates everything the file says before touching storage or TensorFlow;
    # the summary (_ProgressLines.finished) comes before the figures are saved.
    api.run(study_file, list(overrides), url, study_name, workers, quiet, reporter=lines)
    return 0


def _count(n: int, noun: str) -> str:
    """1 repeat, 5 repeats."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


class _ProgressLines:
    """The run's header, its progress bar on stderr and one line per finished configuration."""

    def __init__(self, spec: Any, study: Any, url: str, quiet: bool, data: Any) -> None:
        from tqdm import tqdm

        from search import workload
        from search.api import study_progress
        from search.storage import mask_password

        progress = study_progress(study)
        total = progress.total
        click.echo(f"study {spec.study.name!r} in {mask_password(url)}: {progress.done} of "
                   f"{total} configurations done, {_count(spec.study.repeats, 'repeat')} each, "
                   f"{_count(spec.model.epochs, 'epoch')}, engine {spec.study.engine}"
                   + _noise_cost(workload.estimate(spec, total, len(data.x_train),
                                                   len(data.x_test))))
        self.spec, self.study, self.quiet = spec, study, quiet
        self.bar = tqdm(total=total, initial=progress.done, unit="config", disable=quiet,
                        dynamic_ncols=True, file=sys.stderr)
        self.baseline: float | None = None

    def close(self) -> None:
        self.bar.close()

    def finished(self, results: Any) -> None:
        _print_summary(results, self.spec.study.repeats if self.spec.racing is not None
                       else None)

    def warn(self, message: str) -> None:
        click.echo(f"noise-search: warning: {message}", err=True)

    def saved_figures(self, count: int) -> None:
        if not self.quiet:
            click.echo(f"saved {count} figures and a summary note for optuna-dashboard "
                       f"(noise-search dashboard)")

    def done(self, outcome: Any) -> None:
        from optuna.trial import TrialState

        key = outcome.config.key
        # A raced block may close a round that stops other configurations too: each is done.
        self.bar.update(outcome.configurations_done)
        if self.quiet:
            return
        for stopped in outcome.others_stopped:
            self.bar.write(f"  {stopped.key:<28} stopped: {stopped.reason}")
        if outcome.state == TrialState.PRUNED:
            self.bar.write(f"  {key:<28} stopped: {outcome.failure}")
            return
        if outcome.summary is None:
            self.bar.write(f"  {key:<28} FAILED: {outcome.failure}")
            return
        self._measured(outcome)

    def _measured(self, outcome: Any) -> None:
        """The line of a measured configuration (a raced one: so far, more seeds to come)."""
        from optuna.trial import TrialState

        from search.storage import retrying
        from search.study.record import stored_baseline_mean

        s = outcome.summary
        if outcome.config.is_baseline:
            self.baseline = s.mean
        elif self.baseline is None:  # it finished in an earlier run, or has not yet
            self.baseline = retrying(
                lambda: stored_baseline_mean(self.study.get_trials(deepcopy=False)),
                "reading the baseline")
        # The baseline's own line has no Δ: it is what the others are compared with.
        delta = (f"  Δ {fmt_.signed(s.mean - self.baseline)} vs baseline"
                 if self.baseline is not None and not outcome.config.is_baseline else "")
        seeds = (f"n={s.n} of {self.spec.study.repeats} so far, racing"
                 if outcome.state == TrialState.WAITING else f"n={s.n}")
        self.bar.write(f"  {outcome.config.key:<28} test {self.spec.metric} "
                       f"{fmt_.number(s.mean)} ± {fmt_.number(s.sd)} "
                       f"(95% CI {fmt_.ci(s.ci_low, s.ci_high)}, {seeds}){delta}  "
                       f"[{outcome.seconds:.1f} s]")


def _noise_cost(work: Any) -> str:
    """The header's word on a [robustness] evaluation that outweighs the training it states
    (search.workload); "" when it does not."""
    if not work.heavy:
        return ""
    certify = (f" + {work.certify_draws} certification draws" if work.certify_draws else "")
    ratio = work.noisy_passes / max(work.train_passes, 1)
    return (f"; then test-time noise: {fmt_.count(work.noisy_passes)} forward passes "
            f"({work.configurations} configurations × {_count(work.repeats, 'repeat')} × "
            f"{work.test_points} test points × ({work.sigmas} test σ × "
            f"{_count(work.draws, 'draw')}{certify})), {ratio:.0f} times the training's "
            f"{fmt_.count(work.train_passes)}")


def _print_summary(results: Any, race_maximum: int | None = None) -> None:
    """The run's last lines: the best configuration, and with racing what it saved
    (``race_maximum``: study.repeats of a racing study)."""
    completed = results.completed
    baseline = results.baseline
    if not completed:
        click.echo("no configuration has completed yet")
        return
    best = completed[0]
    line = (f"best: {best['config']} test {results.metric} {fmt_.number(best['mean'])} "
            f"(95% CI {fmt_.ci(best['ci_low'], best['ci_high'])})")
    if baseline is not None and best is not baseline:
        line += f"; baseline {fmt_.number(baseline['mean'])}, Δ {fmt_.signed(best['diff'])}"
    elif best is baseline:
        line += "; no noise configuration beats the baseline"
    click.echo(line)
    if race_maximum is not None:
        stopped = sum(r["state"] == "PRUNED" for r in results.rows)
        trained = sum(r["n"] or 0 for r in results.rows)
        click.echo(f"{fmt_.racing_seeds(trained, race_maximum * len(results.rows))}; "
                   f"{stopped} of {len(results.rows)} configurations stopped early")
    click.echo(f"see all: noise-search results {shlex.quote(fmt_.name(results.study))}")


@cli.command(short_help="Results of a study: one row per configuration, best first.")
@click.argument("study_name")
@click.option("--storage", default=None, help=STORAGE_HELP)
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True)
@click.option("--with-recommendation", is_flag=True,
              help="With --format json: an object with the rows and the recommendation "
                   "(configuration, decision and the numbers it rests on) instead of the "
                   "list of rows.")
@click.option("--wide", is_flag=True,
              help="Every column in one table, however wide (default: fit the terminal's "
                   "width, $COLUMNS, moving columns that do not fit to further blocks).")
def results(study_name: str, storage: str | None, fmt: str, with_recommendation: bool,
            wide: bool) -> int:
    """Results of STUDY_NAME, one row per configuration, best first, compared with the baseline.
    """
    from search import api

    if with_recommendation and fmt != "json":
        raise click.UsageError("--with-recommendation needs --format json")
    res = api.open_study(study_name, storage).results()
    if fmt == "json":
        click.echo(res.to_json(with_recommendation))
        return 0
    if fmt == "csv":
        click.echo(res.to_csv(), nl=False)
        return 0
    click.echo(_results_header(res))
    columns = fmt_.RESULTS_COLUMNS + fmt_.robust_columns(res.has_robustness, res.objective)
    _echo_table(fmt_.summary_table(res.rows, res.metric, columns), wide)
    click.echo(fmt_.TABLE_NOTE)
    needed = fmt_.seeds_needed_note(res.rows)
    if needed:
        click.echo(needed)
    if res.has_robustness:
        click.echo(fmt_.ROBUST_NOTE)
    stopped = [r for r in res.rows if r["pruned_reason"]]
    if stopped:
        click.echo("stopped by racing (state pruned):")
        for row in stopped:
            click.echo(f"  {row['config']}: {row['pruned_reason']}")
    click.echo(res.recommendation.text)
    return 0


def _echo_table(table: list[list[str]], wide: bool) -> None:
    """The results table, cut into blocks that fit the terminal unless ``wide``; then a blank
    line."""
    tables, note = [table], None
    if not wide:
        width = shutil.get_terminal_size().columns  # $COLUMNS first; 80 when not a terminal
        cut = fmt_.blocks(table, width, fmt_.RESULTS_KEYS)
        tables, note = cut.tables, cut.note(width)
    for block in tables:
        for line in fmt_.aligned(block):
            click.echo(line)
        click.echo("")
    if note:
        click.echo(note)


def _results_header(res: Any) -> str:
    """The first line of `results`: how far the study is."""
    diverged = f", {res.progress.diverged} diverged" if res.progress.diverged else ""
    total = res.total
    if res.progress.pruned:  # a race: stopped configurations are done too
        return (f"study {res.study!r}: {res.progress.done} of {total} configurations done "
                f"({len(res.completed)} complete, {res.progress.pruned} stopped by racing"
                f"{diverged}) ({res.direction} {res.metric})")
    return (f"study {res.study!r}: {len(res.completed)} of {total} configurations "
            f"complete{diverged} ({res.direction} {res.metric})")


@cli.command()
@click.argument("study_name")
@click.argument("config_a")
@click.argument("config_b")
@click.option("--storage", default=None, help=STORAGE_HELP)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
def compare(study_name: str, config_a: str, config_b: str, storage: str | None,
            fmt: str) -> int:
    """Compare two configurations of STUDY_NAME (A − B).

    For example: noise-search compare circles hidden_pre:0.1 none
    """
    from search import api

    pair = api.open_study(study_name, storage).compare(config_a, config_b)
    if fmt == "json":
        click.echo(pair.to_json())
        return 0
    c, paired = pair.unpaired, pair.paired
    a, b = pair.a["config"], pair.b["config"]
    width = max(len(a), len(b))
    click.echo(f"study {pair.study!r}: test {pair.metric} ({pair.direction}), A = {a}, B = {b}")
    for label, row in (("A", pair.a), ("B", pair.b)):
        click.echo(f"  {label} {row['config']:<{width}}  mean {fmt_.number(row['mean'])}  "
                   f"sd {fmt_.number(row['sd'])}  "
                   f"95% CI {fmt_.ci(row['ci_low'], row['ci_high'])}  "
                   f"bootstrap {fmt_.ci(row['bootstrap_ci_low'], row['bootstrap_ci_high'])}  "
                   f"n {row['n']}")
    click.echo(f"  Δ = A − B {fmt_.signed(paired.diff)} over {paired.n} shared seeds  95% CI "
               f"{fmt_.ci(paired.diff_ci_low, paired.diff_ci_high, is_signed=True)}  "
               f"p {fmt_.p_value(paired.p_paired)} ({fmt_.test_name(paired.test)}, this one "
               f"comparison, unadjusted)  Wilcoxon p {fmt_.p_value(paired.p_wilcoxon)}")
    click.echo(f"  P(A better than B) {fmt_.number(paired.p_improve, 2)} (95% CI "
               f"{fmt_.ci(paired.p_improve_low, paired.p_improve_high)})  unpaired: Welch p "
               f"{fmt_.p_value(c.p_value)}, Cohen's d {fmt_.number(c.cohen_d, 2)}")
    if c.pairs:
        click.echo(f"  same seed: A better on {c.wins} of {c.pairs}, B better on {c.losses}, "
                   f"{c.ties} tied")
    if pair.robust is not None:
        click.echo(_robust_line(pair))
    click.echo(f"verdict: {pair.verdict}")
    if paired.seeds_needed is not None:
        click.echo(f"  not significant on {paired.n} seeds: if the Δ is real, about "
                   f"{paired.seeds_needed} seeds would show it (paired t-test, 80% power)")
    return 0


def _robust_line(pair: Any) -> str:
    """`compare`'s line for the robust score (mean metric over the test-σ grid)."""
    r = pair.robust
    return (f"  robust score: A {fmt_.number(pair.a.get('robust_mean'))}, B "
            f"{fmt_.number(pair.b.get('robust_mean'))}, Δ = A − B {fmt_.signed(r.diff)} over "
            f"{r.n} shared seeds  95% CI {fmt_.ci(r.diff_ci_low, r.diff_ci_high, True)}  "
            f"p {fmt_.p_value(r.p_paired)} ({fmt_.test_name(r.test)}, unadjusted)")


@cli.command()
@click.option("--storage", default=None, help=STORAGE_HELP)
def studies(storage: str | None) -> int:
    """The studies in the storage and their progress."""
    from search import api

    overview = api.studies(storage)
    if not overview:
        click.echo("no studies yet; start one with `noise-search run STUDY_FILE`")
        return 0
    for s in overview:
        diverged = f"{s.diverged} diverged, " if s.diverged else ""
        if s.pruned:  # racing stopped them: done, with fewer seeds
            diverged += f"{s.pruned} stopped by racing, "
        click.echo(f"{fmt_.name(s.name)}: {s.complete}/{s.total} configurations "
                   f"complete, {diverged}{s.running} running, {s.waiting} queued, "
                   f"{s.failed} failed ({s.metric})")
    return 0


@cli.command(short_help="Delete a study and all its trials.")
@click.argument("study_name")
@click.option("--yes", is_flag=True, help="Delete without asking for confirmation.")
@click.option("--force", is_flag=True,
              help="Delete even a study with running trials (their workers will fail).")
@click.option("--storage", default=None, help=STORAGE_HELP)
def delete(study_name: str, yes: bool, force: bool, storage: str | None) -> int:
    """Delete STUDY_NAME and all its trials from the storage; the SQL views stay.

    Asks for confirmation unless --yes; refuses a study with running trials unless --force.
    """
    from search.storage import mask_password, open_storage, resolve_url
    from search.study.deleting import deletable, delete_study

    url = resolve_url(storage)
    rdb = open_storage(url, must_exist=True)
    contents = deletable(rdb, study_name, force)  # an unknown name or running trials: refused
    where = (f"study {fmt_.quoted(study_name)} ({_count(contents.trials, 'trial')}, "
             f"{contents.complete} complete) from {mask_password(url)}")
    if not yes:
        if not (sys.stdin and sys.stdin.isatty()):
            raise NoiseSearchError(f"delete asks for confirmation and stdin is not a terminal; "
                                   f"pass --yes to delete study {fmt_.quoted(study_name)}")
        try:
            confirmed = click.confirm(f"delete {where}?", default=False)
        except click.exceptions.Abort:  # end of input: not a yes
            confirmed = False
        if not confirmed:
            click.echo("nothing deleted")
            return 1
    deleted = delete_study(rdb, study_name, force)
    click.echo(f"deleted study {fmt_.quoted(study_name)} "
               f"({_count(deleted.trials, 'trial')}) from {mask_password(url)}")
    return 0


@cli.command(short_help="HTML report of a study (and figures for optuna-dashboard).")
@click.argument("study_name")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="HTML file to write (default: STUDY_NAME-report.html; none with "
                   "--to-dashboard unless -o is given).")
@click.option("--storage", default=None, help=STORAGE_HELP)
@click.option("--to-dashboard", is_flag=True,
              help="Save the figures and a summary note into the study for optuna-dashboard "
                   "(an HTML file only if -o is given too).")
@click.option("--no-boundary", is_flag=True,
              help="Skip the decision-boundary figure (for older studies it retrains two models).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def report(study_name: str, output: Path | None, storage: str | None, to_dashboard: bool,
           no_boundary: bool, quiet: bool) -> int:
    """Plotly report of STUDY_NAME: one self-contained HTML file that opens offline."""
    from search import api
    from search import report as report_module

    path = output
    if path is None and not to_dashboard:
        path = Path(f"{study_name}-report.html")
    if path is not None:  # before the long work: a path that cannot be written fails at once
        report_module.check_writable(path)
    study = api.open_study(study_name, storage)
    with api.report_steps(not no_boundary, quiet) as progress:
        data = study.report_data(not no_boundary, progress)
        figs = report_module.figures(data)
    status = report_module.status_line(data)
    if status:
        click.echo(status)
    if path is not None:
        report_module.write_html(data, figs, path)
        click.echo(f"wrote {path} ({len(figs)} figures)")
    if to_dashboard:
        saved = study.save_to_dashboard(data)
        click.echo(f"saved {saved} figures and a summary note into study "
                   f"{fmt_.quoted(study_name)} for optuna-dashboard")
    return 0


@cli.command(short_help="Browse the studies in optuna-dashboard.")
@click.option("--storage", default=None, help=STORAGE_HELP)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="Port to listen on.")
def dashboard(storage: str | None, host: str, port: int) -> int:
    """Browse the studies of the storage in optuna-dashboard, with noise-search's figures."""
    from search.dashboard_server import serve

    try:
        serve(storage, host, port, announce=click.echo)
    except KeyboardInterrupt:
        click.echo("dashboard stopped", err=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    from search.storage import disk_full_message, is_disk_full, is_outage, mask_password
    from search.storage.urls import first_line

    try:
        with sigterm_as_interrupt():  # stop like Ctrl-C: the trial in progress is failed
            result = cli.main(args=argv, prog_name="noise-search", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except NoiseSearchError as exc:
        if debugging():
            traceback.print_exc()
        click.echo(f"noise-search: error: {mask_password(str(exc))}", err=True)
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo("noise-search: interrupted; the trial in progress is marked failed and will be "
                   "run again on resume", err=True)
        return 130
    except Exception as exc:
        # A storage call outside the retry policy, or one that outlived it unnoticed: the
        # database went away; that is one line, not a traceback. Anything else is a bug.
        if not (is_outage(exc) or is_disk_full(exc)):
            raise
        if debugging():
            traceback.print_exc()
        line = (disk_full_message(exc, "running the command") if is_disk_full(exc)
                else f"lost the storage: {first_line(exc.__cause__ or exc)}")
        click.echo(f"noise-search: error: {line}", err=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
