"""Proxy-training data: sources on disk (or generated), downloads, and tensors on the device.

``prepare_data(name, image_size, ...)`` is the entry point; ``name`` is one of ``DATASETS``:
``synthetic`` (``synthetic:N``), ``fashion-mnist``, ``cifar10``, ``cifar100`` or
``folder:<path>``. Files are found under ``data_dir``, ``$COATNET_DATA``, the user cache dir
(where :func:`fetch_dataset` downloads) and ``/usr/share/datasets``.
"""

from coatnet_nas._lazy import lazy_exports

_EXPORTS = {
    "resolve_device": "coatnet_nas.data.devices",
    "RESOURCES": "coatnet_nas.data.fetch",
    "Resource": "coatnet_nas.data.fetch",
    "fetch_dataset": "coatnet_nas.data.fetch",
    "cache_root": "coatnet_nas.data.locate",
    "search_roots": "coatnet_nas.data.locate",
    "DATASETS": "coatnet_nas.data.sources",
    "RawData": "coatnet_nas.data.sources",
    "find_dataset": "coatnet_nas.data.sources",
    "load_raw": "coatnet_nas.data.sources",
    "parse_name": "coatnet_nas.data.sources",
    "read_idx": "coatnet_nas.data.sources",
    "ProxyData": "coatnet_nas.data.tensors",
    "Split": "coatnet_nas.data.tensors",
    "adapt_images": "coatnet_nas.data.tensors",
    "prepare_data": "coatnet_nas.data.tensors",
    "DataOptions": "coatnet_nas.data.options",
    "Holdout": "coatnet_nas.data.options",
    "AutoAugment": "coatnet_nas.data.options",
    "load_data": "coatnet_nas.data.loading",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
