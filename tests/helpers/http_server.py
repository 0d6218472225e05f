"""A real HTTP server on 127.0.0.1 for download tests: serves bytes, honours Range, records requests."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from contextlib import contextmanager
from typing import Iterator


@dataclass
class ServedFiles:
    """URL path -> bytes; `ranges` False makes the server ignore Range like some mirrors do;
    `cut_after` N sends only the first N bytes of a response, then drops the connection."""

    files: dict[str, bytes]
    ranges: bool = True
    cut_after: int | None = None
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)
    base_url: str = ""


@contextmanager
def serve_files(files: dict[str, bytes], ranges: bool = True) -> Iterator[ServedFiles]:
    served = ServedFiles(files, ranges)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server API
            header = self.headers.get("Range")
            served.requests.append((self.path, header))
            data = served.files.get(self.path)
            if data is None:
                self.send_error(404, "not found")
                return
            start = 0
            if header and served.ranges and header.startswith("bytes=") and header.endswith("-"):
                start = int(header[len("bytes="):-1])
                if start >= len(data):
                    self.send_error(416, "range not satisfiable")
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            body = data[start:]
            if served.cut_after is not None:
                body = body[:served.cut_after]
                self.close_connection = True
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # keep test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    served.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
