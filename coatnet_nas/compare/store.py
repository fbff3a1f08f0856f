"""The results file that makes a comparison resumable: one JSON line per finished run.

``runs.jsonl`` is append-only and each line is flushed and fsynced as its run ends, so an
interrupted comparison loses at most the runs in flight. A line torn by a kill mid-write is
dropped (and cut from the file) on the next open. ``config.json`` holds the settings the runs
were made with; resuming with different settings is refused rather than mixing incomparable runs.
A comparison stopped by a signal (Ctrl-C, SIGTERM) records why in ``interrupted.json`` (the
signal, the runs abandoned in flight, how many were finished and left); the next comparison to
finish every run removes it.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from coatnet_nas._io import atomic_write_json, ensure_dir
from coatnet_nas.errors import CoatnetError

RUNS_FILE = "runs.jsonl"
CONFIG_FILE = "config.json"
INTERRUPTED_FILE = "interrupted.json"


class RunStore:
    """Finished runs of one comparison, keyed by :func:`~coatnet_nas.compare.config.run_key`."""

    def __init__(self, out_dir: str | Path):
        self.out_dir = Path(out_dir)
        self.runs_path = self.out_dir / RUNS_FILE
        self.config_path = self.out_dir / CONFIG_FILE
        self.interrupted_path = self.out_dir / INTERRUPTED_FILE

    def open(
        self,
        fingerprint: dict[str, Any],
        fresh: bool = False,
        canonical: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> dict[str, dict[str, Any]]:
        """Check (or write) the stored settings and return the finished runs by key.

        ``canonical`` re-reads a stored fingerprint before the comparison, so settings written
        in an older form but with equal values are not mistaken for other settings.
        """
        ensure_dir(self.out_dir, param="out_dir")
        if fresh:
            for path in (self.runs_path, self.config_path, self.interrupted_path):
                path.unlink(missing_ok=True)
        stored = self._read_config()
        wanted = json.loads(json.dumps(fingerprint))
        if stored is None:
            atomic_write_json(self.config_path, wanted, param="out_dir")
            return self.load()
        if canonical is not None:
            stored = json.loads(json.dumps(canonical(stored)))
        if stored != wanted:
            changed = sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))
            raise CoatnetError(
                f"a comparison made with other settings ({', '.join(changed)}) is stored here; "
                "resume it with the same settings, write to another folder, or start over "
                f"(fresh) to discard its runs: {self.out_dir}",
                param="out_dir",
            )
        return self.load()

    def load(self) -> dict[str, dict[str, Any]]:
        """Finished runs; a torn last line (killed mid-write) is dropped and cut from the file."""
        if not self.runs_path.exists():
            return {}
        raw = self.runs_path.read_bytes()
        runs: dict[str, dict[str, Any]] = {}
        good = 0
        offset = 0
        for line in raw.splitlines(keepends=True):
            offset += len(line)
            if not line.endswith(b"\n"):
                break
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and "key" in record:
                runs[record["key"]] = record
            good = offset
        if good < len(raw):
            with self.runs_path.open("r+b") as f:
                f.truncate(good)
        return runs

    def append(self, record: dict[str, Any]) -> None:
        """Add one finished run, durably (flushed and fsynced)."""
        line = json.dumps(record, allow_nan=False) + "\n"
        with self.runs_path.open("a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def mark_interrupted(
        self, signal: str, in_flight: Iterable[str], finished: int, left: int
    ) -> None:
        """Record that a signal stopped the comparison (``in_flight``: the runs abandoned)."""
        record = {
            "interrupted": signal,
            "at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "in_flight": sorted(in_flight),
            "finished": finished,
            "left": left,
        }
        atomic_write_json(self.interrupted_path, record, param="out_dir")

    def interrupted(self) -> dict[str, Any] | None:
        """The last interruption's record, while the comparison has runs left (else None)."""
        try:
            data = json.loads(self.interrupted_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def clear_interrupted(self) -> None:
        self.interrupted_path.unlink(missing_ok=True)

    def _read_config(self) -> dict[str, Any] | None:
        if not self.config_path.exists():
            return None
        try:
            data = json.loads(self.config_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CoatnetError(
                f"the stored settings are unreadable; start over (fresh) to discard them: "
                f"{self.config_path} ({exc})",
                param="out_dir",
            ) from None
        return data if isinstance(data, dict) else None
