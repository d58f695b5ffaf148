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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from tuf.api.exceptions import DownloadHTTPError
from tuf.ngclient.fetcher import FetcherInterface

from liteship.errors import AgentError

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


class ServerError(AgentError):
    """The server could not be reached or answered with an error. ``status`` is None when unreachable."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after  # seconds, from a 503/429 answer's Retry-After (bounded)


MAX_RETRY_AFTER_S = 3600.0


def _retry_after(value: str | None) -> float | None:
    """A Retry-After in seconds (digits only; an HTTP date is ignored), bounded to 0..1 h: the server
    is not trusted to park a device forever."""
    if value is None or not value.strip().isdigit():
        return None
    return min(float(value.strip()), MAX_RETRY_AFTER_S)


class FleetClient:
    """Talks to one fleet server as one device.

    Args:
        server: Base URL, e.g. ``http://127.0.0.1:8000``.
        device_id: This device's id.
        token: The device token from registration.
        transport: An ``httpx`` transport (e.g. ``httpx.MockTransport(handler)``). Defaults to the network.
        timeout: Request timeout. Defaults to 10 s (5 s to connect).
    """

    def __init__(
        self,
        server: str,
        device_id: str | None = None,
        token: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
    ) -> None:
        self.server = server.rstrip("/")
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

    def register(self, *, device_id: str, enrollment_token: str, model_id: str | None = None) -> str:
        """Register this device; returns its token (shown once by the server)."""
        body = {"device_id": device_id, "enrollment_token": enrollment_token, "model_id": model_id}
        return self.request("POST", "/api/v1/devices/register", json=body).json()["token"]

    def check_in(
        self,
        *,
        model_id: str | None,
        version: str | None,
        health: dict[str, Any] | None = None,
        runtime: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Report what runs here; returns the assignment (``version``, ``target_path``, ``sha256``…)."""
        body = {"model_id": model_id, "model_version": version, "health": health, "runtime": runtime}
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
        headers = {"Range": f"bytes={offset}-"} if offset else {}
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
                with open(part, "ab" if resumed else "wb") as f:
                    for chunk in r.iter_bytes():
                        if f.tell() + len(chunk) > length:
                            f.truncate(0)  # not the target: nothing of it may seed a resume
                            raise ServerError(f"{url_path} is longer than the {length} bytes TUF lists.")
                        f.write(chunk)
                        f.flush()  # each chunk as received: a drop or a kill keeps all that arrived
                    os.fsync(f.fileno())
        except httpx.HTTPError as e:
            raise ServerError(f"download of {url_path} was interrupted ({type(e).__name__}: {e}).") from e
        return offset


class HttpxFetcher(FetcherInterface):
    """python-tuf fetcher on the agent's ``httpx`` client (so TUF metadata uses the same transport)."""

    def __init__(self, client: FleetClient) -> None:
        self.client = client

    def _fetch(self, url: str) -> Iterator[bytes]:
        try:
            r = self.client.http.get(url)
        except httpx.HTTPError as e:
            raise ServerError(f"cannot fetch {url}: {e}") from e
        if r.status_code != 200:
            raise DownloadHTTPError(f"GET {url} returned {r.status_code}", r.status_code)
        return iter([r.content])


__all__ = ["FleetClient", "HttpxFetcher", "ServerError"]
