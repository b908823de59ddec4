"""optuna-dashboard on the study storage, served until interrupted.

optuna-dashboard's own ``run_server`` hands a busy port to bottle, which
prints a traceback; here the socket is bound first, so a port in use is one
line (NoiseSearchError) and nothing else starts.
"""

from __future__ import annotations

import errno
import threading
import warnings
from collections.abc import Callable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from search.errors import NoiseSearchError
from search.storage import mask_password, open_storage, resolve_url


class _QuietHandler(WSGIRequestHandler):
    """No access log: the browser polls the API every few seconds."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


def make_dashboard_server(storage: str | None, host: str, port: int) -> WSGIServer:
    """Bind host:port and return a server running optuna-dashboard on the storage."""
    from optuna_dashboard import wsgi

    app = wsgi(open_storage(storage, must_exist=True))
    try:
        return make_server(host, port, app, handler_class=_QuietHandler)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise NoiseSearchError(
                f"port {port} on {host} is already in use; choose another with --port"
            ) from None
        raise NoiseSearchError(
            f"cannot serve the dashboard on {host}:{port}: {exc.strerror or exc}") from None


def serve(storage: str | None, host: str, port: int,
          announce: Callable[[str], None] = print) -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM)."""
    # Optuna warns about what the dashboard computes for the page (parameter importances on
    # few trials: "Some regimes ... have less than 2 trials", experimental features): words
    # for the dashboard's developers, not for the person browsing, which would otherwise fill
    # the terminal at every refresh. This process only serves, so all of them go.
    warnings.simplefilter("ignore", UserWarning)
    server = make_dashboard_server(storage, host, port)
    shown_host = f"[{host}]" if ":" in host else host
    announce(f"optuna-dashboard on {mask_password(resolve_url(storage))}: "
             f"http://{shown_host}:{server.server_port}/dashboard/ (Ctrl-C to stop)")
    # Requests are served on a thread: the interrupt (Ctrl-C, or SIGTERM turned into one by the
    # CLI) must reach the main thread's wait below. Raised inside a request, wsgiref's handler
    # would swallow it as a failed response and the server would go on.
    thread = threading.Thread(target=server.serve_forever, name="dashboard", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.5)
    finally:
        server.shutdown()
        server.server_close()
