"""HTTP(S) download into a `.part` file: resumable, hashed while it streams, with a progress bar.

Only urllib: `fetch` must work in a bare install. A `.part` file left by an interrupted run is
continued with a `Range` request; a server that ignores `Range` (status 200) restarts it.
Timeouts are short so that an offline machine fails within seconds, not minutes.
"""
from __future__ import annotations

import hashlib
import http.client
import socket
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TextIO

from .errors import WeightsError, one_line

CHUNK = 1 << 20
USER_AGENT = "lama-backend-fetch"


class DownloadInterrupted(WeightsError):
    """The transfer started and broke off; the `.part` file stays for the next run to continue."""


@dataclass
class Downloaded:
    path: Path
    size: int
    md5: str
    sha256: str
    resumed_from: int


class ProgressBar:
    """`[#####.....]  42%  172.0/410.0 MB  12.3 MB/s` on one line of a terminal; plain lines elsewhere."""

    def __init__(self, label: str, stream: TextIO | None = None, width: int = 30) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.started = time.monotonic()
        self.last_percent = -1
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())

    def __call__(self, done: int, total: int | None, fresh: int) -> None:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = f"{fresh / elapsed / 1e6:.1f} MB/s"
        if total:
            percent = min(100, done * 100 // total)
            if not self.interactive and percent < 100 and percent - self.last_percent < 10:
                return
            if percent == self.last_percent and percent == 100:
                return
            self.last_percent = percent
            filled = self.width * percent // 100
            text = (f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {percent:3d}% "
                    f"{done / 1e6:.1f}/{total / 1e6:.1f} MB {rate}")
        else:
            text = f"{self.label} {done / 1e6:.1f} MB {rate}"
        end = "\r" if self.interactive and (not total or done < total) else "\n"
        self.stream.write(text + end)
        self.stream.flush()


def hash_existing(path: Path, md5: "hashlib._Hash", sha256: "hashlib._Hash") -> int:
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            md5.update(chunk)
            sha256.update(chunk)
            size += len(chunk)
    return size


def download(url: str, part: Path, *, timeout: float = 10.0,
             progress: Callable[[int, int | None, int], None] | None = None) -> Downloaded:
    """Download `url` into `part` (continuing it if present). Network failures raise `WeightsError`."""
    part.parent.mkdir(parents=True, exist_ok=True)
    md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    offset = hash_existing(part, md5, sha256) if part.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - registry or user URL
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # the .part file is already complete
            return Downloaded(part, offset, md5.hexdigest(), sha256.hexdigest(), offset)
        raise WeightsError(f"download failed: HTTP {exc.code} {exc.reason} from {url}") from None
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        raise WeightsError(f"cannot reach {url} ({one_line(getattr(exc, 'reason', exc))})") from None
    with response:
        status = getattr(response, "status", 200)
        if offset and status != 206:  # the server ignored Range: start again
            offset = 0
            md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else None
        done, fresh = offset, 0
        try:
            with part.open("ab" if offset else "wb") as handle:
                while chunk := response.read(CHUNK):
                    handle.write(chunk)
                    md5.update(chunk)
                    sha256.update(chunk)
                    done += len(chunk)
                    fresh += len(chunk)
                    if progress is not None:
                        progress(done, total, fresh)
        except (OSError, socket.timeout, http.client.HTTPException) as exc:
            raise DownloadInterrupted(f"download of {url} interrupted after {done / 1e6:.1f} MB ({one_line(exc)}); "
                               "run the same command again to continue") from None
    if total is not None and done != total:
        raise DownloadInterrupted(f"download of {url} ended early ({done} of {total} bytes); "
                           "run the same command again to continue")
    if progress is not None and total is None:
        progress(done, done, fresh)
    return Downloaded(part, done, md5.hexdigest(), sha256.hexdigest(), offset)
