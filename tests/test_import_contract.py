"""The package's import architecture: no module-level cycles, and the import-linter contracts
in pyproject.toml (cli imported by nobody, packages layered) hold, and bite when broken."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

grimp = pytest.importorskip("grimp", reason="grimp and import-linter need Python >= 3.11")

PACKAGE = "coatnet_nas"
CONFIG = ROOT / "pyproject.toml"


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Groups of two or more modules that import each other, directly or through others."""
    import networkx as nx

    digraph = nx.DiGraph()
    digraph.add_nodes_from(graph.modules)
    for module in graph.modules:
        digraph.add_edges_from((module, m) for m in graph.find_modules_directly_imported_by(module))
    groups = (sorted(g) for g in nx.strongly_connected_components(digraph) if len(g) > 1)
    return sorted(groups)


def _describe(graph: grimp.ImportGraph, group: list[str]) -> str:
    first, second = group[0], group[1]
    there = graph.find_shortest_chain(importer=first, imported=second) or ()
    back = graph.find_shortest_chain(importer=second, imported=first) or ()
    return " -> ".join([*there, *back[1:]])


def test_no_import_cycle_between_any_two_modules():
    graph = grimp.build_graph(PACKAGE, cache_dir=None)
    assert "coatnet_nas.blocks.mbconv" in graph.modules  # the real package was analysed
    cycles = import_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(_describe(graph, g) for g in cycles)


def test_cycle_finder_finds_a_planted_cycle():
    graph = grimp.ImportGraph()
    for importer, imported in [("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.c", "p.d")]:
        graph.add_import(importer=importer, imported=imported)
    graph.add_module("p.e")
    assert import_cycles(graph) == [["p.a", "p.b", "p.c"]]
    assert _describe(graph, ["p.a", "p.b", "p.c"]) == "p.a -> p.b -> p.c -> p.a"


def lint_imports(pythonpath: Path, cwd: Path) -> subprocess.CompletedProcess:
    """Run import-linter's command on the package found first on ``pythonpath``."""
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from importlinter.cli import lint_imports_command; "
            "sys.exit(lint_imports_command())",
            "--no-logo",
            "--no-cache",
            str(CONFIG),
        ],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )


def test_contracts_hold_on_the_real_tree():
    result = lint_imports(ROOT, ROOT)
    output = result.stdout + result.stderr
    assert "Contracts:" in output, output  # the tool ran and read the contracts
    assert result.returncode == 0, output
    assert "2 kept, 0 broken" in output


def test_contracts_fail_on_planted_violations(tmp_path):
    shutil.copytree(
        ROOT / PACKAGE, tmp_path / PACKAGE, ignore=shutil.ignore_patterns("__pycache__")
    )
    blocks = tmp_path / PACKAGE / "blocks"
    # A low layer reaching the command line, from inside a function (those count too) ...
    (blocks / "planted_cli.py").write_text(
        "def flag_name() -> str:\n"
        "    from coatnet_nas.cli.errors import flag_for\n\n"
        "    return flag_for('write')\n"
    )
    # ... and one importing upward across the layers.
    (blocks / "planted_up.py").write_text("import coatnet_nas.train  # noqa: F401\n")
    result = lint_imports(tmp_path, tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Only the command line imports coatnet_nas.cli" in output
    assert "coatnet_nas.blocks.planted_cli -> coatnet_nas.cli.errors" in output
    assert "coatnet_nas.blocks is not allowed to import coatnet_nas.train" in output
    assert "coatnet_nas.blocks.planted_up -> coatnet_nas.train" in output
