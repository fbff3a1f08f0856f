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
    "batch_size": "--batch-size",
    "budget": "--budget",
    "data_dir": "--data-dir",
    "data_seed": "--data-seed",
    "dataset": "--dataset",
    "depth_mult": "--depth-mult",
    "device": "--device",
    "drop_path_rate": "--drop-path",
    "enqueue": "--enqueue",
    "epochs": "--epochs",
    "flops": "--budget",
    "fresh": "--fresh",
    "heartbeat_interval": "--heartbeat",
    "holdout": "--holdout",
    "image_size": "--image-size",
    "label_smoothing": "--label-smoothing",
    "layouts": "--layouts",
    "lr": "--lr",
    "max_params": "--max-params",
    "mirror": "--mirror",
    "n": "--n",
    "objectives": "--objective",
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
    "sampler": "--sampler",
    "save": "--save",
    "seeds": "--seeds",
    "steps": "--steps",
    "storage": "--storage",
    "storage_url": "--storage",
    "study": "--study",
    "study_name": "--study",
    "study_trials": "--study-trials",
    "threads": "--threads",
    "timeout": "--timeout",
    "top_k": "--top-k",
    "train_eval_images": "--train-eval-images",
    "trials": "--trials",
    "val_fraction": "--val-fraction",
    "vary": "--vary",
    "warmup": "--warmup",
    "weight_decay": "--weight-decay",
    "workers": "--workers",
    "write": "--write",
}


def flag_for(param: str | None) -> str | None:
    return PARAM_FLAGS.get(param) if param else None


def user_message(exc: CoatnetError) -> str:
    """The error's message with its parameter's first mention spelled as the CLI option."""
    message = str(exc)
    flag = flag_for(getattr(exc, "param", None))
    if flag is None:
        return message
    pattern = re.compile(rf"(?<![\w.-]){re.escape(exc.param)}(?![\w-])")  # type: ignore[arg-type]
    replaced, count = pattern.subn(flag, message, count=1)
    return replaced if count else f"{flag}: {message}"
