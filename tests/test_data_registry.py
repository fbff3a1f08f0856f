"""Data sources are a registry: a new one is one loader plus one registration; corrupt files are
DataErrors naming the file."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from coatnet_nas.data import prepare_data
from coatnet_nas.data.raw import RawData
from coatnet_nas.data.sources import (
    _ALIASES,
    _SOURCES,
    DataSource,
    dataset_names,
    parse_name,
    read_idx,
    register_source,
)
from coatnet_nas.errors import DataError


@pytest.fixture
def checkerboards():
    def load(arg, _root, _size) -> RawData:
        n = int(arg or 40)
        labels = np.arange(n, dtype=np.int64) % 2
        images = np.zeros((n, 1, 16, 16), np.uint8)
        images[labels == 1, :, ::2, ::2] = 255
        return RawData(f"boards:{n}", images, labels, None, None, ("plain", "board"), "test")

    saved = (dict(_SOURCES), dict(_ALIASES))
    register_source(DataSource("boards", load, aliases=("checkerboards",)))
    yield
    _SOURCES.clear(), _SOURCES.update(saved[0])
    _ALIASES.clear(), _ALIASES.update(saved[1])


def test_a_registered_source_prepares_like_the_built_in_ones(checkerboards) -> None:
    assert "boards" in dataset_names() and parse_name("CheckerBoards:60") == ("boards", "60")
    data = prepare_data("boards:60", 32, val_fraction=0.25)
    assert (len(data.train), len(data.val), data.num_classes) == (45, 15, 2)
    assert data.image_size == (32, 32) and data.in_chans == 3  # resized and widened as usual


def test_unknown_names_list_every_source(checkerboards) -> None:
    with pytest.raises(DataError, match=r"available: .*boards") as info:
        parse_name("bords")
    assert "did you mean 'boards'" in str(info.value) and info.value.param == "dataset"


def test_corrupt_gzip_idx_is_a_data_error(tmp_path: Path) -> None:
    good = gzip.compress(b"\x00\x00\x08\x01" + (4).to_bytes(4, "big") + b"abcd")
    assert read_idx(_write(tmp_path / "ok.gz", good)).tolist() == [97, 98, 99, 100]
    flipped = bytearray(good)
    flipped[len(flipped) // 2] ^= 0xFF  # a bit-flipped deflate stream: zlib.error inside gzip
    with pytest.raises(DataError, match=r"bad\.gz: cannot read IDX file"):
        read_idx(_write(tmp_path / "bad.gz", bytes(flipped)))


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
