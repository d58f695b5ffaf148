"""HTTP client of the fleet server, on one ``httpx.Client`` whose transport can be replaced (tests use
``httpx.MockTransport``), and a python-tuf fetcher on the same client.

Endpoints used (fleet server, issue 5): ``POST /api/v1/devices/register``,
``POST /api/v1/devices/{id}/checkin``, ``POST /api/v1/devices/{id}/telemetry``,
``GET /tuf/metadata/{name}`` and ``GET /tuf/targets/{path}`` (HTTP Range).
"""

from __future__ import annotations

import contextlib
import email.utils
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
from tuf.api.exceptions import DownloadError, DownloadHTTPError, DownloadLengthMismatchError
from tuf.ngclient.fetcher import FetcherInterface

from liteship.errors import ServerError

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


MAX_RETRY_AFTER_S = 3600.0
IDENTITY = {"Accept-Encoding": "identity"}  # downloads are counted as sent: no compressed bodies


@dataclass(frozen=True)
class TransferLimits:
    """How slow a download (TUF metadata or a target) may be before the agent gives up on it.

    The server, a mirror or a man in the middle can send a body one byte at a time; the updater thread
    that waits on it is the one that checks in. So every download has a minimum rate, judged over
    each ``window_s`` once a window has passed, and an overall deadline of ``window_s +
    length / min_rate_bps`` seconds, at most ``max_s``.

    Args:
        min_rate_bps: Bytes per second a download must keep up. Defaults to 1024.
        window_s: Seconds over which the rate is judged. Defaults to 10.
        max_s: Longest any one download may take. Defaults to 1 h.
    """

    min_rate_bps: float = 1024.0
    window_s: float = 10.0
    max_s: float = 3600.0

    def deadline_s(self, length: int) -> float:
        """The overall deadline of a download of ``length`` bytes."""
        return min(self.max_s, self.window_s + length / self.min_rate_bps)


class _Watchdog:
    """Raises :class:`ServerError` when a download misses its deadline or falls under its minimum rate."""

    def __init__(self, limits: TransferLimits, length: int, what: str) -> None:
        self.limits, self.what = limits, what
        self.start = self.mark_t = time.monotonic()
        self.deadline = limits.deadline_s(length)
        self.received = self.mark_bytes = 0

    def tick(self, received: int) -> None:
        now, self.received = time.monotonic(), self.received + received
        if now - self.start > self.deadline:
            raise ServerError(
                f"{self.what}: {self.received} bytes in {now - self.start:.0f} s, past the download's "
                f"deadline of {self.deadline:.0f} s; abandoned (the next poll retries)."
            )
        span = now - self.mark_t
        if span >= self.limits.window_s:
            rate = (self.received - self.mark_bytes) / span
            if rate < self.limits.min_rate_bps:
                raise ServerError(
                    f"{self.what}: {rate:.0f} B/s over the last {span:.0f} s, under the minimum of "
                    f"{self.limits.min_rate_bps:.0f} B/s; abandoned (the next poll retries)."
                )
            self.mark_t, self.mark_bytes = now, self.received


def _pump(
    r: httpx.Response, write: Callable[[bytes], Any], *, have: int, limit: int, watchdog: _Watchdog
) -> int:
    """Stream ``r``'s body into ``write`` while it arrives, refusing it as soon as it would pass
    ``limit`` bytes (``have`` already held) and checking the watchdog on every chunk. Nothing beyond
    ``limit`` is read: an oversized body never reaches memory. Returns the bytes written.

    Raises:
        DownloadLengthMismatchError: The body is longer than ``limit``.
        ServerError: Too slow (see :class:`TransferLimits`).
    """
    declared = r.headers.get("content-length", "")
    if declared.isdigit() and have + int(declared) > limit:
        raise DownloadLengthMismatchError(
            f"{watchdog.what} announces {declared} bytes, over the {limit} allowed; not read."
        )
    got = 0
    for chunk in r.iter_bytes():
        if have + got + len(chunk) > limit:
            raise DownloadLengthMismatchError(
                f"{watchdog.what} is longer than the {limit} bytes allowed; refused while streaming."
            )
        write(chunk)
        got += len(chunk)
        watchdog.tick(len(chunk))
    return got


def _retry_after(value: str | None) -> float | None:
    """A Retry-After in seconds (digits only; an HTTP date is ignored), bounded to 0..1 h: the server
    is not trusted to park a device forever."""
    if value is None or not value.strip().isdigit():
        return None
    return min(float(value.strip()), MAX_RETRY_AFTER_S)


class DeviceClient:
    """Talks to one fleet server as one device.

    Args:
        server: Base URL, e.g. ``http://127.0.0.1:8000``.
        device_id: This device's id.
        token: The device token from registration.
        transport: An ``httpx`` transport (e.g. ``httpx.MockTransport(handler)``). Defaults to the network.
        timeout: Request timeout. Defaults to 10 s (5 s to connect).
        limits: Minimum rate and deadline of every download. Defaults to :class:`TransferLimits`.
    """

    def __init__(
        self,
        server: str,
        device_id: str | None = None,
        token: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        limits: TransferLimits | None = None,
    ) -> None:
        self.server = server.rstrip("/")
        self.limits = limits or TransferLimits()
        self.device_id = device_id
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.server, headers=headers, transport=transport, timeout=timeout)
        # mirrors are untrusted: they never see the device token (TUF checks what they serve)
        self.mirror_http = httpx.Client(transport=transport, timeout=timeout, follow_redirects=True)
        self.server_time: float | None = None  # from the Date header of the last authenticated answer

    def close(self) -> None:
        self.http.close()
        self.mirror_http.close()

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            r = self.http.request(method, path, **kw)
        except httpx.HTTPError as e:
            raise ServerError(
                f"the fleet server at {self.server} is unreachable ({type(e).__name__}: {e})."
            ) from e
        if r.status_code >= 400:
            try:
                detail = r.json().get("detail", r.text)
            except ValueError:
                detail = r.text
            raise ServerError(
                f"{method} {path} failed with HTTP {r.status_code}: {str(detail)[:300]}",
                status=r.status_code,
                retry_after=_retry_after(r.headers.get("retry-after")),
            )
        date = r.headers.get("date")
        if date:
            with contextlib.suppress(TypeError, ValueError):
                self.server_time = email.utils.parsedate_to_datetime(date).timestamp()
        return r

    def register(
        self,
        *,
        device_id: str,
        enrollment_token: str,
        model_id: str | None = None,
        tags: list[str] | None = None,
    ) -> str:
        """Register this device; returns its token (shown once by the server). ``tags`` (cohorts) are
        sent only when given, so an older server is not sent a field it does not know."""
        body: dict[str, Any] = {
            "device_id": device_id,
            "enrollment_token": enrollment_token,
            "model_id": model_id,
        }
        if tags:
            body["tags"] = tags
        return self.request("POST", "/api/v1/devices/register", json=body).json()["token"]

    def check_in(
        self,
        *,
        model_id: str | None,
        version: str | None,
        health: dict[str, Any] | None = None,
        runtime: dict[str, Any] | None = None,
        variant: str | None = None,
    ) -> dict[str, Any]:
        """Report what runs here; returns the assignment (``version``, ``target_path``, ``sha256``…).

        ``variant`` (the running package's variant, issue 24) is sent only when there is one."""
        body: dict[str, Any] = {
            "model_id": model_id,
            "model_version": version,
            "health": health,
            "runtime": runtime,
        }
        if variant is not None:
            body["model_variant"] = variant
        return self.request("POST", f"/api/v1/devices/{self.device_id}/checkin", json=body).json()

    def post_window(self, window: dict[str, Any]) -> bool:
        """Upload one telemetry window. Returns True when the server already had it (a retry)."""
        r = self.request("POST", f"/api/v1/devices/{self.device_id}/telemetry", json=window)
        return bool(r.json().get("duplicate", False))

    def fetch_metadata(self, name: str) -> bytes:
        return self.request("GET", f"/tuf/metadata/{name}").content

    def download(self, url_path: str, part: Path, length: int) -> int:
        """Download a target into ``part``, resuming from its size with ``Range: bytes=N-``.

        ``url_path`` is a path on the server (which may redirect, e.g. to a presigned object-storage
        URL: the token is not sent there) or an absolute mirror URL (fetched without the token).

        Returns:
            The offset the download resumed from (0 for a fresh start).

        Raises:
            ServerError: Unreachable, interrupted (``part`` keeps what arrived), or an HTTP error.
        """
        offset = part.stat().st_size if part.exists() else 0
        if offset > length:  # cannot be ours: start again
            part.unlink()
            offset = 0
        if offset == length:
            return offset
        headers = {**IDENTITY, "Range": f"bytes={offset}-"} if offset else dict(IDENTITY)
        mirror = url_path.startswith(("http://", "https://"))
        http = self.mirror_http if mirror else self.http
        try:
            with http.stream("GET", url_path, headers=headers, follow_redirects=True) as r:
                if r.status_code == 416 or r.status_code >= 400:
                    if r.status_code == 416:
                        part.unlink(missing_ok=True)
                    raise ServerError(
                        f"GET {url_path} failed with HTTP {r.status_code}.", status=r.status_code
                    )
                resumed = r.status_code == 206 and r.headers.get("content-range", "").startswith(
                    f"bytes {offset}-"
                )
                if not resumed:
                    offset = 0
                watchdog = _Watchdog(self.limits, length - offset, f"download of {url_path}")
                with open(part, "ab" if resumed else "wb") as f:

                    def write(chunk: bytes) -> None:
                        f.write(chunk)
                        f.flush()  # each chunk as received: a drop or a kill keeps all that arrived

                    try:
                        _pump(r, write, have=f.tell(), limit=length, watchdog=watchdog)
                    except DownloadLengthMismatchError as e:
                        f.truncate(0)  # not the target: nothing of it may seed a resume
                        raise ServerError(f"{url_path} is longer than the {length} bytes TUF lists.") from e
                    os.fsync(f.fileno())
        except httpx.HTTPError as e:
            raise ServerError(f"download of {url_path} was interrupted ({type(e).__name__}: {e}).") from e
        return offset


class HttpxFetcher(FetcherInterface):
    """python-tuf fetcher on the agent's ``httpx`` client (so TUF metadata uses the same transport).

    Bodies are streamed and length-checked as they arrive, under the client's :class:`TransferLimits`:
    a 300 MB ``timestamp.json`` is refused after its first 16 KiB, never read into memory.
    """

    def __init__(self, client: DeviceClient) -> None:
        self.client = client

    @contextlib.contextmanager
    def download_file(self, url: str, max_length: int) -> Iterator[IO[bytes]]:
        with tempfile.TemporaryFile() as f:
            watchdog = _Watchdog(self.client.limits, max_length, f"GET {url}")
            try:
                with self.client.http.stream("GET", url, headers=IDENTITY) as r:
                    if r.status_code != 200:
                        raise DownloadHTTPError(f"GET {url} returned {r.status_code}", r.status_code)
                    _pump(r, f.write, have=0, limit=max_length, watchdog=watchdog)
            except httpx.HTTPError as e:
                raise DownloadError(f"cannot fetch {url}: {e}") from e
            except ServerError as e:  # too slow: a download error to python-tuf's callers
                raise DownloadError(str(e)) from e
            f.seek(0)
            yield f

    def _fetch(self, url: str) -> Iterator[bytes]:  # python-tuf downloads through download_file
        with self.download_file(url, MAX_FETCH_BYTES) as f:
            return iter([f.read()])


MAX_FETCH_BYTES = 16 << 20  # a bare fetch() (python-tuf uses download_file with its own bounds)


__all__ = ["DeviceClient", "HttpxFetcher", "ServerError", "TransferLimits"]
