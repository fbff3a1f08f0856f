"""Seeded random valid specs, for property tests and cost-model benchmarks."""

from __future__ import annotations

import random

from coatnet_nas.spec import ModelSpec, spec_from_dict


def random_spec(
    rng: random.Random,
    max_stages: int = 5,
    max_depth: int = 6,
    widths: tuple[int, int] = (16, 512),
    image_sizes: tuple[int, int] = (32, 256),
) -> ModelSpec:
    """A valid spec: 1..max_stages C/T stages, random depths, widths, options and image size."""
    n = rng.randint(1, max_stages)
    patch = rng.random() < 0.2
    stem: dict = (
        {
            "kind": "patch",
            "depth": 1,
            "patch_size": rng.choice([2, 4]),
            "width": rng.randint(*widths),
        }
        if patch
        else {"depth": rng.randint(1, 3), "width": rng.randint(*widths)}
    )
    stride = (stem["patch_size"] if patch else 2) * 2**n
    lo, hi = max(1, -(-image_sizes[0] // stride)), image_sizes[1] // stride
    size = stride * rng.randint(lo, max(lo, hi))
    stages = []
    for _ in range(n):
        if rng.random() < 0.5:
            head_dim = rng.choice([8, 16, 32])
            width = head_dim * rng.randint(max(1, widths[0] // head_dim), widths[1] // head_dim)
            stages.append(
                {
                    "type": "T",
                    "depth": rng.randint(1, max_depth),
                    "width": width,
                    "head_dim": head_dim,
                    "mlp_ratio": rng.choice([1.0, 2.0, 3.0, 4.0]),
                    "pool": rng.choice(["avg", "max"]),
                }
            )
        else:
            stages.append(
                {
                    "type": "C",
                    "depth": rng.randint(1, max_depth),
                    "width": rng.randint(*widths),
                    "expand_ratio": rng.choice([1.0, 2.0, 4.0, 6.0]),
                    "se_ratio": rng.choice([0.0, 0.25, 0.5]),
                    "kernel_size": rng.choice([3, 5, 7]),
                    "pool": rng.choice(["avg", "max"]),
                }
            )
    return spec_from_dict(
        {
            "name": "random",
            "image_size": size,
            "num_classes": rng.choice([10, 100, 1000]),
            "in_chans": rng.choice([1, 3]),
            "stem": stem,
            "stages": stages,
        }
    )
