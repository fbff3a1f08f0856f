"""``fetch_dataset`` / ``coatnet data fetch`` against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from coatnet_nas.cli import run
from coatnet_nas.data import Resource, fetch_dataset, locate, prepare_data
from coatnet_nas.errors import DataError

FMNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


class _Handler(http.server.SimpleHTTPRequestHandler):
    requests: list[str]

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        self.requests.append(self.path)
        if self.path.startswith("/short/"):  # promises more bytes than it sends
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"x" * 1000)
            return
        super().do_GET()


class Server:
    def __init__(self, root: Path):
        self.requests: list[str] = []
        handler = type("Handler", (_Handler,), {"requests": self.requests})
        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), partial(handler, directory=str(root))
        )
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    root = tmp_path / "www"
    root.mkdir()
    server = Server(root)
    yield server, root
    server.close()


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv(locate.ENV_VAR, raising=False)
    monkeypatch.delenv("COATNET_DATA_MIRROR", raising=False)
    monkeypatch.setattr(locate, "SYSTEM_ROOT", tmp_path / "no-system-datasets")


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_fmnist_archives(root: Path) -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (50, 28, 28)),
        "train-labels-idx1-ubyte.gz": np.arange(50) % 10,
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (10, 28, 28)),
        "t10k-labels-idx1-ubyte.gz": np.arange(10) % 10,
    }
    files = {name: gzip.compress(_idx(a)) for name, a in arrays.items()}
    for name, data in files.items():
        (root / name).write_bytes(data)
    return files


def _resources(url: str, files: dict[str, bytes]) -> list[Resource]:
    return [Resource(n, f"{url}/{n}", hashlib.md5(d).hexdigest()) for n, d in files.items()]


def _leftovers(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir()) if path.exists() else []


def test_fetch_verifies_renames_and_loads(served, tmp_path: Path) -> None:
    server, www = served
    files = write_fmnist_archives(www)
    seen: dict[str, tuple[int, int | None]] = {}
    dest = fetch_dataset(
        "fashion-mnist",
        tmp_path / "dl",
        resources=_resources(server.url, files),
        progress=lambda name, done, total: seen.__setitem__(name, (done, total)),
    )
    assert dest == tmp_path / "dl"
    assert _leftovers(dest) == sorted(files)  # no temporary files left behind
    for name, data in files.items():
        assert (dest / name).read_bytes() == data
        assert seen[name] == (len(data), len(data))
    data = prepare_data("fashion-mnist", 32, data_dir=dest, val_fraction=0.2)
    assert (len(data.train), len(data.val)) == (40, 10)

    # verified files are not downloaded again; a corrupted one is replaced
    server.requests.clear()
    fetch_dataset("fashion-mnist", dest, resources=_resources(server.url, files))
    assert server.requests == []
    (dest / FMNIST_FILES[1]).write_bytes(b"garbage")
    fetch_dataset("fashion-mnist", dest, resources=_resources(server.url, files))
    assert server.requests == [f"/{FMNIST_FILES[1]}"]
    assert (dest / FMNIST_FILES[1]).read_bytes() == files[FMNIST_FILES[1]]


def test_mirror_replaces_the_base_url(served, tmp_path: Path) -> None:
    server, www = served
    files = write_fmnist_archives(www)
    resources = [
        Resource(r.filename, "http://192.0.2.1/never", r.md5) for r in _resources(server.url, files)
    ]
    dest = fetch_dataset(
        "fashion-mnist", tmp_path / "m", mirror=server.url + "/", resources=resources
    )
    assert _leftovers(dest) == sorted(files)


def test_checksum_mismatch_leaves_no_file(served, tmp_path: Path) -> None:
    server, www = served
    files = write_fmnist_archives(www)
    resources = _resources(server.url, files)
    resources[2] = Resource(resources[2].filename, resources[2].url, "0" * 32)
    dest = tmp_path / "bad"
    with pytest.raises(DataError, match="checksum mismatch") as info:
        fetch_dataset("fashion-mnist", dest, resources=resources)
    assert "discarded" in str(info.value)
    assert FMNIST_FILES[2] not in _leftovers(dest)
    assert not [n for n in _leftovers(dest) if n.endswith(".part")]
    assert _leftovers(dest) == sorted(FMNIST_FILES[:2])  # the verified ones stay


def test_http_errors_and_truncation_leave_no_file(served, tmp_path: Path) -> None:
    server, _ = served
    dest = tmp_path / "err"
    with pytest.raises(DataError, match="HTTP 404"):
        fetch_dataset(
            "cifar10", dest, resources=[Resource("x.tar.gz", f"{server.url}/x.tar.gz", "0" * 32)]
        )
    with pytest.raises(DataError, match="download"):
        fetch_dataset(
            "cifar10", dest, resources=[Resource("y.tar.gz", f"{server.url}/short/y", "0" * 32)]
        )
    assert _leftovers(dest) == []


def test_official_resources_and_unfetchable_names() -> None:
    from coatnet_nas.data import RESOURCES

    assert [r.filename for r in RESOURCES["fashion-mnist"]] == list(FMNIST_FILES)
    assert RESOURCES["cifar10"][0].md5 == "c58f30108f718f92721af3b95e74349a"
    with pytest.raises(DataError, match="cannot be fetched"):
        fetch_dataset("synthetic")


def test_cli_fetch_checksum_mismatch_exits_2(served, tmp_path: Path, capsys) -> None:
    server, www = served
    write_fmnist_archives(www)  # real IDX archives, but not the official bytes
    dest = tmp_path / "cli"
    code = run(["data", "fetch", "fashion-mnist", "--data-dir", str(dest), "--mirror", server.url])
    err = capsys.readouterr().err
    assert code == 2
    assert "checksum mismatch" in err and "Traceback" not in err
    assert _leftovers(dest) == []


def test_cli_fetch_and_list_with_matching_files(
    served, tmp_path: Path, capsys, monkeypatch
) -> None:
    """The real Debian Fashion-MNIST files over loopback, verified against their own MD5s."""
    system = Path("/usr/share/datasets/fashion-mnist")
    if not all((system / n).is_file() for n in FMNIST_FILES):
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    server, www = served
    files = {n: (system / n).read_bytes() for n in FMNIST_FILES}
    for name, data in files.items():
        (www / name).write_bytes(data)
    dest = fetch_dataset(
        "fashion-mnist", tmp_path / "real", resources=_resources(server.url, files)
    )
    data = prepare_data("fashion-mnist", 28, data_dir=dest, in_chans=1, subset=0.1)
    assert len(data.train) + len(data.val) == 6000
    assert run(["data", "list", "--data-dir", str(tmp_path / "real")]) == 0
    assert str(dest) in capsys.readouterr().out
