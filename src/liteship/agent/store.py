"""On-disk model slots of the device agent: install, swap, revert and recover after a crash.

Layout under the state folder (see docs/agent.md for the crash-safety argument)::

    versions/<version>/   complete, verified, smoke-tested packages (only ever created by a rename)
    current -> versions/<version>     the model the agent runs (symlink, switched atomically)
    previous -> versions/<version>    the fallback
    incoming/             downloads (<sha256>.part kept for resume, <sha256>.lsp complete),
                          stage-<version>/ extractions being smoke-tested
    state.json            failed versions, the pending health window, last check-in and decision

Every write goes through :mod:`liteship.agent.fsutil` (temp file, fsync, rename, fsync the folder).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from liteship.agent.fsutil import atomic_symlink, atomic_write_json, crash_point, fsync_dir, read_json
from liteship.agent.quiet import native_output_silenced
from liteship.errors import AgentError, LiteshipError
from liteship.package import Manifest, compare_versions, extract_verified, parse_semver, smoke_test

MAX_STARTS = 3  # start-ups of an unconfirmed candidate before it is reverted (RAUC-style boot count)
MODEL_CHANGED = ("installed", "downgraded", "reverted-by-server")  # updater decisions that change current


class UpdateRefused(AgentError):
    """An update that was refused; the current model is untouched. ``reason`` is a short code."""

    def __init__(self, message: str, *, reason: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reason = reason


class Store:
    """The agent's model slots and state file.

    Args:
        root: The state folder (created if missing).
        public_key: The publisher's ed25519 public key; slots are re-checked against it at start-up.
        max_starts: Start-ups allowed during a health window before the candidate is reverted.
    """

    def __init__(self, root: str | Path, public_key: Any = None, max_starts: int = MAX_STARTS) -> None:
        self.root = Path(root)
        self.versions = self.root / "versions"
        self.incoming = self.root / "incoming"
        self.state_file = self.root / "state.json"
        self.public_key = public_key
        self.max_starts = max_starts
        self._lock = threading.RLock()
        for d in (self.root, self.versions, self.incoming):
            d.mkdir(parents=True, exist_ok=True)

    # ---- state -------------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        data = read_json(self.state_file, {}) or {}
        data.setdefault("failed", {})
        data.setdefault("pending", None)
        data.setdefault("reports", [])
        return data

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

    def manifest(self, version: str) -> Manifest:
        return Manifest.from_bytes((self.versions / version / "manifest.json").read_bytes())

    def slot_problem(self, folder: Path) -> str | None:
        """Why an extracted package folder cannot be trusted (None when every file matches)."""
        from liteship.package.signing import key_id, load_public_key, verify_signature

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
            if (self.versions / version).exists():  # the fallback slot comes back: keep the installed copy
                shutil.rmtree(stage)
            else:
                os.replace(stage, self.versions / version)
                fsync_dir(self.versions)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
        self.swap(version)
        return manifest

    def swap(self, version: str) -> None:
        """Make ``version`` current (intent recorded first, so a crash in between is finished at start-up)."""
        with self._lock:
            old = self.current_version()
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

    def commit(self) -> None:
        """End the health window: the candidate is now the confirmed current model."""
        with self._lock:
            pending = self.state()["pending"]
            self.update_state(lambda s: s.__setitem__("pending", None))
            self.collect_garbage()
        if pending:
            self.record_decision("committed", pending["version"], "health window passed")

    def revert(self, reason: str, *, mark_failed: bool = True) -> str | None:
        """Go back to ``previous``; the failed version is never retried. Returns the new current."""
        with self._lock:
            bad, fallback = self.current_version(), self.previous_version()
            if fallback is None or not (self.versions / fallback).is_dir():
                fallback = None
            self._point("current", fallback)
            self._point("previous", None)
            event = {"at": time.time(), "event": "reverted", "version": bad, "to": fallback, "reason": reason}

            def change(s: dict[str, Any]) -> None:
                s["pending"] = None
                if bad and mark_failed:
                    s["failed"][bad] = {"reason": reason, "at": event["at"]}
                s["reports"].append(event)
                s["last_decision"] = {
                    "at": event["at"],
                    "action": "reverted",
                    "version": bad,
                    "reason": reason,
                }

            self.update_state(change)
            if bad and bad != fallback:
                shutil.rmtree(self.versions / bad, ignore_errors=True)
            return fallback

    def take_reports(self) -> list[dict[str, Any]]:
        """Events (reverts) not yet reported to the server; cleared by :meth:`reports_sent`."""
        return list(self.state()["reports"])

    def reports_sent(self, count: int) -> None:
        self.update_state(lambda s: s.__setitem__("reports", s["reports"][count:]))

    def collect_garbage(self) -> None:
        keep = {
            self.current_version(),
            self.previous_version(),
            (self.state()["pending"] or {}).get("version"),
        }
        for d in self.versions.iterdir():
            if d.name not in keep:
                shutil.rmtree(d, ignore_errors=True) if d.is_dir() else d.unlink(missing_ok=True)


__all__ = ["Store", "UpdateRefused", "MAX_STARTS", "MODEL_CHANGED"]
