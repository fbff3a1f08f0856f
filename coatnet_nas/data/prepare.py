"""Decode a folder once, in parallel processes, into a resumable memory-mapped ``.npy`` file.

The work file is ``images.npy`` (``numpy.lib.format.open_memmap``, uint8 NCHW: the layout the
training batches use, so gathering a batch needs no transpose), one row per listed file. Files
are decoded in chunks; each worker process writes its rows straight into the memory map and
returns, then the parent records the chunk in ``progress.json`` (atomically). A killed
prepare therefore restarts at the first unrecorded chunk, and the work is only ever declared
complete by ``manifest.json``, written last (see :mod:`coatnet_nas.data.cache`). A prepare
stopped by a signal (Ctrl-C, SIGTERM) records why in ``progress.json`` (``interrupted``: the
signal's name; chunks in flight are abandoned and decoded again by the next prepare).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

import numpy as np

from coatnet_nas import signals
from coatnet_nas._io import atomic_write_json, reserve_file
from coatnet_nas.data.decode import UnreadableImage, decode_fitted
from coatnet_nas.errors import DiskFullError
from coatnet_nas.threads import usable_cpus

__all__ = ["CHUNK", "DECODED", "Progress", "decode_into", "default_workers"]

CHUNK = 256  # images per task: small enough to lose little on a kill, big enough to amortize IPC
Progress = Callable[[int, int], None]  # (images done, images total)
# Images decoded by this process's prepares (workers' decodes counted here by the parent); tests
# read it to prove that a reload decodes nothing.
DECODED = {"images": 0}


def default_workers() -> int:
    """One decoding process per usable core (affinity mask and cgroup quota)."""
    return usable_cpus()


def _decode_chunk(
    work: str, rows: list[tuple[int, str]], size: tuple[int, int], decoder: str
) -> list[tuple[int, str]]:
    """Decode ``rows`` into the memory map at ``work``; return the (row, reason) skipped."""
    images = np.load(work, mmap_mode="r+")
    skipped = []
    for row, path in rows:
        try:
            images[row] = decode_fitted(path, size, decoder)
        except UnreadableImage as exc:
            skipped.append((row, str(exc)))
            images[row] = 0
    # No msync: the rows are in the shared page cache the moment they are assigned, so a killed
    # process (or worker) loses nothing; a per-chunk msync of the whole map halved throughput.
    # Only an OS crash before writeback could leave a recorded chunk unwritten (then: force).
    del images
    return skipped


def _read_progress(path: Path, plan: str) -> dict[int, list]:
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if state.get("plan") != plan:
        return {}
    return {int(k): v for k, v in state.get("done", {}).items()}


def _open_work(work: Path, shape: tuple[int, ...], resume: bool) -> None:
    """The work file, its blocks allocated (a full disk under the map would be a SIGBUS)."""
    if resume:
        try:
            if np.load(work, mmap_mode="r").shape == shape:
                reserve_file(work)
                return
        except (OSError, ValueError):
            pass
    np.lib.format.open_memmap(work, mode="w+", dtype=np.uint8, shape=shape).flush()
    try:
        reserve_file(work)
    except DiskFullError:
        work.unlink(missing_ok=True)  # an empty sparse file helps nobody
        raise


def _chunks(
    todo: list[int], paths: list[str], size: int
) -> Iterator[tuple[int, list[tuple[int, str]]]]:
    for chunk in todo:
        start = chunk * size
        yield chunk, [(r, paths[r]) for r in range(start, min(start + size, len(paths)))]


def decode_into(
    directory: Path,
    paths: list[str],
    size: tuple[int, int],
    *,
    plan: str,
    decoder: str,
    workers: int,
    chunk: int = CHUNK,
    progress: Progress | None = None,
) -> list[tuple[int, str]]:
    """Fill ``directory/images.npy`` with ``paths`` decoded at ``size``, resuming a matching plan.

    ``plan`` names the inputs (files, their stamps, size, decoder, format version); recorded
    chunks of another plan are discarded (``plan`` must cover ``chunk``, the images per task).
    Returns every skipped (row, reason), sorted.
    """
    work = directory / "images.npy"
    marker = directory / "progress.json"
    done = _read_progress(marker, plan)
    _open_work(work, (len(paths), 3, *size), resume=bool(done))
    n_chunks = -(-len(paths) // chunk)
    todo = [c for c in range(n_chunks) if c not in done]
    count = sum(min(chunk, len(paths) - c * chunk) for c in done)

    def record(index: int, skipped: list[tuple[int, str]], n: int) -> None:
        nonlocal count
        done[index] = [list(s) for s in skipped]
        atomic_write_json(marker, {"plan": plan, "done": {str(k): v for k, v in done.items()}})
        count += n
        DECODED["images"] += n
        if progress is not None:
            progress(count, len(paths))

    if progress is not None:
        progress(count, len(paths))
    try:
        if workers <= 1 or len(todo) <= 1:
            for index, rows in _chunks(todo, paths, chunk):
                record(index, _decode_chunk(str(work), rows, size, decoder), len(rows))
        else:
            _run_pool(work, _chunks(todo, paths, chunk), size, decoder, workers, record)
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: the recorded chunks stay, say why
        with signals.exit_at_once():  # a second stop during this bookkeeping exits at once
            state = {"plan": plan, "done": {str(k): v for k, v in done.items()}}
            atomic_write_json(marker, {**state, "interrupted": signals.stop_name(exc)})
        raise
    return sorted((int(r), str(why)) for skips in done.values() for r, why in skips)


_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def _one_thread() -> None:
    """Worker start: one compute thread each, so K workers use K cores, never K x threads.

    The decoders themselves are single-threaded; this guards against a library that would start
    its own pool inside every worker (torch's intra-op threads when the parent imported torch).
    """
    for name in _THREAD_VARS:
        os.environ[name] = "1"
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


def _run_pool(work, chunks, size, decoder, workers, record) -> None:
    """Keep ``2 * workers`` chunks in flight; record each as it completes (any order).

    Workers are forked where possible: they only need numpy and Pillow, and a fork starts in
    milliseconds where a fresh interpreter would first import torch (via this package). Each
    task carries only file names; the decoded rows go straight into the shared memory map, and
    only the (row, reason) pairs of skipped files travel back, so nothing is pickled per image.
    Profiled (3,000 files, ``benchmarks/RESULTS.md``): the workers' CPU time per image equals a
    single process's within 10%, so the speed-up is bounded by the free cores, not by the pool.
    """
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_one_thread
    ) as pool:
        pending: dict = {}
        for item in chunks:
            chunk, rows = item
            pending[pool.submit(_decode_chunk, str(work), rows, size, decoder)] = (chunk, rows)
            while len(pending) >= 2 * workers:
                _drain(pending, record, FIRST_COMPLETED)
        while pending:
            _drain(pending, record, FIRST_COMPLETED)


def _drain(pending: dict, record, when: str) -> None:
    finished, _ = wait(list(pending), return_when=when)
    for future in finished:
        chunk, rows = pending.pop(future)
        record(chunk, future.result(), len(rows))
