"""The one process pool: an order-preserving, spawn-based ``parallel_map`` with a progress bar."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")
R = TypeVar("R")


def parallel_map(
    fn: Callable[[T], R],
    tasks: Sequence[T],
    *,
    workers: int,
    progress: bool = True,
    desc: str = "simulate",
    unit: str = "img",
) -> Iterator[R]:
    """Apply ``fn`` to ``tasks`` in order, in ``workers`` processes, with a tqdm bar.

    ``workers == 1`` (or one task) runs in this process. Workers are started with ``spawn``:
    forking a parent that has used GalSim/OpenMP or FFT thread pools can deadlock the children,
    so ``fn`` must be a module-level function and callers of ``workers > 1`` need the usual
    ``if __name__ == "__main__":`` guard in scripts. When a task raises, tasks not yet started
    are cancelled and the error propagates at once.
    """
    n = len(tasks)
    bar = tqdm(total=n, desc=desc, unit=unit, disable=not progress)
    try:
        if workers == 1 or n == 1:
            for t in tasks:
                yield fn(t)
                bar.update()
        else:
            chunk = max(1, min(16, n // (4 * workers)))
            ctx = multiprocessing.get_context("spawn")
            ex = ProcessPoolExecutor(max_workers=min(workers, n), mp_context=ctx)
            try:
                results: Iterable[R] = ex.map(fn, tasks, chunksize=chunk)
                for rec in results:
                    yield rec
                    bar.update()
            except BaseException:
                # a failed task (or a consumer that stops early) must not wait for the queue
                ex.shutdown(wait=True, cancel_futures=True)
                raise
            finally:
                ex.shutdown(wait=True)
    finally:
        bar.close()
