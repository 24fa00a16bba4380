"""Per-call stage timings: where a Runtime call spent its time, graph by graph.

Every graph run (``run`` or a bound ``run``) is timed with two ``perf_counter`` reads and added to
the call that is open on the calling thread; ``Runtime.last_timings`` then holds the last finished
call of that thread as a :class:`CallTimings`. Work outside the graphs (the MaskGIT sampler, the
tokenizer, image conversion) is the call's ``host_ms``.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class StageTime:
    """One graph's share of a call: how often it ran, for how long, and when it first started."""

    calls: int
    ms: float
    first_start_ms: float  # from the start of the call: for MMU, decode_step's is the time to first token


@dataclass(frozen=True)
class CallTimings:
    """What one public Runtime call (``method``) spent: wall ``total_ms`` and each graph's time."""

    method: str
    total_ms: float
    stages: dict[str, StageTime] = field(default_factory=dict)  # graph name -> time, in order of first use

    @property
    def graphs_ms(self) -> float:
        return sum(s.ms for s in self.stages.values())

    @property
    def host_ms(self) -> float:
        """Time outside the graphs: sampler, token picking, tokenizer, pre/post-processing."""
        return max(0.0, self.total_ms - self.graphs_ms)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "total_ms": self.total_ms, "host_ms": self.host_ms,
                "stages": {name: vars(s) for name, s in self.stages.items()}}

    def table(self) -> str:
        """A per-stage latency table (graph, calls, ms, ms per call, share of the call)."""
        rows = [(name, s.calls, s.ms) for name, s in self.stages.items()] + [("host (sampler, pre/post)", None, self.host_ms)]
        width = max(len(r[0]) for r in rows + [("stage", 0, 0.0)])
        lines = [f"{self.method}: {self.total_ms:.1f} ms",
                 f"{'stage':<{width}}  {'calls':>6}  {'ms':>10}  {'ms/call':>9}  {'share':>6}"]
        for name, calls, ms in rows:
            per = f"{ms / calls:9.2f}" if calls else f"{'':>9}"
            share = 100 * ms / self.total_ms if self.total_ms > 0 else 0.0
            lines.append(f"{name:<{width}}  {calls if calls is not None else '':>6}  {ms:10.1f}  {per}  {share:5.1f}%")
        return "\n".join(lines)


class _Open:
    """A call being timed: its start and the stage times gathered so far (mutable)."""

    def __init__(self, method: str):
        self.method = method
        self.start = time.perf_counter()
        self.busy = 0.0  # seconds spent inside the call (a stream is inside only while producing)
        self.stages: dict[str, list[float]] = {}  # name -> [calls, seconds, first start offset]

    def add(self, name: str, start: float, seconds: float) -> None:
        entry = self.stages.setdefault(name, [0, 0.0, start - self.start])
        entry[0] += 1
        entry[1] += seconds

    def result(self) -> CallTimings:
        stages = {n: StageTime(int(c), s * 1e3, first * 1e3) for n, (c, s, first) in self.stages.items()}
        return CallTimings(self.method, self.busy * 1e3, stages)


class Recorder:
    """Thread-local call timing: the outermost public call on a thread owns the graph runs inside it."""

    def __init__(self) -> None:
        self._local = threading.local()

    def _stack(self) -> list[_Open]:
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    @property
    def last(self) -> CallTimings | None:
        return getattr(self._local, "last", None)

    def add(self, name: str, start: float, end: float) -> None:
        stack = self._stack()
        if stack:
            stack[-1].add(name, start, end - start)

    @contextmanager
    def _inside(self, call: _Open) -> Iterator[None]:
        stack = self._stack()
        stack.append(call)
        begin = time.perf_counter()
        try:
            yield
        finally:
            call.busy += time.perf_counter() - begin
            stack.pop()

    def call(self, name: str, run: Callable[[], Any]) -> Any:
        """Run ``run()`` as the public call ``name``, unless a timed call is already open on this thread.

        A generator it returns (a streamed answer) is timed while it produces, not while its
        consumer holds it; its timings are stored when it is exhausted.
        """
        if self._stack():
            return run()
        call = _Open(name)
        with self._inside(call):
            result = run()
        if isinstance(result, Generator):
            return self._stream(result, call)
        self._local.last = call.result()
        return result

    def _stream(self, pieces: Generator[Any, None, None], call: _Open) -> Iterator[Any]:
        while True:
            with self._inside(call):
                try:
                    piece = next(pieces)
                except StopIteration:
                    break
            yield piece
        self._local.last = call.result()


def timed(method: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a public method of an object with a ``_recorder`` (a :class:`Recorder`) to time its calls."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        return self._recorder.call(method.__name__, lambda: method(self, *args, **kwargs))

    return wrapper


class TimedBound:
    """A bound graph whose every ``run`` is recorded."""

    def __init__(self, bound: Any, recorder: Recorder, name: str):
        self._bound, self._recorder, self._name = bound, recorder, name

    def run(self) -> None:
        start = time.perf_counter()
        try:
            self._bound.run()
        finally:
            self._recorder.add(self._name, start, time.perf_counter())


class TimedGraph:
    """Wraps a backend graph: ``run`` and ``bind(...).run()`` are recorded; everything else passes through."""

    def __init__(self, graph: Any, recorder: Recorder):
        self._graph, self._recorder = graph, recorder
        self.name = graph.name

    def run(self, feed: dict[str, Any]) -> dict[str, Any]:
        start = time.perf_counter()
        try:
            return self._graph.run(feed)
        finally:
            self._recorder.add(self.name, start, time.perf_counter())

    def bind(self, inputs: dict[str, Any], outputs: dict[str, Any]) -> TimedBound:
        return TimedBound(self._graph.bind(inputs, outputs), self._recorder, self.name)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._graph, attr)
