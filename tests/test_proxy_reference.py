"""A proxy check's reference may train at another resolution than the proxies it judges."""

from __future__ import annotations

from coatnet_nas.proxies import parse_proxy
from coatnet_nas.proxies.check import run_proxy_check
from coatnet_nas.proxies.evaluate import ProxyEvaluator
from coatnet_nas.search import space_from_dict
from tests.conftest import tiny_space


def test_reference_at_another_resolution():
    space = space_from_dict(tiny_space())
    evaluator = ProxyEvaluator(space.proxy, device="cpu")
    ref = parse_proxy("train:steps=3,image_size=32")
    assert evaluator.recipe(ref).image_size == 32 and space.proxy.image_size == 16
    assert evaluator.data(ref).train.images.shape[-1] == 32  # upscaled, not the proxy's 16 px
    result = run_proxy_check(space, n=3, reference=ref, proxies="train:steps=2", device="cpu")
    assert result.reference == "train:image_size=32,steps=3"
    assert len(result.values[result.reference]) == 3
