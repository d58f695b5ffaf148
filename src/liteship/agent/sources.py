"""Frame sources behind one interface: ``camera``, ``video:PATH``, ``rtsp://URL``, ``images:DIR``.

A source is an iterator of :class:`Frame` with ``close()``. Camera and video backends are imported
only when used: picamera2 for ``camera`` when present, else OpenCV ``VideoCapture``; neither is a
dependency of liteship.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from liteship.data import IMAGE_SUFFIXES
from liteship.errors import AgentError, UsageError

OPENCV_HINT = "pip install opencv-python-headless (or apt install python3-opencv)"
PICAMERA_HINT = "apt install python3-picamera2 (Raspberry Pi OS)"


@dataclass(frozen=True)
class Frame:
    """One frame: an image file (``path``) or pixels (``pixels``: uint8 ``(H, W, 3)`` RGB)."""

    name: str
    path: Path | None = None
    pixels: np.ndarray | None = None


class ImageFolderSource:
    """Every image in a folder (sorted), once or forever (``loop``)."""

    def __init__(self, folder: str | Path, loop: bool = False) -> None:
        self.folder, self.loop = Path(folder), loop
        if not self.folder.is_dir():
            raise UsageError(
                f"image folder {str(self.folder)!r} does not exist.",
                hint="Give images:DIR with a folder of images.",
            )
        self.files = sorted(p for p in self.folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise UsageError(f"{str(self.folder)!r} holds no images ({', '.join(IMAGE_SUFFIXES)}).")

    def __iter__(self) -> Iterator[Frame]:
        while True:
            for p in self.files:
                yield Frame(name=str(p.relative_to(self.folder)), path=p)
            if not self.loop:
                return

    def close(self) -> None:
        pass


def _cv2() -> Any:
    if not os.environ.get("LITESHIP_VERBOSE"):  # FFmpeg's own warnings would interleave with JSON logs
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET; read when a capture opens
    try:
        import cv2
    except ImportError:
        raise AgentError(
            "video, RTSP and USB-camera sources need OpenCV, which is not installed.", hint=OPENCV_HINT
        ) from None
    return cv2


@contextlib.contextmanager
def _native_quiet() -> Iterator[None]:
    """Drop what OpenCV's backends print to fd 2 while probing a file (each helper acts on its thread)."""
    from liteship._quiet import native_stderr_silenced
    from liteship.agent.quiet import native_output_silenced

    with native_stderr_silenced(), native_output_silenced():
        yield


class OpenCVSource:
    """A video file, an RTSP stream or a camera index through ``cv2.VideoCapture`` (BGR → RGB).

    A video file is checked when opened: it must decode at least one frame, so a corrupt or
    unsupported file is an error at start-up rather than a run that ends with no frames.

    Raises:
        AgentError: OpenCV is missing, or cannot open (or decode) the target.
    """

    def __init__(self, target: str | int, loop: bool = False) -> None:
        self.cv2, self.target, self.loop = _cv2(), target, loop
        self._first: np.ndarray | None = None
        ok = True
        with _native_quiet():
            self.cap = self.cv2.VideoCapture(target)
            opened = self.cap.isOpened()
            if opened and self.is_file:
                ok, self._first = self.cap.read()
        if not opened:
            self.cap.release()
            if self.is_file:
                message = "the file is unreadable, corrupt or not a video format OpenCV supports"
                hint = "Check that it plays (ffprobe PATH), or re-encode it (MJPG .avi, H.264 .mp4)."
            else:
                message = "the stream or camera does not answer"
                hint = "Check the URL or camera index, and that no other process holds the camera."
            raise AgentError(f"OpenCV cannot open {target!r}: {message}.", hint=hint)
        if self.is_file and not ok:
            self.cap.release()
            raise AgentError(
                f"OpenCV opened {target!r} but decodes no frame from it: the video is empty or corrupt.",
                hint="Check that it plays (ffprobe PATH), or re-encode it (MJPG .avi, H.264 .mp4).",
            )

    @property
    def is_file(self) -> bool:
        return isinstance(self.target, str) and not self.target.startswith("rtsp")

    def _read(self) -> np.ndarray | None:
        if self._first is not None:
            bgr, self._first = self._first, None
            return bgr
        ok, bgr = self.cap.read()
        return bgr if ok else None

    def __iter__(self) -> Iterator[Frame]:
        i, rewound = 0, False
        while True:
            bgr = self._read()
            if bgr is None:
                if self.loop and self.is_file and not rewound:  # rewound and still nothing: stop
                    self.cap.set(self.cv2.CAP_PROP_POS_FRAMES, 0)
                    rewound = True
                    continue
                return
            rewound = False
            yield Frame(name=f"frame-{i}", pixels=np.ascontiguousarray(bgr[..., ::-1]))
            i += 1

    def close(self) -> None:
        self.cap.release()


class PiCameraSource:
    """The Raspberry Pi camera through picamera2 (RGB888 frames)."""

    def __init__(self) -> None:
        from picamera2 import Picamera2  # only reached when importable

        self.cam = Picamera2()
        self.cam.configure(self.cam.create_preview_configuration(main={"format": "RGB888"}))
        self.cam.start()

    def __iter__(self) -> Iterator[Frame]:
        i = 0
        while True:
            yield Frame(name=f"frame-{i}", pixels=np.ascontiguousarray(self.cam.capture_array()[..., :3]))
            i += 1

    def close(self) -> None:
        self.cam.stop()


def open_source(spec: str, *, loop: bool = False) -> Any:
    """Open ``camera[:N]``, ``video:PATH``, ``rtsp://URL`` or ``images:DIR``.

    Raises:
        UsageError: An unknown kind. AgentError: The backend it needs is not installed.
    """
    kind, _, rest = spec.partition(":")
    if kind == "images":
        return ImageFolderSource(rest, loop=loop)
    if kind == "video":
        if not Path(rest).is_file():
            raise UsageError(
                f"video file {rest!r} does not exist.", hint="Give video:PATH with a video file."
            )
        return OpenCVSource(rest, loop=loop)
    if kind in ("rtsp", "rtsps"):
        return OpenCVSource(rest if rest.startswith("rtsp") else spec)
    if kind == "camera":
        if not rest:
            try:
                import picamera2  # noqa: F401
            except ImportError:
                pass
            else:
                return PiCameraSource()
        try:
            return OpenCVSource(int(rest or 0))
        except AgentError as e:
            raise AgentError(
                f"no camera backend: {e.message}", hint=f"{PICAMERA_HINT}, or {OPENCV_HINT}."
            ) from None
    raise UsageError(f"unknown source {spec!r}; expected camera[:N], video:PATH, rtsp://URL or images:DIR.")


__all__ = ["Frame", "ImageFolderSource", "OpenCVSource", "PiCameraSource", "open_source"]
