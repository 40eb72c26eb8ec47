"""Keep freed tensor memory in the process heap (glibc) instead of handing it back to the kernel.

glibc's ``malloc`` serves blocks from ``mmap`` above a threshold (128 KiB at start, raised
dynamically up to 32 MiB) and trims the heap's top when more than twice that lies free. Each
decoder pass of SAM allocates and frees tensors of several MiB (a prompt's 4096 × 256 image
tokens are 4 MiB), so the kernel maps, zero-fills and unmaps the same memory again every pass.
Measured on MobileSAM on the 2-core CPU, decoding 4 point prompts at a time: ~6,700 page faults
and ~10 ms of kernel time per prompt, ~24 ms per prompt in all; with the thresholds below, no
page faults and ~18.5 ms per prompt (``benchmarks/everything.py`` reports the decoder's share).
glibc's dynamic threshold sometimes catches these blocks on its own (64–96 faults per prompt seen
in some runs, depending on the order of allocations); the settings make the reuse certain.

The price is that the process keeps its peak heap: freed memory is reused, not returned.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20
"""Blocks below this many bytes come from the heap (glibc's maximum, ``HEAP_MAX_SIZE / 2``)."""
TRIM_THRESHOLD = 1 << 30
"""Free bytes at the heap's top kept before trimming."""


def retain_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds so that freed tensors are reused (see module doc).

    Process-wide and idempotent; on a C library other than glibc (macOS, Windows, musl) it does
    nothing.

    Returns:
        True when glibc took both settings.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
        ok = libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok
    except (OSError, AttributeError) as exc:  # no loadable libc / no mallopt
        log.debug("mallopt unavailable: %s", exc)
        return False
    return ok
