"""The proxy trainer on the synthetic task with tiny models: budgets, callbacks, divergence."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from coatnet_nas.cost import estimate_cost
from coatnet_nas.data import prepare_data
from coatnet_nas.errors import CoatnetError, SpecError
from coatnet_nas.spec import spec_from_dict
from coatnet_nas.train import (
    EvalReport,
    Runtime,
    TrainRecipe,
    build_for_data,
    load_checkpoint,
    lr_at,
    recalibrate_batchnorm,
    recipe_from,
    resolve_device,
    save_checkpoint,
    train_model,
    train_spec,
)

TINY = spec_from_dict(
    {
        "name": "tiny",
        "layout": "C-C-T-T",
        "depths": [1, 1, 1, 1, 1],
        "widths": [16, 16, 32, 32, 32],
        "transformer": {"head_dim": 16},
        "image_size": 224,
        "num_classes": 1000,
        "drop_path_rate": 0.1,
    }
)


@pytest.fixture(scope="module")
def data():
    return prepare_data("synthetic:1200", 32, val_fraction=1 / 6)  # 1000 train / 200 val


_RUNTIME = ("device", "amp", "channels_last", "compile", "threads")


def cfg(**kw) -> dict:
    """The recipe, runtime and seed of a run, as keywords of train_spec/train_model."""
    # One thread: these tests must stay fast when other jobs share the CPU.
    values = {"epochs": None, "batch_size": 50, "device": "cpu", "threads": 1, **kw}
    runtime = Runtime(**{k: values.pop(k) for k in _RUNTIME if k in values})
    seed = values.pop("seed", 0)
    return {"recipe": recipe_from(values), "runtime": runtime, "seed": seed}


def test_learns_the_synthetic_task(data) -> None:
    reports: list[EvalReport] = []
    result = train_spec(TINY, data, **cfg(epochs=3, lr=3e-3), callback=reports.append)
    assert result.status == "ok" and result.reason is None
    assert (result.steps, result.epochs, result.images_seen) == (60, 3.0, 3000)
    assert [r.step for r in reports] == [20, 40, 60] and result.history == reports
    assert [r.images_seen for r in reports] == [1000, 2000, 3000]
    assert result.val_accuracy > 0.3  # chance is 0.1
    assert result.best_val_accuracy == max(r.val_accuracy for r in reports)
    assert reports[-1].train_loss < reports[0].train_loss
    assert 0 <= result.train_accuracy <= 1 and result.images_per_second > 0
    adapted = TINY.evolve(image_size=32, num_classes=10)
    model = build_for_data(TINY, data)
    assert result.params == sum(p.numel() for p in model.parameters())
    assert result.flops == estimate_cost(adapted).flops
    payload = json.dumps(result.to_dict(), allow_nan=False)
    assert json.loads(payload)["history"][0]["step"] == 20


def test_huge_lr_diverges_without_raising(data) -> None:
    result = train_spec(TINY, data, **cfg(steps=30, lr=1e6, grad_clip=None, warmup=0.0))
    assert result.status == "diverged"
    assert "non-finite" in (result.reason or "")
    assert result.steps < 30
    json.dumps(result.to_dict(), allow_nan=False)  # NaN losses become null


def test_seconds_budget_is_honoured_within_one_step(data) -> None:
    model = build_for_data(TINY, data)
    warm = train_model(model, data, **cfg(steps=3))  # also measures this machine's step time
    step_time = warm.images_seen / warm.images_per_second / warm.steps
    calls: list[float] = []  # start of every forward: consecutive gaps are step durations
    model.register_forward_pre_hook(lambda *_: calls.append(time.perf_counter()))
    config = cfg(seconds=max(1.0, 10 * step_time), eval_every=4)
    result = train_model(model, data, **config)
    assert result.status == "budget" and "time budget" in (result.reason or "")
    assert result.steps > 2
    longest_step = max(b - a for a, b in itertools.pairwise(calls))
    assert result.seconds <= config["recipe"].seconds + longest_step + 0.1
    assert result.history[-1].step == result.steps  # a final evaluation of the last weights


def test_callback_true_stops_and_exceptions_propagate(data) -> None:
    stop = lambda r: r.step >= 10  # noqa: E731
    result = train_spec(TINY, data, **cfg(steps=40, eval_every=5), callback=stop)
    assert result.status == "stopped" and result.steps == 10
    assert [r.step for r in result.history] == [5, 10]

    class Prune(Exception):
        pass

    def prune(report: EvalReport) -> None:
        raise Prune(report.step)

    with pytest.raises(Prune):
        train_spec(TINY, data, **cfg(steps=10, eval_every=5), callback=prune)


def test_eval_cadence_and_fractional_epochs(data) -> None:
    result = train_spec(TINY, data, **cfg(steps=12, eval_every=5))
    assert [r.step for r in result.history] == [5, 10, 12]
    half = train_spec(TINY, data, **cfg(epochs=0.5))
    assert (half.steps, half.status, half.epochs) == (10, "ok", 0.5)
    first = min(cfg(epochs=1, steps=7)["recipe"].epochs, 1)
    assert train_spec(TINY, data, **cfg(epochs=first, steps=7)).steps == 7


def test_reproducible_on_cpu_and_caller_rng_untouched(data) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = train_spec(TINY, data, **cfg(steps=8, eval_every=4, seed=5))
    assert torch.equal(torch.rand(3), expected)  # the run forked the RNG
    b = train_spec(TINY, data, **cfg(steps=8, eval_every=4, seed=5))
    c = train_spec(TINY, data, **cfg(steps=8, eval_every=4, seed=6))
    key = [(r.val_accuracy, r.train_loss) for r in a.history]
    assert key == [(r.val_accuracy, r.train_loss) for r in b.history]
    assert key != [(r.val_accuracy, r.train_loss) for r in c.history]


def test_plain_modules_train_too(data) -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
    threads = torch.get_num_threads()
    result = train_model(model, data, **cfg(steps=5, threads=1))
    assert torch.get_num_threads() == threads  # the cap is restored
    assert result.status == "ok" and result.flops is None
    assert result.params == 3 * 32 * 32 * 10 + 10


def test_progress_snapshots(data) -> None:
    seen = []
    train_spec(TINY, data, **cfg(steps=6), progress=seen.append)
    assert seen and seen[-1].step == 6 and seen[-1].fraction == pytest.approx(1.0)
    assert seen[-1].val_accuracy is not None


def test_schedule_warms_up_then_decays() -> None:
    config = TrainRecipe(lr=1.0, warmup=0.1, final_lr_scale=0.01)
    assert lr_at(config, 0.05) == pytest.approx(0.5)
    assert lr_at(config, 0.1) == pytest.approx(1.0)
    assert lr_at(config, 0.55) == pytest.approx(0.505)
    assert lr_at(config, 1.0) == pytest.approx(0.01)


def test_bad_configs_and_devices_are_user_errors(data) -> None:
    with pytest.raises(CoatnetError, match="at least one budget"):
        train_spec(TINY, data, **cfg())
    with pytest.raises(CoatnetError, match="warmup"):
        train_spec(TINY, data, **cfg(steps=1, warmup=1.5))
    with pytest.raises(CoatnetError, match="amp"):
        Runtime(amp="fp8")
    if not torch.cuda.is_available():
        with pytest.raises(CoatnetError, match="CUDA was requested"):
            resolve_device("cuda")
    with pytest.raises(SpecError, match="tiny cannot be trained on synthetic:100 at 48x48"):
        train_spec(TINY, prepare_data("synthetic:100", 48), **cfg(steps=1))


def test_checkpoint_roundtrip_with_weights_only(data, tmp_path: Path) -> None:
    model = build_for_data(TINY, data, drop_path_rate=0.0)
    result = train_model(model, data, **cfg(steps=3))
    path = save_checkpoint(tmp_path / "ck" / "tiny.pt", model, result=result)
    raw = torch.load(path, weights_only=True)  # plain containers and tensors only
    assert raw["result"]["steps"] == 3
    ck = load_checkpoint(path)
    assert ck.spec == model.spec and ck.result["status"] == "ok"
    # the trainer left the model channels-last; the same layout gives the same conv kernels
    rebuilt = ck.build().eval().to(memory_format=torch.channels_last)
    x = data.normalize(data.val.images[:4])
    with torch.no_grad():
        assert torch.allclose(rebuilt(x), model.eval()(x))
    with pytest.raises(CoatnetError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(CoatnetError, match="not a loadable checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")


def test_bf16_autocast_and_channels_last_paths_run_on_cpu(data) -> None:
    config = cfg(steps=2, amp="bf16", channels_last=True)
    result = train_spec(TINY, data, **config)
    assert result.status == "ok" and result.steps == 2
    assert 0.0 <= result.val_accuracy <= 1.0


def test_precise_bn_recomputes_population_statistics(data) -> None:
    model = build_for_data(TINY, data)  # drop_path_rate 0.1: must be off while recalibrating
    model.train()
    norm = next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    seen: list[torch.Tensor] = []
    hook = norm.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach()))
    for other in model.modules():
        if isinstance(other, nn.BatchNorm2d):
            other.running_mean.fill_(100.0)  # stale statistics
            other.running_var.fill_(1e-4)
    with torch.no_grad():
        used = recalibrate_batchnorm(model, data, batches=4, batch_size=100)
    hook.remove()
    assert used == 4 and len(seen) == 4 and model.training  # mode restored
    inputs = torch.cat(seen)  # the population of the 400 images' activations
    expected_mean = inputs.mean(dim=(0, 2, 3))
    expected_var = inputs.var(dim=(0, 2, 3), unbiased=False)
    assert torch.allclose(norm.running_mean, expected_mean, atol=1e-5)
    assert torch.allclose(norm.running_var, expected_var, rtol=1e-3, atol=1e-6)
    first = [m.running_mean.clone() for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    recalibrate_batchnorm(model, data, batches=4, batch_size=100)  # no stochastic depth: same
    again = [m.running_mean for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert recalibrate_batchnorm(nn.Linear(2, 2), data, 4, 100) == 0  # nothing to recalibrate


def test_precise_bn_changes_evaluation_not_training(data) -> None:
    plain = train_spec(TINY, data, **cfg(steps=10, eval_every=5, lr=3e-3, precise_bn=0))
    precise = train_spec(TINY, data, **cfg(steps=10, eval_every=5, lr=3e-3, precise_bn=4))
    assert [r.train_loss for r in plain.history] == [r.train_loss for r in precise.history]
    # after 10 steps the running averages still hold the initial weights' statistics
    assert [r.val_accuracy for r in plain.history] != [r.val_accuracy for r in precise.history]
    with pytest.raises(CoatnetError, match="precise_bn"):
        train_spec(TINY, data, **cfg(steps=1, precise_bn=-1))


def test_channels_last_is_the_default_and_can_be_turned_off(data) -> None:
    def conv_layout_after(**kw) -> bool:
        model = build_for_data(TINY, data)
        train_model(model, data, **cfg(steps=1, **kw))
        conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
        return conv.weight.is_contiguous(memory_format=torch.channels_last)

    assert conv_layout_after() and conv_layout_after(channels_last=None)
    assert not conv_layout_after(channels_last=False)
