"""HTTP client of the fleet server's admin API (httpx), used by ``liteship fleet …``.

>>> c = AdminClient("http://127.0.0.1:8700", token="…")          # doctest: +SKIP
>>> c.publish("digits-1.1.0.lsp")["version"]                      # doctest: +SKIP
'1.1.0'
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx

from liteship.errors import FleetError

DEFAULT_SERVER = "http://127.0.0.1:8700"


class AdminClient:
    """Admin calls; every non-2xx answer becomes a :class:`FleetError` carrying the server's message."""

    def __init__(
        self,
        server: str | None = None,
        token: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        given = server or os.environ.get("LITESHIP_SERVER")
        self.server = (given or DEFAULT_SERVER).rstrip("/")
        self._where = self.server if given else f"{self.server} (the default: no `server` was given)"
        if not self.server.startswith(("http://", "https://")):
            raise FleetError(
                f"`server` must be an http:// or https:// URL, got {self.server!r}.",
                hint="For example http://fleet.example:8700.",
            )
        token = token or os.environ.get("LITESHIP_TOKEN") or os.environ.get("LITESHIP_ADMIN_TOKEN")
        if not token:
            raise FleetError(
                "no admin token given.",
                hint="Pass `token` or set LITESHIP_TOKEN (`liteship serve` prints where the token is).",
            )
        self._http = httpx.Client(
            base_url=self.server,
            headers={"Authorization": f"Bearer {token}"},
            timeout=60.0,
            transport=transport,
        )

    def _call(self, method: str, path: str, *, raw: bool = False, **kwargs: Any) -> Any:
        try:
            r = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as e:
            reason = str(e).rstrip(".") or type(e).__name__
            raise FleetError(
                f"cannot reach the fleet server at {self._where}: {reason}.",
                hint="Check `server` (or LITESHIP_SERVER) and that the server runs (`liteship serve`).",
            ) from None
        if r.status_code >= 400:
            try:
                detail = r.json().get("detail", r.text)
            except ValueError:
                detail = r.text
            raise FleetError(f"{method} {path} failed ({r.status_code}): {detail}")
        if raw:
            return r.content
        return r.json() if r.headers.get("content-type", "").startswith("application/json") else r.content

    def publish(
        self, package: str | Path, *, channel: str | None = None, targets_key: str | Path | None = None
    ) -> Any:
        """Upload a signed package; with ``targets_key`` also sign the new TUF targets metadata here."""
        params = {"filename": Path(package).name[:200]}
        if channel:
            params["channel"] = channel
        with open(package, "rb") as f:
            result = self._call("POST", "/api/v1/releases", content=f, params=params)
        if result.get("tuf") == "pending-offline-signature" and targets_key is not None:
            result["targets_version"] = self.sign_targets(targets_key)
            result["tuf"] = "signed"
        return result

    def sign_targets(self, targets_key: str | Path) -> int:
        """Fetch the draft targets metadata, sign it with the offline targets key, upload it."""
        from tuf.api.metadata import Metadata

        from liteship.fleet.tuf_repo import load_signer

        draft = Metadata.from_bytes(self._call("GET", "/api/v1/tuf/targets-draft", raw=True))
        draft.sign(load_signer(Path(targets_key)))
        return self._call("PUT", "/api/v1/tuf/targets", content=draft.to_bytes())["targets_version"]

    def start_rollout(self, model_id: str, version: str, **options: Any) -> Any:
        body = {"model_id": model_id, "candidate_version": version, **{k: v for k, v in options.items() if v}}
        return self._call("POST", "/api/v1/rollouts", json=body)

    def rollouts(self, rollout_id: int | None = None, model_id: str | None = None) -> Any:
        if rollout_id is not None:
            return self._call("GET", f"/api/v1/rollouts/{rollout_id}")
        return self._call("GET", "/api/v1/rollouts", params={"model_id": model_id} if model_id else None)

    def rollout_action(self, rollout_id: int, action: str) -> Any:
        return self._call("POST", f"/api/v1/rollouts/{rollout_id}/{action}")

    def set_device(self, device_id: str, **settings: Any) -> Any:
        """Tags (``tags`` / ``add_tags`` / ``remove_tags``) and update windows of a device (issue 24)."""
        return self._call("PATCH", f"/api/v1/devices/{device_id}", json=settings)

    def pin(self, model_id: str, tag: str, version: str | None) -> Any:
        """Pin the devices tagged ``tag`` to ``version`` of ``model_id``; ``version=None`` removes the pin."""
        if version is None:
            return self._call("DELETE", f"/api/v1/models/{model_id}/pins/{tag}")
        return self._call("POST", f"/api/v1/models/{model_id}/pins", json={"tag": tag, "version": version})

    def set_tag_windows(self, tag: str, windows: list[str]) -> Any:
        return self._call("PUT", f"/api/v1/cohorts/{tag}/windows", json={"windows": windows})

    def devices(self, profile: dict[str, str] | None = None) -> Any:
        """Devices, those whose profile matches every ``KEY=VALUE`` of ``profile`` when given."""
        params = {f"profile.{k}": v for k, v in (profile or {}).items()}
        return self._call("GET", "/api/v1/devices", params=params or None)

    def telemetry(self, device_id: str, *, limit: int = 100, since: float = 0.0) -> Any:
        """A device's telemetry windows, newest first."""
        params = {"limit": limit, "since": since}
        return self._call("GET", f"/api/v1/devices/{device_id}/telemetry", params=params)

    def reverts(self, device_id: str | None = None, *, limit: int = 100) -> Any:
        """Revert events reported by devices (one device's, or every device's), newest first."""
        if device_id is not None:
            return self._call("GET", f"/api/v1/devices/{device_id}/reverts", params={"limit": limit})
        return self._call("GET", "/api/v1/reverts", params={"limit": limit})

    def models(self) -> Any:
        return self._call("GET", "/api/v1/models")

    def drift(self, model_id: str, *, version: str | None = None, period_s: float = 3600.0) -> Any:
        params: dict[str, Any] = {"model_id": model_id, "period_s": period_s}
        if version:
            params["version"] = version
        return self._call("GET", "/api/v1/drift", params=params)
