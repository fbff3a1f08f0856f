"""A tiny search space on the synthetic data set: trials take about a second on 2 CPU cores."""

from __future__ import annotations

import copy

TINY_SPACE = {
    "name": "tiny",
    "layouts": ["C-T", "C-C", "T-T"],
    "stem_depth": 1,
    "depths": [[1, 2], [1, 2]],
    "widths": [[16], [32, 64], [32, 64, 96]],
    "transformer": {"head_dim": [32]},
    "target": {"image_size": 64, "num_classes": 10},
    "budget": {"flops": "40M"},
    "proxy": {
        "dataset": "synthetic:400",
        "image_size": 16,
        "width_mult": 0.5,
        "epochs": None,
        "steps": 4,
        "subset": 1.0,
        "batch_size": 32,
        "evals_per_epoch": 1,
    },
}


def tiny_space(**proxy) -> dict:
    space = copy.deepcopy(TINY_SPACE)
    space["proxy"].update(proxy)
    return space
