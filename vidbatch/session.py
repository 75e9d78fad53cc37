"""A session: one process holding a state folder while it renders. Used by ``run`` and ``watch``.

Both entry points need the same lifecycle, decided here once:

1. open the :class:`~vidbatch.state.Store` and take its run lock for the whole session (a second
   ``run`` or ``watch`` on the same state exits with code 4; with ``wait_for_lock`` the session
   polls for the lock, announcing ``waiting`` once, and can be called off while it waits);
2. recover: creates that a crash cut off (``submitting`` rows) become ``uncertain``;
3. plan against the live store (``--force``, ``--retry-failed`` and ``--resubmit-uncertain``
   apply to a manifest's first plan only: see :meth:`Session.plan`);
4. admit a plan: ``--max-renders``, then the ``confirm`` question (:meth:`Session.admit`);
5. remove staging files a killed process left beside the outputs (we hold the lock, so no other
   writer is at work);
6. run: one :class:`~vidbatch.runner.Runner`, made when first needed (after the confirm question,
   so its clock does not count the time a person took to answer), given one plan (``run``) or kept
   alive for replans (``watch``). Its ``finish`` event carries ``spend``: what the session spent
   and what its manifests have spent so far (:func:`vidbatch.ledger.run_spend`).

The budget (:class:`~vidbatch.costing.Budget`: ``--max-cost``, the prices) is checked in
:meth:`Session.admit` for every plan, the first and each of watch mode's replans alike, before
any call: a refused plan sends nothing.

SQLite connections and file locks belong to the thread that made them, so a session is opened,
used and closed on one thread; :class:`SessionThread` keeps one on a thread of its own for watch
mode, where plans are handed over with :meth:`SessionThread.replan`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from . import chain, cuts, ledger
from .costing import Budget
from .errors import MediaError, StateLockedError, UsageError, VidbatchError
from .events import EventKind
from .files import clean_staging
from .plan import Action, Plan, PlannedJob
from .runner import Progress, RunEvent, Runner, RunOptions, RunResult, check_budget
from .state import Store

log = logging.getLogger(__name__)

#: Seconds between two tries of a held lock with ``wait_for_lock``.
LOCK_POLL = 0.5


def check_force(jobs: Iterable[Any], force: Sequence[str], where: str) -> None:
    """Every ``--force`` name must name a job of ``jobs`` (``where`` says which, for the message)."""
    names = {job.name for job in jobs}
    unknown = [n for n in dict.fromkeys(force) if n not in names]
    if unknown:
        raise UsageError(f"--force names no job of {where}: {', '.join(unknown)}")


@dataclass(frozen=True)
class Refusal:
    """Why a plan was not started: ``refused`` (over ``--max-renders``; ``reason`` says so) or
    ``declined`` (the confirm question was answered no)."""

    kind: EventKind
    reason: str


#: A plan of more billable renders than this starts only with ``--max-renders`` (any number the
#: plan fits) or a yes from a person: a template typo can multiply jobs, and a script that runs
#: unattended has nobody to ask (issue 11: 10^6 jobs started creating without a question).
RUN_SIZE_LIMIT = 100


def needs_consent(plan: Plan, max_renders: int | None) -> bool:
    """Whether ``plan`` is over :data:`RUN_SIZE_LIMIT` with no ``--max-renders`` given."""
    return max_renders is None and len(plan.billable) > RUN_SIZE_LIMIT


def too_large(plan: Plan) -> str:
    """The refusal of a plan over :data:`RUN_SIZE_LIMIT`, saying how to go on."""
    n = len(plan.billable)
    return (
        f"the plan would create {n} renders, more than {RUN_SIZE_LIMIT} without --max-renders; nothing was sent. "
        f"Check the manifest (a template typo can multiply jobs), then run again with --max-renders {n} "
        "(or answer yes at a terminal)"
    )


class Session:
    """The state folder held for one ``run`` or ``watch``; see the module docstring.

    ``with Session(...) as s`` opens it (raising StateLockedError when another run holds it and
    ``wait_for_lock`` is off) and closes it, releasing the lock, at the end of the block.
    ``cancelled``, when set, ends a wait for the lock: :meth:`open` then returns False.
    """

    def __init__(
        self,
        state_dir: Path,
        client: Any,
        options: RunOptions = RunOptions(),
        on_event: Callable[[RunEvent], None] | None = None,
        *,
        wait_for_lock: bool = False,
        cancelled: threading.Event | None = None,
        budget: Budget | None = None,
    ):
        self.budget = budget  # --max-cost, and the prices each create is recorded at
        self.state_dir = Path(state_dir)
        self.client = client
        self.options = options
        self.on_event = on_event or (lambda e: None)
        self.wait_for_lock = wait_for_lock
        self.cancelled = cancelled or threading.Event()
        self._store: Store | None = None
        self._held = contextlib.ExitStack()
        self._runner: Runner | None = None
        self.result: RunResult | None = None
        self._seen_progress: Progress | None = None
        self._started = time.time()  # set again once the lock is held: the spend of "this run"
        #: the manifests planned, by path, in order: the dependency step of chained shots and the
        #: cuts read them, the spend of the run is theirs
        self._manifests: dict[str, Any] = {}

    # --- lifecycle ----------------------------------------------------------------------------

    def open(self) -> bool:
        """Open the store, take the lock, recover cut-off creates. False if cancelled while
        waiting for the lock (nothing is then held)."""
        store = Store(self.state_dir)
        self._held.callback(store.close)
        try:
            if not self._take_lock(store):
                self.close()
                return False
        except BaseException:
            self.close()
            raise
        self._started = time.time()
        for record in store.mark_interrupted_submissions():
            log.warning("job %s: create was cut off by a crash; now uncertain", record.name or record.key)
        self._store = store
        return True

    def close(self) -> None:
        """Release the lock and close the store (on the thread that opened them)."""
        self._store = None
        self._held.close()

    def __enter__(self) -> Session:
        if not self.open():
            raise UsageError("cancelled while waiting for the state folder; nothing was sent")
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _take_lock(self, store: Store) -> bool:
        """Hold the run lock until :meth:`close`. A wait polls, so Ctrl-C (or ``cancelled``)
        can cut it short, which a blocking wait on another thread could not be."""
        announced = False
        while True:
            try:
                self._held.enter_context(store.run_lock())
                return True
            except StateLockedError:
                if not self.wait_for_lock:
                    raise
            if not announced:
                announced = True
                self.on_event(RunEvent(EventKind.WAITING, f"another run is using {self.state_dir}; waiting for it to finish", data={"state_dir": str(self.state_dir)}))
            if self.cancelled.wait(LOCK_POLL):
                return False

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("the session is not open")
        return self._store

    # --- deciding -----------------------------------------------------------------------------

    def plan(self, manifests: Sequence[Any], *, first: bool = True) -> Plan:
        """The plan of ``manifests`` against the live store. ``--force``, ``--retry-failed`` and
        ``--resubmit-uncertain`` apply to a ``first`` plan only: applied again at each edit in
        watch mode, they would render forced jobs again at every save of an unrelated line.
        Chained shots are resolved (:func:`vidbatch.chain.plan`), their frames kept as files, and
        sequences planned as cuts (:func:`vidbatch.cuts.plan`)."""
        opts = self.options
        self._manifests.update((str(m.path), m) for m in manifests)
        if self.budget is not None:  # the prices of each manifest as loaded now
            self.budget = self.budget.with_manifests(manifests)
        return cuts.plan(
            list(manifests),
            self.store,
            write=True,
            retry_failed=opts.retry_failed and first,
            force=opts.force if first else (),
            resubmit_uncertain=opts.resubmit_uncertain and first,
        )

    def _dependents(self, store: Store, waiting: list[PlannedJob], busy: set[str]) -> Plan:
        """The runner's dependency step: the waiting chained shots planned against the live
        store (a source whose render is still ``busy`` in this run, by key, gives no frame yet:
        its video is about to change); the renders it readies are quoted for the spend ledger
        before they are created."""
        paths = dict.fromkeys(str(pj.job.manifest) for pj in waiting)
        manifests = [self._manifests[p] for p in paths if p in self._manifests]
        plan = chain.plan(manifests, store, write=True, only=[(str(pj.job.manifest), pj.job.name) for pj in waiting], busy=busy)
        ready = [pj for pj in plan.jobs if pj.billable and pj.action is not Action.WAIT]
        if self.budget is not None and ready:
            self.budget.quote(Plan(ready, []), store)
        return plan

    def admit(self, plan: Plan, confirm: Callable[[Plan], bool] | None = None) -> Refusal | None:
        """None when ``plan`` may start; else why not. ``--max-renders`` bounds every plan;
        ``confirm`` is asked only about plans with billable renders. A plan of more than
        :data:`RUN_SIZE_LIMIT` billable renders without ``--max-renders`` starts only when
        ``confirm`` says yes (a person at a terminal); without one it is refused. The budget's
        ``--max-cost`` bounds every plan too, before any call; an admitted plan's prices are
        written to the state for the spend ledger."""
        try:
            check_budget(plan, self.options.max_renders)
            if self.budget is not None and plan.billable:  # nothing to pay for is under any cap
                self.budget.check(plan)
        except UsageError as e:
            return Refusal(EventKind.REFUSED, str(e))
        answer = confirm(plan) if plan.billable and confirm is not None else None
        if needs_consent(plan, self.options.max_renders) and not answer:
            return Refusal(EventKind.REFUSED, too_large(plan))
        if answer is False:
            return Refusal(EventKind.DECLINED, "cancelled; nothing was sent")
        if self.budget is not None and plan.billable:
            # before any create: the ledger's prices (a chained shot that waits is quoted once ready)
            self.budget.quote(Plan([pj for pj in plan.jobs if pj.action is not Action.WAIT], plan.orphans), self.store)
        return None

    def clean_staging(self, manifests: Iterable[Any]) -> None:
        """Remove what a killed process left beside these manifests' outputs (we hold the lock)."""
        outputs = [job.output for m in manifests for job in m.jobs]
        clean_staging(outputs)

    # --- running ------------------------------------------------------------------------------

    @property
    def runner(self) -> Runner:
        """The session's one runner, made on first use."""
        if self._runner is None:
            self._runner = Runner(self.store, self.client, self.options, self._relay, dependents=self._dependents)
        return self._runner

    def _relay(self, e: RunEvent) -> None:
        if e.progress is not None:
            self._seen_progress = e.progress
        if e.kind == EventKind.FINISH and self._store is not None:  # on the store's thread
            try:
                e = replace(e, data={**e.data, "spend": self.spend().to_json()})
            except VidbatchError as error:  # a state that cannot be read now: the run's end says so
                log.warning("could not read what the run spent: %s", error)
        self.on_event(e)
        if e.kind is EventKind.IDLE and self._manifests:  # watch: every render landed; join the cuts
            self.assemble(list(self._manifests.values()))

    def spend(self) -> ledger.RunSpend:
        """What this session spent, and the manifests it planned so far (on the session's thread)."""
        return ledger.run_spend(self.store, since=self._started, manifests=list(self._manifests))

    @property
    def progress(self) -> Progress:
        """The counts of the run: final once it returned, else the latest an event carried."""
        if self.result is not None:
            return self.result.progress
        return self._seen_progress or Progress()

    def run(self, plan: Plan) -> RunResult:
        """Carry out one plan and return when it is done (``run``)."""
        self.result = self.runner.run(plan)
        return self.result

    def assemble(self, manifests: Sequence[Any]) -> list[cuts.Built]:
        """Join each sequence of ``manifests`` whose shots' videos are all in place and whose cut
        is missing or was joined from other videos (after :meth:`run`; local, no API call). A
        sequence that cannot be joined says why; one whose join fails counts as failed."""
        if not any(getattr(m, "sequences", None) for m in manifests):
            return []
        try:
            # every job planned leniently (a chained shot whose frame was refused just blocks its cut)
            jobs = [(str(m.path), j.name) for m in manifests for j in m.jobs]
            planned = cuts.plan_cuts(list(manifests), chain.plan(list(manifests), self.store, write=True, only=jobs), self.store)
        except VidbatchError as e:
            self.on_event(RunEvent(EventKind.ERROR, f"sequences not joined: {e}"))
            return []
        built: list[cuts.Built] = []
        for cut in planned:
            name = cut.sequence.name
            if cut.action is cuts.CutAction.BUILD:
                try:
                    done = cuts.build(cut, self.store)
                except MediaError as e:
                    if self.result is not None:
                        self.result.failed.append(name)
                    self.on_event(RunEvent(EventKind.FAILED, f"cut not joined: {e}", name))
                    continue
                built.append(done)
                how = f"re-encoded: {done.result.reason}" if done.result.reencoded else "copied, no re-encode"
                data = {"path": str(cut.sequence.output), "shots": len(cut.clips), "duration": round(done.result.duration, 3), "reencoded": done.result.reencoded, "sha256": done.sha256}
                self.on_event(RunEvent(EventKind.JOINED, f"{len(cut.clips)} shots, {done.result.duration:.2f} s ({how})", name, data=data))
            elif cut.action is not cuts.CutAction.SKIP:
                self.on_event(RunEvent(EventKind.BLOCKED, f"cut not joined: {cut.reason}", name))
        return built

    def serve(self) -> RunResult:
        """Run plans handed over with ``runner.replan`` until ``runner.stop()`` (``watch``)."""
        self.result = self.runner.run(None, keep_alive=True)
        return self.result


class SessionThread:
    """A :class:`Session` opened, served and closed on a thread of its own (watch mode).

    The thread that starts it hands plans over with :meth:`replan` (the plan is made on the
    session's thread, against the live store, so it sees what is already in flight) and ends it
    with :meth:`stop`. An error while opening or running is kept in :attr:`error`.
    """

    def __init__(self, session: Session):
        self.session = session
        self.error: BaseException | None = None
        self._ready = threading.Event()  # set once the runner exists, or the thread gave up
        self._serving = False
        self._thread = threading.Thread(target=self._main, name="vidbatch-runner", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _main(self) -> None:
        try:
            if not self.session.open():
                return  # called off while waiting for the lock
            try:
                self.session.runner  # noqa: B018 - made here, on the thread that owns the store
                self._serving = True
                self._ready.set()
                self.session.serve()  # until stop()
            finally:
                self.session.close()
        except BaseException as e:  # noqa: BLE001 - handed to the thread that started us
            self.error = e
        finally:
            self._ready.set()

    def wait_ready(self) -> None:
        """Wait (interruptibly) until the session is serving; raise its error if it failed."""
        while not self._ready.wait(0.2):
            pass
        if not self._serving:
            raise self.error if self.error is not None else UsageError("the session ended before it started")

    def replan(self, make_plan: Callable[[], Plan]) -> None:
        """Thread-safe: have the session's thread call ``make_plan()`` and start what it adds."""
        self.session.runner.replan(lambda store: make_plan())

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def progress(self) -> Progress:
        return self.session.progress

    def stop(self, timeout: float) -> None:
        """End the session as a first Ctrl-C would: stop creating, save the creates already on
        the wire, release the lock. Calls off a wait for the lock."""
        self.session.cancelled.set()
        self._ready.wait(timeout)  # a lock wait ends within LOCK_POLL
        if self._serving:
            self.session.runner.stop()
        self._thread.join(timeout)
