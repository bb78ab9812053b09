"""The one process pool: order, in-process fallback, and errors that surface."""

from __future__ import annotations

import math

import pytest

from clumpdet.parallel import parallel_map


@pytest.mark.parametrize("workers", [1, 2])
def test_parallel_map_keeps_order(workers: int) -> None:
    values = [float(v * v) for v in range(12)]
    out = list(parallel_map(math.sqrt, values, workers=workers, progress=False))
    assert out == [float(v) for v in range(12)]


def test_parallel_map_raises_the_task_error() -> None:
    with pytest.raises(ValueError, match="math domain error"):
        list(parallel_map(math.sqrt, [4.0, -1.0, 9.0, 16.0], workers=2, progress=False))
