"""``coatnet dashboard``: optuna-dashboard over the studies of a storage."""

from __future__ import annotations

import typer

from coatnet_nas.cli.app import RUNTIME, app, console
from coatnet_nas.search.storage import DEFAULT_STORAGE


@app.command()
def dashboard(
    storage_url: str = typer.Option(
        DEFAULT_STORAGE,
        "--storage",
        metavar="URL",
        help="SQLAlchemy URL of the study storage, e.g. postgresql://user@host/db.",
        rich_help_panel=RUNTIME,
    ),
    port: int = typer.Option(
        8080, "--port", metavar="P", help="Port to serve on.", rich_help_panel=RUNTIME
    ),
    host: str = typer.Option(
        "127.0.0.1",
        "--host",
        metavar="HOST",
        help="Address to listen on (0.0.0.0: every interface).",
        rich_help_panel=RUNTIME,
    ),
) -> None:
    """Serve the storage's studies in optuna-dashboard (Ctrl-C stops it).

    Every trial's architecture, size, latency, status and proxy recipe, and the search plots;
    live while a search runs."""
    from coatnet_nas.search.dashboard import serve_dashboard

    def ready(url: str) -> None:
        console.print(f"optuna-dashboard for {storage_url} at {url} (Ctrl-C stops)", markup=False)

    serve_dashboard(storage_url, host=host, port=port, on_ready=ready)
