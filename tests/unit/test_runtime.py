"""The worker's memory policy (streams/runtime.py): pytest tests/unit/test_runtime.py"""

from __future__ import annotations

import os
import sys

import pytest

from streams.runtime import release_free_memory


def rss_mb() -> float:
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc and /proc")
def test_freed_heap_goes_back_to_the_os() -> None:
    # A peak of ~180 MB in 3-KB blocks, freed while small blocks allocated among them stay:
    # glibc keeps the pages (RSS stays at the peak) until malloc_trim returns them.
    keep, peak = [], []
    for i in range(60_000):
        peak.append(bytes(3000))
        if i % 10 == 0:
            keep.append(bytes(100))
    before = rss_mb()
    del peak
    assert release_free_memory() >= 0
    assert rss_mb() < before - 100
    assert len(keep) == 6000
