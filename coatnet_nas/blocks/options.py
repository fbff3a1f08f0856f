"""Per-block-type option schemas (torch-free so specs validate without importing torch)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

PoolType = Literal["avg", "max"]


class BlockOptions(BaseModel):
    """Base for per-type block options; subclasses add fields and width checks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def width_problem(self, width: int) -> str | None:
        """Return why ``width`` is not allowed for this block type, or ``None`` if it is."""
        multiple = self.width_multiple()
        if width % multiple:
            lo = max(multiple, width // multiple * multiple)
            return (
                f"width {width} is not a multiple of {multiple} "
                f"(e.g. {lo} or {lo + multiple}) for this block type"
            )
        return None

    def width_multiple(self) -> int:
        """Widths of a stage with these options must be multiples of this (scaling rounds to it)."""
        return 1


class MBConvOptions(BlockOptions):
    """MBConv: pre-norm BN -> 1x1 expand -> kxk depthwise -> SE -> 1x1 project (GELU)."""

    expand_ratio: float = Field(4.0, gt=0, le=16, description="hidden width / output width")
    se_ratio: float = Field(
        0.25, ge=0, le=1, description="SE squeeze width / block input width; 0 = no SE"
    )
    kernel_size: int = Field(3, ge=1, le=11, description="depthwise kernel size (odd)")
    pool: PoolType = Field("avg", description="stride-2 pool on the downsampling shortcut")

    def width_problem(self, width: int) -> str | None:
        if self.kernel_size % 2 == 0:
            return f"kernel_size must be odd, got {self.kernel_size}"
        return super().width_problem(width)


class TransformerOptions(BlockOptions):
    """Transformer: pre-norm LN -> 2-D relative MHSA -> residual; LN -> FFN -> residual."""

    head_dim: int = Field(32, ge=1, le=1024, description="channels per attention head")
    mlp_ratio: float = Field(4.0, gt=0, le=16, description="FFN hidden width / width")
    pool: PoolType = Field("avg", description="stride-2 pool in the downsampling block")

    def width_problem(self, width: int) -> str | None:
        if width % self.head_dim:
            return (
                f"width {width} is not divisible by head_dim {self.head_dim}; "
                f"T-stage widths must be multiples of head_dim (e.g. {self._near(width)})"
            )
        return None

    def width_multiple(self) -> int:
        return self.head_dim

    def _near(self, width: int) -> str:
        lo = max(self.head_dim, width // self.head_dim * self.head_dim)
        return f"{lo} or {lo + self.head_dim}"
