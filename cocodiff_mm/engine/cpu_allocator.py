"""Keep freed tensor memory in the process on CPU training runs (glibc).

A training step of a GCN allocates and frees hundreds of MiB of activations.
glibc serves blocks above its mmap threshold with fresh ``mmap`` calls and
returns freed memory above its trim threshold to the system, so every step
pays page faults to touch the same amount of memory again. On 2 CPU cores
this costs about a tenth of a CTR-GCN step at NTU shape, and more in a
CoCoDiff step, whose small diffusion tensors break up the heap between the
GCN's large ones (``tools/benchmark_training.py``). Raising both thresholds
keeps the memory mapped for the next step; the process's peak memory is the
same, it is just not given back between steps.
"""
import ctypes
import ctypes.util
import sys

#: ``mallopt`` parameters of glibc's malloc.h.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

#: Largest mmap threshold glibc accepts (HEAP_MAX / 2 on 64-bit).
MAX_MMAP_THRESHOLD = 32 * 2**20


def keep_freed_memory() -> bool:
    """Tell glibc to keep freed memory for reuse; ``False`` where unknown.

    Returns:
        bool: Whether both thresholds were set (Linux with glibc only).
    """
    if not sys.platform.startswith('linux'):
        return False
    name = ctypes.util.find_library('c')
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    trimmed = mallopt(M_TRIM_THRESHOLD, 2**31 - 1)
    mapped = mallopt(M_MMAP_THRESHOLD, MAX_MMAP_THRESHOLD)
    return bool(trimmed and mapped)
