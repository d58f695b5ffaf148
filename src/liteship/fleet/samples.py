"""Field samples on the server (issue 25): capture policies, the samples devices upload, labels, export.

**Policies.** ``PUT /api/v1/models/<model>/capture`` turns capture on for a model (optionally a cohort:
a list of device ids). The policy is a JSON document stored in the artifact store and signed into the
TUF targets as ``capture/<model>/policy.json`` (:func:`capture_targets` joins the release targets on
every re-sign), so the agent verifies it with its pinned root like a model (``liteship.agent.capture``).
Check-ins carry an offer (``Assignment.capture``: target path, sha256, size) for as long as the policy
is active and signed; ``DELETE`` ends it, and devices switch capture off at their next check-in. With
the targets key offline the policy waits for the offline signature and no device is offered it.

**Samples.** ``PUT /api/v1/devices/<id>/samples/<sample id>`` (device token, own id only): one sample
file as the agent writes it (``numpy.savez``: ``x``, ``scores``, ``meta``, optional ``image``), at most
:data:`MAX_SAMPLE_BYTES`. Idempotent by (device, sample id): a re-send is answered ``duplicate`` and
stores nothing. Refused: a file that is not a sample (422, nothing read past the limits: zip member
sizes are checked before numpy reads them, no pickles), a sample for another model than the device's
(409, counted in ``refused_reports``), one captured under no policy of that model or for a version the
model does not have (409/422), and one past the device's quota (429 with ``Retry-After``): the policy's
``per_hour`` and ``per_day`` count the samples *received* from that device in the last hour and day, so
a device that captured offline drains its backlog at the quota's pace.

**Store.** The file lands in the artifact store (local disk or S3, content-addressed) and one row in
``field_samples`` keeps what the gallery and the export need (model, version, trigger, prediction,
confidence, times, label, discarded).
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    func,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from liteship.errors import Conflict, FleetError, NotFound, OverQuota, SampleRefused
from liteship.fleet.models import ID_PATTERN, Base, Device, Release

log = logging.getLogger("liteship.fleet")

TARGET_PREFIX = "capture"  # the agent's liteship.agent.capture.TARGET_PREFIX
TRIGGERS = ("low-confidence", "out-of-range", "class", "random")
SAMPLE_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
MAX_SAMPLE_BYTES = 8 << 20
MAX_X_VALUES = 4 << 20  # float32 values of one model input (a 1024x1024x3 image fits)
MAX_SCORES = 100_000
MAX_EXPORT = 20_000
MAX_EXPORT_BYTES = 1 << 30  # sample files read into one export
OFFERS_TTL_S = 1.0
MEMBERS = {"x.npy", "scores.npy", "meta.npy", "image.npy"}


# ---- tables (migration 0008) ----------------------------------------------------------


class CapturePolicyRow(Base):
    __tablename__ = "capture_policies"
    __table_args__ = (Index("ix_capture_policies_model_sha", "model_id", "sha256"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[str] = mapped_column(String(128), index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    target_path: Mapped[str] = mapped_column(String(300))
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    devices: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)  # a cohort; None: every device
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    tuf: Mapped[str] = mapped_column(String(32), default="signed")
    created_at: Mapped[float] = mapped_column(Float, default=time.time)
    ended_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class FieldSample(Base):
    __tablename__ = "field_samples"
    __table_args__ = (
        UniqueConstraint("device_id", "sample_id"),
        Index("ix_field_samples_model_received", "model_id", "received_at"),
        Index("ix_field_samples_device_received", "device_id", "received_at"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sample_id: Mapped[str] = mapped_column(String(64))
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    model_id: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(64))
    trigger: Mapped[str] = mapped_column(String(32))
    predicted: Mapped[int] = mapped_column(Integer)
    predicted_label: Mapped[str | None] = mapped_column(String(200), nullable=True)
    confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    out_of_range: Mapped[bool] = mapped_column(Boolean, default=False)
    captured_at: Mapped[float] = mapped_column(Float)
    received_at: Mapped[float] = mapped_column(Float, default=time.time)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    shape: Mapped[list[int]] = mapped_column(JSON)
    has_image: Mapped[bool] = mapped_column(Boolean, default=False)
    policy_sha256: Mapped[str] = mapped_column(String(64))
    label: Mapped[int | None] = mapped_column(Integer, nullable=True)
    discarded: Mapped[bool] = mapped_column(Boolean, default=False)
    labeled_at: Mapped[float | None] = mapped_column(Float, nullable=True)


# ---- HTTP schemas -----------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RuleIn(_Strict):
    trigger: Literal["low-confidence", "out-of-range", "class", "random"]
    rate: float = Field(default=1.0, ge=0.0, le=1.0, allow_inf_nan=False)
    threshold: float | None = Field(default=None, ge=0.0, le=1.0, allow_inf_nan=False)
    classes: list[int] | None = Field(default=None, max_length=1000)

    @model_validator(mode="after")
    def _complete(self) -> RuleIn:
        if self.trigger == "low-confidence" and self.threshold is None:
            raise ValueError("a low-confidence rule needs a threshold (0..1), e.g. 0.6")
        if self.trigger == "class" and not self.classes:
            raise ValueError("a class rule needs classes (class indices)")
        if self.classes and any(not 0 <= c < 1 << 20 for c in self.classes):
            raise ValueError("classes are class indices 0..2^20")
        return self


class CapturePolicyCreate(_Strict):
    """Turn capture on for a model: rules, sampling, quotas, disk cap, retention, lifetime, cohort."""

    rules: list[RuleIn] = Field(min_length=1, max_length=16)
    per_hour: int = Field(default=60, ge=0, le=3600)
    per_day: int = Field(default=500, ge=0, le=20_000)
    disk_mb: float = Field(default=50.0, gt=0, le=4096, allow_inf_nan=False)
    retention_days: float = Field(default=7.0, ge=0.001, le=30, allow_inf_nan=False)
    keep_image: bool = False
    versions: list[str] = Field(default_factory=list, max_length=16)
    devices: list[str] | None = Field(default=None, max_length=500)
    days: float = Field(default=7.0, gt=0, le=365, allow_inf_nan=False)


class CapturePolicyPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    model_id: str
    sha256: str
    target_path: str
    document: dict[str, Any]
    devices: list[str] | None
    active: bool
    tuf: str
    created_at: float
    ended_at: float | None


class SamplePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    sample_id: str
    device_id: str
    model_id: str
    version: str
    trigger: str
    predicted: int
    predicted_label: str | None
    confidence: float | None
    out_of_range: bool
    captured_at: float
    received_at: float
    size: int
    shape: list[int]
    has_image: bool
    label: int | None
    discarded: bool


class SampleLabel(_Strict):
    label: int | None = Field(default=None, ge=0, lt=1 << 20)
    discarded: bool | None = None


class _Prep(BaseModel):
    mean: list[float] = Field(default_factory=lambda: [0.0], max_length=4)
    std: list[float] = Field(default_factory=lambda: [1.0], max_length=4)


class SampleMeta(BaseModel):
    """The ``meta`` of a sample file (``liteship.agent.capture``); extra fields are ignored."""

    model_config = ConfigDict(extra="ignore")
    sample_id: str = Field(pattern=SAMPLE_ID_PATTERN)
    model_id: str = Field(pattern=ID_PATTERN)
    version: str = Field(min_length=1, max_length=64)
    trigger: Literal["low-confidence", "out-of-range", "class", "random"]
    klass: int = Field(alias="class", ge=0, lt=MAX_SCORES)
    label: str | None = Field(default=None, max_length=200)
    confidence: float | None = Field(default=None, ge=0.0, le=1.0, allow_inf_nan=False)
    out_of_range: bool = False
    captured_at: float = Field(ge=0, le=4102444800.0, allow_inf_nan=False)
    policy: str = Field(pattern=r"^[0-9a-f]{64}$")
    preprocessing: _Prep = Field(default_factory=_Prep)


# ---- policies ---------------------------------------------------------------------------------------


def policy_document(model_id: str, body: CapturePolicyCreate, now: float) -> dict[str, Any]:
    """The document the agent verifies and obeys (``liteship.agent.capture.CapturePolicy``)."""
    return {
        "model_id": model_id,
        "rules": [r.model_dump(exclude_none=True) for r in body.rules],
        "per_hour": body.per_hour,
        "per_day": body.per_day,
        "disk_bytes": int(body.disk_mb * (1 << 20)),
        "retention_s": max(60, int(body.retention_days * 86400)),
        "expires": now + body.days * 86400,
        "keep_image": body.keep_image,
        "versions": body.versions,
        "issued_at": now,
    }


def create_policy(
    session: Session, *, model_id: str, body: CapturePolicyCreate, put_file: Any
) -> CapturePolicyRow:
    """Store a new active policy for ``model_id`` (ending the previous one); the caller re-signs TUF.

    Raises:
        NotFound: The model has no release.
    """
    if session.scalar(select(Release.id).where(Release.model_id == model_id).limit(1)) is None:
        raise NotFound(
            f"model {model_id!r} has no release.", hint="Publish it first (`liteship fleet publish`)."
        )
    now = time.time()
    doc = policy_document(model_id, body, now)
    data = json.dumps(doc, sort_keys=True).encode()
    fd, name = tempfile.mkstemp(suffix=".json")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        sha, size = put_file(Path(name))
    finally:
        Path(name).unlink(missing_ok=True)
    end_policy(session, model_id=model_id, now=now)
    row = CapturePolicyRow(
        model_id=model_id,
        sha256=sha,
        size=size,
        target_path=f"{TARGET_PREFIX}/{model_id}/policy.json",
        document=doc,
        devices=body.devices,
        active=True,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row


def end_policy(session: Session, *, model_id: str, now: float | None = None) -> int:
    """End the active policy of a model (devices switch capture off at their next check-in)."""
    n = 0
    for row in session.scalars(
        select(CapturePolicyRow).where(CapturePolicyRow.model_id == model_id, CapturePolicyRow.active)
    ):
        row.active, row.ended_at = False, now or time.time()
        n += 1
    session.flush()
    return n


def active_policy(session: Session, *, model_id: str) -> CapturePolicyRow | None:
    return session.scalar(
        select(CapturePolicyRow).where(CapturePolicyRow.model_id == model_id, CapturePolicyRow.active)
    )


def capture_targets(session: Session) -> dict[str, tuple[str, int]]:
    """TUF targets of the active capture policies (``path → (sha256, size)``)."""
    rows = session.scalars(select(CapturePolicyRow).where(CapturePolicyRow.active))
    return {r.target_path: (r.sha256, r.size) for r in rows}


def policy_blob(session: Session, *, model_id: str, sha256: str | None) -> str | None:
    """The sha256 of an active policy's document (to serve its TUF target), or None."""
    row = active_policy(session, model_id=model_id)
    if row is None or (sha256 and sha256 != row.sha256):
        return None
    return row.sha256


class CaptureOffers:
    """Per API worker: the signed, active policies by model, refreshed at most every :data:`OFFERS_TTL_S`."""

    def __init__(self, ttl: float = OFFERS_TTL_S) -> None:
        self.ttl, self._at, self._lock = ttl, 0.0, threading.Lock()
        self._by_model: dict[str, tuple[dict[str, Any], set[str] | None]] = {}

    def refresh(self, session: Session, signed: Any) -> None:
        out = {}
        for row in session.scalars(select(CapturePolicyRow).where(CapturePolicyRow.active)):
            if signed(row.target_path, row.sha256):
                offer = {"target_path": row.target_path, "sha256": row.sha256, "size": row.size}
                out[row.model_id] = (offer, set(row.devices) if row.devices is not None else None)
        with self._lock:
            self._by_model, self._at = out, time.monotonic()

    def stale(self) -> bool:
        return time.monotonic() - self._at > self.ttl

    def invalidate(self) -> None:
        self._at = 0.0

    def offer(self, model_id: str | None, device_id: str) -> dict[str, Any] | None:
        found = self._by_model.get(model_id or "")
        if found is None or (found[1] is not None and device_id not in found[1]):
            return None
        return found[0]


# ---- samples ----------------------------------------------------------------------------------------


def read_sample(path: Path) -> tuple[dict[str, np.ndarray], SampleMeta]:
    """Check and read an uploaded sample file without trusting it.

    Raises:
        SampleRefused: Not a zip of the expected ``.npy`` members, members too large, pickles, arrays of
            the wrong type or shape, non-finite values, or a meta that does not validate.
    """
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise SampleRefused(f"the upload is not a sample file (a numpy .npz archive): {e}.") from e
    names = {i.filename for i in infos}
    if not {"x.npy", "scores.npy", "meta.npy"} <= names or not names <= MEMBERS or len(infos) != len(names):
        raise SampleRefused(f"a sample holds x, scores, meta and optionally image; got {sorted(names)[:10]}.")
    if sum(i.file_size for i in infos) > 4 * MAX_SAMPLE_BYTES:
        raise SampleRefused("the sample's arrays are too large once unpacked.")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta_doc = json.loads(arrays.pop("meta").astype(np.uint8).tobytes().decode())
        meta = SampleMeta.model_validate(meta_doc)
    except Exception as e:  # noqa: BLE001 - anything a hostile file raises is a refusal, never a 500
        raise SampleRefused(f"the sample cannot be read: {type(e).__name__}: {str(e)[:300]}") from e
    x, scores = arrays["x"], arrays["scores"]
    if x.dtype != np.float32 or not 1 <= x.ndim <= 4 or not 0 < x.size <= MAX_X_VALUES:
        raise SampleRefused(f"x must be a float32 model input of 1-4 axes; got {x.dtype} {list(x.shape)}.")
    if scores.ndim != 1 or not 0 < scores.size <= MAX_SCORES or not np.issubdtype(scores.dtype, np.floating):
        raise SampleRefused("scores must be the model's output vector.")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(scores))):
        raise SampleRefused("x and scores must be finite.")
    if meta.klass >= scores.size:
        raise SampleRefused(f"class {meta.klass} is not an index of the {scores.size} scores.")
    if any(s == 0 or not math.isfinite(s) for s in meta.preprocessing.std) or not all(
        math.isfinite(m) for m in meta.preprocessing.mean
    ):
        raise SampleRefused("the preprocessing's std must be finite and non-zero, its mean finite.")
    image = arrays.get("image")
    if image is not None and (image.dtype != np.uint8 or image.ndim not in (2, 3)):
        raise SampleRefused("image must be uint8 pixels (H, W[, C]).")
    return arrays, meta


def _quota_error(session: Session, *, device_id: str, model_id: str, doc: dict[str, Any], now: float) -> None:
    for span, key, what in ((3600, "per_hour", "hour"), (86400, "per_day", "day")):
        limit = int(doc.get(key, 0))
        q = select(func.count(), func.min(FieldSample.received_at)).where(
            FieldSample.device_id == device_id,
            FieldSample.model_id == model_id,
            FieldSample.received_at > now - span,
        )
        count, oldest = session.execute(q).one()
        if count >= limit:
            wait = int(max(1.0, (oldest or now) + span - now)) if count else span
            raise OverQuota(
                f"device {device_id!r} sent {count} samples of {model_id!r} in the last {what}; its "
                f"quota is {limit} per {what}. Retry after {wait} s.",
                retry_after=min(wait, 3600),
            )


def count_refused(session: Session, device: Device) -> None:
    device.refused_reports = (device.refused_reports or 0) + 1
    session.flush()


def receive_sample(
    session: Session, *, device: Device, sample_id: str, path: Path, put_file: Any, now: float | None = None
) -> tuple[FieldSample, bool]:
    """Check, store and record one uploaded sample. Returns the row and whether it was a re-send.

    Raises:
        SampleRefused: Not a sample (422); Conflict: another model, no policy of this model (409);
        OverQuota: over the device's quota (429).
    """
    now = now or time.time()
    existing = session.scalar(
        select(FieldSample).where(FieldSample.device_id == device.id, FieldSample.sample_id == sample_id)
    )
    if existing is not None:
        return existing, True
    arrays, meta = read_sample(path)
    if meta.sample_id != sample_id:
        raise SampleRefused(f"the sample's meta names {meta.sample_id!r}, the URL {sample_id!r}.")
    if meta.model_id != device.model_id:
        count_refused(session, device)
        raise Conflict(
            f"device {device.id!r} runs model {device.model_id!r}; it cannot send samples of {meta.model_id!r}.",
            hint="A device sends samples of its own model only.",
        )
    policy = session.scalar(
        select(CapturePolicyRow).where(
            CapturePolicyRow.model_id == meta.model_id, CapturePolicyRow.sha256 == meta.policy
        )
    )
    if policy is None or (policy.devices is not None and device.id not in policy.devices):
        count_refused(session, device)
        raise Conflict(
            f"no capture policy {meta.policy[:12]}… of model {meta.model_id!r} covers device {device.id!r}; "
            "the sample was not asked for."
        )
    if not policy.active and (policy.ended_at or 0) + policy.document.get("retention_s", 0) < now:
        raise Conflict("the capture policy this sample was taken under ended longer ago than its retention.")
    known = session.scalar(
        select(Release.id).where(Release.model_id == meta.model_id, Release.version == meta.version)
    )
    if known is None:
        raise SampleRefused(f"model {meta.model_id!r} has no version {meta.version!r}.")
    _quota_error(session, device_id=device.id, model_id=meta.model_id, doc=policy.document, now=now)
    sha, size = put_file(path)
    row = FieldSample(
        sample_id=sample_id,
        device_id=device.id,
        model_id=meta.model_id,
        version=meta.version,
        trigger=meta.trigger,
        predicted=meta.klass,
        predicted_label=meta.label,
        confidence=meta.confidence,
        out_of_range=meta.out_of_range,
        captured_at=min(meta.captured_at, now + 86400),
        received_at=now,
        sha256=sha,
        size=size,
        shape=[int(d) for d in arrays["x"].shape],
        has_image="image" in arrays,
        policy_sha256=meta.policy,
    )
    session.add(row)
    session.flush()
    return row, False


def list_samples(
    session: Session,
    *,
    model_id: str | None = None,
    version: str | None = None,
    trigger: str | None = None,
    since: float | None = None,
    labeled: bool | None = None,
    discarded: bool | None = False,
    limit: int = 100,
) -> list[FieldSample]:
    q = select(FieldSample)
    if model_id is not None:
        q = q.where(FieldSample.model_id == model_id)
    if version is not None:
        q = q.where(FieldSample.version == version)
    if trigger is not None:
        q = q.where(FieldSample.trigger == trigger)
    if since is not None:
        q = q.where(FieldSample.captured_at >= since)
    if labeled is not None:
        q = q.where(FieldSample.label.is_not(None) if labeled else FieldSample.label.is_(None))
    if discarded is not None:
        q = q.where(FieldSample.discarded == discarded)
    return list(session.scalars(q.order_by(FieldSample.id.desc()).limit(limit)))


def set_label(session: Session, *, sample: int, body: SampleLabel) -> FieldSample:
    row = session.get(FieldSample, sample)
    if row is None:
        raise NotFound(f"no sample {sample}.")
    fields = body.model_fields_set
    if "label" in fields:
        row.label, row.labeled_at = body.label, time.time()
    if "discarded" in fields and body.discarded is not None:
        row.discarded = body.discarded
    session.flush()
    return row


def purge(
    session: Session, store: Any, *, model_id: str | None, before: float, keep_labeled: bool = False
) -> int:
    """Delete samples received before ``before`` (one model's, or every model's when ``model_id`` is
    None; not the labeled ones with ``keep_labeled``): the rows, committed, then the files no row still
    names. Returns the rows deleted.

    Rows go first: a failure in between leaves an unreferenced file (space), never a row whose file is
    gone (a sample lost behind the gallery's back). A file the store cannot delete (S3 down) is logged
    and left, unreferenced, for the same reason.
    """
    q = select(FieldSample).where(FieldSample.received_at < before)
    if model_id is not None:
        q = q.where(FieldSample.model_id == model_id)
    if keep_labeled:
        q = q.where(FieldSample.label.is_(None))
    rows = list(session.scalars(q))
    if not rows:
        return 0
    shas = {r.sha256 for r in rows}
    for r in rows:
        session.delete(r)
    session.commit()
    still = set(session.scalars(select(FieldSample.sha256).where(FieldSample.sha256.in_(shas))))
    left = 0
    for sha in shas - still:
        try:
            store.delete(sha)
        except (FleetError, OSError):
            left += 1
    if left:
        log.warning(
            "%d field sample file(s) could not be deleted from the store; they stay unreferenced", left
        )
    return len(rows)


def sample_bytes(store: Any, row: FieldSample) -> bytes:
    return b"".join(store.open_range(row.sha256, 0, row.size - 1))


def export_npz(
    session: Session,
    store: Any,
    *,
    model_id: str,
    since: float | None,
    version: str | None,
    labeled_only: bool,
) -> tuple[bytes, dict[str, Any]]:
    """The model's samples as a dataset the pipeline reads (``x`` in the raw domain, ``y`` when every
    sample is labeled), with what was exported.

    ``x`` is the model input the device computed, with the preprocessing it recorded undone
    (``x * std + mean``): the pipeline applies its own (the same) preprocessing to ``.npz`` data.

    Raises:
        NotFound: No (labeled) sample matches.
    """
    rows = list_samples(
        session,
        model_id=model_id,
        version=version,
        since=since,
        labeled=True if labeled_only else None,
        discarded=False,
        limit=MAX_EXPORT,
    )
    rows.reverse()  # oldest first
    if not rows:
        raise NotFound(
            f"no {'labeled ' if labeled_only else ''}field samples of {model_id!r}"
            + (f" since {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(since))}" if since else "")
            + (f" for version {version}" if version else "")
            + ".",
            hint="Turn capture on (`liteship fleet capture on MODEL`) and wait for devices to upload.",
        )
    if sum(r.size for r in rows) > MAX_EXPORT_BYTES:
        raise Conflict(
            f"{len(rows)} samples of {model_id!r} hold {sum(r.size for r in rows) >> 20} MiB, over the "
            f"{MAX_EXPORT_BYTES >> 20} MiB one export may build.",
            hint="Narrow it with --since or --version.",
        )
    xs, shapes = [], set()
    for row in rows:
        arrays, meta = read_sample_bytes(sample_bytes(store, row))
        pre = meta.preprocessing
        x = arrays["x"].astype(np.float32) * np.asarray(pre.std, np.float32) + np.asarray(
            pre.mean, np.float32
        )
        xs.append(x)
        shapes.add(x.shape)
    if len(shapes) > 1:
        raise Conflict(
            f"the samples have different input shapes {sorted(shapes)}; export one version at a time.",
            hint="Add --version.",
        )
    labels = [r.label for r in rows]
    arrays_out: dict[str, np.ndarray] = {
        "x": np.stack(xs),
        "predicted": np.asarray([r.predicted for r in rows], np.int64),
        "confidence": np.asarray(
            [r.confidence if r.confidence is not None else np.nan for r in rows], np.float32
        ),
        "trigger": np.asarray([r.trigger for r in rows]),
        "version": np.asarray([r.version for r in rows]),
        "device": np.asarray([r.device_id for r in rows]),
        "captured_at": np.asarray([r.captured_at for r in rows], np.float64),
        "label": np.asarray([-1 if v is None else v for v in labels], np.int64),
    }
    all_labeled = all(v is not None for v in labels)
    if all_labeled:
        arrays_out["y"] = np.asarray(labels, np.int64)
    buf = io.BytesIO()
    np.savez(buf, **arrays_out)  # type: ignore[arg-type]
    summary = {
        "samples": len(rows),
        "labeled": sum(v is not None for v in labels),
        "y": all_labeled,
        "shape": list(arrays_out["x"].shape),
        "versions": sorted({r.version for r in rows}),
        "triggers": sorted({r.trigger for r in rows}),
    }
    return buf.getvalue(), summary


def sample_counts(session: Session, *, model_id: str) -> dict[str, Any]:
    """How many samples a model has: all, labeled, discarded, and per trigger."""
    rows = session.execute(
        select(FieldSample.trigger, FieldSample.label.is_not(None), FieldSample.discarded, func.count())
        .where(FieldSample.model_id == model_id)
        .group_by(FieldSample.trigger, FieldSample.label.is_not(None), FieldSample.discarded)
    ).all()
    out: dict[str, Any] = {"samples": 0, "labeled": 0, "discarded": 0, "by_trigger": {}}
    for trigger, labeled, discarded, n in rows:
        out["samples"] += n
        out["labeled"] += n if labeled else 0
        out["discarded"] += n if discarded else 0
        out["by_trigger"][trigger] = out["by_trigger"].get(trigger, 0) + n
    return out


def summary_header(summary: dict[str, Any]) -> str:
    return json.dumps(summary, separators=(",", ":"))[:2000]


def read_sample_bytes(data: bytes) -> tuple[dict[str, np.ndarray], SampleMeta]:
    fd, name = tempfile.mkstemp(suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return read_sample(Path(name))
    finally:
        Path(name).unlink(missing_ok=True)


__all__ = [
    "CaptureOffers",
    "CapturePolicyCreate",
    "CapturePolicyPublic",
    "CapturePolicyRow",
    "FieldSample",
    "OverQuota",
    "SampleLabel",
    "SamplePublic",
    "SampleRefused",
    "capture_targets",
    "create_policy",
    "end_policy",
    "export_npz",
    "list_samples",
    "purge",
    "receive_sample",
    "set_label",
]
