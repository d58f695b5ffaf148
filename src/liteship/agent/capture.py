"""Field capture (issue 25): keep a bounded sample of what the device sees, for recalibration.

Off by default. The server turns it on per model with a **capture policy**: a small JSON document that
is a TUF target (``capture/<model id>/policy.json``) signed into the fleet's targets metadata with the
releases, offered in the check-in's assignment (``capture``: target path, sha256, size). The agent
verifies it with its pinned root exactly as it verifies a model (:meth:`Capture.apply_offer`), so a
man in the middle or a forged database row cannot switch capture on; an assignment without ``capture``
switches it off (fail-safe).

A policy says which inferences to keep (:class:`Rule`: low top-1 confidence, input outside the
calibration range, a predicted class, uniform random; each with a sampling rate), how many per hour
and per day, how much disk at most, whether to keep the original image, how long an un-uploaded
sample may stay on the device (retention), and when the policy itself expires.

**Never blocks inference.** :meth:`Capture.offer` runs on the inference thread: a rule check, a quota
check and a ``put_nowait`` of a copy of the input on a bounded queue; a worker thread writes the
files. A full queue drops the sample (counted ``dropped_busy``).

**Never fills the disk.** A sample is written only when the bytes already held plus its own stay under
the policy's ``disk_bytes`` (``dropped_disk`` otherwise); a write that fails (ENOSPC, EIO) deletes its
temporary file and is counted (``dropped_error``).

**Survives kill -9.** Each sample is one ``.npz`` file written to a temporary name, fsynced and renamed
(``samples/s-<ns>-<id>.npz``); start-up deletes temporary files. The quota counters are written before
the sample, so a kill can lose a sample but never exceed a quota.

**Upload.** After each check-in the updater thread sends pending samples oldest first
(``PUT /api/v1/devices/<id>/samples/<sample id>``, idempotent by id: a lost answer means a re-send the
server recognises), at most :data:`UPLOAD_BATCH` per check-in. A sample is deleted once the server has
it (privacy: nothing stays on the device after upload), or when the server refuses it for good
(400/403/409/413/422); a 429 (server-side quota) or an unreachable server keeps it for later, until
its retention runs out.

Sample file (``numpy.savez``, no pickles): ``x`` the model input as the model got it (preprocessed,
float32, no batch axis), ``scores`` the first output, ``meta`` a JSON document (UTF-8 bytes as uint8:
sample id, model id, version, trigger, class, confidence, time, policy sha256, the preprocessing mean
and std), and optionally ``image`` (the original pixels, uint8).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from liteship.agent.fsutil import (
    atomic_write_bytes,
    atomic_write_json,
    crash_point,
    fsync_dir,
    read_json_object,
)
from liteship.agent.sinks import event
from liteship.errors import CapturePolicyError, LiteshipError, ServerError

TRIGGERS = ("low-confidence", "out-of-range", "class", "random")
TARGET_PREFIX = "capture"  # TUF targets capture/<model id>/policy.json (liteship.fleet.samples)
MAX_POLICY_BYTES = 64 << 10
MAX_RULES = 16
MAX_PER_HOUR = 3600
MAX_PER_DAY = 20_000
MAX_DISK_BYTES = 4 << 30
MAX_RETENTION_S = 30 * 86400
MAX_IMAGE_BYTES = 4 << 20  # an original image larger than this is not kept (the model input is)
MAX_SAMPLE_BYTES = 8 << 20  # the server refuses larger uploads (liteship.fleet.samples)
QUEUE_SIZE = 32
UPLOAD_BATCH = 200
GIVE_UP_STATUSES = frozenset({400, 403, 404, 409, 413, 422})  # never this sample: delete it


@dataclass(frozen=True)
class Rule:
    """One trigger: which inferences match, and the share of the matching ones to keep.

    Attributes:
        trigger: ``low-confidence`` (top-1 confidence below ``threshold``), ``out-of-range`` (input
            outside the package's calibration range), ``class`` (predicted class in ``classes``) or
            ``random`` (every inference).
        rate: Probability of keeping a matching inference, 0..1.
        threshold: For ``low-confidence``.
        classes: For ``class``.
    """

    trigger: str
    rate: float = 1.0
    threshold: float | None = None
    classes: tuple[int, ...] = ()

    def matches(self, *, confidence: float, klass: int, out_of_range: bool) -> bool:
        if self.trigger == "low-confidence":
            return self.threshold is not None and confidence < self.threshold
        if self.trigger == "out-of-range":
            return out_of_range
        if self.trigger == "class":
            return klass in self.classes
        return self.trigger == "random"


def _number(d: dict[str, Any], key: str, lo: float, hi: float, default: float | None = None) -> float:
    v = d.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= float(v) <= hi:
        raise CapturePolicyError(f"capture policy: {key!r} must be a number in {lo}..{hi}, got {v!r}.")
    return float(v)


@dataclass(frozen=True)
class CapturePolicy:
    """A verified capture policy (see the module doc). Build with :meth:`parse`."""

    model_id: str
    rules: tuple[Rule, ...]
    per_hour: int
    per_day: int
    disk_bytes: int
    retention_s: int
    expires: float
    keep_image: bool = False
    versions: tuple[str, ...] = ()  # empty: every version of the model
    sha256: str = ""

    @classmethod
    def parse(cls, data: bytes, *, sha256: str = "") -> CapturePolicy:
        """Parse and bound a policy document.

        Raises:
            CapturePolicyError: Not JSON, a field missing, of the wrong type or out of bounds.
        """
        if len(data) > MAX_POLICY_BYTES:
            raise CapturePolicyError(f"capture policy is {len(data)} bytes, over {MAX_POLICY_BYTES}.")
        try:
            d = json.loads(data)
        except ValueError as e:
            raise CapturePolicyError(f"capture policy is not JSON: {e}.") from e
        if not isinstance(d, dict):
            raise CapturePolicyError("capture policy must be a JSON object.")
        model_id = d.get("model_id")
        if not isinstance(model_id, str) or not 0 < len(model_id) <= 128:
            raise CapturePolicyError("capture policy: 'model_id' must be a model id.")
        raw_rules = d.get("rules")
        if not isinstance(raw_rules, list) or not 0 < len(raw_rules) <= MAX_RULES:
            raise CapturePolicyError(f"capture policy: 'rules' must be a list of 1..{MAX_RULES} rules.")
        rules = []
        for r in raw_rules:
            if not isinstance(r, dict) or r.get("trigger") not in TRIGGERS:
                raise CapturePolicyError(f"capture policy: each rule needs a 'trigger' in {list(TRIGGERS)}.")
            rate = _number(r, "rate", 0.0, 1.0, 1.0)
            threshold = _number(r, "threshold", 0.0, 1.0) if r["trigger"] == "low-confidence" else None
            classes: tuple[int, ...] = ()
            if r["trigger"] == "class":
                cs = r.get("classes")
                if (
                    not isinstance(cs, list)
                    or not 0 < len(cs) <= 1000
                    or not all(
                        isinstance(c, int) and not isinstance(c, bool) and 0 <= c < 1 << 20 for c in cs
                    )
                ):
                    raise CapturePolicyError("capture policy: a 'class' rule needs 'classes', class indices.")
                classes = tuple(cs)
            rules.append(Rule(r["trigger"], rate, threshold, classes))
        versions = d.get("versions") or []
        if not isinstance(versions, list) or not all(isinstance(v, str) and len(v) <= 64 for v in versions):
            raise CapturePolicyError("capture policy: 'versions' must be a list of versions.")
        return cls(
            model_id=model_id,
            rules=tuple(rules),
            per_hour=int(_number(d, "per_hour", 0, MAX_PER_HOUR)),
            per_day=int(_number(d, "per_day", 0, MAX_PER_DAY)),
            disk_bytes=int(_number(d, "disk_bytes", 0, MAX_DISK_BYTES)),
            retention_s=int(_number(d, "retention_s", 60, MAX_RETENTION_S)),
            expires=_number(d, "expires", 0, 4102444800.0),
            keep_image=bool(d.get("keep_image", False)),
            versions=tuple(versions),
            sha256=sha256,
        )

    def trigger_for(
        self, *, confidence: float, klass: int, out_of_range: bool, rng: random.Random
    ) -> str | None:
        """The first rule that matches and whose sampling draw keeps the inference, or None."""
        for rule in self.rules:
            if rule.matches(confidence=confidence, klass=klass, out_of_range=out_of_range) and (
                rule.rate >= 1.0 or rng.random() < rule.rate
            ):
                return rule.trigger
        return None


@dataclass
class CaptureCounts:
    """What capture did (``capture/state.json``; ``agent status`` and the check-in's health)."""

    captured: int = 0
    uploaded: int = 0
    dropped_quota: int = 0
    dropped_disk: int = 0
    dropped_busy: int = 0
    dropped_error: int = 0
    refused: int = 0
    expired: int = 0
    hour_start: float = 0.0
    hour_count: int = 0
    day_start: float = 0.0
    day_count: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CaptureCounts:
        out = cls()
        for k in out.__dataclass_fields__:
            v = d.get(k)
            if k != "extra" and isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0:
                setattr(out, k, type(getattr(out, k))(v))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "extra"}


@dataclass(frozen=True)
class _Job:
    sample_id: str
    x: np.ndarray
    scores: np.ndarray
    meta: dict[str, Any]
    image: np.ndarray | None


def _image_of(frame: Any) -> np.ndarray | None:
    """The original pixels of a frame (uint8), or None when too large or unreadable."""
    pixels = getattr(frame, "pixels", None)
    if pixels is None and getattr(frame, "path", None) is not None:
        from PIL import Image

        try:
            with Image.open(frame.path) as im:
                pixels = np.asarray(im.convert("RGB"))
        except (OSError, ValueError):
            return None
    if pixels is None:
        return None
    arr = np.asarray(pixels)
    return arr.astype(np.uint8, copy=True) if arr.nbytes <= MAX_IMAGE_BYTES else None


def encode_sample(x: np.ndarray, scores: np.ndarray, meta: dict[str, Any], image: np.ndarray | None) -> bytes:
    """The bytes of one sample file (``numpy.savez``, no pickles)."""
    import io

    buf = io.BytesIO()
    arrays: dict[str, np.ndarray] = {
        "x": np.asarray(x, dtype=np.float32),
        "scores": np.asarray(scores, dtype=np.float32).reshape(-1),
        "meta": np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8),
    }
    if image is not None:
        arrays["image"] = image
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    return buf.getvalue()


def decode_sample(data: bytes) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Arrays and meta of a sample file. Raises ValueError when it is not one."""
    import io

    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    if "x" not in arrays or "meta" not in arrays or "scores" not in arrays:
        raise ValueError(f"a sample has arrays x, scores and meta; got {sorted(arrays)}.")
    meta = json.loads(arrays.pop("meta").tobytes().decode())
    if not isinstance(meta, dict):
        raise ValueError("a sample's meta is a JSON object.")
    return arrays, meta


class Capture:
    """Field capture on one device (see the module doc).

    Args:
        root: ``<state>/capture``.
        queue_size: Samples waiting for the writer at most; more are dropped. Defaults to 32.
        seed: Seed of the sampling draws (tests). Defaults to the system's randomness.
    """

    def __init__(self, root: str | Path, *, queue_size: int = QUEUE_SIZE, seed: int | None = None) -> None:
        self.root = Path(root)
        self.samples = self.root / "samples"
        self.samples.mkdir(parents=True, exist_ok=True)
        self._policy_file = self.root / "policy.json"
        self._state_file = self.root / "state.json"
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._queue: queue.Queue[_Job | None] = queue.Queue(maxsize=queue_size)
        self._worker: threading.Thread | None = None
        self.counts = CaptureCounts.from_dict(read_json_object(self._state_file, what="capture's counts"))
        self._clean_temporaries()
        self._used = sum(f.stat().st_size for f in self.pending())
        self.policy: CapturePolicy | None = self._load_policy()

    # ---- policy -------------------------------------------------------------------------------------

    def _load_policy(self) -> CapturePolicy | None:
        stored = read_json_object(self._policy_file, what="the capture policy")
        doc = stored.get("document")
        if not isinstance(doc, str):
            return None
        try:
            return CapturePolicy.parse(doc.encode(), sha256=str(stored.get("sha256", "")))
        except CapturePolicyError as e:
            event("stored capture policy is unusable; capture is off", 30, error=str(e))
            return None

    def set_policy(self, data: bytes | None, *, sha256: str = "", model_id: str | None = None) -> None:
        """Install a *verified* policy document (None: capture off).

        Raises:
            CapturePolicyError: The document is malformed, or for another model than ``model_id``.
        """
        if data is None:
            with self._lock:
                was, self.policy = self.policy, None
            self._policy_file.unlink(missing_ok=True)
            fsync_dir(self.root)
            if was is not None:
                event("capture turned off", model_id=was.model_id)
            return
        policy = CapturePolicy.parse(data, sha256=sha256)
        if model_id is not None and policy.model_id != model_id:
            raise CapturePolicyError(
                f"the capture policy is for model {policy.model_id!r}, this device runs {model_id!r}."
            )
        atomic_write_json(self._policy_file, {"document": data.decode(), "sha256": sha256})
        with self._lock:
            self.policy = policy
        event(
            "capture turned on",
            model_id=policy.model_id,
            rules=[r.trigger for r in policy.rules],
            per_hour=policy.per_hour,
            per_day=policy.per_day,
            disk_bytes=policy.disk_bytes,
            policy=sha256[:12],
        )

    def apply_offer(self, offer: Any, *, tuf: Callable[[], Any], model_id: str | None) -> str:
        """Act on the assignment's ``capture`` field with TUF: ``on``, ``off``, ``unchanged`` or ``refused``.

        ``tuf`` makes a python-tuf ``Updater`` with the pinned root (``Updater.tuf``), called only when
        the offer is new: its target must be listed in the signed, current targets metadata with the
        offer's sha256 and length, and the downloaded bytes must match them.
        """
        if not isinstance(offer, dict):
            if self.policy is not None:
                self.set_policy(None)
                return "off"
            return "unchanged"
        sha, path, size = offer.get("sha256"), offer.get("target_path"), offer.get("size")
        if self.policy is not None and sha == self.policy.sha256:
            return "unchanged"
        try:
            if not (
                isinstance(path, str)
                and path.startswith(f"{TARGET_PREFIX}/")
                and isinstance(sha, str)
                and isinstance(size, int)
                and 0 < size <= MAX_POLICY_BYTES
            ):
                raise CapturePolicyError("the capture offer is malformed (target_path, sha256, size).")
            data = self._fetch(tuf, path, sha, size)
            self.set_policy(data, sha256=sha, model_id=model_id)
        except CapturePolicyError as e:
            event("capture policy refused", 40, error=str(e))
            return "refused"
        return "on"

    def _fetch(self, make_tuf: Callable[[], Any], path: str, sha: str, size: int) -> bytes:
        from tuf.api.exceptions import DownloadError, RepositoryError

        try:
            tuf = make_tuf()
            tuf.refresh()
            info = tuf.get_targetinfo(path)
        except LiteshipError as e:  # no pinned root, clock unknown
            raise CapturePolicyError(f"cannot verify the capture policy: {e}") from e
        except (RepositoryError, DownloadError) as e:
            raise CapturePolicyError(f"TUF metadata does not verify ({type(e).__name__}: {e}).") from e
        if info is None:
            raise CapturePolicyError(f"{path} is not a signed TUF target: an unsigned capture policy.")
        if info.hashes.get("sha256") != sha or info.length != size:
            raise CapturePolicyError(f"{path}: the offer's sha256/size differ from its signed TUF target.")
        dest = self.root / f".policy-{os.getpid()}.download"
        try:
            tuf.download_target(info, str(dest))
            return dest.read_bytes()
        except (RepositoryError, DownloadError) as e:
            raise CapturePolicyError(f"{path} does not match its signed TUF target ({e}).") from e
        finally:
            dest.unlink(missing_ok=True)

    def active(self, version: str | None, now: float | None = None) -> CapturePolicy | None:
        p = self.policy
        if p is None or (now or time.time()) > p.expires:
            return None
        if p.versions and version not in p.versions:
            return None
        return p

    # ---- the inference thread -----------------------------------------------------------------------

    def offer(
        self,
        *,
        model_id: str,
        version: str,
        x: np.ndarray,
        scores: np.ndarray,
        klass: int,
        confidence: float,
        out_of_range: bool,
        preprocessing: dict[str, Any] | None = None,
        frame: Any = None,
        label: str | None = None,
    ) -> str | None:
        """Called after each inference: keep it (returns the trigger) or not (None). Never blocks."""
        now = time.time()
        policy = self.active(version, now)
        if policy is None or policy.model_id != model_id:
            return None
        trigger = policy.trigger_for(
            confidence=confidence, klass=klass, out_of_range=out_of_range, rng=self._rng
        )
        if trigger is None:
            return None
        with self._lock:
            if not self._take_quota(policy, now):
                self.counts.dropped_quota += 1
                return None
            sample_id = uuid.uuid4().hex
            meta: dict[str, Any] = {
                "sample_id": sample_id,
                "model_id": model_id,
                "version": version,
                "trigger": trigger,
                "class": int(klass),
                "label": label,
                "confidence": float(confidence) if np.isfinite(confidence) else None,
                "out_of_range": bool(out_of_range),
                "captured_at": now,
                "policy": policy.sha256,
                "preprocessing": preprocessing or {},
            }
            image = _image_of(frame) if policy.keep_image and frame is not None else None
            job = _Job(
                sample_id,
                np.array(x[0] if x.ndim == 4 else x, dtype=np.float32),
                np.array(scores),
                meta,
                image,
            )
            try:
                self._queue.put_nowait(job)
            except queue.Full:
                self.counts.dropped_busy += 1
                self._give_back_quota()
                return None
        self._ensure_worker()
        return trigger

    def _take_quota(self, policy: CapturePolicy, now: float) -> bool:
        c = self.counts
        if now - c.hour_start >= 3600 or now < c.hour_start:
            c.hour_start, c.hour_count = now, 0
        if now - c.day_start >= 86400 or now < c.day_start:
            c.day_start, c.day_count = now, 0
        if c.hour_count >= policy.per_hour or c.day_count >= policy.per_day:
            return False
        c.hour_count += 1
        c.day_count += 1
        return True

    def _give_back_quota(self) -> None:
        self.counts.hour_count = max(0, self.counts.hour_count - 1)
        self.counts.day_count = max(0, self.counts.day_count - 1)

    # ---- the writer ---------------------------------------------------------------------------------

    def _ensure_worker(self) -> None:
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(target=self._work, name="liteship-capture", daemon=True)
            self._worker.start()

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                self.write(job)
            finally:
                self._queue.task_done()

    def write(self, job: _Job) -> Path | None:
        """Write one sample atomically within the disk cap; None when it was dropped."""
        data = encode_sample(job.x, job.scores, job.meta, job.image)
        with self._lock:
            policy = self.policy
            cap = policy.disk_bytes if policy is not None else 0
            if self._used + len(data) > cap:
                self.counts.dropped_disk += 1
                self._save_counts()
                return None
            self._used += len(data)  # reserved: a concurrent write sees it
            self.counts.captured += 1
            self._save_counts()  # counters first: a kill may lose this sample, never pass a quota
        crash_point()
        path = self.samples / f"s-{time.time_ns():020d}-{job.sample_id}.npz"
        try:
            atomic_write_bytes(path, data)
        except OSError as e:  # ENOSPC, EIO: drop the sample, keep running
            with self._lock:
                self._used -= len(data)
                self.counts.captured -= 1
                self.counts.dropped_error += 1
                self._save_counts()
            self._clean_temporaries()
            event("capture write failed; sample dropped", 30, error=f"{type(e).__name__}: {e}")
            return None
        return path

    def _save_counts(self) -> None:
        with contextlib.suppress(OSError):  # a full disk must not stop inference
            atomic_write_json(self._state_file, self.counts.to_dict())

    def drain(self, timeout: float = 10.0) -> None:
        """Wait until the queued samples are written (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self, timeout: float = 10.0) -> None:
        self.drain(timeout)
        if self._worker is not None and self._worker.is_alive():
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(None)
            self._worker.join(timeout)

    # ---- files --------------------------------------------------------------------------------------

    def pending(self) -> list[Path]:
        return sorted(self.samples.glob("s-*.npz"))

    @property
    def used_bytes(self) -> int:
        return self._used

    def _clean_temporaries(self) -> None:
        for f in self.samples.glob(".s-*.tmp-*"):
            f.unlink(missing_ok=True)

    def _delete(self, f: Path) -> None:
        try:
            size = f.stat().st_size
        except OSError:
            return
        f.unlink(missing_ok=True)
        with self._lock:
            self._used = max(0, self._used - size)

    def expire(self, now: float | None = None) -> int:
        """Delete samples older than the retention (the policy's; 7 days with no policy). Returns the count."""
        now = now or time.time()
        retention = self.policy.retention_s if self.policy is not None else 7 * 86400
        n = 0
        for f in self.pending():
            try:
                ns = int(f.name.split("-")[1])
            except (IndexError, ValueError):
                ns = 0
            if now - ns / 1e9 > retention:
                self._delete(f)
                n += 1
        if n:
            with self._lock:
                self.counts.expired += n
                self._save_counts()
            fsync_dir(self.samples)
        return n

    def upload(self, client: Any, *, limit: int = UPLOAD_BATCH) -> int:
        """Send pending samples oldest first (see the module doc). Returns the count the server has now."""

        self.expire()
        sent = 0
        for f in self.pending()[:limit]:
            sample_id = f.stem.split("-", 2)[-1]
            try:
                data = f.read_bytes()
            except OSError:
                continue
            try:
                client.request(
                    "PUT",
                    f"/api/v1/devices/{client.device_id}/samples/{sample_id}",
                    content=data,
                    headers={"Content-Type": "application/octet-stream"},
                )
            except ServerError as e:
                if e.status in GIVE_UP_STATUSES:
                    self._delete(f)
                    with self._lock:
                        self.counts.refused += 1
                    event("capture sample refused by the server; deleted", 30, sample=sample_id, error=str(e))
                    continue
                if e.status == 429:
                    event(
                        "capture upload over the server's quota; kept for later",
                        20,
                        pending=len(self.pending()),
                    )
                else:
                    event("capture upload deferred", 30, pending=len(self.pending()), error=str(e))
                break
            self._delete(f)
            sent += 1
        if sent:
            with self._lock:
                self.counts.uploaded += sent
                self._save_counts()
            fsync_dir(self.samples)
        return sent

    def status(self) -> dict[str, Any]:
        p = self.policy
        return {
            "on": p is not None and time.time() <= p.expires,
            "policy": p.sha256[:12] if p is not None else None,
            "expires": p.expires if p is not None else None,
            "pending": len(self.pending()),
            "bytes": self._used,
            **self.counts.to_dict(),
        }


def read_status(root: str | Path) -> dict[str, Any] | None:
    """Capture's state for ``agent status``, read without writing anything; None when it never ran."""
    root = Path(root)
    if not root.is_dir():
        return None
    stored = read_json_object(root / "policy.json", what="the capture policy", set_aside=False)
    policy = None
    if isinstance(stored.get("document"), str):
        with contextlib.suppress(CapturePolicyError):
            policy = CapturePolicy.parse(stored["document"].encode(), sha256=str(stored.get("sha256", "")))
    counts = CaptureCounts.from_dict(
        read_json_object(root / "state.json", what="capture's counts", set_aside=False)
    )
    files = sorted((root / "samples").glob("s-*.npz")) if (root / "samples").is_dir() else []
    return {
        "on": policy is not None and time.time() <= policy.expires,
        "policy": policy.sha256[:12] if policy is not None else None,
        "rules": [r.trigger for r in policy.rules] if policy is not None else [],
        "per_hour": policy.per_hour if policy is not None else None,
        "per_day": policy.per_day if policy is not None else None,
        "expires": policy.expires if policy is not None else None,
        "pending": len(files),
        "bytes": sum(f.stat().st_size for f in files),
        **counts.to_dict(),
    }


__all__ = [
    "read_status",
    "Capture",
    "CapturePolicy",
    "CapturePolicyError",
    "CaptureCounts",
    "Rule",
    "TRIGGERS",
    "TARGET_PREFIX",
    "encode_sample",
    "decode_sample",
]
