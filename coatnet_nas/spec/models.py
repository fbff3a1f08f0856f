"""The spec models: stem, stages and the whole model, each frozen and validated."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    StrictInt,
    field_validator,
    model_validator,
)

from coatnet_nas.registry import BlockOptions, block_type, block_types
from coatnet_nas.spec.problems import Loc, SpecProblems, unknown_letter_message

COMMON_KEYS = ("name", "image_size", "in_chans", "num_classes", "drop_path_rate")
COMPACT_KEYS = ("layout", "depths", "widths")
EXPLICIT_KEYS = ("stem", "stages")
STAGE_KEYS = ("type", "depth", "width")


class StemSpec(BaseModel):
    """S0. ``conv`` (CoAtNet): ``depth`` 3x3 convs, the first with stride 2.
    ``patch`` (ViT-style): one non-overlapping ``patch_size`` x ``patch_size`` patch embedding.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["conv", "patch"] = "conv"
    depth: StrictInt = Field(2, ge=1, le=8)
    width: StrictInt = Field(64, ge=1, le=8192)
    patch_size: StrictInt = Field(4, ge=2, le=64, description="patch stem only")

    @model_validator(mode="after")
    def _patch_is_one_layer(self) -> StemSpec:
        if self.kind == "patch" and self.depth != 1:
            raise ValueError("a patch stem is a single layer: use depth 1")
        return self

    @property
    def stride(self) -> int:
        return self.patch_size if self.kind == "patch" else 2


class StageSpec(BaseModel):
    """One stage after the stem; its first block halves the resolution."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
    depth: StrictInt = Field(ge=1, le=256)
    width: StrictInt = Field(ge=1, le=16384)
    options: SerializeAsAny[BlockOptions]

    @model_validator(mode="before")
    @classmethod
    def _typed_options(cls, data: Any) -> Any:
        # Programmatic construction may pass options as a dict; pick the type's schema.
        if isinstance(data, Mapping) and "type" in data:
            letter = str(data["type"]).upper()
            if letter not in block_types():
                raise ValueError(unknown_letter_message(letter))
            opts = data.get("options") or {}
            schema = block_type(letter).options
            if not isinstance(opts, schema):
                opts = schema.model_validate(
                    opts.model_dump() if isinstance(opts, BaseModel) else opts
                )
            data = {**data, "type": letter, "options": opts}
        return data

    @property
    def block(self):
        return block_type(self.type)


class ModelSpec(BaseModel):
    """A normalized CoAtNet-family model: a conv stem followed by typed stages.

    Longer than our ~120-line guide on purpose: it is the one frozen value every layer passes
    around, and its validators and small derived views (layout, depths, resolutions, evolve,
    to_dict) belong with the fields they read.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "coatnet"
    image_size: tuple[StrictInt, StrictInt] = (224, 224)
    in_chans: StrictInt = Field(3, ge=1, le=64)
    num_classes: StrictInt = Field(1000, ge=1)
    drop_path_rate: float = Field(0.0, ge=0.0, lt=1.0)
    stem: StemSpec = StemSpec()
    stages: tuple[StageSpec, ...] = Field(min_length=1, max_length=8)

    @field_validator("image_size", mode="before")
    @classmethod
    def _square(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return value
        if isinstance(value, int):
            return (value, value)
        if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
            return tuple(value)
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> ModelSpec:
        problems: list[tuple[Loc, str]] = []
        for i, stage in enumerate(self.stages):
            why = stage.options.width_problem(stage.width)
            if why:
                problems.append((("stages", i, "width"), why))
        why = self._image_size_problem()
        if why:
            problems.append((("image_size",), why))
        if problems:
            raise SpecProblems(problems)
        return self

    def _image_size_problem(self) -> str | None:
        """One sentence for every bad side at once, so a square size is not reported twice."""
        stride = self.total_stride
        bad = [
            (side, value)
            for side, value in zip(("height", "width"), self.image_size, strict=True)
            if value < 1 or value % stride
        ]
        if not bad:
            return None

        def near(value: int) -> str:
            lo = max(stride, value // stride * stride)
            return f"{lo} or {lo + stride}"

        h, w = self.image_size
        if h == w:
            what, hint = f"image size {h}", near(h)
        else:
            what = " and ".join(f"{side} {value}" for side, value in bad)
            hint = "; ".join(f"{near(value)} for {side} {value}" for side, value in bad)
        return (
            f"{what} does not divide evenly through the stem (stride {self.stem.stride}) and "
            f"{len(self.stages)} stages that each halve the resolution: sizes must be multiples "
            f"of {stride}, e.g. {hint}"
        )

    # --- derived views -------------------------------------------------------------------
    @property
    def layout(self) -> str:
        return "-".join(s.type for s in self.stages)

    @property
    def depths(self) -> tuple[int, ...]:
        return (self.stem.depth, *(s.depth for s in self.stages))

    @property
    def widths(self) -> tuple[int, ...]:
        return (self.stem.width, *(s.width for s in self.stages))

    @property
    def total_stride(self) -> int:
        return self.stem.stride * 2 ** len(self.stages)

    def resolutions(self, image_size: tuple[int, int] | None = None) -> list[tuple[int, int]]:
        """Output (H, W) of the stem and of every stage."""
        h, w = image_size or self.image_size
        h, w = h // self.stem.stride, w // self.stem.stride
        out = [(h, w)]
        for _ in self.stages:
            h, w = h // 2, w // 2
            out.append((h, w))
        return out

    def with_image_size(self, image_size: int | Sequence[int]) -> ModelSpec:
        return self.evolve(image_size=image_size)

    def evolve(self, **changes: Any) -> ModelSpec:
        """A re-validated copy with some top-level fields replaced."""
        data = self.model_dump()
        data["stages"] = [
            {"type": s.type, "depth": s.depth, "width": s.width, "options": s.options}
            for s in self.stages
        ]
        data.update(changes)
        return ModelSpec.model_validate(data)

    # --- serialization -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The normalized explicit form: every stage with all of its options."""
        h, w = self.image_size
        return {
            "name": self.name,
            "image_size": h if h == w else [h, w],
            "in_chans": self.in_chans,
            "num_classes": self.num_classes,
            "drop_path_rate": self.drop_path_rate,
            "stem": self._stem_dict(),
            "stages": [
                {"type": s.type, "depth": s.depth, "width": s.width, **s.options.model_dump()}
                for s in self.stages
            ],
        }

    def _stem_dict(self) -> dict[str, Any]:
        if self.stem.kind == "patch":
            return {
                "kind": "patch",
                "patch_size": self.stem.patch_size,
                "depth": 1,
                "width": self.stem.width,
            }
        return {"depth": self.stem.depth, "width": self.stem.width}

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)
