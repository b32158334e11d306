"""The lifecycle every loopback HTTP test server shares: bind 127.0.0.1, serve from a daemon thread, stop.

Subclass `LoopbackServer` with the state a fake keeps, pass it the handler class that answers, and reach the fake
from a request with `MyFake.serving(self)`. Use it as a context manager, or `start()`/`stop()`.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

HOST = "127.0.0.1"


class LoopbackHTTPServer(ThreadingHTTPServer):
    """The socket server under a LoopbackServer; subclass it to change how the server itself behaves."""

    # A handler stuck on a stalled client must not keep the test process alive, nor make stop() wait for it.
    daemon_threads = True
    owner: LoopbackServer


class LoopbackServer:
    """An HTTP server on 127.0.0.1, served from a daemon thread between `start()` and `stop()`.

    The socket is bound at construction (port 0: the OS picks a free one), so `url` is known before starting.
    """

    def __init__(
        self,
        handler: type[BaseHTTPRequestHandler],
        *,
        port: int = 0,
        path: str = "",
        poll_interval: float = 0.05,
        server_class: type[LoopbackHTTPServer] = LoopbackHTTPServer,
        name: str | None = None,
    ) -> None:
        self._path = path
        self._httpd = server_class((HOST, port), handler)
        self._httpd.owner = self
        # The poll interval bounds how long stop() takes: some tests start many servers.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": poll_interval}, name=name, daemon=True
        )

    @classmethod
    def serving(cls, handler: BaseHTTPRequestHandler) -> Self:
        """The server object `handler` answers for, typed as the class that asks."""
        owner = getattr(handler.server, "owner", None)
        if not isinstance(owner, cls):
            raise TypeError(f"{type(handler).__name__} does not serve a {cls.__name__}")
        return owner

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def origin(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def url(self) -> str:
        """The base URL clients are given: the origin and the path passed at construction."""
        return self.origin + self._path

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()  # returns once serve_forever has; it would wait forever if start() never ran
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
