"""Shared by the agent's unit and e2e tests: packages, broken models, an in-memory fleet (MockTransport)."""

from __future__ import annotations

import email.utils
import json
import re
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import numpy as np
from PIL import Image
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata, MetaFile, Root, Snapshot, TargetFile, Targets, Timestamp

from liteship.model.flatbuffer import load_model, pack_model
from liteship.package import build_package
from liteship.runtime import LiteRTRunner

INPUT = "serving_default_image:0"


def build(
    model: bytes,
    out_dir: Path,
    version: str,
    private_key: str,
    golden: np.ndarray,
    *,
    model_id: str = "digits",
    **kw,
) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    return Path(
        build_package(
            model,
            out_dir / f"{model_id}-{version}.lsp",
            model_id=model_id,
            version=version,
            private_key=private_key,
            golden_inputs=golden,
            **kw,
        ).path
    )


def scale_weights(data: bytes, factor: float, suffix: bytes = b"conv1_1/convolution") -> bytes:
    """The model with one float weight buffer multiplied (``factor=nan`` gives a NaN model)."""
    loaded = load_model(data)
    m = loaded.model
    for t in m.subgraphs[0].tensors:
        if t.name.endswith(suffix) and m.buffers[t.buffer].data is not None:
            w = np.frombuffer(bytes(bytearray(m.buffers[t.buffer].data)), np.float32) * np.float32(factor)
            m.buffers[t.buffer].data = np.frombuffer(w.astype(np.float32).tobytes(), np.uint8).copy()
            return pack_model(m)
    raise AssertionError(f"no weight tensor ending in {suffix!r}")


def _all_finite(runner: LiteRTRunner, x: np.ndarray) -> np.ndarray:
    return np.array([np.isfinite(next(iter(runner.infer({INPUT: s[None]}).values()))).all() for s in x])


def blowup_model(data: bytes, golden: np.ndarray, frames: np.ndarray) -> bytes:
    """A model finite on ``golden`` (so it passes its smoke test) but NaN/Inf on most ``frames``."""
    for k in (1e35, 3e35, 1e36, 3e36, 1e37):
        candidate = scale_weights(data, k)
        with LiteRTRunner(candidate, num_threads=1) as r:
            if _all_finite(r, golden).all() and _all_finite(r, frames).mean() < 0.2:
                return candidate
    raise AssertionError("no scale gives a model that is finite on golden inputs and NaN on frames")


def write_digit_pngs(x: np.ndarray, folder: Path) -> Path:
    """Digits (0..1 floats) as 8x8 grayscale PNGs with pixel values 0..255."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(x):
        Image.fromarray((img[..., 0] * 255).astype(np.uint8), "L").save(folder / f"{i:04d}.png")
    return folder


def slot_ok(store) -> str | None:
    """The current version when its slot is complete and verified; raises AssertionError otherwise."""
    version = store.current_version()
    if version is None:
        assert not (store.root / "current").is_symlink(), "dangling current symlink"
        return None
    problem = store.slot_problem(store.versions / version)
    assert problem is None, f"current slot {version}: {problem}"
    return version


class FakeFleet:
    """The fleet server's agent-facing API in memory, with real TUF metadata (python-tuf).

    Attributes:
        assignment: What check-in returns. offline: Refuse every request (connection error).
        cut_after: Drop target downloads after this many bytes. tamper: Flip a byte of targets.
        windows: Stored telemetry by window id. requests: Every request seen.
    """

    def __init__(self, expires: timedelta = timedelta(days=1)) -> None:
        self.signers = {r: CryptoSigner.generate_ed25519() for r in ("root", "targets", "online")}
        root = Root(expires=datetime.now(timezone.utc) + timedelta(days=365), consistent_snapshot=True)
        for role in ("root", "targets", "snapshot", "timestamp"):
            root.add_key(
                self.signers["online" if role in ("snapshot", "timestamp") else role].public_key, role
            )
        md = Metadata(root)
        md.sign(self.signers["root"])
        self.files: dict[str, bytes] = {"1.root.json": md.to_bytes()}
        self.blobs: dict[str, bytes] = {}
        self.version, self.expires = 0, expires
        self.assignment: dict | None = None
        self.offline, self.cut_after, self.tamper, self.send_date = False, None, False, True
        self.windows: dict[str, dict] = {}
        self.requests: list[httpx.Request] = []
        self.publish()

    @property
    def root(self) -> bytes:
        return self.files["1.root.json"]

    def add(self, path: str, data: bytes) -> dict:
        self.blobs[path] = data
        self.publish()
        sha = TargetFile.from_data(path, data, ["sha256"]).hashes["sha256"]
        model_id, version, _ = path.split("/")
        return {
            "model_id": model_id,
            "version": version,
            "target_path": path,
            "sha256": sha,
            "size": len(data),
            "reason": "stable channel",
        }

    def publish(self, expires: timedelta | None = None) -> None:
        self.version += 1
        v, exp = self.version, datetime.now(timezone.utc).replace(microsecond=0) + (expires or self.expires)
        targets = {p: TargetFile.from_data(p, d, ["sha256"]) for p, d in self.blobs.items()}
        for name, signed, signer in (
            (f"{v}.targets.json", Targets(version=v, expires=exp, targets=targets), "targets"),
            (
                f"{v}.snapshot.json",
                Snapshot(version=v, expires=exp, meta={"targets.json": MetaFile(v)}),
                "online",
            ),
            ("timestamp.json", Timestamp(version=v, expires=exp, snapshot_meta=MetaFile(v)), "online"),
        ):
            md = Metadata(signed)
            md.sign(self.signers[signer])
            self.files[name] = md.to_bytes()

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.offline:
            raise httpx.ConnectError("server down", request=request)
        headers = {"date": email.utils.formatdate(time.time(), usegmt=True)} if self.send_date else {}
        path = request.url.path
        if path.startswith("/tuf/metadata/"):
            data = self.files.get(path.rsplit("/", 1)[1])
            return httpx.Response(200 if data else 404, content=data or b"", headers=headers)
        if path.startswith("/tuf/targets/"):
            return self._target(request, path.removeprefix("/tuf/targets/"), headers)
        if path.endswith("/checkin"):
            body = self.assignment or {"version": None, "reason": "no model chosen"}
            return httpx.Response(200, json={"device_id": "d1", **body}, headers=headers)
        if path.endswith("/telemetry"):
            w = json.loads(request.content)
            duplicate = w["window_id"] in self.windows
            self.windows.setdefault(w["window_id"], w)
            return httpx.Response(
                200 if duplicate else 201, json={"window_id": w["window_id"], "duplicate": duplicate}
            )
        return httpx.Response(404, json={"detail": "no such endpoint"})

    def _target(self, request: httpx.Request, path: str, headers: dict) -> httpx.Response:
        m = re.match(r"^(.*)/([0-9a-f]{64})\.([^/]+)$", path)
        data = self.blobs.get(f"{m[1]}/{m[3]}") if m else None
        if data is None:
            return httpx.Response(404)
        if self.tamper:
            data = data[:100] + bytes([data[100] ^ 1]) + data[101:]
        start = 0
        rng = re.match(r"bytes=(\d+)-$", request.headers.get("range", ""))
        if rng:
            start = int(rng[1])
            headers["content-range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        body = data[start:]
        if self.cut_after is not None:
            return httpx.Response(206 if rng else 200, stream=_Cut(body, self.cut_after), headers=headers)
        return httpx.Response(206 if rng else 200, content=body, headers=headers)


class _Cut(httpx.SyncByteStream):
    """A body that breaks after ``n`` bytes, as a dropped connection does."""

    def __init__(self, data: bytes, n: int) -> None:
        self.data, self.n = data, n

    def __iter__(self):
        yield self.data[: self.n]
        raise httpx.ReadError("connection reset")
