"""Jobs: long work (a new query, a circuit, an evaluation) run in a worker thread, with progress and cancel.

A job's function gets a `JobContext`: it reports progress through it and it is cancelled through it.
Cancellation is cooperative but reaches deep: while a job runs, every conv call in its thread checks the
job's cancel flag (a TorchFunctionMode; modes are per thread), so even a method that never looks at
the flag stops within one layer.

The queue follows the page's attention: every job has a priority (the panel that asked says how urgent,
`viscnn.server.attention`; else its kind's `DEFAULT_PRIORITY`), the most urgent queued job starts first,
and one more urgent than the job running starts at once while that one waits, paused at its next conv
call, until nothing more urgent is left (one job computes at a time: the CPU is shared). A page lets go of
the work of a panel it closed (`JobManager.release`) and what nobody else holds is cancelled at once.

Jobs report their steps (`JobContext.steps`): done of total, in a unit, with the time left estimated from
the rate so far (paused time does not count).

The queue is bounded (`QueueLimits`): a kind with too many jobs waiting refuses more (`Busy`, a 429), a
queued job nobody follows or asks about is cancelled before it starts, and finished jobs are forgotten
after a while. Event streams wait for changes on the event loop (`Job.changed_async`), never in a thread.
"""
from __future__ import annotations

import asyncio
import itertools
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from torch.overrides import TorchFunctionMode

from viscnn.errors import ViscnnError
from viscnn.server.attention import current
from viscnn.server.security import check_may_queue

STATES = ("queued", "running", "done", "error", "cancelled")
FINAL = ("done", "error", "cancelled")


class Cancelled(Exception):
    """Raised inside a job's thread once the job was cancelled."""


class Busy(ViscnnError):
    """Too many jobs of a kind are waiting: a 429 with Retry-After."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# How many jobs of a kind may wait at once. A node's panel asks for ~17 renders (its own and its inputs'
# sources), so renders get room for a few panels; an evaluation holds the worker for minutes, so few.
CAPS = {"query": 8, "circuit": 8, "composition": 16, "faithfulness": 4, "render": 64}


@dataclass(frozen=True)
class QueueLimits:
    """Bounds of the user's queue (seconds and counts).

    `caps`: queued jobs per kind (`default_cap` for other kinds); `orphan_grace`: how long a queued job
    waits after its last follower (an event stream) left before it is cancelled, unless someone asks about
    it; `unasked`: the same for a queued job nobody ever followed (an API client polling it resets the
    clock at each poll); `keep_finished`: how long a finished job stays listed.
    """

    caps: dict[str, int] = field(default_factory=lambda: dict(CAPS))
    default_cap: int = 16
    orphan_grace: float = 10.0
    unasked: float = 120.0
    keep_finished: float = 900.0
    retry_after: int = 5
    max_streams: int = 1000  # open event streams (each holds a socket, no thread)

    def cap(self, kind: str) -> int:
        return self.caps.get(kind, self.default_cap)


class Signal:
    """Wakes coroutines (on whichever event loop they wait) when another thread says something changed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def fire(self) -> None:
        with self._lock:
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            with suppress(RuntimeError):  # that loop has closed: nobody waits any more
                loop.call_soon_threadsafe(_wake, future)

    async def wait(self, changed: Callable[[], bool], timeout: float) -> None:
        """Return once `changed()` is true after a `fire`, or after `timeout` s."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        entry = (loop, future)
        with self._lock:
            self._waiters.append(entry)
        try:
            if not changed():  # registered first: a change between the check and the wait still wakes us
                with suppress(asyncio.TimeoutError):  # TimeoutError itself only from Python 3.11
                    await asyncio.wait_for(future, timeout)
        finally:
            with self._lock, suppress(ValueError):
                self._waiters.remove(entry)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _CancelCheck(TorchFunctionMode):
    """At every conv call: stop if the job was cancelled; for a background job, wait while `go` is clear."""

    def __init__(self, event: threading.Event, go: threading.Event | None = None) -> None:
        super().__init__()
        self.event = event
        self.go = go

    def __torch_function__(self, func: Callable[..., Any], types: Iterable[type], args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        if getattr(func, "__name__", "") == "conv2d":
            while self.go is not None and not self.go.is_set() and not self.event.is_set():
                self.go.wait(0.1)
            if self.event.is_set():
                raise Cancelled
        return func(*args, **(kwargs or {}))


# How urgent a job is when the request did not say (`attention.Attention.priority`): lower runs first. A query
# (what the page waits for) never waits behind a row of renders or an evaluation; dataset examples (one short
# pass that serves every node's panel) come before renders. The page's own priorities use the same scale.
DEFAULT_PRIORITY = {"query": 0, "examples": 1, "composition": 1, "circuit": 1, "render": 2, "faithfulness": 2,
                    "subfeatures": 2, "layout": 3}
# Among jobs of equal priority: short work that serves many panels first.
KIND_ORDER = {"query": 0, "examples": 1, "composition": 2, "circuit": 2, "render": 3, "subfeatures": 4, "faithfulness": 4,
              "layout": 5}
MAX_STARTED = 4  # jobs started at once: the most urgent computes, the others wait paused at a conv call
REPORT_EVERY = 0.25  # s: step reports closer than this change the job only at the last step


@dataclass(eq=False)
class Job:
    """One unit of long work; `version` grows with every change so event streams know what is new.

    `priority`: lower runs first (see `DEFAULT_PRIORITY`); `panel`: the page's panel that asked; `done`,
    `total`, `unit`: its steps (None when it does not count them); `eta`: seconds left, estimated from the
    rate of its steps; `paused`: started, but waiting at a conv call while more urgent work runs.
    """

    id: str
    kind: str
    description: str = ""
    state: str = "queued"
    progress: float = 0.0
    message: str = "waiting for the worker"
    result: Any = None
    error: str | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    version: int = 0
    background: bool = False
    priority: float = 1.0
    panel: str = ""
    done: int | None = None
    total: int | None = None
    unit: str = ""
    eta: float | None = None
    paused: bool = False
    order: int = 0  # first come, first served among equals
    followers: int = 0  # open event streams that follow it
    followed: bool = False  # someone followed it once
    watchers: dict[str, int] = field(default_factory=dict, repr=False)  # open streams following it, per client id
    holders: set[tuple[str, str]] = field(default_factory=set, repr=False)  # (client, hold) that asked and did not let go
    asked: float = field(default_factory=time.monotonic)  # when someone last submitted, polled or left it
    cancel_event: threading.Event = field(default_factory=threading.Event, repr=False)
    cancel_message: str = "cancelled"  # what a running job says once it has stopped for a cancel
    go: threading.Event = field(default_factory=threading.Event, repr=False)  # set while it may compute
    changed: threading.Condition = field(default_factory=threading.Condition, repr=False)
    signal: Signal = field(default_factory=Signal, repr=False)
    on_change: Callable[[], None] = field(default=lambda: None, repr=False)
    _paused_at: float | None = field(default=None, repr=False)
    _paused_seconds: float = field(default=0.0, repr=False)
    _rate_from: tuple[float, int, int | None, str] | None = field(default=None, repr=False)  # (clock, done, total, unit)
    _reported: float = field(default=0.0, repr=False)

    @property
    def seconds(self) -> float:
        if self.started is None:
            return 0.0
        return (self.finished or time.time()) - self.started

    @property
    def rank(self) -> tuple[float, int]:
        """What decides which of two jobs is more urgent (lower first); ties go first come, first served."""
        return self.priority, KIND_ORDER.get(self.kind, 2)

    def active_clock(self) -> float:
        """A monotonic clock that stands still while the job is paused."""
        now = time.monotonic()
        paused = self._paused_seconds + (now - self._paused_at if self._paused_at is not None else 0.0)
        return now - paused

    def to_json(self, *, result: bool = True) -> dict:
        data = {"id": self.id, "kind": self.kind, "description": self.description, "state": self.state,
                "progress": round(self.progress, 4), "message": self.message, "seconds": round(self.seconds, 3),
                "error": self.error, "priority": self.priority, "panel": self.panel, "done": self.done,
                "total": self.total, "unit": self.unit, "eta": None if self.eta is None else round(self.eta, 1),
                "paused": self.paused, "created": round(self.created, 3),
                "started": None if self.started is None else round(self.started, 3),
                "finished": None if self.finished is None else round(self.finished, 3)}
        if result:
            data["result"] = self.result if self.state == "done" else None
        return data

    def update(self, **changes: Any) -> None:
        with self.changed:
            for name, value in changes.items():
                setattr(self, name, value)
            self.version += 1
            self.changed.notify_all()
        self.signal.fire()
        self.on_change()

    def set_paused(self, paused: bool) -> None:
        """Let it compute (`paused` False) or hold it at its next conv call; the time held is not counted."""
        if paused:
            self.go.clear()
            if self._paused_at is None:
                self._paused_at = time.monotonic()
        else:
            if self._paused_at is not None:
                self._paused_seconds += time.monotonic() - self._paused_at
                self._paused_at = None
            self.go.set()
        if self.state == "running" and self.paused != paused:
            self.update(paused=paused)

    async def changed_async(self, version: int, timeout: float) -> int:
        """Wait until the job's version differs from `version` (or `timeout` s) and return the current one.
        Waits on the event loop, holding no thread."""
        await self.signal.wait(lambda: self.version != version, timeout)
        return self.version


class JobContext:
    """What a job's function sees: progress reporting and the cancel check."""

    def __init__(self, job: Job) -> None:
        self.job = job

    @property
    def cancelled(self) -> bool:
        return self.job.cancel_event.is_set()

    def check(self) -> None:
        if self.cancelled:
            raise Cancelled

    def report(self, progress: float | None = None, message: str | None = None) -> None:
        """Set the progress (0..1) and/or message; raises Cancelled if the job was cancelled."""
        self.check()
        changes: dict[str, Any] = {}
        if progress is not None:
            changes["progress"] = min(1.0, max(0.0, float(progress)))
        if message is not None:
            changes["message"] = message
        if changes:
            self.job.update(**changes)

    def steps(self, done: int, total: int, unit: str = "steps", message: str | None = None, *,
              start: float = 0.0, stop: float = 1.0) -> None:
        """`done` of `total` steps (in `unit`: "steps", "images", "circuits"...) of the stage that moves the
        progress from `start` to `stop`; the time left comes from the rate of this stage's steps so far.
        Reports closer than `REPORT_EVERY` s change the job only at a stage's first and last step (a render's
        steps come every few milliseconds on a small model). Raises Cancelled if the job was cancelled."""
        self.check()
        job = self.job
        total = max(int(total), 1)
        done = max(0, min(int(done), total))
        clock = job.active_clock()
        origin = job._rate_from
        if origin is None or origin[2] != total or origin[3] != unit or done < origin[1]:
            job._rate_from = origin = (clock, done, total, unit)  # a new stage: its rate starts here
            first = True
        else:
            first = False
        eta = None
        if done > origin[1]:
            eta = (clock - origin[0]) / (done - origin[1]) * (total - done)
        now = time.monotonic()
        if not (first or done == total) and now - job._reported < REPORT_EVERY:
            return
        job._reported = now
        job.update(done=done, total=total, unit=unit, eta=eta, progress=start + (stop - start) * done / total,
                   **({"message": message} if message is not None else {}))

    def stage(self, unit: str, message: str, *, start: float = 0.0, stop: float = 1.0) -> Callable[..., None]:
        """A `progress` callable for a library function: it takes `(done, total)` or one report with `step` and
        `steps` attributes (e.g. `circuits.methods.learned.StepReport`) and reports them as this job's steps."""
        def report(*args: Any) -> None:
            if len(args) == 2:
                done, total = args
            else:
                done, total = args[0].step, args[0].steps
            self.steps(int(done), int(total), unit, message, start=start, stop=stop)

        return report

    def track(self, items: Iterable, total: int, *, start: float, stop: float, message: str,
              unit: str = "steps") -> Iterator:
        """Yield `items`, moving the progress from `start` to `stop` over `total` of them."""
        for k, item in enumerate(items):
            self.steps(k, total, unit, message, start=start, stop=stop)
            yield item
        self.steps(total, total, unit, message, start=start, stop=stop)


class JobManager:
    """Runs the user's jobs by urgency (the CPU is shared: one computes at a time) and keeps the recent ones.

    A queued job starts when nothing more urgent is started (`Job.rank`: priority, then `KIND_ORDER`; ties
    first come); a queued job more urgent than every started one starts at once, and the job it overtakes
    waits, paused at its next conv call, until it is the most urgent started job again (at most
    `MAX_STARTED` started at once). The queue is bounded by `limits` (see `QueueLimits`), and nothing is
    queued for a request that may not queue work (`security.check_may_queue`: another site's page).

    Background jobs (the precompute `viscnn serve` starts) have a worker of their own, so what the
    user asks for never waits behind them, and they pause at their next conv call while a job of the
    user's runs, so they do not slow it down either. They are neither capped nor expired.

    `changes` fires whenever any job changes (or a new one appears): the all-jobs event stream waits on it.
    """

    def __init__(self, workers: int = MAX_STARTED, keep: int = 200, keep_results: int = 20, *,
                 limits: QueueLimits | None = None) -> None:
        self._max_started = max(1, workers)
        self._pool = ThreadPoolExecutor(max_workers=self._max_started, thread_name_prefix="viscnn-job")
        self._background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="viscnn-background")
        self._jobs: dict[str, Job] = {}
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._keep = keep
        self._keep_results = keep_results
        self.limits = limits or QueueLimits()
        self._by_key: dict[str, Job] = {}
        self._user_idle = threading.Event()  # set while no job of the user's runs
        self._user_idle.set()
        self._user_running = 0
        self._queue: dict[str, tuple[Job, Callable[[JobContext], Any]]] = {}  # queued user jobs by id
        self._started: list[Job] = []  # user jobs handed to a thread and not finished (one computes, the rest wait)
        self._order = itertools.count()
        self.changes = Signal()
        self._epochs = itertools.count(1)
        self.epoch = 0  # a new value at every change of any job (unique, so no change is lost between threads)
        self.streams = 0  # event streams open now

    def _changed(self) -> None:
        self.epoch = next(self._epochs)
        self.changes.fire()

    async def changed_async(self, epoch: int, timeout: float) -> int:
        """Wait until `epoch` differs from the current one (or `timeout` s) and return the current one."""
        await self.changes.wait(lambda: self.epoch != epoch, timeout)
        return self.epoch

    def submit(self, kind: str, function: Callable[[JobContext], Any], description: str = "", *,
               key: str | None = None, background: bool = False, priority: float | None = None) -> Job:
        """Queue `function(context)`; with `key`, a job for the same key that is not failed or cancelled is reused.

        The job's priority is `priority`, else the request's (`attention.current()`), else its kind's default;
        a reused job takes the more urgent of its own and the new one. Raises `Forbidden` for a request that
        may not queue work and `Busy` when `kind` has its cap of jobs waiting (a reused job is neither)."""
        self.sweep()
        attention = current()
        if priority is None:
            priority = attention.priority if attention.priority is not None else DEFAULT_PRIORITY.get(kind, 1)
        reused: Job | None = None
        sooner = False
        with self._lock:
            old = self._by_key.get(key) if key is not None else None
            if old is not None and old.state not in ("error", "cancelled") and not old.cancel_event.is_set():
                old.asked = time.monotonic()
                old.holders.add((attention.client, attention.hold))
                sooner = not old.background and old.state in ("queued", "running") and priority < old.priority
                reused = old
        if reused is not None:
            if sooner:  # asked again, more urgently: it moves up the queue (or overtakes the running job)
                reused.update(priority=priority)
                self._dispatch()
            return reused
        if not background:
            check_may_queue()
        with self._lock:
            if not background:
                waiting = sum(1 for j, _ in self._queue.values() if j.kind == kind and j.state == "queued")
                if waiting >= self.limits.cap(kind):
                    raise Busy(f"{waiting} {kind} jobs are already waiting, the most this server queues: try again when "
                               f"some have finished, or cancel some (DELETE /api/jobs/ID)", self.limits.retry_after)
            job = Job(f"{kind}-{next(self._ids)}", kind, description, background=background, priority=priority,
                      panel=attention.panel, order=next(self._order), on_change=self._changed)
            job.holders.add((attention.client, attention.hold))
            job.go.set()
            self._jobs[job.id] = job
            if key is not None:
                self._by_key[key] = job
            self._trim()
            if not background:
                self._queue[job.id] = (job, function)
        self._changed()
        if background:
            self._background.submit(self._run, job, function, True)
        else:
            self._dispatch()
        return job

    def _dispatch(self) -> None:
        """Start the most urgent queued job if nothing started is as urgent (or nothing is started), and let only
        the most urgent started job compute."""
        start: tuple[Job, Callable[[JobContext], Any]] | None = None
        with self._lock:
            for job_id in [i for i, (j, _) in self._queue.items() if j.cancel_event.is_set() or j.state != "queued"]:
                del self._queue[job_id]
            if self._queue:
                head_id, head = min(self._queue.items(), key=lambda item: (item[1][0].rank, item[1][0].order))
                best = min(self._started, key=lambda j: (j.rank, j.order), default=None)
                if best is None or (len(self._started) < self._max_started and head[0].rank < best.rank):
                    del self._queue[head_id]
                    self._started.append(head[0])
                    start = head
            active = min(self._started, key=lambda j: (j.rank, j.order), default=None)
            for job in self._started:  # under the lock: two dispatches never leave a stale choice behind
                job.set_paused(job is not active)
        if start is not None:
            self._pool.submit(self._run, *start)

    def sweep(self) -> None:
        """Cancel queued jobs nobody follows or asks about (see `QueueLimits`) and forget old finished ones."""
        now = time.monotonic()
        limits = self.limits
        with self._lock:
            orphans = [j for j in self._jobs.values() if j.state == "queued" and not j.background and not j.followers
                       and now - j.asked > (limits.orphan_grace if j.followed else limits.unasked)]
            expired = [j for j in self._jobs.values() if j.state in FINAL and j.finished is not None
                       and time.time() - j.finished > limits.keep_finished]
            for job in expired:
                del self._jobs[job.id]
            if expired:
                gone = {id(j) for j in expired}
                self._by_key = {k: j for k, j in self._by_key.items() if id(j) not in gone}
        for job in orphans:
            waited = limits.orphan_grace if job.followed else limits.unasked
            self._cancel(job, f"nobody followed or asked about it for {waited:g} s")
        if expired:
            self._changed()

    def _trim(self) -> None:
        """Forget old finished jobs, and the results (megabytes for a big model's query) of all but the recent ones."""
        finished = [j for j in self._jobs.values() if j.state in FINAL]  # oldest first
        old = finished[: max(0, len(finished) - self._keep_results)]
        for job in old:
            job.result = None
        if old:
            gone = {id(j) for j in old}
            self._by_key = {k: j for k, j in self._by_key.items() if id(j) not in gone}
        for job in finished[: max(0, len(self._jobs) - self._keep)]:
            del self._jobs[job.id]

    def _run(self, job: Job, function: Callable[[JobContext], Any], background: bool = False) -> None:
        try:
            with job.changed:  # the queued -> running step and cancel() must not interleave
                if job.cancel_event.is_set():
                    return  # cancelled while queued: cancel() already said so
                job.update(state="running", started=time.time(), message="started", paused=not job.go.is_set())
            if not background:
                self._user_job(+1)
            try:
                self._work(job, function, self._user_idle if background else job.go)
            finally:
                if not background:
                    self._user_job(-1)
        finally:
            if not background:
                with self._lock:
                    if job in self._started:
                        self._started.remove(job)
                job.set_paused(False)
                self._dispatch()

    def _user_job(self, change: int) -> None:
        with self._lock:
            self._user_running += change
            if self._user_running:
                self._user_idle.clear()
            else:
                self._user_idle.set()

    def _work(self, job: Job, function: Callable[[JobContext], Any], go: threading.Event | None) -> None:
        context = JobContext(job)
        try:
            with _CancelCheck(job.cancel_event, go):
                result = function(context)
        except Cancelled:
            job.update(state="cancelled", message=job.cancel_message, finished=time.time(), paused=False)
        except ViscnnError as exc:
            job.update(state="error", error=str(exc), message=str(exc), finished=time.time(), paused=False)
        except Exception as exc:
            traceback.print_exc()
            text = f"internal error: {type(exc).__name__}: {exc}"
            job.update(state="error", error=text, message=text, finished=time.time(), paused=False)
        else:
            done = {"done": job.total} if job.total is not None else {}
            job.update(state="done", result=result, progress=1.0, message="done", finished=time.time(), eta=0.0,
                       paused=False, **done)

    def get(self, job_id: str, *, ask: bool = True) -> Job:
        """The job (KeyError if unknown); `ask`: this counts as someone asking about it (keeps it queued)."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise KeyError(job_id)
        if ask:
            job.asked = time.monotonic()
        return job

    def jobs(self, *, sweep: bool = True) -> list[Job]:
        if sweep:
            self.sweep()
        with self._lock:
            return list(self._jobs.values())

    def check_stream_room(self) -> None:
        """Raise `Busy` when `limits.max_streams` event streams are open already."""
        if self.streams >= self.limits.max_streams:
            raise Busy(f"{self.streams} event streams are open, the most this server keeps: close some, or poll "
                       f"GET /api/jobs/ID", self.limits.retry_after)

    @contextmanager
    def streaming(self) -> Iterator[None]:
        """Counts an open event stream while inside."""
        with self._lock:
            self.streams += 1
        try:
            yield
        finally:
            with self._lock:
                self.streams -= 1

    @contextmanager
    def following(self, jobs: Iterable[Job], client: str = "") -> Iterator[None]:
        """While inside, `jobs` count as followed (by `client`'s event stream); leaving starts their grace."""
        jobs = list(jobs)
        with self._lock:
            for job in jobs:
                job.followers += 1
                job.followed = True
                job.watchers[client] = job.watchers.get(client, 0) + 1
        try:
            yield
        finally:
            now = time.monotonic()
            with self._lock:
                for job in jobs:
                    job.followers -= 1
                    job.asked = now
                    job.watchers[client] -= 1
                    if not job.watchers[client]:
                        del job.watchers[client]

    def release(self, job_ids: Iterable[str], client: str, hold: str | None = None) -> list[Job]:
        """`client` (a page) no longer wants these jobs for `hold` (the showing of a panel that asked for them, now
        closed; None: for any of its panels, the page goes away): each one that nobody else holds (another hold,
        of this page or another, that asked for it and did not let go, or another page's event stream following
        it) is cancelled at once, queued or running; unknown ids are skipped. Returns the jobs found, as they
        are now."""
        found = []
        for job_id in job_ids:
            try:
                job = self.get(job_id, ask=False)
            except KeyError:
                continue
            found.append(job)
            with self._lock:
                job.holders = {h for h in job.holders if h[0] != client or (hold is not None and h[1] != hold)}
                others = job.holders | {(c, "") for c, n in job.watchers.items() if n > 0 and c != client}
            if not others and not job.background and job.state not in FINAL:
                self._cancel(job, "the panel that asked for it was closed")
        return found

    def cancel(self, job_id: str) -> Job:
        return self._cancel(self.get(job_id))

    def _cancel(self, job: Job, why: str = "") -> Job:
        """Cancels `job`: a queued one at once, a running one at its next check; its message says `why`."""
        with job.changed:
            if job.state in FINAL:
                return job
            job.cancel_event.set()
            job.cancel_message = f"cancelled: {why}" if why else "cancelled"
            if job.state == "queued":
                now = time.time()
                job.update(state="cancelled", message=f"cancelled before it started{': ' + why if why else ''}", started=now,
                           finished=now)
            else:
                job.update(message="cancelling")
        if not job.background:
            self._dispatch()  # a queued one leaves the queue; a paused one wakes to stop
        return job

    def shutdown(self) -> None:
        for job in self.jobs():
            job.cancel_event.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._background.shutdown(wait=False, cancel_futures=True)
