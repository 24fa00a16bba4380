"""One Runtime called from 4 threads at once gives exactly the results of sequential calls."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from showo_sdk import Runtime


def _jobs(picture: np.ndarray) -> list:
    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[:32] = 255
    prompts = ["a red circle", "two green triangles", "a small cyan circle", "three blue squares"]
    jobs = []
    for i, prompt in enumerate(prompts):
        jobs += [
            ("generate", lambda rt, p=prompt, s=i: rt.generate([p, "a blue square"], steps=6, seed=s, output="codes")),
            ("understand", lambda rt, p=prompt: rt.understand(picture, f"What is {p}?", max_new_tokens=12)),
            ("sample", lambda rt, s=i: rt.understand(picture, "What color is it?", max_new_tokens=8, greedy=False,
                                                     top_k=4, seed=s)),
            ("inpaint", lambda rt, p=prompt, s=i: rt.inpaint(picture, mask, p, steps=4, seed=s, output="codes")),
            ("extrapolate", lambda rt, p=prompt: rt.extrapolate(picture, p, direction="down", steps=4, greedy=True,
                                                                output="numpy")),
        ]
    return jobs


def _same(a, b) -> bool:
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    return a == b


def test_four_threads_equal_sequential(tiny, picture):
    jobs = _jobs(picture)
    reference = Runtime(tiny.bundle, backend="ort-cpu", num_threads=1)
    sequential = [job(reference) for _, job in jobs]
    rt = Runtime(tiny.bundle, backend="ort-cpu", num_threads=1)  # fresh: its sessions are created under contention
    start = threading.Barrier(4)

    def run(index: int):
        if index < 4:
            start.wait()
        return jobs[index][1](rt)

    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(run, range(len(jobs))))
    for (name, _), want, got in zip(jobs, sequential, concurrent):
        assert _same(want, got), name


def test_last_seed_is_per_thread(rt):
    seen = {}

    def run(seed: int):
        rt.generate("a red circle", steps=2, seed=seed, output="codes")
        seen[seed] = rt.last_seed

    threads = [threading.Thread(target=run, args=(s,)) for s in (11, 12, 13, 14)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {11: 11, 12: 12, 13: 13, 14: 14}
