"""``coatnet dashboard``: optuna-dashboard serves a real study's trials with readable user
attributes over its JSON API; headless Chromium renders it (a screenshot for the README)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from coatnet_nas.cli import run
from coatnet_nas.train.distributed import free_port
from tests.conftest import tiny_space

pytest.importorskip("optuna_dashboard")

READABLE = {
    "arch",
    "size",
    "proxy_recipe",
    "layout",
    "depths",
    "widths",
    "flops",
    "params",
    "status",
    "val_accuracy",
}


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _wait_for(url: str, proc: subprocess.Popen, seconds: float = 60) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        try:
            return _get(url)
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"dashboard did not start: {proc.communicate(timeout=5)}")
            time.sleep(0.3)


@pytest.fixture
def study(tmp_path: Path) -> str:
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(tiny_space()))
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    args = [
        "search",
        "--space",
        str(space),
        "--trials",
        "4",
        "--storage",
        storage,
        "--study",
        "tiny",
        "--device",
        "cpu",
        "--out",
        str(tmp_path / "out"),
        "--json",
    ]
    assert run(args) == 0
    return storage


def test_dashboard_serves_the_trials_with_readable_attributes(study: str, tmp_path: Path):
    port = free_port()
    cmd = [
        sys.executable,
        "-c",
        "from coatnet_nas.cli import main; main()",
        "dashboard",
        "--storage",
        study,
        "--port",
        str(port),
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        studies = _wait_for(f"{base}/api/studies", proc)["study_summaries"]
        (summary,) = [s for s in studies if s["study_name"] == "tiny"]
        detail = _get(f"{base}/api/studies/{summary['study_id']}?after=0")
        trials = detail["trials"]
        assert len(trials) >= 4
        done = [t for t in trials if t["state"] == "Complete"]
        assert done, [t["state"] for t in trials]
        attrs = {a["key"]: a["value"] for a in done[0]["user_attrs"]}
        assert set(attrs) >= READABLE, sorted(attrs)
        assert attrs["arch"].startswith(attrs["layout"]) and "FLOPs" in attrs["size"]
        assert attrs["proxy_recipe"].startswith("train synthetic:400@16px")
        # The plots (history, importances, ...) are drawn in the browser from these numbers.
        assert len(detail["union_search_space"]) >= 3 and detail["directions"] == ["maximize"]
        importances = _get(f"{base}/api/studies/{summary['study_id']}/param_importances")
        assert importances["param_importances"][0]
        _screenshot(f"{base}/dashboard/studies/{summary['study_id']}/trials", tmp_path)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)
    assert proc.returncode in (0, 130), proc.stderr.read() if proc.stderr else ""


def _screenshot(url: str, tmp_path: Path) -> None:
    """Headless Chromium renders the study page (skipped where Debian's chromium is absent);
    ``COATNET_DOCS_SCREENSHOT=docs/dashboard.png`` keeps the image for the README."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        return  # the API checks above are the test; the picture is a documentation artefact
    shot = tmp_path / "dashboard.png"
    cmd = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium'}",
        "--virtual-time-budget=15000",
        f"--screenshot={shot}",
        "--window-size=1280,900",
        url,
    ]
    subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    keep = os.environ.get("COATNET_DOCS_SCREENSHOT")
    if keep:
        shutil.copyfile(shot, keep)
