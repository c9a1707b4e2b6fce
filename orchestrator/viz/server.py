"""The visualizer's web server: the page, its JSON API and a server-sent event stream.

Run by ``invoke viz.up`` as ``python -m orchestrator.viz.server --lab NAME --port 8000``;
in the dockersamples/visualizer stand-in's container as ``python3 -m
orchestrator.viz.server --docker-socket /var/run/docker.sock --port 8080``, showing the
swarm of the engine behind that socket. Standard library only; the page and its assets
are files under ``templates/viz/`` (hand-written, nothing fetched at run time), so it
works offline.

    GET /                 the page
    GET /static/NAME      its script and style sheet
    GET /api/state        the latest snapshot (JSON, see orchestrator.viz.state)
    GET /api/events       server-sent events: one ``state`` event per new snapshot
    GET /reports/NAME     a demo report's PNG plot or JSON
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from orchestrator.viz.feed import Engines, LocalEngine, SwarmFeed, report_file
from provision.paths import TEMPLATES

STATIC = TEMPLATES / "viz"
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".png": "image/png", ".json": "application/json",
                 ".svg": "image/svg+xml"}
KEEPALIVE_SECONDS = 15


class VizServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], feed: SwarmFeed):
        super().__init__(address, VizHandler)
        self.feed = feed


class VizHandler(BaseHTTPRequestHandler):
    server: VizServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        pass  # quiet: the page polls nothing, but streams reconnect; errors still raise

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = self.path.split("?", 1)[0]
        if path == "/":
            self._file(STATIC / "index.html")
        elif path.startswith("/static/") and "/" not in path[len("/static/"):]:
            self._file(STATIC / path[len("/static/"):])
        elif path == "/api/state":
            self._json(self.server.feed.state)
        elif path == "/api/events":
            self._stream()
        elif path.startswith("/reports/"):
            found = report_file(self.server.feed.engines.lab, path[len("/reports/"):])
            self._file(found) if found else self._error(HTTPStatus.NOT_FOUND)
        else:
            self._error(HTTPStatus.NOT_FOUND)

    def _file(self, path) -> None:
        if not path.is_file() or path.suffix not in CONTENT_TYPES:
            self._error(HTTPStatus.NOT_FOUND)
            return
        self._send(HTTPStatus.OK, CONTENT_TYPES[path.suffix], path.read_bytes())

    def _json(self, data: dict) -> None:
        self._send(HTTPStatus.OK, CONTENT_TYPES[".json"], json.dumps(data).encode())

    def _error(self, status: HTTPStatus) -> None:
        self._send(status, "text/plain; charset=utf-8", f"{status.value} {status.phrase}\n".encode())

    def _send(self, status: HTTPStatus, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _stream(self) -> None:
        """Server-sent events: the current snapshot at once, then each newer one."""
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        feed, version = self.server.feed, -1
        try:
            while True:
                newer, state = feed.wait_newer(version, timeout=KEEPALIVE_SECONDS)
                if newer == version:
                    self.wfile.write(b": keep-alive\n\n")
                else:
                    version = newer
                    self.wfile.write(f"event: state\nid: {version}\ndata: {json.dumps(state)}\n\n".encode())
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            return  # the page went away (or reconnects)


def serve(engines: Engines, host: str, port: int) -> None:
    feed = SwarmFeed(engines)
    feed.refresh()
    feed.start()
    server = VizServer((host, port), feed)
    stopping = threading.Event()

    def stop(*_) -> None:
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"swarmdeck visualizer of {engines.lab}: http://{host}:{port}/", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        feed.stop()
        server.server_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--lab", help="show this lab's swarm, asking its nodes over TLS")
    source.add_argument("--docker-socket", help="show the swarm of the engine behind this socket (a manager's)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    if args.docker_socket:
        engines: Engines = LocalEngine(args.docker_socket)
    else:
        # imported for a lab only: the stand-in's image carries the visualizer without the lab's modules
        from orchestrator.viz import lab_engines
        engines = lab_engines.of_lab(args.lab)
    serve(engines, args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
