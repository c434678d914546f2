"""The live view: the report page served over HTTP, rebuilt from the store while a search runs.

Read-only by construction: every request reads the store through `read_run` (SQLite `mode=ro`), so
the server can never disturb the search writing it. The page is rebuilt only when a trial changed
(plots take a second or two), and the browser reloads it every `refresh_seconds`.
"""

from __future__ import annotations

import html
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ..errors import StoreError
from .build import render
from .snapshot import RunSnapshot, read_run

LOOPBACK = ("127.0.0.1", "localhost")


def _fingerprint(snap: RunSnapshot) -> tuple[Any, ...]:
    trials = tuple((t.id, t.status, t.finished_at, t.attempts) for t in snap.trials)
    return trials, snap.final.get("trial") if snap.final else None


class LiveReport:
    """The current page (and its PNGs) of a run, rebuilt when the store shows a change."""

    def __init__(self, run_dir: str | Path, refresh_seconds: float = 5.0):
        self.run_dir = Path(run_dir)
        self.refresh_seconds = refresh_seconds
        self._lock = threading.Lock()  # one rebuild at a time; concurrent requests wait for it
        self._fingerprint: tuple[Any, ...] | None = None
        self._page = b""
        self._pngs: dict[str, bytes] = {}
        self.builds = 0

    def current(self) -> tuple[bytes, dict[str, bytes]]:
        with self._lock:
            snap = read_run(self.run_dir)
            fingerprint = _fingerprint(snap)
            if fingerprint != self._fingerprint:
                page, self._pngs = render(snap, refresh_seconds=self.refresh_seconds)
                self._page, self._fingerprint = page.encode("utf-8"), fingerprint
                self.builds += 1
            return self._page, self._pngs

    def waiting_page(self, reason: str) -> bytes:
        every = max(1, round(self.refresh_seconds))
        head = f'<meta charset="utf-8"><meta http-equiv="refresh" content="{every}"><link rel="icon" href="data:,">'
        body = f"<p>Waiting for the study: {html.escape(reason)}</p>"
        return f"<!DOCTYPE html><html><head>{head}<title>nasforge: waiting</title></head><body>{body}</body></html>".encode()


def _handler(live: LiveReport, quiet: bool) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "nasforge-report"

        def _send(self, status: int, body: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
            path = self.path.split("?", 1)[0]
            try:
                page, pngs = live.current()
            except StoreError as exc:  # no store yet (search not started) or unreadable
                self._send(HTTPStatus.SERVICE_UNAVAILABLE, live.waiting_page(str(exc)), "text/html; charset=utf-8")
                return
            if path in ("/", "/index.html", "/report.html"):
                self._send(HTTPStatus.OK, page, "text/html; charset=utf-8")
            elif path.startswith("/plots/") and path.endswith(".png") and path[7:-4] in pngs:
                self._send(HTTPStatus.OK, pngs[path[7:-4]], "image/png")
            else:
                self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain; charset=utf-8")

        do_HEAD = do_GET  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
            if not quiet:
                super().log_message(format, *args)

    return Handler


class ReportServer(ThreadingHTTPServer):
    """An HTTP server whose `live` is the report it serves."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], live: LiveReport, quiet: bool):
        super().__init__(address, _handler(live, quiet))
        self.live = live


def make_server(run_dir: str | Path, host: str = "127.0.0.1", port: int = 8765, refresh_seconds: float = 5.0,
                quiet: bool = True) -> ReportServer:
    """A server for the run's live report (not yet serving: call `serve_forever`). Port 0 picks a free one."""
    return ReportServer((host, port), LiveReport(run_dir, refresh_seconds), quiet)


def serve(run_dir: str | Path, host: str = "127.0.0.1", port: int = 8765, refresh_seconds: float = 5.0) -> None:
    """Serve until Ctrl-C."""
    server = make_server(run_dir, host, port, refresh_seconds, quiet=True)
    if host not in LOOPBACK:
        print(f"warning: serving on {host}, reachable from other machines; the page shows the whole study", file=sys.stderr)
    print(f"live report of {run_dir} at http://{host}:{server.server_address[1]}/ (refresh {refresh_seconds:g} s; Ctrl-C stops)",
          file=sys.stderr)
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
