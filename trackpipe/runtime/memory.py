"""Process memory settings for the heavy steps. No Beam here.

On virtual machines that hand freed memory back to the host (free page reporting, ballooning:
Firecracker, many cloud VMs), touching memory that was freed and returned costs a page fault
and a host round trip each time: measured here, writing into fresh memory ran at 0.3-1 GB/s
instead of >10 GB/s. The reader allocates and frees large buffers for every block and batch,
so letting glibc keep freed memory for reuse (instead of unmapping or trimming it), and giving
Arrow the same allocator, cut the per-event cost of a run by about a quarter
(docs/benchmarks.md). It does not raise the peak; it only stops the process from shrinking
between batches.

Python's cyclic garbage collector is paused while a file is parsed: the parser creates millions
of short-lived containers but no reference cycles, and full collections would repeatedly scan
every live event of the chunk being built.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from contextlib import contextmanager

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_configured = False


def keep_freed_memory() -> bool:
    """Ask glibc malloc to reuse freed memory rather than return it to the OS (once per
    process; a no-op where libc is not glibc)."""
    global _configured
    if _configured:
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = bool(mallopt(_M_MMAP_THRESHOLD, 32 * 1024 * 1024)) and bool(mallopt(_M_TRIM_THRESHOLD, 1 << 30))
    if ok:
        # Arrow's default allocator (jemalloc) hands idle memory back after a second; with
        # glibc configured as above, Arrow buffers reuse memory like everything else.
        import pyarrow as pa

        pa.set_memory_pool(pa.system_memory_pool())
    _configured = ok
    return ok


@contextmanager
def no_gc():
    """Pause the cyclic garbage collector inside the block (reference counting still frees)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
