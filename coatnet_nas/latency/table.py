"""``LatencyTable``: measured kinds, whole-model calibration points and fitted corrections for one
device configuration, saved as JSON (atomically) and refused on any other configuration."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from coatnet_nas._io import atomic_write_json
from coatnet_nas.errors import CoatnetError
from coatnet_nas.latency.kinds import BlockKind
from coatnet_nas.limits import listed, short_repr

__all__ = ["CONFIG_FIELDS", "Calibration", "Entry", "LatencyTable", "TableMeta"]

FORMAT = 1
# The fields that make two measurements comparable; a table is valid only where all agree.
CONFIG_FIELDS = (
    "device",
    "device_name",
    "torch_version",
    "threads",
    "batch",
    "dtype",
    "channels_last",
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TableMeta(_Model):
    """Where and how the table was measured."""

    format: int = FORMAT
    device: str
    device_name: str
    torch_version: str
    threads: int = Field(ge=1)
    batch: int = Field(ge=1)
    dtype: str = "float32"
    channels_last: bool = False
    created: str
    tool_version: str
    image_size: tuple[int, int] | None = None
    source: str = ""
    warmup: int = 3
    repeats: int = 20

    def config(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in CONFIG_FIELDS}


class Entry(_Model):
    """One kind's per-block latency (milliseconds): its samples and their robust statistics."""

    kind: dict[str, Any]
    median_ms: float = Field(gt=0)
    iqr_ms: float = Field(ge=0)
    mad_ms: float = Field(ge=0)
    repeats: int = Field(ge=1)
    samples_ms: list[float] = Field(default_factory=list)


class Calibration(_Model):
    """A whole model timed end to end, beside the sum of its isolated blocks."""

    spec: dict[str, Any]
    flops: int
    measured_ms: float = Field(gt=0)
    iqr_ms: float = Field(ge=0)
    samples_ms: list[float] = Field(default_factory=list)


class Regressor(_Model):
    """A non-negative linear model of per-block ms on cost features, for one kind group."""

    features: list[str]
    coef: list[float]
    intercept: float
    points: int


class Correction(_Model):
    """``end_to_end_ms = Σ scales[group] * group_blocks_ms + offset_ms`` (from the calibration
    models); ``scale`` serves groups the calibration models did not contain."""

    scale: float = 1.0
    scales: dict[str, float] = Field(default_factory=dict)
    offset_ms: float = 0.0
    points: int = 0  # calibration models the fit used (outliers dropped)
    flops_ms_per_gflop: float | None = None  # the FLOPs-proportional baseline, same points


class LatencyTable(_Model):
    meta: TableMeta
    entries: dict[str, Entry] = Field(default_factory=dict)
    calibration: dict[str, Calibration] = Field(default_factory=dict)
    regressors: dict[str, Regressor] = Field(default_factory=dict)
    correction: Correction = Correction()
    complete: bool = False
    interrupted: str | None = None  # the stop signal that ended the last build early

    def kind_ms(self, kind: BlockKind) -> float | None:
        """The measured per-block ms of exactly this kind, if the table has it."""
        entry = self.entries.get(kind.key)
        return entry.median_ms if entry is not None else None

    # --- configuration ------------------------------------------------------------------
    def check_matches(self, *, source: str = "table", param: str = "table", **config: Any) -> None:
        """Raise a :class:`CoatnetError` naming every given field that differs from the table's.

        ``config`` holds any of :data:`CONFIG_FIELDS`; ``None`` values are not checked.
        """
        unknown = [k for k in config if k not in CONFIG_FIELDS]
        if unknown:
            raise TypeError(f"not configuration fields: {unknown}")
        ours = self.meta.config()
        wrong = [
            f"{name} is {ours[name]!r} in the table but {value!r} here"
            for name, value in config.items()
            if value is not None and value != ours[name]
        ]
        if wrong:
            raise CoatnetError(
                f"{source}: this latency table was measured on another configuration "
                f"({listed(wrong, sep='; ')}); a table predicts only the configuration it was "
                "measured on: build one here with 'coatnet latency table' (or pass the "
                "table's own settings).",
                param=param,
            )

    # --- files --------------------------------------------------------------------------
    def save(self, path: str | Path, *, param: str | None = "out") -> Path:
        return atomic_write_json(path, self.model_dump(mode="json"), param=param)

    @classmethod
    def load(cls, path: str | Path, *, param: str = "table") -> LatencyTable:
        """Read a table, refusing a missing, unreadable, corrupt or foreign file in one line."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise CoatnetError(
                f"{param} {path}: no such file; build one with 'coatnet latency table'.",
                param=param,
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or exc
            raise CoatnetError(f"{param} {path}: cannot read ({why}).", param=param) from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CoatnetError(
                f"{param} {path}: not a latency table (invalid JSON at line {exc.lineno}, "
                f"column {exc.colno}: {exc.msg}).",
                param=param,
            ) from None
        if not isinstance(data, dict) or data.get("meta", {}).get("format") != FORMAT:
            raise CoatnetError(
                f"{param} {path}: not a latency table of format {FORMAT} (expected a JSON object "
                f"with meta.format = {FORMAT}, as 'coatnet latency table' writes).",
                param=param,
            )
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(x) for x in first["loc"])
            raise CoatnetError(
                f"{param} {path}: not a valid latency table ({where}: {first['msg']}; got "
                f"{short_repr(first.get('input'))}).",
                param=param,
            ) from None
