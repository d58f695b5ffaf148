"""On-disk model slots of the device agent: install, swap, revert and recover after a crash.

Layout under the state folder (see docs/agent.md for the crash-safety argument)::

    versions/<version>/   complete, verified, smoke-tested packages (only ever created by a rename)
    current -> versions/<version>     the model the agent runs (symlink, switched atomically)
    previous -> versions/<version>    the fallback
    incoming/             downloads (<sha256>.part kept for resume, <sha256>.lsp complete),
                          stage-<version>/ extractions being smoke-tested
    state.json            failed versions, the pending health window, last check-in and decision

Every write goes through :mod:`liteship.agent.fsutil` (temp file, fsync, rename, fsync the folder).

The invariant, enforced here and nowhere else (every slot change takes the store's lock):

* a verified model is always in ``current`` or ``previous``. The only way out of it is the device
  condemning its only model (a failed health window, a boot-count revert or a damaged slot, with no
  fallback to go to); a revert the server orders keeps the version it leaves as the fallback;
* a revert names the version it reverts from (``from_version``) and is a no-op when that version is no
  longer current (another thread switched first);
* a version in use (:meth:`Store.lease`, held by the inference loop for the model it has loaded) is
  never deleted: its folder goes when the last lease is released and no slot names it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from liteship.agent.fsutil import (
    atomic_symlink,
    atomic_write_json,
    crash_point,
    fsync_dir,
    read_json,
    read_json_object,
)
from liteship.agent.quiet import native_output_silenced
from liteship.errors import AgentError, LiteshipError, UpdateRefused
from liteship.package import Manifest, compare_versions, extract_verified, parse_semver, smoke_test
from liteship.package.signing import key_id, load_public_key, verify_signature

MAX_STARTS = 3  # start-ups of an unconfirmed candidate before it is reverted (RAUC-style boot count)
MODEL_CHANGED = ("installed", "downgraded", "reverted-by-server")  # updater decisions that change current
HISTORY = 10  # reverts and downgrades kept in state.json for `agent status`


@dataclass(frozen=True)
class Revert:
    """What :meth:`Store.revert` did.

    Attributes:
        done: False when ``version`` was no longer current (the revert was a no-op).
        version: The version the revert was asked to leave.
        to: The current version after the call (the fallback, or None when there was none).
        by: ``"device"`` (health window, boot count, damage, load failure) or ``"server"``.
    """

    done: bool
    version: str | None
    to: str | None
    by: str = "device"


@dataclass(frozen=True)
class Lease:
    """A version held in use (the loop's loaded model): its folder is not deleted until released."""

    version: str
    folder: Path


def check_variant(manifest: Manifest, assigned: str | None, profile: dict[str, Any] | None) -> None:
    """A variant package is installed only as the variant the server named, and only on a device its
    signed conditions select (or as its release's default): a server cannot hand this device another
    variant than it says, nor one built for other hardware (issue 24).

    Raises:
        UpdateRefused: ``variant`` — the package is another variant, or not for this device.
    """
    record = manifest.variant_record
    name = record.name if record is not None else None
    if assigned is not None and name != assigned:
        raise UpdateRefused(
            f"the server assigned variant {assigned!r} of {manifest.model_id} {manifest.version}, but the "
            f"package is {'variant ' + repr(name) if name else 'not a variant'} (signed manifest).",
            reason="variant",
        )
    if record is not None and profile is not None and not record.default and not record.matches(profile):
        raise UpdateRefused(
            f"variant {record.name!r} of {manifest.model_id} {manifest.version} is for {record.describe()}; "
            "this device's profile does not match it.",
            reason="variant",
        )


MAX_QUEUED_REPORTS = 100  # events waiting for a check-in (the server reads at most 100 per check-in)


# the fields of state.json every reader relies on: (name, default, accepted types)
_STATE_FIELDS: tuple[tuple[str, Callable[[], Any], type | tuple[type, ...]], ...] = (
    ("failed", dict, dict),
    ("pending", lambda: None, (dict, type(None))),
    ("reports", list, list),
    ("history", list, list),
)


class Store:
    """The agent's model slots and state file.

    Args:
        root: The state folder (created if missing).
        public_key: The publisher's ed25519 public key; slots are re-checked against it at start-up.
        max_starts: Start-ups allowed during a health window before the candidate is reverted.
        create: Create the folders when missing. False opens it read-only for inspection
            (``agent status``): nothing is created. Defaults to True.
    """

    def __init__(
        self, root: str | Path, public_key: Any = None, max_starts: int = MAX_STARTS, *, create: bool = True
    ) -> None:
        self.root = Path(root)
        self.versions = self.root / "versions"
        self.incoming = self.root / "incoming"
        self.state_file = self.root / "state.json"
        self.public_key = public_key
        self.max_starts = max_starts
        self._lock = threading.RLock()
        self._leases: Counter[str] = Counter()
        for d in (self.root, self.versions, self.incoming) if create else ():
            d.mkdir(parents=True, exist_ok=True)

    def looks_like_state(self) -> bool:
        """Whether the folder holds agent state (a state file, device settings, slots or versions)."""
        marks = ("state.json", "device.json", "versions", "current", "previous")
        return any(os.path.lexists(self.root / m) for m in marks)

    # ---- state -------------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """``state.json`` (refused versions, the health window, reports, history). A damaged file is
        kept aside and the state starts afresh (the slots, and so the running model, are untouched);
        a field of the wrong type is reset to its default."""
        data = read_json_object(self.state_file, what="the agent's state (refused versions, health window)")
        for key, make, kind in _STATE_FIELDS:
            value = data.get(key)
            data[key] = value if isinstance(value, kind) else make()
        return data

    @contextmanager
    def locked(self) -> Iterator[Store]:
        """Hold the store's lock (re-entrant) over several reads and changes, e.g. start-up recovery."""
        with self._lock:
            yield self

    def update_state(self, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """Read-modify-write ``state.json`` atomically under the store's lock."""
        with self._lock:
            data = self.state()
            change(data)
            atomic_write_json(self.state_file, data)
            return data

    def record_decision(
        self, action: str, version: str | None = None, reason: str = "", **extra: Any
    ) -> None:
        decision = {"at": time.time(), "action": action, "version": version, "reason": reason, **extra}
        self.update_state(lambda s: s.__setitem__("last_decision", decision))

    def record_downgrade(self, reason: str, **record: Any) -> None:
        """Note a downgrade the server ordered (``rollback-to-control``): the last decision, and
        ``last_downgrade``, which later decisions do not overwrite (``agent status`` shows it)."""

        def change(s: dict[str, Any]) -> None:
            s["last_downgrade"] = {**record, "reason": reason}
            entry = {
                "at": record.get("at", time.time()),
                "event": "downgraded",
                "version": record.get("from"),
                "to": record.get("to"),
                "reason": reason,
                "by": "server",
            }
            s["history"] = [*s["history"], entry][-HISTORY:]
            s["last_decision"] = {
                "at": record.get("at", time.time()),
                "action": "downgraded",
                "version": record.get("to"),
                "reason": reason,
                "code": "rollback-to-control",
            }

        self.update_state(change)

    def record_clean_shutdown(self, health: dict[str, Any] | None = None) -> None:
        """Note that this process stops cleanly (source ended, frame limit, SIGTERM/SIGINT).

        The next start-up does not count as a restart of a pending candidate. ``health`` (from
        :meth:`~liteship.agent.health.HealthWindow.progress`) is saved into the pending window in the
        same atomic write, so a health window completes across clean restarts.
        """

        def change(s: dict[str, Any]) -> None:
            s["clean_shutdown"] = {"at": time.time(), "pid": os.getpid()}
            pending = s["pending"]
            if health and pending and pending.get("version") == health.get("version"):
                pending["inferences"] = health["inferences"]
                pending["latencies_ms"] = health["latencies_ms"]
                pending["elapsed_s"] = health["elapsed_s"]

        self.update_state(change)

    def take_clean_shutdown(self) -> dict[str, Any] | None:
        """The clean-shutdown record of the last process (None after a crash); cleared at start-up."""
        found: list[dict[str, Any] | None] = []
        self.update_state(lambda s: found.append(s.pop("clean_shutdown", None)))
        return found[0]

    def mark_failed(self, version: str, reason: str) -> None:
        self.update_state(lambda s: s["failed"].__setitem__(version, {"reason": reason, "at": time.time()}))

    def is_failed(self, version: str) -> bool:
        return version in self.state()["failed"]

    # ---- slots -------------------------------------------------------------------------------------

    def _link_version(self, name: str) -> str | None:
        try:
            return Path(os.readlink(self.root / name)).name
        except OSError:
            return None

    def current_version(self) -> str | None:
        return self._link_version("current")

    def previous_version(self) -> str | None:
        return self._link_version("previous")

    def current_dir(self) -> Path | None:
        v = self.current_version()
        return self.versions / v if v and (self.versions / v).is_dir() else None

    # ---- leases: a version in use is never deleted --------------------------------------------------

    def lease_current(self) -> Lease | None:
        """Read ``current`` under the lock and hold its version in use; None when there is no model.

        Release it with :meth:`release` once the model is closed; until then neither a revert nor the
        garbage collection deletes its folder.
        """
        with self._lock:
            version = self.current_version()
            if version is None or not (self.versions / version).is_dir():
                return None
            self._leases[version] += 1
            return Lease(version, self.versions / version)

    def release(self, lease: Lease | None) -> None:
        """End a :meth:`lease_current`; the folder goes now if nothing else names it."""
        if lease is None:
            return
        with self._lock:
            self._leases[lease.version] -= 1
            if self._leases[lease.version] <= 0:
                del self._leases[lease.version]
                self.collect_garbage()

    def in_use(self) -> set[str]:
        """Versions leased now (in this process)."""
        with self._lock:
            return set(self._leases)

    def manifest(self, version: str) -> Manifest:
        return Manifest.from_bytes((self.versions / version / "manifest.json").read_bytes())

    def slot_problem(self, folder: Path) -> str | None:
        """Why an extracted package folder cannot be trusted (None when every file matches)."""
        try:
            manifest_bytes = (folder / "manifest.json").read_bytes()
            manifest = Manifest.from_bytes(manifest_bytes)
            if self.public_key is not None:
                sig = read_json(folder / "signature.json", {}) or {}
                public = load_public_key(self.public_key)
                if sig.get("key_id") != key_id(public) or not verify_signature(
                    public, manifest_bytes, str(sig.get("signature", ""))
                ):
                    return "manifest signature does not verify with the publisher key"
            for name, entry in manifest.files.items():
                if hashlib.sha256((folder / name).read_bytes()).hexdigest() != entry.sha256:
                    return f"{name} differs from its manifest hash"
        except (OSError, LiteshipError) as e:
            return f"unreadable ({e})"
        return None

    def _point(self, link: str, version: str | None) -> None:
        if version is None:
            (self.root / link).unlink(missing_ok=True)
            fsync_dir(self.root)
        else:
            atomic_symlink(Path("versions") / version, self.root / link)

    # ---- install / commit / revert -----------------------------------------------------------------

    def check_offer(self, version: str, *, downgrade_to: str | None = None) -> None:
        """Refuse a version that failed here before, or one older than the current model.

        Args:
            version: The version offered.
            downgrade_to: The one older version the server's ``rollback-to-control`` permits (the
                caller checked the reason code); any other older version is still a rollback.
                Defaults to None (no downgrade allowed).

        Raises:
            UpdateRefused: ``failed-before`` or ``rollback``.
        """
        parse_semver(version)
        if self.is_failed(version):
            reason = self.state()["failed"][version]["reason"]
            raise UpdateRefused(
                f"version {version} failed on this device before ({reason}); not retried.",
                reason="failed-before",
            )
        current = self.current_version()
        if current is not None and compare_versions(version, current) < 0 and version != downgrade_to:
            allowed = (
                f" (the server's rollback-to-control permits only {downgrade_to})" if downgrade_to else ""
            )
            raise UpdateRefused(
                f"version {version} is older than the current {current}: refusing a rollback{allowed}.",
                reason="rollback",
                hint="Publish a higher version; the device goes back only to its own fallback slot or "
                "to the control version of a rollout the server halted or aborted.",
            )

    def install(
        self,
        package: str | Path,
        *,
        expected_version: str | None = None,
        model_id: str | None = None,
        num_threads: int | None = 1,
        accelerator: str | None = None,
        downgrade_to: str | None = None,
        on_step: Callable[[str], None] | None = None,
        variant: str | None = None,
        profile: dict[str, Any] | None = None,
    ) -> Manifest:
        """Verify, extract, smoke-test and swap in a package; the old current becomes ``previous``.

        Args:
            package: The ``.lsp`` file.
            expected_version: The version the server assigned. Defaults to None (any).
            model_id: The model the package must hold. Defaults to None (any).
            num_threads: LiteRT threads for the smoke test. Defaults to 1.
            accelerator: The accelerator the model will run on (the smoke test uses it too). Defaults
                to None: the Interpreter on the CPU.
            downgrade_to: An older version this install may bring in (see :meth:`check_offer`).
                Defaults to None.
            on_step: Called with ``"extract"``, ``"smoke-test"`` and ``"swap"`` as each step starts
                (the updater logs them). Defaults to None.
            variant: The release variant the server assigned (issue 24): the package's signed
                manifest must name it. Defaults to None (a release without variants).
            profile: This device's profile: a variant whose signed conditions do not hold for it
                (and that is not its release's default) is refused. Defaults to None (not checked).

        Raises:
            UpdateRefused: The package does not verify, is a rollback, or fails its smoke test.
        """
        if self.public_key is None:
            raise AgentError(
                "installing needs the publisher's public key: nothing unverified is installed.",
                hint="Pass `public_key` (the publisher's ed25519 public key file, e.g. publisher.pub).",
            )
        step = on_step or (lambda _: crash_point())
        stage = self.incoming / f"stage-{os.getpid()}"
        shutil.rmtree(stage, ignore_errors=True)
        step("extract")
        try:
            manifest = extract_verified(package, self.public_key, stage)
        except LiteshipError as e:
            raise UpdateRefused(f"package does not verify: {e}", reason="signature") from e
        crash_point()
        try:
            version = manifest.version
            if expected_version is not None and version != expected_version:
                raise UpdateRefused(
                    f"package holds version {version}, the server assigned {expected_version}.",
                    reason="mismatch",
                )
            if model_id is not None and manifest.model_id != model_id:
                raise UpdateRefused(
                    f"package holds model {manifest.model_id!r}, expected {model_id!r}.", reason="mismatch"
                )
            check_variant(manifest, variant, profile)
            self.check_offer(version, downgrade_to=downgrade_to)
            step("smoke-test")
            with native_output_silenced():  # LiteRT's "INFO: Created … XNNPACK delegate", on any thread
                result = smoke_test(stage, num_threads=num_threads, accelerator=accelerator)
            if not result.ok:
                self.mark_failed(version, "smoke test: " + "; ".join(result.failures))
                raise UpdateRefused(
                    f"version {version} failed its smoke test: {'; '.join(result.failures)}",
                    reason="smoke-test",
                )
            step("swap")
            with self._lock:
                kept = self.versions / version
                if kept.is_dir() and self.slot_problem(kept) is None:  # a kept slot comes back: reuse it
                    shutil.rmtree(stage)
                else:
                    if kept.exists():  # a leftover that no longer verifies (in use or not): replace it
                        shutil.rmtree(kept, ignore_errors=True)
                    os.replace(stage, kept)
                    fsync_dir(self.versions)
                # a permitted downgrade leaves a halted/aborted candidate: never keep it as the fallback
                self.swap(version, keep_old=downgrade_to is None)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
        return manifest

    def swap(self, version: str, *, keep_old: bool = True) -> None:
        """Make ``version`` current (intent recorded first, so a crash in between is finished at start-up).

        Args:
            version: An installed version.
            keep_old: The old current becomes the fallback. False: the fallback stays what it was
                (cleared when it is ``version``), so a version the server ended badly is not kept.
                Defaults to True.
        """
        with self._lock:
            old = self.current_version()
            if not keep_old:
                old = self.previous_version()
                old = None if old == version else old
                self._point("previous", old)
            pending = {"version": version, "previous": old, "since": time.time(), "starts": 0}
            self.update_state(lambda s: s.__setitem__("pending", pending))
            self._finish_swap(version, old)
        self.record_decision(
            "installed",
            version,
            f"swapped in; {old} kept as the fallback" if old else "swapped in; no fallback",
        )

    def _finish_swap(self, version: str, old: str | None) -> None:
        if old is not None and old != version:
            self._point("previous", old)
        self._point("current", version)

    def commit(self, version: str | None = None) -> bool:
        """End the health window: the candidate is now the confirmed current model.

        Args:
            version: The candidate the window watched; when another version is pending (or current)
                now, nothing is committed. Defaults to None (whatever is pending).

        Returns:
            Whether a candidate was committed.
        """
        with self._lock:
            pending = self.state()["pending"]
            if version is not None and (
                not pending or pending["version"] != version or self.current_version() != version
            ):
                return False
            self.update_state(lambda s: s.__setitem__("pending", None))
            self.collect_garbage()
            if pending:
                self.record_decision("committed", pending["version"], "health window passed")
            return bool(pending)

    def revert(
        self,
        reason: str,
        *,
        from_version: str | None,
        mark_failed: bool = True,
        by: str = "device",
        keep: bool = True,
    ) -> Revert:
        """Leave ``from_version`` for the fallback, if it is still current; else do nothing.

        Args:
            reason: Why (reported to the server as the revert event's reason).
            from_version: The version being reverted. When it is no longer current (another thread
                switched first) the call is a no-op, so a revert never hits the wrong model.
            mark_failed: Never retry ``from_version`` on this device. Defaults to True.
            by: ``"device"`` or ``"server"``. A server-ordered revert (the server sends the device back
                to its fallback) keeps ``from_version`` as the new fallback: it did not fail here, and
                the device keeps a verified model in both slots. Defaults to ``"device"``.
            keep: For a server-ordered revert, keep ``from_version`` as the fallback. False when the
                server ended its rollout badly (halted or aborted): a known-bad candidate is never a
                fallback. Defaults to True.

        Returns:
            A :class:`Revert`.
        """
        if by not in ("device", "server"):
            raise ValueError(f"by must be 'device' or 'server', got {by!r}")
        with self._lock:
            bad, fallback = self.current_version(), self.previous_version()
            if from_version is None or bad != from_version:
                return Revert(False, from_version, bad, by)
            if fallback is None or not (self.versions / fallback).is_dir():
                fallback = None
            keep = keep and by == "server" and fallback is not None and (self.versions / bad).is_dir()
            self._point("current", fallback)
            self._point("previous", bad if keep else None)
            at = time.time()
            event = {
                "at": at,
                "event": "reverted",
                "version": bad,
                "to": fallback,
                "reason": reason,
                "by": by,
            }

            def change(s: dict[str, Any]) -> None:
                s["pending"] = None
                if mark_failed and by == "device":
                    s["failed"][bad] = {"reason": reason, "at": at}
                s["reports"].append(event)
                s["history"] = [*s["history"], event][-HISTORY:]
                s["last_decision"] = {
                    "at": at,
                    "action": "reverted",
                    "version": bad,
                    "reason": reason,
                    "by": by,
                }

            self.update_state(change)
            self.collect_garbage()
            return Revert(True, bad, fallback, by)

    def reinstate(self, version: str, *, by: str = "server") -> bool:
        """Swap the kept fallback ``version`` back in as a candidate (with a health window), without a
        download: the server assigned again the newer version this device keeps as ``previous``.

        Returns:
            False (nothing changed) when ``version`` is not the fallback or its slot no longer verifies.
        """
        with self._lock:
            if self.previous_version() != version or self.is_failed(version):
                return False
            if self.slot_problem(self.versions / version) is not None:
                return False
            self.swap(version)
            return True

    # ---- start-up recovery (liteship.agent.recovery drives these) -----------------------------------

    def resume_swap(self) -> str:
        """Finish a swap whose intent (``pending``) was written but whose symlinks were not both switched.

        Returns:
            ``"none"`` (nothing pending or already done), ``"finished"`` or ``"abandoned"`` (the
            candidate's slot is incomplete: the intent is dropped and the old links stay).
        """
        with self._lock:
            pending = self.state()["pending"]
            if not pending or self.current_version() == pending["version"]:
                return "none"
            folder = self.versions / pending["version"]
            if folder.is_dir() and self.slot_problem(folder) is None:
                self._finish_swap(pending["version"], pending.get("previous"))
                return "finished"
            self.update_state(lambda s: s.__setitem__("pending", None))
            return "abandoned"

    def count_start(self) -> int:
        """One more unclean start-up of the pending candidate; returns the count (0 when none pending)."""
        with self._lock:
            if not self.state()["pending"]:
                return 0

            def change(s: dict[str, Any]) -> None:
                s["pending"]["starts"] = s["pending"].get("starts", 0) + 1

            return int(self.update_state(change)["pending"]["starts"])

    def check_slot(self, link: str) -> tuple[str | None, str | None]:
        """``(version, problem)`` of the ``current`` or ``previous`` slot; a dangling or stray link is
        removed (``(None, None)``). ``problem`` is None when every file verifies."""
        if link not in ("current", "previous"):
            raise ValueError(f"no slot named {link!r}")
        with self._lock:
            version = self._link_version(link)
            if version is None:
                path = self.root / link
                if path.is_symlink() or path.exists():
                    shutil.rmtree(path, ignore_errors=True) if path.is_dir() and not path.is_symlink() else (
                        path.unlink(missing_ok=True)
                    )
                return None, None
            folder = self.versions / version
            return version, ("missing" if not folder.is_dir() else self.slot_problem(folder))

    def discard_slot(self, link: str, problem: str) -> Revert | None:
        """Throw away a damaged slot: ``previous`` is cleared; a damaged ``current`` falls back (not
        marked failed: damage says nothing about the model). Its folder is deleted unless in use."""
        with self._lock:
            version, _ = self.check_slot(link)
            if version is None:
                return None
            if version not in self._leases:
                shutil.rmtree(self.versions / version, ignore_errors=True)
            if link == "previous":
                self._point("previous", None)
                return None
            return self.revert(f"slot damaged on disk: {problem}", from_version=version, mark_failed=False)

    def drop_stale_pending(self) -> None:
        """Forget a pending window whose candidate is no longer current."""
        with self._lock:
            pending = self.state()["pending"]
            if pending and self.current_version() != pending["version"]:
                self.update_state(lambda s: s.__setitem__("pending", None))

    def add_report(self, event: dict[str, Any]) -> None:
        """Queue an event for the next check-in (``downloaded``; reverts are queued by :meth:`revert`).
        At most :data:`MAX_QUEUED_REPORTS` wait; the oldest download events go first."""

        def change(s: dict[str, Any]) -> None:
            s["reports"].append(event)
            while len(s["reports"]) > MAX_QUEUED_REPORTS:
                oldest = next((i for i, e in enumerate(s["reports"]) if e.get("event") == "downloaded"), 0)
                s["reports"].pop(oldest)

        self.update_state(change)

    def take_reports(self) -> list[dict[str, Any]]:
        """Events (reverts) not yet reported to the server; cleared by :meth:`reports_sent`."""
        return list(self.state()["reports"])

    def reports_sent(self, count: int) -> None:
        self.update_state(lambda s: s.__setitem__("reports", s["reports"][count:]))

    def collect_garbage(self) -> None:
        """Delete version folders no slot, pending window or lease names."""
        with self._lock:
            keep = {
                self.current_version(),
                self.previous_version(),
                (self.state()["pending"] or {}).get("version"),
                *self._leases,
            }
            for d in self.versions.iterdir():
                if d.name not in keep:
                    shutil.rmtree(d, ignore_errors=True) if d.is_dir() else d.unlink(missing_ok=True)


__all__ = ["Store", "UpdateRefused", "Revert", "Lease", "MAX_STARTS", "MODEL_CHANGED", "HISTORY"]
