"""optuna-dashboard over the project's study storage: trials, their readable user attributes
and the search plots (history, Pareto front, parameter importances, parallel coordinates),
live while a search writes to the same storage.

``optuna-dashboard`` is an optional dependency (``pip install 'coatnet-nas[dashboard]'``),
imported only here and only when a dashboard is served.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from coatnet_nas.errors import CoatnetError
from coatnet_nas.search.storage import make_storage

__all__ = ["dashboard_app", "serve_dashboard"]


def dashboard_app(storage_url: str) -> Any:
    """The WSGI application of optuna-dashboard for the studies at ``storage_url``."""
    try:
        import optuna_dashboard
    except ImportError:
        raise CoatnetError(
            "the dashboard needs optuna-dashboard: pip install 'coatnet-nas[dashboard]'.",
            param="storage_url",
        ) from None
    storage = make_storage(storage_url, heartbeat_interval=None, create=False)
    return optuna_dashboard.wsgi(storage)


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # the library never prints
        pass


def serve_dashboard(
    storage_url: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the dashboard until interrupted; ``on_ready(url)`` once it accepts requests."""
    if not 0 <= port <= 65535:
        raise CoatnetError(f"port must be in 0-65535, got {port}.", param="port")
    app = dashboard_app(storage_url)
    try:
        server: WSGIServer = make_server(host, port, app, handler_class=_Quiet)
    except OSError as exc:
        raise CoatnetError(
            f"port {port} on {host}: cannot listen ({exc.strerror or exc}); choose another port.",
            param="port",
        ) from None
    with server:
        if on_ready is not None:
            on_ready(f"http://{host}:{server.server_port}/dashboard/")
        server.serve_forever()
