"""A fake OpenCV: ``VideoCapture(N)`` is a USB camera delivering BGR frames (as OpenCV does)."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
from PIL import Image


def pictures() -> list[np.ndarray]:
    """Every image in ``$LITESHIP_FAKE_CAMERA`` (sorted) as RGB; none (no camera) when unset."""
    folder = os.environ.get("LITESHIP_FAKE_CAMERA", "")
    if not folder:
        return []
    return [np.asarray(Image.open(p).convert("RGB")) for p in sorted(Path(folder).iterdir())]


__version__ = "0.0-fake"
CAP_PROP_POS_FRAMES = 1


class VideoCapture:
    def __init__(self, target: int | str) -> None:
        frames = pictures() if isinstance(target, int) and target == 0 else []
        self.opened = bool(frames)
        self.frames = itertools.cycle(frames)

    def isOpened(self) -> bool:  # noqa: N802 (OpenCV's name)
        return self.opened

    def read(self) -> tuple[bool, np.ndarray | None]:
        if not self.opened:
            return False, None
        return True, np.ascontiguousarray(next(self.frames)[..., ::-1])

    def set(self, prop: int, value: float) -> bool:
        return True

    def release(self) -> None:
        self.opened = False
