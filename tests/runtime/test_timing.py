"""Runtime.last_timings: per-graph call counts and times of the last public call, per thread."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import showo_sdk
from showo_sdk.runtime.timing import CallTimings, Recorder, StageTime, timed


@pytest.fixture()
def rt(tiny):
    return showo_sdk.Runtime(tiny.bundle, backend="ort-cpu", num_threads=1)


def test_none_before_any_call(rt):
    assert rt.last_timings is None


def test_generate_counts_every_graph_run(rt):
    rt.generate("a red circle", steps=5, guidance_scale=2.0, seed=0)
    first = rt.last_timings
    assert first.method == "generate"
    assert {"t2i_prefix (load)", "t2i_step (load)", "vq_decoder (load)"} <= set(first.stages)  # first use loads
    rt.generate("a red circle", steps=5, guidance_scale=2.0, seed=0)
    t = rt.last_timings
    assert [n for n in t.stages] == ["t2i_prefix", "t2i_step", "vq_decoder"]  # no loads the second time
    assert t.stages["t2i_prefix"].calls == 1 and t.stages["t2i_step"].calls == 5 and t.stages["vq_decoder"].calls == 1
    assert all(s.ms > 0 for s in t.stages.values())
    assert t.graphs_ms + t.host_ms == pytest.approx(t.total_ms)
    assert 0 <= t.stages["t2i_prefix"].first_start_ms < t.stages["t2i_step"].first_start_ms < t.total_ms
    table = t.table()
    assert "t2i_step" in table and "host" in table and table.splitlines()[0].startswith("generate:")
    assert t.to_dict()["stages"]["t2i_step"]["calls"] == 5


def test_nested_calls_belong_to_the_outer_one(rt, tiny):
    cond = rt.prompting.t2i_ids([tiny.tokenizer.encode("two green triangles")])  # all [MASK]
    rt.generate_codes(cond, None, steps=3, guidance_scale=0.0, greedy=True)
    assert rt.last_timings.method == "generate_codes" and "vq_decoder" not in rt.last_timings.stages
    assert rt.last_timings.stages["t2i_step"].calls == 3
    rt.understand(np.zeros((32, 32, 3), np.uint8), "What color is the circle?", max_new_tokens=4)
    t = rt.last_timings
    assert t.method == "understand" and {"vq_encoder", "mmu_prefill"} <= set(t.stages)


def test_stream_is_timed_while_it_produces_and_stored_when_done(rt):
    image = np.zeros((32, 32, 3), np.uint8)
    rt.generate("a red circle", steps=2, seed=0)
    stream = rt.understand(image, "How many objects are there?", max_new_tokens=6, stream=True)
    assert rt.last_timings.method == "generate"  # not finished yet
    pieces = []
    for piece in stream:
        pieces.append(piece)
        time.sleep(0.05)  # the consumer's time is not the stream's
    t = rt.last_timings
    assert t.method == "understand" and t.stages["mmu_prefill"].calls == 1
    assert t.total_ms < 50 * max(1, len(pieces)) + t.graphs_ms + 1000


def test_threads_keep_their_own_timings(rt):
    rt.generate("a red circle", steps=2, seed=0)
    seen = {}

    def worker() -> None:
        seen["before"] = rt.last_timings
        rt.generate("a blue square", steps=3, seed=1)
        seen["after"] = rt.last_timings

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen["before"] is None and seen["after"].stages["t2i_step"].calls == 3
    assert rt.last_timings.stages["t2i_step"].calls == 2  # this thread's call is untouched


def test_failed_call_is_not_stored(rt):
    rt.generate("a red circle", steps=2, seed=0)
    with pytest.raises(showo_sdk.InputError):
        rt.generate("a red circle", steps=0)
    assert rt.last_timings.method == "generate" and rt.last_timings.stages["t2i_step"].calls == 2


def test_recorder_alone():
    class Thing:
        def __init__(self) -> None:
            self._recorder = Recorder()

        @timed
        def outer(self) -> int:
            self._recorder.add("work", time.perf_counter(), time.perf_counter() + 0.002)
            return self.inner() + 1

        @timed
        def inner(self) -> int:
            self._recorder.add("work", time.perf_counter(), time.perf_counter() + 0.001)
            return 1

    thing = Thing()
    assert thing.outer() == 2
    t = thing._recorder.last
    assert isinstance(t, CallTimings) and t.method == "outer"
    assert t.stages["work"].calls == 2 and t.stages["work"].ms == pytest.approx(3.0, abs=0.01)
    assert isinstance(t.stages["work"], StageTime)
