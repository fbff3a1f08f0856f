"""Data-parallel supernet training on real processes (gloo on CPU, torch's elastic agent).

``coatnet supernet train --nproc 2`` runs as a real process in its own session with a timeout
(a hang fails the test and the whole session is killed); the gradient check runs two ranks of
the library's own step and reduction under :func:`launch_local`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
import torch
from torch import nn

from coatnet_nas.cli import run
from coatnet_nas.supernet import Supernet, load_supernet
from coatnet_nas.supernet.parallel import average_gradients, weights_digest
from coatnet_nas.supernet.sandwich import SandwichRule, sandwich_step, step_specs
from coatnet_nas.train.distributed import distributed_session, launch_local
from tests.conftest import coatnet_process, kill_9_after_save
from tests.test_supernet import SPACE, STEPS, _train_args

TIMEOUT = 240


def _finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    """Wait (bounded) for ``proc``; on a hang, SIGKILL its session (launcher and ranks)."""
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"supernet training hung for {TIMEOUT}s")
    return proc.returncode, out, err


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> tuple[Path, Path, str, str]:
    """An uninterrupted 2-rank run: the space, the file, its stdout and stderr."""
    folder = tmp_path_factory.mktemp("supernet_ddp")
    space = folder / "space.yaml"
    space.write_text(SPACE)
    out = folder / "super.pt"
    code, stdout, stderr = _finish(coatnet_process(*_train_args(space, out, "--nproc", "2")))
    assert code == 0, stderr
    return space, out, stdout, stderr


def test_two_ranks_write_one_file_and_report_once(two_ranks):
    _, out, stdout, stderr = two_ranks
    payload = torch.load(out, weights_only=True)
    train = payload["train"]
    assert train["finished"] and train["step"] == int(STEPS) and train["world_size"] == 2
    # one history entry per step, each step once: rank 1 neither reports nor writes
    assert [h["step"] for h in train["history"]] == list(range(1, int(STEPS) + 1))
    # one progress bar (rank 0's, at every step done) and one summary: rank 1 shows neither
    lines = stdout.splitlines()
    bars = [line for line in lines if line.startswith("supernet ")]
    assert len(bars) == 1 and f"{STEPS}/{STEPS} loss" in bars[0], stdout
    assert sum(line.startswith("supernet: ") for line in lines) == 1, stdout
    assert "Traceback" not in stderr and "error" not in stderr.lower(), stderr
    assert load_supernet(out).train["step"] == int(STEPS)  # loads with weights_only


def test_every_rank_ends_with_the_same_weights(two_ranks):
    # Each rank hashes its own parameters at the end; rank 0 records all the hashes. Without
    # the gradient all-reduce every rank would step on its own half of the batch and drift.
    _, out, _, _ = two_ranks
    found = load_supernet(out)
    digests = found.train["rank_digests"]
    assert len(digests) == 2 and digests[0] == digests[1], digests
    net = Supernet(found.space, initialize=False)
    net.load_state_dict(found.state_dict)
    assert f"{weights_digest(net):012x}" == digests[0]  # the hash is of the weights saved


def _step(net: Supernet, images: torch.Tensor, labels: torch.Tensor) -> None:
    """One sandwich step's passes, BatchNorm on its running statistics (so a sample's gradient
    does not depend on which other samples share its batch)."""
    net.eval()
    rule = SandwichRule(children=1)
    specs = step_specs(net.space, rule, seed=3, step=5)
    sandwich_step(net, images, labels, specs, rule, label_smoothing=0.1)


def _loaded(path: str) -> Supernet:
    found = load_supernet(path)
    net = Supernet(found.space, initialize=False)
    net.load_state_dict(found.state_dict)
    return net


def _grads(module: nn.Module) -> dict[str, torch.Tensor | None]:
    return {n: None if p.grad is None else p.grad.clone() for n, p in module.named_parameters()}


def _rank_gradients(path: str, images: torch.Tensor, labels: torch.Tensor) -> tuple[dict, dict]:
    """One rank of the test below: its half of the batch, then the averaged gradients."""
    torch.set_num_threads(1)
    with distributed_session("cpu") as (world, _):
        net = _loaded(path)
        half = len(labels) // world.size
        rows = slice(world.rank * half, (world.rank + 1) * half)
        _step(net, images[rows], labels[rows])
        average_gradients(net, world)
        # a module whose parameters the ranks use differently: "both" by every rank (input
        # rank + 1), "first" by rank 0 only, "none" by no rank
        torch.manual_seed(0)
        toy = nn.ModuleDict({k: nn.Linear(2, 1) for k in ("both", "first", "none")})
        x = torch.full((1, 2), float(world.rank + 1))
        loss = toy["both"](x).sum() + (toy["first"](x).sum() if world.rank == 0 else 0)
        loss.backward()
        average_gradients(toy, world)
        return _grads(net), _grads(toy)


def test_the_averaged_gradient_is_the_global_batch_gradient(two_ranks):
    _, out, _, _ = two_ranks
    space = load_supernet(out).space
    gen = torch.Generator().manual_seed(1)
    images = torch.randn(8, space.in_chans, *space.image_size, generator=gen)
    labels = torch.randint(0, space.num_classes, (8,), generator=gen)
    whole = _loaded(str(out))
    _step(whole, images, labels)  # one process, the whole batch
    expected = _grads(whole)
    results = launch_local(2, _rank_gradients, (str(out), images, labels))
    assert sum(g is None for g in expected.values()) > 0  # the step leaves some unused
    for got, toy in results.values():
        assert got.keys() == expected.keys()
        for name, grad in expected.items():
            if grad is None:
                assert got[name] is None, f"{name}: unused by every rank, yet has a gradient"
            else:  # the mean of the halves' gradients (a sum would be twice it)
                torch.testing.assert_close(got[name], grad, rtol=1e-4, atol=1e-6, msg=name)
        assert torch.equal(toy["both.weight"], torch.full((1, 2), 1.5))  # (1 + 2) / 2
        assert torch.equal(toy["first.weight"], torch.full((1, 2), 0.5))  # (1 + 0) / 2
        assert toy["none.weight"] is None and toy["none.bias"] is None


def test_resume_of_a_two_rank_run_after_kill_9(two_ranks, tmp_path):
    space, reference, _, _ = two_ranks
    out = tmp_path / "killed.pt"
    args = _train_args(space, out, "--nproc", "2")
    killed_at = kill_9_after_save(coatnet_process(*args), out, at_least=2, timeout=TIMEOUT)
    assert 2 <= killed_at < int(STEPS), "killed mid-run, after a save"
    code, stdout, stderr = _finish(coatnet_process(*args, "--resume", "--json"))
    assert code == 0, stderr
    summary = json.loads(stdout)  # one document: rank 1 prints nothing
    assert summary["resumed_from"] == killed_at and summary["steps"] == int(STEPS)
    assert summary["world_size"] == 2
    a, b = torch.load(reference, weights_only=True), torch.load(out, weights_only=True)
    assert [h["step"] for h in b["train"]["history"]] == list(range(1, int(STEPS) + 1))
    # every rank resumed from rank 0's file (the sampler's state is the global order): the
    # resumed run is the uninterrupted one, weights and losses alike
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert [h["loss"] for h in a["train"]["history"]] == [h["loss"] for h in b["train"]["history"]]
    assert b["train"]["rank_digests"] == a["train"]["rank_digests"]


@pytest.mark.parametrize(
    ("nproc", "words"),
    [
        ("3", "--batch-size 32 (the global batch) cannot be split evenly over 3"),
        ("64", "--nproc 64 is more processes than the 32 images"),
        ("0", "--nproc must be >= 1"),
    ],
)
def test_a_batch_that_does_not_split_is_refused_before_any_rank_starts(
    tmp_path, capsys, nproc, words
):
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    out = tmp_path / "super.pt"
    assert run(_train_args(space, out, "--nproc", nproc)) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()
