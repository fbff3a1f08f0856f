"""Deployment files: ONNX, TorchScript and torch.export programs, each checked numerically.

``formats`` (:class:`ExportFormat`), ``deps`` (the optional packages, imported lazily), the
writers ``onnx``, ``torchscript`` and ``exported``, ``check`` (run the written file in its own
runtime and compare with the eager model), ``runtime`` (:func:`runtime_latency`: the latency
a deployment runtime measures) and ``api`` (:func:`export_model`). Names load on first use.
"""

from coatnet_nas._lazy import lazy_exports

_EXPORTS = {
    "ExportFormat": "coatnet_nas.export.formats",
    "parse_format": "coatnet_nas.export.formats",
    "CheckResult": "coatnet_nas.export.check",
    "check_export": "coatnet_nas.export.check",
    "load_runner": "coatnet_nas.export.check",
    "LatencyStats": "coatnet_nas.export.runtime",
    "alternating_latency": "coatnet_nas.export.runtime",
    "runtime_latency": "coatnet_nas.export.runtime",
    "ExportReport": "coatnet_nas.export.api",
    "export_model": "coatnet_nas.export.api",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
