"""``plan``, ``run``, ``status`` and ``gc``: parse options, make one library call, show the result."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence, TypeVar

import click

from . import money
from .options import JsonCommand, shown, var_option

F = TypeVar("F", bound=Callable[..., Any])

#: On a terminal, a plan with more billable renders than this asks before spending.
CONFIRM_ABOVE = 10


def stdin_is_terminal() -> bool:
    """Whether a person can answer a question (large plans ask before spending)."""
    return sys.stdin.isatty()


def ask_to_create(the_plan: Any, *, max_renders: int | None, yes: bool, sim: bool, as_json: bool, prefix: str = "", cost: Any = None) -> bool:
    """The confirm question of run and watch. A plan over the run-size limit without
    --max-renders is asked about even with --yes or --sim, and refused where nobody can answer
    (no terminal, or --json); other plans of more than CONFIRM_ABOVE paid renders are asked
    about on a terminal unless --yes, --sim or --json."""
    from ..session import needs_consent

    large = needs_consent(the_plan, max_renders)
    if large and (as_json or not stdin_is_terminal()):
        return False
    if not large and (yes or sim or as_json or not stdin_is_terminal() or len(the_plan.billable) <= CONFIRM_ABOVE):
        return True
    _print_plan(the_plan, cost=cost)
    kind = "simulated render" if sim else "paid render"
    question = f"create {counted(len(the_plan.billable), kind)}" + (f" for {cost.describe()}?" if cost is not None else "?")
    return click.confirm(prefix + question if prefix else question[0].upper() + question[1:], default=False, err=True)


def confirm_with_cost(the_plan: Any, budget: Any, client: Any, *, max_renders: int | None, yes: bool, sim: bool, as_json: bool, prefix: str = "") -> bool:
    """The confirm step of run and watch, once the plan passed --max-renders and --max-cost: warn
    when the plan costs more than the account's balance (read now, so a refused plan makes no
    call at all), then :func:`ask_to_create` with the amount."""
    from ..session import needs_consent

    if needs_consent(the_plan, max_renders) and (as_json or not stdin_is_terminal()):
        return False  # refused without asking anyone: no call at all, not even the balance
    cost = budget.cost(the_plan)
    warning = money.balance_warning(client, cost)
    if warning:
        click.echo(f"vidbatch: warning: {prefix}{warning}", err=True)
    return ask_to_create(the_plan, max_renders=max_renders, yes=yes, sim=sim, as_json=as_json, prefix=prefix, cost=cost)


def counted(n: int, word: str) -> str:
    """``1 render``, ``2 renders``."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def manifest_args(f: F) -> F:
    """``MANIFEST...`` (a folder stands for its manifests, as in watch mode), ``--var``, ``--state``."""
    f = click.option(
        "--state",
        "state_dir",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="VIDBATCH_STATE",
        help="State folder [default: .vidbatch/ beside the first manifest; env VIDBATCH_STATE].",
    )(f)
    f = var_option(f)
    return click.argument("manifests", nargs=-1, required=True, metavar="MANIFEST...", type=click.Path(exists=True, path_type=Path))(f)


def run_options(f: F) -> F:
    """The options of ``run``, shared with ``watch``."""
    from ..facts import DEFAULT_POLL_INTERVAL, DEFAULT_RPM

    SIM_RPM, SIM_POLL_INTERVAL = 600, 0.5  # as project.SIM_*: importing project here would slow --help

    options = [
        click.option("--api-host", help="API host [default: env MINIMAX_API_HOST, else the config file's api_host, else https://api.minimaxi.com]."),
        click.option("--concurrency", "-j", type=click.IntRange(1, 1000), default=20, show_default=True, help="Renders in flight at once."),
        click.option("--rpm", type=click.FloatRange(0.1), help=f"Creates per minute [default: {DEFAULT_RPM}, MiniMax's documented limit (mainland paid accounts: 20), and MiniMax-H3's own 300; with --sim: {SIM_RPM}]. Given, it paces H3 jobs too."),
        click.option("--poll-interval", type=click.FloatRange(0), help=f"Seconds between polls of one task [default: {DEFAULT_POLL_INTERVAL:g}, as MiniMax recommends; with --sim: {SIM_POLL_INTERVAL:g}]."),
        click.option("--retry-failed", is_flag=True, help="Submit jobs that failed before again."),
        click.option("--force", multiple=True, metavar="NAME", help="Render this job again even if up to date (repeatable)."),
        click.option("--max-renders", type=click.IntRange(0), help="Refuse to start when the plan would create more renders than this. Without it, a plan of more than 100 renders starts only after a yes at a terminal (with no terminal it is refused, exit 2)."),
        click.option("--resubmit-uncertain", is_flag=True, help="Create again jobs whose earlier create was cut off (may pay twice)."),
        click.option("--sim", is_flag=True, help="Run against the bundled simulator: no key, no cost (state in .vidbatch/sim, outputs in <output_dir>-sim)."),
        click.option("--sim-latency", type=click.FloatRange(0), default=3.0, show_default=True, help="With --sim: seconds each simulated render takes."),
        click.option("--json", "as_json", is_flag=True, help="Print one JSON event per line on stdout."),
        click.option("--yes", "-y", is_flag=True, help="Do not ask before plans of more than 10 renders (over 100 still need --max-renders or a yes)."),
        click.option("--wait", is_flag=True, help="If another run holds the state folder, wait for it instead of exiting with code 4."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def make_run_options(
    *,
    concurrency: int,
    rpm: float | None,
    poll_interval: float | None,
    retry_failed: bool,
    force: Sequence[str],
    max_renders: int | None,
    resubmit_uncertain: bool,
    sim: bool,
    **_ignored: Any,
) -> Any:
    """RunOptions from the options of ``run_options`` (shared by run and watch)."""
    from ..facts import DEFAULT_POLL_INTERVAL, DEFAULT_RPM, V2_RPM
    from ..project import SIM_POLL_INTERVAL, SIM_RPM
    from ..runner import RunOptions

    return RunOptions(
        concurrency=concurrency,
        rpm=rpm or (SIM_RPM if sim else DEFAULT_RPM),
        v2_rpm=rpm or (SIM_RPM if sim else V2_RPM),  # MiniMax-H3's own limit, unless --rpm says
        poll_interval=poll_interval if poll_interval is not None else (SIM_POLL_INTERVAL if sim else DEFAULT_POLL_INTERVAL),
        retry_failed=retry_failed,
        force=tuple(force),
        max_renders=max_renders,
        resubmit_uncertain=resubmit_uncertain,
    )


def resume_hint(command: str, paths: Iterable[Path | str], variables: Mapping[str, str] | None, state_dir: Path | None, sim: bool) -> str:
    """The command that picks up where this one stopped, with the options that change the plan."""
    import shlex

    same = [*(f"--var={shlex.quote(f'{k}={v}')}" for k, v in (variables or {}).items())]
    same += [f"--state={shlex.quote(str(state_dir))}"] if state_dir else []
    same += ["--sim"] if sim else []
    return " ".join([f"vidbatch {command}", *(shlex.quote(shown(Path(p))) for p in paths), *same])


@contextlib.contextmanager
def _client(sim: bool, sim_latency: float, api_host: str | None, state_dir: Path | None = None) -> Iterator[Any]:
    """The API client (:func:`vidbatch.api.connect`); with ``sim``, a simulator for this command's
    lifetime whose tasks and files live in ``state_dir/server`` (the ``--sim`` state folder), as
    MiniMax keeps an account's: a run stopped with Ctrl-C resumes its tasks, a deleted output is
    fetched again."""
    from ..api import connect, simulator

    if not sim:
        with connect(api_host=api_host) as client:
            yield client
        return
    with simulator(state_dir / "server" if state_dir is not None else None, latency=sim_latency) as server:
        with server.client() as client:
            yield client


def _load(manifests: Sequence[Path], variables: Mapping[str, str], state_dir: Path | None, sim: bool = False) -> Any:
    """Load the manifests and show their warnings (an unknown camera command, say) on stderr."""
    from ..project import load  # not vidbatch.api: plan --check imports no runner

    ws = load(manifests, variables=variables, state_dir=state_dir, sim=sim)
    warnings = [w for m in ws.manifests for w in m.warnings]
    if warnings:  # only then import the manifest loader (Jinja, JSON Schema): the no-op fast path
        from .manifest_cmds import echo_problems

        echo_problems(warnings, "warning")
    return ws


@click.command(cls=JsonCommand)
@manifest_args
@click.option("--retry-failed", is_flag=True, help="Plan failed jobs for another try.")
@click.option("--force", multiple=True, metavar="NAME", help="Plan this job for a new render (repeatable).")
@click.option("--check", is_flag=True, help="Print nothing; exit 0 if everything is up to date, 1 if not.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as one JSON object.")
@click.option("--sim", is_flag=True, help="Plan against the state of --sim runs.")
@click.option("--api-host", help="Price renders in this host's region [default: env MINIMAX_API_HOST, else the config file's api_host, else https://api.minimaxi.com]. No call is made.")
@money.region_option
def plan(manifests: tuple[Path, ...], variables: dict[str, str], state_dir: Path | None, retry_failed: bool, force: tuple[str, ...], check: bool, as_json: bool, sim: bool, api_host: str | None, region: str | None) -> None:
    """Show what `run` would do for each job, and why, and what it costs. No network, no writes.

    Each billable render is priced in the region's currency (see `vidbatch prices`); a render
    with no known price is counted as unpriced, never free. --json carries each job's price and
    the plan's in summary.cost.

    Actions: submit (never rendered), resubmit (the request changed: the changed fields are shown),
    skip (output present and verified), resume (a task is rendering), download (rendered, file
    missing: fetch again, no new render), reuse (an identical request was rendered under another
    name: copy it), failed (retried only with --retry-failed), uncertain (a create was cut off),
    gone (MiniMax no longer has the task or file: --force NAME renders it again).
    Chained shots (first_frame_image = "frame:shot-02") are listed after their sources: wait (the
    source renders first in this run; counted on the bill, which then reads "up to") or blocked
    (the source failed, has several takes and no pick, or its picked take rendered again since
    it was picked: the reason is shown). Sequences are local steps after the jobs:
    build, skip, wait or blocked (joining shots costs no API call). A picks file's decision
    about a shot or take the manifest no longer has is ignored, with a warning on stderr (with
    --json, in the object's "warnings").

    \b
    Examples:
      vidbatch plan shots.toml
      vidbatch plan shots/                     # every manifest in the folder
      vidbatch plan shots.toml --json | jq '.summary'
      vidbatch plan --check shots.toml || vidbatch run shots.toml    # make-style
      vidbatch plan --sim shots.toml           # against the state of --sim runs
      vidbatch plan shots.toml --json | jq -e '.summary.cost.total | tonumber < 20'   # gate CI on cost
    """
    ws = _load(manifests, variables, state_dir, sim)
    the_plan = ws.plan(retry_failed=retry_failed, force=force)
    if check:
        sys.exit(0 if the_plan.up_to_date else 1)
    cost = money.budget(ws.manifests, api_host=api_host, sim=sim, region=region).cost(the_plan)
    if as_json:  # its warnings are in the object
        click.echo(json.dumps(cost.annotate(the_plan.to_json(Path.cwd())), indent=2, ensure_ascii=False))
        return
    for warning in the_plan.warnings:
        click.echo(f"warning: {warning}", err=True)
    _print_plan(the_plan, resume_hint("gc", manifests, variables, state_dir, sim), cost)


def _print_plan(the_plan: Any, gc_hint: str = "vidbatch gc", cost: Any = None) -> None:
    """The plan's jobs, then its counts and what it costs (``cost``, a costing.PlanCost; without
    it, the billable renders without prices)."""
    from ..plan import Action, by_shot

    colors = {Action.SUBMIT: "green", Action.RESUBMIT: "yellow", Action.SKIP: None, Action.RESUME: "cyan", Action.DOWNLOAD: "cyan", Action.REUSE: "cyan", Action.FAILED: "red", Action.UNCERTAIN: "magenta", Action.GONE: "magenta", Action.WAIT: "blue", Action.BLOCKED: "red"}
    width = max((len(p.job.name) for p in the_plan.jobs), default=4)
    for shot, group in by_shot(the_plan.jobs, lambda p: p.job):
        indent = "  "
        if shot is not None:  # the takes of a shot, listed under it
            click.echo(f"  {shot}: {counted(len(group), 'take')}")
            indent = "    "
        for p in group:
            action = click.style(f"{p.action.value:<9}", fg=colors[p.action])
            click.echo(f"{indent}{action} {p.job.name:<{width}}  {p.reason}")
            for change in p.changes:
                click.echo(f"{indent}{'':<9} {'':<{width}}    {change.describe()}")
    cut_colors = {"build": "green", "skip": None, "wait": "blue", "blocked": "red"}
    for c in the_plan.cuts:  # local steps: sequences joined into one video, no API call
        label = click.style(f"{c.action.value:<9}", fg=cut_colors.get(c.action.value))
        click.echo(f"  {label} {c.sequence.name:<{width}}  cut of {len(c.sequence.shots)} shots -> {shown(c.sequence.output)}: {c.reason}")
    for o in the_plan.orphans:
        label = click.style(f"{'orphan':<9}", fg="bright_black")
        click.echo(f"  {label} {o.name or o.key:<{width}}  in state ({o.state}), no longer in the manifest{'; file ' + shown(Path(o.path)) if o.path else ''}")
    s = the_plan.summary()
    click.echo("")
    cut_counts = "; cuts: " + ", ".join(f"{n} {a}" for a, n in s["cuts"].items()) if s.get("cuts") else ""
    click.echo("Plan: " + ", ".join(f"{n} {a}" for a, n in s["actions"].items()) + (f", {counted(s['orphans'], 'orphan')} ({gc_hint})" if s["orphans"] else "") + cut_counts)
    if not s["billable"]:
        click.echo("Nothing to pay for.")
    waiting = s["actions"].get("wait", 0)
    if waiting:
        click.echo(
            f"{counted(waiting, 'chained shot')} wait for a source's video in this run; counted as renders, so the total is "
            "an upper bound (a new source frame is a new request; an unchanged one costs nothing)."
        )
    if cost is not None:
        for line in cost.lines():
            click.echo(line)
        return
    if s["billable"]:
        click.echo(f"{counted(s['billable'], 'billable render')}:")
        for r in s["renders"]:
            shape = f"{r['resolution']} {r['duration']}s" if r["duration"] else "subject reference"
            click.echo(f"  {r['count']:>5} x {r['model']} {r['mode']} {shape}")


def report_option(f: F) -> F:
    """``--report FILE`` for run and watch."""
    return click.option(
        "--report",
        "report_path",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Keep an HTML report of the jobs at FILE, refreshed as jobs finish (see `vidbatch report`).",
    )(f)


def with_report(on_event: Callable[[Any], None], workspace: Any, report_path: Path | None) -> tuple[Callable[[Any], None], Any]:
    """``on_event`` chained with a report writer when ``--report`` was given; (callback, writer)."""
    if report_path is None:
        return on_event, None
    from ..report import ReportWriter, check_report_path

    if not callable(workspace):  # watch passes the current workspace as a function
        check_report_path(workspace, report_path)
    writer = ReportWriter(workspace, report_path)

    def both(e: Any) -> None:
        on_event(e)
        writer(e)

    return both, writer


@click.command(cls=JsonCommand)
@manifest_args
@run_options
@money.money_options
@report_option
def run(
    manifests: tuple[Path, ...],
    variables: dict[str, str],
    state_dir: Path | None,
    api_host: str | None,
    concurrency: int,
    rpm: float | None,
    poll_interval: float | None,
    retry_failed: bool,
    force: tuple[str, ...],
    max_renders: int | None,
    resubmit_uncertain: bool,
    sim: bool,
    sim_latency: float,
    as_json: bool,
    yes: bool,
    wait: bool,
    report_path: Path | None,
    max_cost: str | None,
    unpriced_as: str | None,
    region: str | None,
) -> None:
    """Render what is new or changed, resume what is running, skip what is done.

    Safe to interrupt and re-run: the intent to create is saved before each create and the task id
    the moment it arrives, so a re-run resumes tasks instead of paying again. The first Ctrl-C stops
    submitting, saves, and exits; run the same command again to resume.

    A job whose create was cut off by a crash is "uncertain" (MiniMax has no idempotency key, so
    whether it was accepted is unknowable). It is not created again unless you pass
    --resubmit-uncertain (which may pay twice).

    Before spending, on a terminal, a plan of more than 10 renders is shown and asked about
    (--yes skips that). A plan of more than 100 renders never starts unasked: it needs
    --max-renders N (any N it fits in) or a yes at a terminal; with no terminal (or --json) it is
    refused with exit 2 and nothing is sent.

    A picks file (NAME.picks.toml) that cannot be read stops a run whose chained shots or
    sequences depend on it (exit 2); otherwise it, and a pick of a shot the manifest no longer
    has, is a warning line naming the file and line (with --json, a "warning" event), as in plan.

    \b
    Exit codes: 0 all jobs done; 1 some jobs failed, uncertain or unfinished;
    2 invalid manifest or usage, or an API key missing or malformed (nothing was sent);
    3 stopped: the API refused the account or key, or its host is wrong or unreachable;
    4 the state folder is in use by another run; 130 interrupted (Ctrl-C, or SIGTERM).

    \b
    Examples:
      vidbatch run --sim examples/t2v-matrix.toml       # try it: bundled simulator, no key
      export MINIMAX_API_KEY=...                        # then for real
      vidbatch run shots.toml --rpm 20 --max-renders 50
      vidbatch run shots.toml --force hero --retry-failed
      vidbatch run shots.toml --max-cost 25                # refuse a plan over 25 (USD or CNY)
      vidbatch run shots.toml --json | jq -c 'select(.event=="downloaded")'
      vidbatch run shots.toml --report renders/report.html   # a page that follows the run
    """
    from ..api import connect
    from .progress import make_reporter

    ws = _load(manifests, variables, state_dir, sim)
    options = make_run_options(**locals())
    reporter = AfterPrompt(lambda: make_reporter(as_json), as_json)

    def confirm(the_plan: Any) -> bool:
        return confirm_with_cost(the_plan, budget, client, max_renders=max_renders, yes=yes, sim=sim, as_json=as_json)

    with connect(ws, api_host=api_host, sim_latency=sim_latency, lazy=True) as client:  # made at its first call
        budget = money.budget(ws.manifests, client=client, sim=sim, region=region, max_cost=max_cost, unpriced_as=unpriced_as)
        on_event, writer = with_report(reporter, ws, report_path)
        started = time.time()
        try:
            result = ws.run(client, options, on_event=on_event, confirm=confirm, wait_for_lock=wait, budget=budget)
        finally:
            reporter.close()
            if writer is not None:
                writer.close()
    _print_result(result, ws, sim, manifests, variables, state_dir)  # stderr: never mixes with --json
    spent = money.spend_line(ws, started)
    if spent:
        click.echo(f"vidbatch: {spent}{' (simulated)' if sim else ''}", err=True)
    sys.exit(result.exit_code)


class AfterPrompt:
    """The progress display, started at the first event after the confirm question: a live
    display running during the question would swallow it (rich reads ``[y/N]`` as markup and
    redraws over the line), and its clock would count the time spent answering. A ``waiting``
    for the lock comes before the question: it is one plain line."""

    def __init__(self, make: Callable[[], Any], as_json: bool):
        self._make = make
        self._as_json = as_json
        self.inner: Any = None

    def __call__(self, e: Any) -> None:
        if self.inner is None and e.kind == "waiting" and not self._as_json:
            click.echo(f"vidbatch: {e.message}", err=True)
            return
        if self.inner is None:
            self.inner = self._make()
        self.inner(e)

    def close(self) -> None:
        if self.inner is not None:
            self.inner.close()


def _print_result(result: Any, ws: Any, sim: bool, manifests: Sequence[Path], variables: Mapping[str, str], state_dir: Path | None) -> None:
    from .progress import counts_line

    hint = resume_hint("run", manifests, variables, state_dir, sim)
    p = result.progress
    click.echo(f"vidbatch: {counts_line(p)}", err=True)
    click.echo(f"vidbatch: {counted(p.created, 'render')} created in this run{' (simulated)' if sim else ''}", err=True)
    gone = result.gone
    for label, names in (("failed", result.failed), ("uncertain", result.uncertain), ("gone", gone), ("unfinished", result.unfinished)):
        if names:
            listed = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
            click.echo(f"vidbatch: {len(names)} {label}: {listed}", err=True)
    if result.stopped == "interrupted" and result.unsaved:  # the state failed first: not all are saved
        click.echo(f"error: interrupted; {result.stop_message}", err=True)
    elif result.stopped == "interrupted":
        click.echo(f"vidbatch: interrupted; running tasks are saved. Resume with: {hint}", err=True)
    elif result.stopped == "account":
        click.echo(f"vidbatch: stopped: {result.stop_message}", err=True)
    elif result.stopped == "state":
        click.echo(f"error: {result.stop_message}", err=True)
    if result.uncertain:
        click.echo("vidbatch: uncertain jobs may already exist at MiniMax; to create them anyway: " + hint + " --resubmit-uncertain", err=True)
    if gone:
        click.echo(f"vidbatch: MiniMax no longer has the task or file of {counted(len(gone), 'job')}; to render again: {hint} --force NAME", err=True)
    if result.failed:
        status = resume_hint("status", manifests, variables, state_dir, sim)
        click.echo(f"vidbatch: see errors with `{status}`; retry with --retry-failed", err=True)
    if not (result.failed or result.uncertain or gone or result.unfinished or result.stopped):
        dirs = sorted({shown(m.output_dir) for m in ws.manifests})
        done = f"all {p.total} jobs done" if p.total != 1 else "1 job done"
        click.echo(f"vidbatch: {done}; outputs in {', '.join(dirs)}", err=True)


@click.command(cls=JsonCommand)
@click.argument("manifests", nargs=-1, type=click.Path(exists=True, path_type=Path))
@var_option
@click.option("--state", "state_dir", type=click.Path(file_okay=False, path_type=Path), envvar="VIDBATCH_STATE", help="State folder [default: .vidbatch/ beside the manifest, or in the current folder; env VIDBATCH_STATE].")
@click.option("--job", "job_name", metavar="NAME", help="Show the history of one job.")
@click.option("--sim", is_flag=True, help="Show the state of --sim runs.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(manifests: tuple[Path, ...], variables: dict[str, str], state_dir: Path | None, job_name: str | None, sim: bool, as_json: bool) -> None:
    """Show jobs by state, their errors and outputs, or one job's history, and what was spent.

    The spend is every create MiniMax accepted for these manifests so far (all runs, at the
    price quoted when each run started; see `vidbatch spend`), with what went on renders that
    then failed, and creates whose answer was lost (uncertain) apart as possible spend. --json
    gives each job's render cost ("cost": its accepted creates, every try) and "spend". A
    picked take that rendered again since it was picked is shown as a stale pick ("pick again";
    with --json, "pick_stale" says why), as plan blocks what depends on it. A picks
    file's decision about a shot or take the manifest no longer has is warned about on stderr
    (with --json, in "warnings").

    \b
    Examples:
      vidbatch status shots.toml
      vidbatch status .                          # every manifest in the folder
      vidbatch status shots.toml --job hero      # every transition of one job
      vidbatch status --sim shots.toml           # the jobs of --sim runs
      vidbatch status --json | jq '.jobs[] | select(.state=="failed")'
    """
    from .. import project

    ws = _load(manifests, variables, state_dir, sim) if manifests else None
    folder = ws.state_dir if ws else project.state_folder(Path.cwd(), state_dir=state_dir, sim=sim)
    jobs, store = project.status(ws, folder)
    warnings = project.pick_warnings(ws.manifests) if ws else []
    for warning in warnings if not as_json else []:  # with --json, in the object
        click.echo(f"warning: {warning}", err=True)
    try:
        if job_name:
            _print_history(jobs, store, job_name, as_json)
            return
        if as_json:
            counts: dict[str, int] = {}
            for j in jobs:
                counts[j.state] = counts.get(j.state, 0) + 1
            spend = money.spent_by(ws, store).totals_json()
            doc = {"state_dir": str(folder), "counts": counts, "jobs": [j.to_json() for j in jobs], "spend": spend, **({"warnings": warnings} if warnings else {})}
            click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
            return
        if store is None:
            click.echo(f"no state at {folder}: nothing has been run here yet")
            return
        _print_status(jobs, folder)
        for line in money.spent_by(ws, store).totals_lines():
            click.echo(line)
    finally:
        if store:
            store.close()


def _print_status(jobs: Sequence[Any], folder: Path) -> None:
    order = ["failed", "uncertain", "gone", "running", "submitting", "rendered", "new", "outdated", "done"]
    by_state: dict[str, list[Any]] = {}
    for j in jobs:
        by_state.setdefault(j.state, []).append(j)
    click.echo(f"state: {shown(Path(folder))}")
    click.echo("  " + ", ".join(f"{len(by_state[s])} {s}" for s in order if s in by_state))
    width = max((len(j.name) for j in jobs), default=4)
    for state in order:
        for j in by_state.get(state, []):
            r = j.record
            detail = ""
            if state in ("failed", "uncertain", "gone") and r and r.error:
                detail = r.error
            elif state == "outdated":
                held = f" (rendered for: {j.held_prompt})" if j.held_prompt else ""
                detail = f"{shown(Path(j.output)) if j.output else ''} holds another version{held}: run puts this job's video back"
            elif state == "running" and r:
                detail = f"task {r.task_id}"
            elif state == "done":
                detail = (shown(Path(j.output)) if j.output else "") + ("" if j.output_present else "  (file missing: run downloads it again)")
            click.echo(f"  {state:<10} {j.name:<{width}}  {detail}")
    _print_takes(jobs)


def _print_takes(jobs: Sequence[Any]) -> None:
    """Each shot with several takes, its takes' states and what was picked (`vidbatch pick`)."""
    from ..plan import by_shot

    shots = [(shot, group) for shot, group in by_shot(jobs) if shot is not None]
    if not shots:
        return
    click.echo("takes:")
    width = max(len(shot) for shot, _ in shots)
    for shot, group in shots:
        takes = ", ".join(f"{j.take} {j.state}" + (f" ({j.pick}{', stale' if j.pick_stale else ''})" if j.pick else "") for j in sorted(group, key=lambda j: j.take))
        picked = next((j for j in group if j.pick == "picked"), None)
        if picked is None:
            note = "; no pick yet (vidbatch pick)"
        elif picked.pick_stale:  # as plan says when it blocks what depends on the shot
            note = f"; {picked.pick_stale}: pick again (vidbatch pick)"
        else:
            note = ""
        click.echo(f"  {shot:<{width}}  {takes}{note}")


def _print_history(jobs: Sequence[Any], store: Any, name: str, as_json: bool) -> None:
    from ..errors import UsageError

    match = [j for j in jobs if j.name == name]
    if not match:
        raise UsageError(f"no job named {name!r}")
    j = match[0]
    events = store.events(j.record.key) if (store and j.record) else []
    if as_json:
        click.echo(json.dumps({"job": j.to_json(), "events": [e.__dict__ for e in events]}, indent=2, ensure_ascii=False))
        return
    import datetime

    click.echo(f"{j.name}: {j.state}" + (f"  key {j.record.key}" if j.record else ""))
    for e in events:
        when = datetime.datetime.fromtimestamp(e.at).strftime("%Y-%m-%d %H:%M:%S")
        move = f"{e.from_state or ''} -> {e.to_state}" if e.to_state else ""
        detail = ", ".join(f"{k}={v}" for k, v in e.detail.items())
        click.echo(f"  {when}  {e.event:<14} {move:<24} {detail}")


@click.command()
@manifest_args
@click.option("--sim", is_flag=True, help="Collect in the state and outputs of --sim runs.")
@click.option("--delete-outputs", is_flag=True, help="Also delete the orphans' output files (only those still holding the recorded video).")
@click.option("--dry-run", "-n", is_flag=True, help="Only list what would be dropped and deleted; change nothing.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before dropping (on a terminal gc lists what it will do and asks).")
def gc(manifests: tuple[Path, ...], variables: dict[str, str], state_dir: Path | None, sim: bool, delete_outputs: bool, dry_run: bool, yes: bool) -> None:
    """Drop orphans from the state: renders no job of the manifests wants any more.

    A render whose request a job of the manifests still makes is never an orphan, wherever its
    file lies (a moved output_dir, another --state): gc never drops it or deletes its file.
    Output files stay unless --delete-outputs is given, and even then a file is deleted only
    while it still holds the video vidbatch recorded there (same size and SHA-256); files that
    changed since are kept and listed, and so is the picked take (NAME.picks.toml) of a shot whose
    takes were lowered. On a terminal, gc lists what it will do and asks first.

    gc also deletes the files vidbatch derived from videos that nothing needs any more: chained
    shots' frames (frames/ beside the outputs) and the report's posters and contact sheets
    (posters/). One is kept while its video is still recorded at an output or a cut, a job's
    request uses it, or a sequence's cut or picked takes need it; they are remade when needed.

    \b
    Examples:
      vidbatch gc -n shots.toml                      # list, change nothing
      vidbatch gc shots.toml                         # drop orphans from the state, keep files
      vidbatch gc shots.toml --delete-outputs -y     # and delete their videos, without asking
      vidbatch gc --sim shots.toml                   # the state of --sim runs
    """
    from .. import project
    from ..errors import UsageError

    ws = _load(manifests, variables, state_dir, sim)

    def confirm(planned: Any) -> bool:
        if yes or not stdin_is_terminal():
            return True
        _print_gc(planned, would=True)
        parts = [f"drop {counted(len(planned.orphans), 'orphan')}"] if planned.orphans else []
        parts += [f"delete {counted(len(planned.deleted), 'file')}"] if planned.deleted else []
        parts += [f"delete {counted(len(planned.cached), 'cached frame or poster file')}"] if planned.cached else []
        question = " and ".join(parts).capitalize() + "?"
        return click.confirm(question, default=False, err=True)

    result = project.gc(ws, delete_outputs=delete_outputs, dry_run=dry_run, confirm=confirm)
    if result.dry_run and result.changes and not dry_run:
        raise UsageError("cancelled; nothing was changed")
    _print_gc(result, would=result.dry_run)
    if result.dry_run and result.changes:
        click.echo(f"to do it: {resume_hint('gc', manifests, variables, state_dir, sim)}{' --delete-outputs' if delete_outputs else ''}")


def _print_gc(result: Any, *, would: bool) -> None:
    deleted, skipped = set(result.deleted), dict(result.skipped)
    verb = "would drop" if would else "dropped"
    for o in result.orphans:
        line = f"{verb} {o.name or o.key} ({o.state})"
        if o.path:
            fate = ("would be deleted" if would else "deleted") if o.path in deleted else "kept"
            line += f", file {shown(Path(o.path))} {fate}" + (f": {skipped[o.path]}" if o.path in skipped else "")
        click.echo(line)
    files = counted(len(result.deleted), "file")
    if would:
        click.echo(f"would drop {counted(len(result.orphans), 'orphan')}" + (f" and delete {files}" if result.deleted else ""))
    else:
        click.echo(f"{counted(len(result.orphans), 'orphan')} dropped" + (f", {files} deleted" if result.deleted else ""))
    if result.skipped:
        click.echo(f"{counted(len(result.skipped), 'file')} kept, for the reason given above (delete by hand if unwanted)")
    for p in result.cached:
        click.echo(f"{'would delete' if would else 'deleted'} {shown(Path(p))} (cached; no video, cut or job needs it)")
    if result.cached:
        cached = counted(len(result.cached), "cached frame or poster file")
        click.echo(f"would delete {cached}" if would else f"{cached} deleted")
