"""Stage-type registry: one letter per block type (``C`` = MBConv, ``T`` = Transformer).

The spec layer only needs a type's letter and its options schema, so the torch-heavy builder and
the cost formula are referenced by import path and loaded on first use. That keeps
``coatnet validate`` fast and lets a new block type bring its own module and cost function.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from coatnet_nas.blocks.options import BlockOptions, MBConvOptions, TransformerOptions

__all__ = [
    "BlockOptions",
    "BlockType",
    "block_type",
    "block_types",
    "register_block_type",
    "unregister_block_type",
]


def _load(path: str) -> Callable[..., Any]:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class BlockType:
    """Everything the library needs to know about one stage letter.

    ``build`` and ``cost`` are ``"module:function"`` paths. ``build(in_ch, stage, in_size,
    drop_path_rates)`` returns the stage's ``nn.Module``; ``cost(in_ch, stage, in_size)`` returns
    ``(params, flops)`` for the stage without building it.
    """

    letter: str
    key: str
    description: str
    options: type[BlockOptions]
    build: str
    cost: str
    _cache: dict[str, Callable[..., Any]] = field(default_factory=dict, compare=False, repr=False)

    def builder(self) -> Callable[..., Any]:
        if "build" not in self._cache:
            self._cache["build"] = _load(self.build)
        return self._cache["build"]

    def cost_fn(self) -> Callable[..., Any]:
        if "cost" not in self._cache:
            self._cache["cost"] = _load(self.cost)
        return self._cache["cost"]


_BLOCK_TYPES: dict[str, BlockType] = {}


def register_block_type(block_type: BlockType) -> None:
    """Register (or replace) a stage letter."""
    if len(block_type.letter) != 1 or not block_type.letter.isalpha():
        raise ValueError(f"block type letter must be a single letter, got {block_type.letter!r}")
    _BLOCK_TYPES[block_type.letter.upper()] = block_type


def unregister_block_type(letter: str) -> BlockType | None:
    """Remove a stage letter and return what it was (``None`` if it was not registered).

    For plug-ins and tests that register a type for a while: re-register the returned value to
    restore a letter that was replaced.
    """
    return _BLOCK_TYPES.pop(letter.upper(), None)


def block_type(letter: str) -> BlockType:
    return _BLOCK_TYPES[letter.upper()]


def block_types() -> dict[str, BlockType]:
    """All registered stage letters, in registration order."""
    return dict(_BLOCK_TYPES)


def _register_builtin() -> None:
    register_block_type(
        BlockType(
            letter="C",
            key="mbconv",
            description="MBConv stage (inverted bottleneck + squeeze-excitation)",
            options=MBConvOptions,
            build="coatnet_nas.blocks.mbconv:build_stage",
            cost="coatnet_nas.blocks.mbconv:stage_cost",
        )
    )
    register_block_type(
        BlockType(
            letter="T",
            key="transformer",
            description="Transformer stage (2-D relative self-attention + FFN)",
            options=TransformerOptions,
            build="coatnet_nas.blocks.attention:build_stage",
            cost="coatnet_nas.blocks.attention:stage_cost",
        )
    )


_register_builtin()
