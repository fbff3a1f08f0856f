"""One place to cap torch's intra-op threads for a block of work (process-wide, restored after).

Oversubscribed OpenMP threads wait on each other; batch-1 traces and several processes sharing
a few cores run faster with fewer threads.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def cpu_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch threads (``None``: leave the setting alone)."""
    if threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
