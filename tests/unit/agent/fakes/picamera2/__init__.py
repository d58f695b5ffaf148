"""A fake picamera2 (the parts liteship uses), behaving as picamera2 0.3 on libcamera does.

libcamera names formats by a little-endian word, so ``RGB888`` arrays are B, G, R in memory and
``XBGR8888`` (the preview default) is R, G, B, 255. With no camera, ``Picamera2()`` raises
``IndexError`` as the real one does (``global_camera_info()[camera_num]``).
"""

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


ORDER = {"RGB888": [2, 1, 0], "BGR888": [0, 1, 2], "XRGB8888": [2, 1, 0, 3], "XBGR8888": [0, 1, 2, 3]}


class Picamera2:
    @staticmethod
    def global_camera_info() -> list[dict]:
        return [{"Model": "imx708", "Num": 0}] if pictures() else []

    def __init__(self, camera_num: int = 0) -> None:
        self.frames = itertools.cycle(self.global_camera_info() and pictures())
        _ = self.global_camera_info()[camera_num]  # the real one's IndexError when no camera
        self.config: dict = {}
        self.started = False

    def create_preview_configuration(self, main: dict | None = None) -> dict:
        return {"main": {"format": "XBGR8888", "size": (640, 480), **(main or {})}}

    def configure(self, config: dict) -> None:
        self.config = config

    def camera_configuration(self) -> dict:
        return self.config

    def start(self) -> None:
        self.started = True

    def capture_array(self, name: str = "main") -> np.ndarray:
        assert self.started, "capture_array before start()"
        rgb = next(self.frames)
        rgbx = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=-1)
        return np.ascontiguousarray(rgbx[..., ORDER[self.config["main"]["format"]]])

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        pass
