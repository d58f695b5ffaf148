"""Updates: check in, fetch the assigned package through TUF (resuming with HTTP Range), verify, swap.

Order of trust: the assignment (authenticated by the device token) says *which* version; TUF metadata
(pinned root, signatures, versions, expiry) says *what bytes* that target is; the package signature
(publisher key) says the bytes are a model this publisher built. Nothing is extracted before the TUF
hash matches, nothing is swapped in before the package verifies and passes its smoke test.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tuf.api.exceptions import DownloadError, ExpiredMetadataError, LengthOrHashMismatchError, RepositoryError
from tuf.ngclient import Updater as TufUpdater

from liteship.agent.client import DeviceClient, HttpxFetcher
from liteship.agent.clock import BUILD_FLOOR, Clock
from liteship.agent.fsutil import crash_point, fsync_dir
from liteship.agent.sinks import event
from liteship.agent.store import Store
from liteship.errors import LiteshipError, ServerError, UpdateRefused
from liteship.package import compare_versions

CLOCK_SKEW_S = 86_400.0  # beyond this from the server's Date, the system clock is not used for expiry
ROLLBACK_TO_CONTROL = "rollback-to-control"  # the assignment's reason_code when a rollout was halted/aborted
MAX_MIRRORS = 8  # from a plan
MAX_BACKOFF = 8.0  # failed check-ins stretch the poll interval up to this factor
LOCAL_TIME_ENV = "LITESHIP_AGENT_LOCAL_TIME"  # HH:MM: the local time the update windows see (tests)


class Updater:
    """Polls the server and applies its assignment to the :class:`~liteship.agent.store.Store`.

    Args:
        store: The model slots.
        client: The fleet client (its transport may be a mock).
        clock: Wall-clock sanity (see :mod:`liteship.agent.clock`).
        model_id: The model this device runs before it has one installed.
        interval: Seconds between polls. Defaults to 60.
        jitter: Relative jitter of the interval (spreads a fleet's polls). Defaults to 0.2.
            After check-ins that failed (server gone, 5xx, refused), the interval doubles with each
            failure up to ``MAX_BACKOFF`` × ``interval`` (a recovering server is not hit by the whole
            fleet at once), and a server's ``Retry-After`` is honoured; the first good check-in resets it.
        num_threads: LiteRT threads for the smoke test. Defaults to 1.
        mirrors: Base URLs of target mirrors tried (in order) before the plan's and the server.
    """

    def __init__(
        self,
        store: Store,
        client: DeviceClient,
        clock: Clock,
        *,
        model_id: str | None = None,
        interval: float = 60.0,
        jitter: float = 0.2,
        num_threads: int = 1,
        mirrors: Sequence[str] = (),
        accelerator: str | None = None,
    ) -> None:
        self.store, self.client, self.clock = store, client, clock
        self.mirrors = [m for m in mirrors if _is_base_url(m)]
        self.model_id = model_id
        self.interval, self.jitter, self.num_threads = interval, jitter, num_threads
        self.accelerator = accelerator  # the smoke test runs where the model will run
        self.running_on = "cpu"  # what the loaded model runs on (the loop sets it), sent in the profile
        self.fallback: str | None = None  # why it does not run on `accelerator` (the loop sets it)
        self.tuf_dir = store.root / "tuf"
        self._profile: dict[str, Any] | None = None
        self.failed_checkins = 0  # in a row; sets the backoff of next_delay()
        self.retry_after: float | None = None  # the server's Retry-After on the last failed check-in
        # one TUF metadata refresh at a time: device jobs (their own thread) and updates share <state>/tuf
        self.tuf_lock = threading.RLock()
        self.transferred = 0  # bytes received for the current target, reported once it verifies

    @property
    def profile(self) -> dict[str, Any]:
        """The device profile sent as every check-in's ``runtime`` (read once: it does not change)."""
        if self._profile is None:
            from liteship.agent.profile import device_profile

            self._profile = device_profile()
        profile = {**self._profile, "accelerator": self.running_on}
        if self.fallback and self.accelerator:  # the profile takes strings of at most 200 characters
            profile.update(
                accelerator_requested=self.accelerator[:200], accelerator_fallback=self.fallback[:200]
            )
        return profile

    def next_delay(self) -> float:
        """Seconds to the next poll: the interval with jitter, backed off after failed check-ins."""
        factor = min(2.0 ** max(self.failed_checkins - 1, 0), MAX_BACKOFF)
        base = max(self.interval * factor, min(self.retry_after or 0.0, self.interval * MAX_BACKOFF))
        return max(0.1, base * (1.0 + random.uniform(-self.jitter, self.jitter)))

    def _model_id(self) -> str | None:
        current = self.store.current_version()
        return self.store.manifest(current).model_id if current else self.model_id

    def _variant(self, version: str | None) -> str | None:
        """The variant of the installed ``version`` (None: its package is its release's only build)."""
        if version is None:
            return None
        try:
            raw = self.store.manifest(version).variant
        except (LiteshipError, OSError):
            return None
        return str(raw["name"]) if raw else None

    def poll_once(self) -> dict[str, Any]:
        """Check in, then apply the assignment. Returns the decision (also kept in ``state.json``)."""
        assignment = self._check_in()
        if isinstance(assignment, str):
            return {"action": "offline", "version": None, "reason": assignment}
        return self.apply(assignment)

    def report(self) -> dict[str, Any]:
        """Check in without acting on the answer: tells the server the version and health now (right
        after an install or a revert, so the fleet does not wait a poll interval to learn it)."""
        assignment = self._check_in()
        if isinstance(assignment, str):
            return {"action": "offline", "version": self.store.current_version(), "reason": assignment}
        return {"action": "reported", "version": self.store.current_version(), "reason": ""}

    def _check_in(self) -> dict[str, Any] | str:
        """The server's assignment, or why the server could not be reached (recorded as last check-in)."""
        reports = self.store.take_reports()
        state, current = self.store.state(), self.store.current_version()
        pending = {k: v for k, v in (state["pending"] or {}).items() if k != "latencies_ms"} or None
        health = {"pending": pending, "failed_versions": sorted(state["failed"]), "events": reports}
        try:
            assignment = self.client.check_in(
                model_id=self._model_id(),
                version=current,
                health=health,
                runtime=self.profile,
                variant=self._variant(current),
            )
        except ServerError as e:
            self.failed_checkins += 1
            self.retry_after = e.retry_after
            failed = {
                "at": time.time(),
                "ok": False,
                "error": str(e),
                "reported_version": current,
                "failures_in_a_row": self.failed_checkins,
            }
            self.store.update_state(lambda s: s.__setitem__("last_checkin", failed))
            return str(e)
        self.failed_checkins, self.retry_after = 0, None
        self.store.reports_sent(len(reports))
        done = {"at": time.time(), "ok": True, "assignment": assignment, "reported_version": current}
        self.store.update_state(lambda s: s.__setitem__("last_checkin", done))
        if self.client.server_time is not None:
            self.clock.confirm(self.client.server_time)
        return assignment

    def apply(self, assignment: dict[str, Any]) -> dict[str, Any]:
        """Act on an assignment: nothing, back to the fallback slot, or fetch → verify → install.

        An older version is refused as a rollback unless it is the ``previous`` slot or the one
        version a ``rollback-to-control`` assignment permits (:func:`permitted_downgrade`); that
        downgrade goes through TUF, the package signature and the smoke test like any update.
        """
        version = assignment.get("version")
        current, previous = self.store.current_version(), self.store.previous_version()
        if version and version == current:
            self._drop_downloads(keep=None)  # installed already: a copy left by a crash is garbage
        if not version or version == current:
            return self._decide("up-to-date" if version else "idle", version, assignment.get("reason", ""))
        closed = self.outside_windows(assignment)
        if closed is not None:
            return self._decide("deferred", version, closed, code="update-window")
        if version == previous and current is not None and compare_versions(version, current) < 0:
            # the server sends this device back. The version it leaves stays the fallback, unless its
            # rollout was halted or aborted (rollback-to-control): a known-bad candidate is never kept.
            reason = f"server assigned the fallback {version}: {assignment.get('reason', '')}"
            ended_badly = assignment.get("reason_code") == ROLLBACK_TO_CONTROL
            if self.store.revert(
                reason, from_version=current, mark_failed=False, by="server", keep=not ended_badly
            ).done:
                return self._decide("reverted-by-server", version, assignment.get("reason", ""))
            return self._decide("idle", version, "the model changed meanwhile; the next check-in decides")
        if version == previous and self.store.reinstate(version):  # the kept newer fallback, no download
            return self._decide("installed", version, assignment.get("reason", ""), record=False)
        downgrade_to = permitted_downgrade(assignment)
        try:
            self.store.check_offer(version, downgrade_to=downgrade_to)
            package = self.fetch(assignment)
            self.store.install(
                package,
                expected_version=version,
                model_id=assignment.get("model_id"),
                variant=assignment.get("variant") if isinstance(assignment.get("variant"), str) else None,
                profile=self.profile,
                num_threads=self.num_threads,
                accelerator=self.accelerator,
                downgrade_to=downgrade_to,
                on_step=lambda step: _step(step, version),
            )
            package.unlink(missing_ok=True)
        except UpdateRefused as e:
            return self._decide("refused", version, str(e), code=e.reason)
        except ServerError as e:
            return self._decide("download-failed", version, str(e))
        if current is not None and compare_versions(version, current) < 0:
            return self._downgraded(version, current, assignment)
        return self._decide("installed", version, assignment.get("reason", ""), record=False)

    def outside_windows(self, assignment: dict[str, Any]) -> str | None:
        """Why an update must wait for its maintenance window (None: it may run now).

        ``assignment["update_windows"]`` lists device-local ``HH:MM-HH:MM`` windows (an end before its
        start wraps midnight). A ``rollback-to-control`` (an operator's abort or a halted rollout) is an
        emergency revert and is never deferred. Malformed windows are ignored (they cannot lock a device
        out of updates). The local time comes from :attr:`local_time` (a hook for tests).
        """
        windows = assignment.get("update_windows")
        if (
            not isinstance(windows, list)
            or not windows
            or assignment.get("reason_code") == ROLLBACK_TO_CONTROL
        ):
            return None
        spans = [s for s in (_parse_window(w) for w in windows[:8]) if s is not None]
        if not spans:
            return None
        now = self.local_time()
        minute = now.hour * 60 + now.minute
        if any(_inside(minute, start, end) for start, end in spans):
            return None
        return (
            f"outside the update windows {', '.join(str(w) for w in windows[:8])} (local time "
            f"{now.strftime('%H:%M')}); the update waits"
        )

    def local_time(self) -> dt.datetime:
        """The device's local time: ``$LITESHIP_AGENT_LOCAL_TIME`` (``HH:MM``, a test hook) or the clock."""
        fixed = os.environ.get(LOCAL_TIME_ENV)
        if fixed:
            span = _parse_window(f"{fixed}-{fixed}")
            if span is not None:
                return dt.datetime.now().replace(hour=span[0] // 60, minute=span[0] % 60)
        return dt.datetime.now()

    def _downgraded(self, version: str, old: str, assignment: dict[str, Any]) -> dict[str, Any]:
        """Record a downgrade the server permitted: in the decision and, kept, in ``last_downgrade``."""
        reason = f"downgraded to {version} on the server's {ROLLBACK_TO_CONTROL}, from {old}"
        if assignment.get("reason"):
            reason += f" ({assignment['reason']})"
        record = {"at": time.time(), "from": old, "to": version, "rollout_id": assignment.get("rollout_id")}
        self.store.record_downgrade(reason, **record)
        return {"action": "downgraded", "version": version, "reason": reason, "code": ROLLBACK_TO_CONTROL}

    def _decide(
        self, action: str, version: str | None, reason: str, record: bool = True, **extra: Any
    ) -> dict[str, Any]:
        if record:
            self.store.record_decision(action, version, reason, **extra)
        return {"action": action, "version": version, "reason": reason, **extra}

    # ---- TUF ---------------------------------------------------------------------------------------

    def reference_time(self) -> dt.datetime | None:
        """The time TUF checks expiry against: the system clock when sane, else the server's Date.

        Raises:
            UpdateRefused: Neither can be trusted (``clock-unknown``): the update waits, nothing breaks.
        """
        reading, server = self.clock.read(), self.client.server_time
        if reading.trusted and (server is None or abs(reading.now - server) < CLOCK_SKEW_S):
            return None
        floor = max(BUILD_FLOOR, (reading.last_good or 0.0) - self.clock.slack)
        if server is not None and server >= floor:
            return dt.datetime.fromtimestamp(server, dt.timezone.utc)
        raise UpdateRefused(
            "the device clock is impossible and the server gave no usable time; update deferred.",
            reason="clock-unknown",
        )

    def tuf(self) -> TufUpdater:
        if not (self.tuf_dir / "root.json").is_file():
            raise UpdateRefused(
                f"no trusted TUF root in {self.tuf_dir}; enroll the device first.", reason="no-root"
            )
        base = self.client.server
        updater = TufUpdater(
            str(self.tuf_dir),
            f"{base}/tuf/metadata/",
            target_base_url=f"{base}/tuf/targets/",
            fetcher=HttpxFetcher(self.client),
            bootstrap=None,
        )
        ref = self.reference_time()
        if ref is not None:  # python-tuf reads the clock once, here; replace it with the sane time
            updater._trusted_set.reference_time = ref
        return updater

    def fetch(self, assignment: dict[str, Any]) -> Path:
        """The assigned package, downloaded (resumed) and checked against its TUF target hash."""
        updater = self.tuf()
        try:
            with self.tuf_lock:
                updater.refresh()
                info = updater.get_targetinfo(assignment["target_path"])
        except ExpiredMetadataError as e:
            raise UpdateRefused(
                f"TUF metadata has expired ({e}); refusing a possibly frozen update.",
                reason="expired-metadata",
            ) from e
        except RepositoryError as e:
            raise UpdateRefused(
                f"TUF metadata does not verify ({type(e).__name__}: {e}).", reason="tuf"
            ) from e
        except DownloadError as e:
            raise ServerError(f"cannot download TUF metadata: {e}") from e
        if info is None:
            raise UpdateRefused(
                f"{assignment['target_path']} is not a signed TUF target.", reason="not-a-target"
            )
        sha = info.hashes.get("sha256", "")
        if assignment.get("sha256") and assignment["sha256"] != sha:
            raise UpdateRefused("the assignment's sha256 differs from the TUF target's.", reason="mismatch")
        folder, _, name = info.path.rpartition("/")
        url = (
            f"/tuf/targets/{folder}/{sha}.{name}"
            if updater._trusted_set.root.consistent_snapshot
            else f"/tuf/targets/{info.path}"
        )
        done, part = self.store.incoming / f"{sha}.lsp", self.store.incoming / f"{sha}.part"
        self._drop_downloads(keep=sha)
        version = assignment.get("version")
        if not done.exists():
            self.download_verified(info, part, version, self.sources(assignment, url))
            os.replace(part, done)
            fsync_dir(done.parent)
            return done
        _step("verify", version)
        try:
            with open(done, "rb") as f:
                info.verify_length_and_hashes(f)
        except LengthOrHashMismatchError as e:
            done.unlink(missing_ok=True)
            raise UpdateRefused(
                f"the downloaded artifact does not match its TUF target ({e}): tampered.", reason="hash"
            ) from e
        return done

    def sources(self, assignment: dict[str, Any], path: str) -> list[str]:
        """Where to fetch target ``path`` (``/tuf/targets/…``), in order: this device's configured
        mirrors, the plan's ``mirrors``, then the server itself. Mirrors are untrusted (TUF checks
        what they serve); a plan's list is bounded and only http(s) URLs are taken from it."""
        plan = assignment.get("mirrors")
        offered = [
            m for m in (plan if isinstance(plan, list) else []) if isinstance(m, str) and _is_base_url(m)
        ][:MAX_MIRRORS]
        bases = dict.fromkeys(m.rstrip("/") for m in [*self.mirrors, *offered])
        relative = path.removeprefix("/tuf/targets/")
        return [f"{base}/{relative}" for base in bases] + [path]

    def download_verified(self, info: Any, part: Path, version: str | None, sources: list[str]) -> None:
        """Fetch into ``part`` from the first source that delivers bytes matching the TUF target.

        A source that is down is skipped (``part`` keeps what arrived: the next source resumes with
        Range); a source whose bytes do not match is refused and the download restarts from the next.

        Raises:
            UpdateRefused: every source served bytes that do not match (``hash``).
            ServerError: no source delivered (the next poll retries).
        """
        problems: list[str] = []
        tampered = 0
        first = part.stat().st_size if part.exists() else 0  # left by an earlier, interrupted attempt
        for url in sources:
            have = part.stat().st_size if part.exists() else 0
            _step("download", version, resume_from=have, length=info.length, source=url)
            try:
                offset = self.client.download(url, part, info.length)
            except ServerError as e:
                self.transferred += max(0, (part.stat().st_size if part.exists() else 0) - have)
                problems.append(str(e))
                event("download source skipped", source=url, error=str(e)[:300])
                continue
            self.transferred += max(0, part.stat().st_size - (offset if isinstance(offset, int) else have))
            _step("verify", version)
            try:
                with open(part, "rb") as f:
                    info.verify_length_and_hashes(f)
                self._report_download(info, version, resumed_from=first)
                return
            except LengthOrHashMismatchError as e:
                part.unlink(missing_ok=True)
                tampered += 1
                problems.append(f"{url}: {e}")
                event("download source refused", source=url, error=str(e)[:300])
        if tampered == len(sources):
            raise UpdateRefused(
                f"the downloaded artifact does not match its TUF target (tampered): {'; '.join(problems)[:600]}.",
                reason="hash",
            )
        raise ServerError(f"no source delivered {info.path}: {'; '.join(problems)[:600]}")

    def _report_download(self, info: Any, version: str | None, *, resumed_from: int) -> None:
        """Queue a ``downloaded`` event (bytes moved over the network for this target, in every
        attempt since the last report) for the next check-in: the fleet's bandwidth accounting."""
        self.store.add_report(
            {
                "event": "downloaded",
                "version": version,
                "target": info.path[:300],
                "bytes": self.transferred,
                "size": info.length,
                "resumed_from": resumed_from,
                "at": time.time(),
            }
        )
        self.transferred = 0

    def _drop_downloads(self, keep: str | None) -> None:
        """Delete downloads (``*.part``, ``*.lsp``) other than the one of target ``keep`` (a sha256):
        ``incoming/`` only ever holds the download of the current assignment."""
        for p in self.store.incoming.iterdir():
            if p.suffix in (".part", ".lsp") and p.stem != keep:
                p.unlink(missing_ok=True)


def _step(step: str, version: str | None, **fields: Any) -> None:
    """Log the start of an update step (download, verify, extract, smoke-test, swap)."""
    event("update step", step=step, version=version, **fields)
    crash_point()


def _parse_window(text: Any) -> tuple[int, int] | None:
    """``"22:00-04:30"`` → ``(1320, 270)`` minutes of the day (None when malformed)."""
    if not isinstance(text, str) or len(text) != 11 or text[5] != "-":
        return None
    try:
        (h1, m1), (h2, m2) = (map(int, part.split(":")) for part in text.split("-"))
    except ValueError:
        return None
    if not (0 <= h1 < 24 and 0 <= h2 < 24 and 0 <= m1 < 60 and 0 <= m2 < 60):
        return None
    return h1 * 60 + m1, h2 * 60 + m2


def _inside(minute: int, start: int, end: int) -> bool:
    """Whether ``minute`` of the day lies in ``[start, end)``; an end before the start wraps midnight,
    equal start and end is the whole day."""
    if start == end:
        return True
    return start <= minute < end if start < end else minute >= start or minute < end


def _is_base_url(url: str) -> bool:
    return url.startswith(("http://", "https://")) and len(url) <= 500


def permitted_downgrade(assignment: dict[str, Any]) -> str | None:
    """The one older version an assignment permits: its ``allow_downgrade_to``, and only when its
    ``reason_code`` is ``rollback-to-control`` (a halted or aborted rollout sends the devices running
    its candidate back to the control). Any other older version stays refused as a rollback."""
    if assignment.get("reason_code") != ROLLBACK_TO_CONTROL:
        return None
    allowed = assignment.get("allow_downgrade_to")
    return allowed if isinstance(allowed, str) and allowed else None


__all__ = ["Updater", "CLOCK_SKEW_S", "ROLLBACK_TO_CONTROL", "permitted_downgrade"]
