"""An ablation's (variant, seed) runs spread over worker processes (`run_ablation(..., jobs=N)`).

The tiny models of the miniatures run fastest on one thread each (a second thread of the same
run adds little), so N runs side by side use N cores: `jobs` worker processes (spawned, so no
thread pool or CUDA state is inherited), each with `threads` torch threads, take the runs in
order as they free up. A run writes its own `result.json` as it does alone (`run_one`), so a killed
parallel ablation resumes like a serial one and gives the same numbers at the same thread
count. Progress comes back through a queue: `on_step(variant, seed, phase, step, total)` and
`on_done(result)` are called in the calling process.
"""

from __future__ import annotations

import multiprocessing
import queue
import threading
from pathlib import Path
from typing import Any

from og.experiments.ablate_grid import AblationData, Schedule, Variant

_STEPS: Any = None  # the worker's progress queue


def _start_worker(steps: Any, threads: int) -> None:
    import torch

    global _STEPS
    _STEPS = steps
    torch.set_num_threads(threads)


def _run(task: tuple[int, Variant, AblationData, Schedule, int, Path]) -> tuple[int, dict[str, Any]]:
    from og.experiments.ablate import run_one

    index, variant, data, schedule, seed, out_dir = task

    def report(phase: str, step: int, total: int) -> None:
        _STEPS.put((index, phase, step, total))

    return index, run_one(variant, data, schedule, seed, out_dir, on_step=report)


def run_parallel(tasks: list[tuple[Variant, int, Path]], data: AblationData, schedule: Schedule, jobs: int,
                 threads: int = 1, on_done: Any = None, on_step: Any = None) -> list[dict[str, Any]]:
    """Every (variant, seed, run folder) of `tasks` on `jobs` processes of `threads` threads; the
    results in task order."""
    if jobs < 1 or threads < 1:
        raise ValueError(f"jobs={jobs}, threads={threads}; use at least one of each")
    ctx = multiprocessing.get_context("spawn")
    steps = ctx.Queue()
    stop = threading.Event()
    finished: set[int] = set()  # a run's late progress messages must not reopen its bar

    def relay() -> None:  # worker progress -> on_step, in this process
        while not stop.is_set():
            try:
                index, phase, step, total = steps.get(timeout=0.2)
            except queue.Empty:
                continue
            if on_step is not None and index not in finished:
                variant, seed, _ = tasks[index]
                on_step(variant, seed, phase, step, total)

    listener = threading.Thread(target=relay, daemon=True)
    listener.start()
    results: list[dict[str, Any] | None] = [None] * len(tasks)
    try:
        with ctx.Pool(min(jobs, len(tasks)), initializer=_start_worker, initargs=(steps, threads)) as pool:
            work = [(i, v, data, schedule, seed, out) for i, (v, seed, out) in enumerate(tasks)]
            for index, result in pool.imap_unordered(_run, work):
                results[index] = result
                finished.add(index)
                if on_done is not None:
                    on_done(result)
    finally:
        stop.set()
        listener.join()
        steps.close()
        steps.join_thread()
    return [r for r in results if r is not None]
