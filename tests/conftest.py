"""Shared fixtures: the repo root and small specs that build in milliseconds."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


@pytest.fixture
def tiny_compact() -> dict:
    return {
        "name": "tiny",
        "layout": "C-C-T-T",
        "depths": [1, 1, 2, 2, 1],
        "widths": [16, 16, 32, 64, 64],
        "image_size": 64,
        "num_classes": 10,
        "transformer": {"head_dim": 16},
    }


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path
