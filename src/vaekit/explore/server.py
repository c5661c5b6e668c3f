"""The explorer's HTTP server: the standard library's ThreadingHTTPServer on 127.0.0.1.

It serves its own routes only (a fixed table: nothing is looked up on disk from a request's path),
reads request bodies of at most MAX_BODY bytes, answers requests whose Host is not this server's
with 403 (a web page elsewhere cannot reach it by DNS rebinding), and answers a malformed request
with 400 and a JSON message while it goes on serving the others.
"""
from __future__ import annotations

import json
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, urlsplit

from ..errors import VaekitError

MAX_BODY = 64 * 1024  # a request body holds at most two codes of a few thousand numbers
STATIC = {"/": ("index.html", "text/html; charset=utf-8"),
          "/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/style.css": ("style.css", "text/css; charset=utf-8")}
# The page loads nothing from elsewhere; the browser enforces it too.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'; "
                               "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


class BadRequest(Exception):
    """A request the server refuses: status and message go back to the page as JSON."""

    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


def load_static() -> dict[str, tuple[bytes, str]]:
    """The page's files, read once from the installed package."""
    folder = resources.files("vaekit.explore") / "static"
    return {route: ((folder / name).read_bytes(), kind) for route, (name, kind) in STATIC.items()}


class ExploreServer(ThreadingHTTPServer):
    daemon_threads = True  # Ctrl-C does not wait for a browser's idle keep-alive connections

    def __init__(self, explorer, host: str, port: int):
        self.explorer = explorer
        self.static = load_static()
        super().__init__((host, port), Handler)
        self.port = self.server_address[1]
        self.hosts = {f"127.0.0.1:{self.port}", f"localhost:{self.port}", f"[::1]:{self.port}"}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


class Handler(BaseHTTPRequestHandler):
    server: ExploreServer
    timeout = 30  # seconds a connection may stay silent before its thread gives up on it
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - the standard library's name
        pass  # the terminal shows the address and errors, not every request

    # ---- dispatch ------------------------------------------------------------------------------
    def do_GET(self):
        self._answer(self._get)

    def do_POST(self):
        self._answer(self._post)

    def _answer(self, route):
        try:
            self._check_host()
            status, body, kind = route(urlsplit(self.path))
        except BadRequest as e:
            status, body, kind = e.status, _json({"error": str(e)}), "application/json"
        except VaekitError as e:
            status, body, kind = HTTPStatus.BAD_REQUEST, _json({"error": str(e)}), "application/json"
        except Exception as e:  # noqa: BLE001 - one failed request must not stop the server
            print(f"vaekit: explore: {self.command} {self.path[:200]} failed: {type(e).__name__}: {e}",
                  file=sys.stderr)
            status, body, kind = (HTTPStatus.INTERNAL_SERVER_ERROR,
                                  _json({"error": f"{type(e).__name__}: {e}"}), "application/json")
        if status >= 400:
            self.close_connection = True  # a refused POST's body may be unread: start afresh
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _check_host(self):
        if self.headers.get("Host", "") not in self.server.hosts:
            raise BadRequest(HTTPStatus.FORBIDDEN, "this server answers requests to its own address only")

    def _get(self, url):
        if url.path in self.server.static:
            body, kind = self.server.static[url.path]
            return HTTPStatus.OK, body, kind
        explorer, query = self.server.explorer, _query(url.query)
        if url.path == "/api/info":
            return _ok(explorer.info())
        if url.path == "/api/points":
            return HTTPStatus.OK, explorer.points_json, "application/json"
        if url.path == "/api/example":
            return _ok(explorer.example(_whole(query, "i")))
        if url.path == "/api/decode":
            return _ok(explorer.decode_at(_number(query, "x"), _number(query, "y")))
        raise BadRequest(HTTPStatus.NOT_FOUND, f"no such page: {url.path[:200]}")

    def _post(self, url):
        handlers = {"/api/decode": lambda e, b: e.decode(e.check_code(b.get("z"))),
                    "/api/interpolate": lambda e, b: e.interpolate(e.check_code(b.get("a")), e.check_code(b.get("b")),
                                                                   b.get("steps", 8)),
                    "/api/traverse": lambda e, b: e.traverse(e.check_code(b.get("z")), b.get("dim")),
                    "/api/vary": lambda e, b: e.vary(b.get("i"), b.get("n", 5))}
        if url.path not in handlers:
            raise BadRequest(HTTPStatus.NOT_FOUND, f"no such page: {url.path[:200]}")
        return _ok(handlers[url.path](self.server.explorer, self._body()))

    def _body(self) -> dict:
        """The request's JSON object, at most MAX_BODY bytes."""
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise BadRequest(HTTPStatus.LENGTH_REQUIRED, "a request body needs a Content-Length")
        if int(length) > MAX_BODY:
            raise BadRequest(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"a request body may hold at most {MAX_BODY} bytes")
        raw = self.rfile.read(int(length))
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise BadRequest(HTTPStatus.BAD_REQUEST, "the request body is not JSON") from None
        if not isinstance(body, dict):
            raise BadRequest(HTTPStatus.BAD_REQUEST, "the request body must be a JSON object")
        return body


def _json(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


def _ok(obj):
    return HTTPStatus.OK, _json(obj), "application/json"


def _query(query: str) -> dict[str, str]:
    try:
        values = parse_qs(query, strict_parsing=bool(query), max_num_fields=16)
    except ValueError:
        raise BadRequest(HTTPStatus.BAD_REQUEST, "malformed query string") from None
    return {k: v[-1] for k, v in values.items()}


def _whole(query: dict, name: str) -> int:
    value = query.get(name, "")
    if not value.isdigit() or len(value) > 12:
        raise BadRequest(HTTPStatus.BAD_REQUEST, f"{name} must be a whole number, got {value[:40]!r}")
    return int(value)


def _number(query: dict, name: str) -> float:
    try:
        value = float(query.get(name, ""))
    except ValueError:
        raise BadRequest(HTTPStatus.BAD_REQUEST, f"{name} must be a number") from None
    if not abs(value) < 1e12:  # also NaN
        raise BadRequest(HTTPStatus.BAD_REQUEST, f"{name} must be a finite number")
    return value


def make_server(explorer, port: int = 0, host: str = "127.0.0.1") -> ExploreServer:
    """The server for `explorer` on host:port (0: a free port); a port in use is one clear message."""
    import errno

    try:
        return ExploreServer(explorer, host, port)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise VaekitError(f"port {port} is in use on {host}; pass another --port, or leave --port out "
                              "for a free one") from None
        if e.errno in (errno.EACCES, errno.EPERM):
            raise VaekitError(f"not allowed to listen on port {port} ({e.strerror}); choose a port above 1023"
                              ) from None
        raise VaekitError(f"cannot listen on {host}:{port}: {e.strerror}") from None
