"""Library errors in the command line's words: the parameter an error is about becomes its flag.

The library names parameters as Python does (``workers``, ``storage_url``, ``proxy.epochs``) and
tags the error with that name; this table is the one place that knows which option spells it.
"""

from __future__ import annotations

import re

from coatnet_nas.errors import CoatnetError

# Python parameter (or dotted setting) -> the option every command uses for it.
PARAM_FLAGS: dict[str, str] = {
    "amp": "--amp",
    "atol": "--atol",
    "batch": "--batch",
    "batch_size": "--batch-size",
    "budget": "--budget",
    "calibration": "--calibration",
    "data_dir": "--data-dir",
    "data_seed": "--data-seed",
    "dataset": "--dataset",
    "depth_mult": "--depth-mult",
    "device": "--device",
    "drop_path_rate": "--drop-path",
    "ema": "--ema",
    "enqueue": "--enqueue",
    "epochs": "--epochs",
    "flops": "--budget",
    "format": "--format",
    "fresh": "--fresh",
    "heartbeat_interval": "--heartbeat",
    "holdout": "--holdout",
    "image_size": "--image-size",
    "init": "--init",
    "label_smoothing": "--label-smoothing",
    "latency_table": "--table",
    "layouts": "--layouts",
    "lr": "--lr",
    "max_latency": "--max-latency",
    "max_params": "--max-params",
    "memory_cap": "--memory-cap",
    "mirror": "--mirror",
    "n": "--n",
    "nproc": "--nproc",
    "objectives": "--objective",
    "opset": "--opset",
    "out": "--out",
    "out_dir": "--out",
    "params": "--max-params",
    "proxies": "--proxies",
    "proxy": "--proxy",
    "proxy.epochs": "--proxy-epochs",
    "proxy.subset": "--subset",
    "pruner": "--pruner",
    "reference": "--reference",
    "regimes": "--regimes",
    "repeats": "--repeats",
    "resume": "--resume",
    "runtime": "--runtime",
    "sampler": "--sampler",
    "save": "--save",
    "save_every": "--save-every",
    "seeds": "--seeds",
    "steps": "--steps",
    "storage": "--storage",
    "storage_url": "--storage",
    "study": "--study",
    "study_name": "--study",
    "study_trials": "--study-trials",
    "sync_batchnorm": "--sync-batchnorm",
    "table": "--table",
    "threads": "--threads",
    "timeout": "--timeout",
    "top_k": "--top-k",
    "train_eval_images": "--train-eval-images",
    "trials": "--trials",
    "val_fraction": "--val-fraction",
    "vary": "--vary",
    "warmup": "--warmup",
    "weight_decay": "--weight-decay",
    "weights": "--weights",
    "width_mult": "--width-mult",
    "workers": "--workers",
    "write": "--write",
}


_PAREN_PARAM = re.compile(r"\(([a-z_][a-z0-9_.]*)\)")


def flag_for(param: str | None) -> str | None:
    return PARAM_FLAGS.get(param) if param else None


def user_message(exc: CoatnetError) -> str:
    """The error's message, saying which option it is about.

    A message that starts with its parameter's name (``workers must be >= 1``) gets the flag in
    its place (``--workers must be >= 1``); any other gets the flag in front (``--dataset:
    unknown dataset 'x'``), so prose that merely contains the word is never rewritten. Another
    parameter a message points to is written in parentheses, ``start over (fresh)``, and shown
    as its flag, ``start over (--fresh)``.
    """
    message = _PAREN_PARAM.sub(
        lambda m: f"({PARAM_FLAGS[m[1]]})" if m[1] in PARAM_FLAGS else m[0], str(exc)
    )
    param = getattr(exc, "param", None)
    flag = flag_for(param)
    if flag is None:
        return message
    if re.match(rf"{re.escape(param)}(?![\w-])", message):  # type: ignore[arg-type]
        return flag + message[len(param) :]  # type: ignore[arg-type]
    return f"{flag}: {message}"


def one_paragraph(message: str) -> str:
    """Blank lines squeezed out, so a message (a list of problems included) stays one paragraph."""
    return "\n".join(line for line in message.splitlines() if line.strip())
