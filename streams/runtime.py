"""Garbage-collector policy for the worker process.

    settle_heap()   # backroom worker calls it after start-up and after each table recovery
    young_collections_less_often()   # once, at start-up
    release_free_memory()   # every few seconds: give freed heap pages back to the OS

CPython's full (generation 2) collection walks every tracked object. A worker holds ~140k of
them from its imports alone (Faust, aiokafka, River, pydantic) plus its recovered tables, and
none of those ever form garbage cycles, yet each full collection walked them all: 100–270 ms
pauses every few seconds under load, measured with a `gc.callbacks` timer at 2,000 events/s,
the largest single source of p99 latency. `gc.freeze()` moves the survivors to a permanent
generation that collections skip; objects frozen are still freed by reference counting when
a table value is replaced, so only cyclic garbage frozen by mistake would leak, which is why
a full collection runs first.

The youngest generation is collected every 700 net container allocations by default: a batch
of a few thousand events allocates that many dicts and lists per millisecond or so, and each
collection then also walks the survivors of the batch in flight. Collecting it every 50,000
instead (a few MB more at most, since almost everything dies by reference count):
`python -m bench.processing --keys 200 --gc-threshold 700` vs `50000`: 42.7k → 51.7k
events/s; with `--keys 100000` (every event a new key) alert evaluation 80 → 49 µs per event
(2-core machine, 2026-11-27).
"""

from __future__ import annotations

import ctypes
import gc
import logging
import time
from typing import Any

log = logging.getLogger(__name__)


def settle_heap() -> float:
    """Collect once, then exempt every surviving object from later collections; returns ms."""
    start = time.perf_counter()
    gc.collect()
    gc.freeze()
    elapsed = (time.perf_counter() - start) * 1000
    log.info("heap settled: %d objects frozen in %.0f ms", gc.get_freeze_count(), elapsed)
    return elapsed


YOUNG_THRESHOLD = 50_000


def young_collections_less_often(threshold: int = YOUNG_THRESHOLD) -> None:
    """Collect generation 0 every `threshold` net allocations (default 700); older as before."""
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(threshold, gen1, gen2)


_libc: Any = None


def release_free_memory() -> float:
    """Return the heap glibc keeps free back to the OS (`malloc_trim(0)`); returns ms, or -1
    where there is no glibc.

    A big batch (a backlog after a lag spike) raises the heap's high-water mark; the memory is
    freed afterwards but glibc keeps the pages, so RSS stays at the peak: in a 30-minute soak
    one such batch left a ~60 MB step for the rest of the run."""
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL("libc.so.6")
            _libc.malloc_trim.argtypes = [ctypes.c_size_t]
        except (OSError, AttributeError):
            _libc = False
    if not _libc:
        return -1.0
    start = time.perf_counter()
    _libc.malloc_trim(0)
    return (time.perf_counter() - start) * 1000

