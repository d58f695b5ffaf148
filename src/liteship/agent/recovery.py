"""Start-up recovery: whatever moment the agent died at, end on a verified model and a clean update.

:func:`recover` runs before anything else. In order:

1. Remove leftovers of interrupted writes: staging extractions, temporary files and symlinks (the
   things they were about to replace are intact, because every replacement is a rename).
2. An update whose intent was recorded (``pending``) but whose symlinks were not both switched is
   finished: its slot was complete and smoke-tested before the intent was written.
3. A candidate still in its health window counts one more start-up unless the last process recorded a
   clean shutdown (``Store.record_clean_shutdown``; the record is cleared here); at ``max_starts``
   unclean start-ups it is reverted and marked failed (a model that crashes the agent never gets to
   fail a health check).
4. ``current`` and ``previous`` are re-verified (signature over the manifest, every file's sha256).
   A dangling or damaged ``current`` falls back to ``previous``; a damaged slot is deleted.
5. Slots nothing points to are deleted. Partial downloads (``*.part``) are kept for resume.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from liteship.agent.store import Store


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def clean_staging(store: Store) -> list[str]:
    """Delete half-made things: stage-* folders, .*.tmp-* files, folders and symlinks."""
    removed = []
    for folder in (store.root, store.versions, store.incoming):
        for p in folder.iterdir():
            if p.name.startswith("stage-") or (p.name.startswith(".") and ".tmp" in p.name):
                _remove(p)
                removed.append(str(p.relative_to(store.root)))
    return removed


def _finish_or_count(store: Store, actions: list[str], clean_stop: bool) -> None:
    pending = store.state()["pending"]
    if not pending:
        return
    version = pending["version"]
    resumed = store.resume_swap()
    if resumed == "finished":
        actions.append(f"finished the interrupted swap to {version}")
    elif resumed == "abandoned":
        actions.append(f"abandoned the update to {version} (its slot is incomplete)")
        return
    if clean_stop:  # a clean stop (source ended, frame limit, SIGTERM) is not a crash: nothing counted
        done = pending.get("inferences", 0)
        actions.append(f"health window of {version} continues after a clean stop ({done} inferences so far)")
        return
    starts = store.count_start()
    if starts >= store.max_starts:
        reason = (
            f"the agent stopped uncleanly {starts} times during the health window of {version} "
            "(crash, kill or power loss)"
        )
        to = store.revert(reason, from_version=version).to
        actions.append(
            f"reverted {version} to {to}: {reason}" if to else f"reverted {version} (no fallback): {reason}"
        )
    else:
        actions.append(
            f"health window of {version} continues after an unclean stop "
            f"({starts} of {store.max_starts - 1} allowed)"
        )


def _check_slots(store: Store, actions: list[str]) -> None:
    for link in ("previous", "current"):
        version, problem = store.check_slot(link)
        if version is None or problem is None:
            continue
        actions.append(f"{link} slot {version} is damaged ({problem})")
        outcome = store.discard_slot(link, problem)
        if outcome is not None:
            actions.append(f"fell back to {outcome.to}" if outcome.to else "no verified model left")


def recover(store: Store) -> list[str]:
    """Bring the state folder to a consistent state. Returns what was done (for the log).

    Args:
        store: The agent's :class:`~liteship.agent.store.Store` (with its publisher key, so slots are
            re-verified against the signature too).

    Every call is a start-up: it consumes the clean-shutdown record of the previous process, so a
    second call without a :meth:`~liteship.agent.store.Store.record_clean_shutdown` in between counts
    as a restart after a crash.
    """
    with store.locked():
        clean_stop = store.take_clean_shutdown() is not None
        actions = [f"removed leftover {p}" for p in clean_staging(store)]
        _finish_or_count(store, actions, clean_stop)
        _check_slots(store, actions)
        store.drop_stale_pending()
        store.collect_garbage()
        for p in store.incoming.glob("*.lsp"):
            if os.path.getsize(p) == 0:
                p.unlink(missing_ok=True)
    return actions


__all__ = ["recover", "clean_staging"]
