"""Model specs: the YAML source of truth, validated by Pydantic.

Two YAML forms normalize to one :class:`ModelSpec`:

* compact — ``layout: C-C-T-T``, ``depths``/``widths`` with the stem first, and block defaults
  under the block type's key (``mbconv:``, ``transformer:``);
* explicit — ``stem: {depth, width}`` and ``stages: [{type, depth, width, <overrides>}]``.

Validation problems are collected and reported in the form the user wrote (``widths[3]`` for a
compact spec, ``stages[2].width`` for an explicit one) as a :class:`~coatnet_nas.errors.SpecError`.
``models`` holds the Pydantic models, ``forms`` the two YAML forms, ``yaml_io`` safe reading,
``problems`` the located messages. Everything here is torch-free.
"""

from coatnet_nas.spec.forms import load_spec, parse_layout, spec_from_dict
from coatnet_nas.spec.models import (
    COMMON_KEYS,
    COMPACT_KEYS,
    EXPLICIT_KEYS,
    STAGE_KEYS,
    ModelSpec,
    StageSpec,
    StemSpec,
)
from coatnet_nas.spec.problems import (
    Loc,
    SpecProblems,
    format_problems,
    problems_from_validation,
    settings_problems,
    validation_reason,
)
from coatnet_nas.spec.yaml_io import parse_yaml, read_yaml

__all__ = [
    "COMMON_KEYS",
    "COMPACT_KEYS",
    "EXPLICIT_KEYS",
    "STAGE_KEYS",
    "Loc",
    "ModelSpec",
    "SpecProblems",
    "StageSpec",
    "StemSpec",
    "format_problems",
    "load_spec",
    "parse_layout",
    "parse_yaml",
    "problems_from_validation",
    "read_yaml",
    "settings_problems",
    "spec_from_dict",
    "validation_reason",
]
