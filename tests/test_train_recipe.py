"""One training recipe: validation that names its setting, the runtime, the deprecated flat form,
the model's own no-weight-decay list, and the proxy recipe built on it."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest
import torch

from coatnet_nas.builder import CoAtNet
from coatnet_nas.data import prepare_data
from coatnet_nas.errors import CoatnetError
from coatnet_nas.proxies import ProxyRecipe
from coatnet_nas.spec import spec_from_dict
from coatnet_nas.train import (
    AmpMode,
    RunStatus,
    Runtime,
    TrainConfig,
    TrainRecipe,
    param_groups,
    train_spec,
)

TINY = spec_from_dict(
    {
        "name": "tiny",
        "layout": "C-T",
        "depths": [1, 1, 1],
        "widths": [8, 16, 32],
        "transformer": {"head_dim": 16},
        "image_size": 32,
        "num_classes": 10,
    }
)


def test_recipe_errors_name_the_setting_in_python_terms() -> None:
    with pytest.raises(CoatnetError, match=r"warmup: input should be less than 1") as info:
        TrainRecipe().evolve(warmup=1.5)
    assert info.value.param == "warmup" and "--" not in str(info.value)
    with pytest.raises(CoatnetError, match="at least one budget"):
        TrainRecipe().evolve(epochs=None)
    with pytest.raises(CoatnetError, match=r"lr: .*finite"):
        TrainRecipe().evolve(lr=float("inf"))
    assert TrainRecipe().evolve(steps=5, epochs=None).steps == 5


def test_runtime_validates_amp_and_threads() -> None:
    assert Runtime(amp="bf16").amp is AmpMode.BF16
    with pytest.raises(CoatnetError, match="amp must be one of auto, bf16, fp16, off") as info:
        Runtime(amp="fp8")
    assert info.value.param == "amp"
    with pytest.raises(CoatnetError, match="threads must be >= 1"):
        Runtime(threads=0)


def test_deprecated_flat_config_warns_and_trains_identically() -> None:
    data = prepare_data("synthetic:200", 32, val_fraction=0.2)
    with pytest.warns(DeprecationWarning, match="TrainConfig is deprecated"):
        old = TrainConfig(epochs=None, steps=4, batch_size=32, device="cpu", threads=1, seed=3)
    recipe, runtime, seed = old.split()
    assert recipe == TrainRecipe(epochs=None, steps=4, batch_size=32) and seed == 3
    assert runtime == Runtime(device="cpu", threads=1)
    a = train_spec(TINY, data, old)
    b = train_spec(TINY, data, recipe, runtime=runtime, seed=3)
    assert a.status is RunStatus.OK and a.to_dict()["status"] == "ok"
    assert [e.val_accuracy for e in a.history] == [e.val_accuracy for e in b.history]
    assert a.train_loss == b.train_loss


def test_the_model_names_its_no_weight_decay_parameters() -> None:
    model = CoAtNet(TINY)
    exempt = model.no_weight_decay()
    names = dict(model.named_parameters())
    tables = [n for n in names if n.endswith("bias_table")]
    assert tables and set(tables) <= exempt  # relative-position tables are 2-D, still exempt
    assert all(names[n].ndim <= 1 for n in exempt - set(tables))
    assert all(names[n].ndim > 1 for n in set(names) - exempt)  # conv/linear weights decay
    decay, no_decay = param_groups(model, 0.05)
    assert len(no_decay["params"]) == len(exempt) and no_decay["weight_decay"] == 0.0
    assert len(decay["params"]) + len(no_decay["params"]) == len(names)


def test_param_groups_ask_the_model() -> None:
    class Custom(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = torch.nn.Parameter(torch.zeros(3, 3))
            self.b = torch.nn.Parameter(torch.zeros(3, 3))

        def no_weight_decay(self) -> set[str]:
            return {"b"}

    decay, no_decay = param_groups(Custom(), 0.1)
    assert [p.shape for p in no_decay["params"]] == [torch.Size([3, 3])]
    assert len(decay["params"]) == 1


def test_proxy_recipe_embeds_the_training_recipe() -> None:
    flat = ProxyRecipe.model_validate({"dataset": "synthetic", "epochs": 2, "lr": 0.01})
    assert flat.train == TrainRecipe(epochs=2, lr=0.01) and flat.epochs == 2
    nested = ProxyRecipe.model_validate({"dataset": "synthetic", "train": {"epochs": 2}})
    assert nested.train.lr == TrainRecipe().lr and ProxyRecipe().train.epochs == 1
    assert ProxyRecipe.model_validate(flat.model_dump()) == flat  # round-trips nested
    changed = flat.evolve(subset=0.5, steps=10)
    assert (changed.subset, changed.train.steps, changed.train.epochs) == (0.5, 10, 2)
    with pytest.raises(CoatnetError, match=r"^proxy recipe: subset: input should be") as info:
        flat.evolve(subset=2.0)
    assert info.value.param == "proxy.subset"
    with pytest.raises(CoatnetError) as info:
        flat.evolve(batch_size=0)
    assert info.value.param == "proxy.batch_size" and "train." not in str(info.value)
    data = prepare_data("synthetic:300", 32, val_fraction=0.1)  # 270 train -> 2 batches of 128
    assert flat.train_recipe(data).eval_every == 1 and flat.evolve(evals_per_epoch=1)


def test_package_imports_stay_light() -> None:
    """The CLI, specs and recipes load without torch: `coatnet validate` must start fast."""
    code = (
        "import sys, coatnet_nas.cli, coatnet_nas.train.recipe, coatnet_nas.proxies.recipe;"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_no_deprecation_warning_from_the_library_itself() -> None:
    data = prepare_data("synthetic:100", 32, val_fraction=0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        result = train_spec(TINY, data, TrainRecipe(epochs=None, steps=1, batch_size=16))
    assert result.steps == 1
