"""Threads never change results: 4 threads x 25 generations on one Runtime equal the sequential runs.

Each call carries its own seed, so a call's output is a function of its arguments only; any state
shared by mistake between concurrent calls (a buffer, a binding, an RNG, the C++ loop's scratch)
shows up as a mismatch. The Runtime uses 2 threads of its own (ONNX Runtime intra-op and the C++
loop's pool), so three levels of threading overlap. Two Runtimes over two *different* bundles in
one process must not leak into each other either. (Named apart from tests/runtime/test_concurrency.py,
which checks a smaller mixed workload: pytest's default import mode needs unique basenames.)
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from showo_sdk import Runtime




import showo_hardening_harness as harness  # noqa: E402  (registered by conftest.py)
THREADS = 4
PROMPTS = ["a red circle", "two green triangles", "a small cyan circle left of a blue square", "three blue squares",
           "a yellow star"]


def generation_jobs(count: int) -> list[dict]:
    """``count`` distinct generate calls: prompts, seeds, guidance, greedy and output kinds vary."""
    return [{"prompt": PROMPTS[i % len(PROMPTS)], "seed": 1000 + i, "steps": 3 + i % 4,
             "guidance_scale": (0.0, 1.75, 3.0)[i % 3], "greedy": i % 7 == 0,
             "output": "numpy" if i % 5 == 0 else "codes"} for i in range(count)]


def generate(rt: Runtime, job: dict) -> np.ndarray:
    return rt.generate(job["prompt"], steps=job["steps"], guidance_scale=job["guidance_scale"], seed=job["seed"],
                       greedy=job["greedy"], output=job["output"])


def understand(rt: Runtime, job: dict, picture: np.ndarray) -> str:
    return rt.understand(picture, f"What is {job['prompt']}?", max_new_tokens=10, greedy=False, top_k=8,
                         seed=job["seed"])


def run_threads(work: list, threads: int = THREADS) -> list:
    """Run the callables of ``work`` from ``threads`` threads started together (thread t takes items t, t+T, ...)."""
    start = threading.Barrier(threads)
    out: list = [None] * len(work)

    def worker(t: int) -> None:
        start.wait()
        for i in range(t, len(work), threads):
            out[i] = work[i]()

    with ThreadPoolExecutor(max_workers=threads) as pool:
        for f in [pool.submit(worker, t) for t in range(threads)]:
            f.result()
    return out


def mismatches(want: list, got: list) -> list[int]:
    return [i for i, (a, b) in enumerate(zip(want, got))
            if not (np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b)]


@pytest.fixture(scope="module")
def picture() -> np.ndarray:
    img = np.zeros((64, 64, 3), dtype=np.uint8)
    img[10:30, 10:30] = (255, 0, 0)
    img[36:60, 30:60] = (0, 0, 255)
    return img


@pytest.fixture(scope="module")
def other_bundle(tiny, tmp_path_factory) -> Path:
    """A second, different model: the tiny bundle with noise added to its transformer weights."""
    pytest.importorskip("onnx")
    return harness.derive_bundle(tiny.bundle, tmp_path_factory.mktemp("other") / "engine.plan", seed=1)


def test_four_threads_x_25_generations_equal_sequential(tiny):
    jobs = generation_jobs(THREADS * 25)
    reference = Runtime(tiny.bundle, backend="ort-cpu", num_threads=2)
    sequential = [generate(reference, j) for j in jobs]
    shared = Runtime(tiny.bundle, backend="ort-cpu", num_threads=2)  # fresh: sessions created under contention
    concurrent = run_threads([lambda j=j: generate(shared, j) for j in jobs])
    assert mismatches(sequential, concurrent) == []
    assert len({c.tobytes() for c in sequential}) > len(jobs) // 2  # the seeds and prompts really vary the output


def test_four_threads_x_25_sampled_answers_equal_sequential(tiny, picture):
    jobs = generation_jobs(THREADS * 25)
    reference = Runtime(tiny.bundle, backend="ort-cpu", num_threads=2)
    sequential = [understand(reference, j, picture) for j in jobs]
    shared = Runtime(tiny.bundle, backend="ort-cpu", num_threads=2)
    concurrent = run_threads([lambda j=j: understand(shared, j, picture) for j in jobs])
    assert mismatches(sequential, concurrent) == []
    assert len(set(sequential)) > 1


def test_two_runtimes_on_two_bundles_in_one_process(tiny, other_bundle, picture):
    """Threads alternate between two Runtimes of two different models; each keeps giving its own results."""
    jobs = generation_jobs(THREADS * 10)
    rt_a = Runtime(tiny.bundle, backend="ort-cpu", num_threads=2)
    rt_b = Runtime(other_bundle, backend="ort-cpu", num_threads=2)
    want_a = [generate(rt_a, j) for j in jobs]
    want_b = [generate(rt_b, j) for j in jobs]
    want_qa = [understand(rt_a, j, picture) for j in jobs[:8]], [understand(rt_b, j, picture) for j in jobs[:8]]
    assert mismatches(want_a, want_b) != [], "the derived bundle must be a different model"
    work = []
    for j in jobs:
        work += [lambda j=j: generate(rt_a, j), lambda j=j: generate(rt_b, j)]
    got = run_threads(work)
    assert mismatches(want_a, got[0::2]) == [] and mismatches(want_b, got[1::2]) == []
    qa = run_threads([lambda j=j, rt=rt: understand(rt, j, picture) for j in jobs[:8] for rt in (rt_a, rt_b)])
    assert qa[0::2] == want_qa[0] and qa[1::2] == want_qa[1]


@pytest.mark.slow
def test_long_concurrent_generation_equals_sequential(tiny):
    """SHOWO_CONCURRENCY_ROUNDS (default 250) generations per thread, 4 threads, one Runtime."""
    rounds = int(os.environ.get("SHOWO_CONCURRENCY_ROUNDS", "250"))
    jobs = generation_jobs(THREADS * rounds)
    reference = Runtime(tiny.bundle, backend="ort-cpu", num_threads=2)
    sequential = [generate(reference, j) for j in jobs]
    shared = Runtime(tiny.bundle, backend="ort-cpu", num_threads=2)
    assert mismatches(sequential, run_threads([lambda j=j: generate(shared, j) for j in jobs])) == []
