"""What a block builder reads from a spec, as structural types.

``coatnet_nas.spec`` depends on the block option schemas (through the registry), so the blocks
must not import the spec back: they describe the few attributes they use here instead.
:class:`~coatnet_nas.spec.StageSpec` and :class:`~coatnet_nas.spec.StemSpec` satisfy these
protocols, and so does any object a test or a new block type passes in.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from coatnet_nas.blocks.options import BlockOptions

__all__ = ["StageLike", "StemLike"]


@runtime_checkable
class StageLike(Protocol):
    """One stage: its letter, how many blocks, their width and the type's validated options.

    A stage builder is called as ``build(in_ch, stage, in_size, drop_path_rates)`` and a cost
    function as ``cost(in_ch, stage, in_size)`` (see :class:`coatnet_nas.registry.BlockType`).
    """

    @property
    def type(self) -> str: ...

    @property
    def depth(self) -> int: ...

    @property
    def width(self) -> int: ...

    @property
    def options(self) -> BlockOptions: ...


@runtime_checkable
class StemLike(Protocol):
    """The stem: ``conv`` (``depth`` 3x3 convs) or ``patch`` (one ``patch_size`` embedding)."""

    @property
    def kind(self) -> str: ...

    @property
    def depth(self) -> int: ...

    @property
    def width(self) -> int: ...

    @property
    def patch_size(self) -> int: ...
