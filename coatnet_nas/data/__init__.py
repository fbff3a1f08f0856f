"""Proxy-training data: sources on disk (or generated), downloads, and tensors on the device.

``prepare_data(name, image_size, ...)`` is the entry point; ``name`` is one of ``DATASETS``:
``synthetic`` (``synthetic:N``), ``fashion-mnist``, ``cifar10``, ``cifar100`` or
``folder:<path>``. Files are found under ``data_dir``, ``$COATNET_DATA``, the user cache dir
(where :func:`fetch_dataset` downloads) and ``/usr/share/datasets``.
"""

from __future__ import annotations

from coatnet_nas.data.devices import resolve_device
from coatnet_nas.data.fetch import RESOURCES, Resource, fetch_dataset
from coatnet_nas.data.locate import cache_root, search_roots
from coatnet_nas.data.sources import (
    DATASETS,
    RawData,
    find_dataset,
    load_raw,
    parse_name,
    read_idx,
)
from coatnet_nas.data.tensors import ProxyData, Split, adapt_images, prepare_data

__all__ = [
    "DATASETS",
    "RESOURCES",
    "ProxyData",
    "RawData",
    "Resource",
    "Split",
    "adapt_images",
    "cache_root",
    "fetch_dataset",
    "find_dataset",
    "load_raw",
    "parse_name",
    "prepare_data",
    "read_idx",
    "resolve_device",
    "search_roots",
]
