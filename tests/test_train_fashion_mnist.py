"""A short proxy run on the real Fashion-MNIST (Debian's copy or a fetched one); skips if absent.

The full acceptance run (CoAtNet-0 x0.25 at 32x32, 3 epochs, >= 88%) is
``benchmarks/bench_fashion_mnist.py``; this keeps the real-data path covered in seconds.
"""

from __future__ import annotations

import pytest

from coatnet_nas.data import prepare_data
from coatnet_nas.data.sources import find_dataset
from coatnet_nas.spec import spec_from_dict
from coatnet_nas.train import Runtime, TrainRecipe, train_spec

pytestmark = pytest.mark.skipif(
    find_dataset("fashion-mnist")[0] is None,
    reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist, "
    "or coatnet data fetch fashion-mnist)",
)


def test_short_proxy_run_learns_fashion_mnist() -> None:
    data = prepare_data("fashion-mnist", 32, subset=0.05)  # 2700 train / 300 val
    spec = spec_from_dict(
        {
            "name": "small",
            "layout": "C-C-T-T",
            "depths": [1, 1, 1, 1, 1],
            "widths": [16, 16, 32, 32, 32],
            "transformer": {"head_dim": 16},
        }
    )
    recipe = TrainRecipe(epochs=1, batch_size=50, lr=3e-3, augment=False)
    result = train_spec(spec, data, recipe, runtime=Runtime(threads=1))
    assert result.status == "ok" and result.steps == 54
    assert result.val_accuracy > 0.5  # chance is 0.1
