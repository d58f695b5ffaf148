"""Frame sources behind one interface: ``camera``, ``video:PATH``, ``rtsp://URL``, ``images:DIR``.

A source is an iterator of :class:`Frame` with ``close()``. Camera and video backends are imported
only when used: picamera2 for ``camera`` when present, else OpenCV ``VideoCapture``; neither is a
dependency of liteship.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from liteship._quiet import native_stderr_silenced
from liteship.agent.quiet import native_output_silenced
from liteship.data import IMAGE_SUFFIXES
from liteship.errors import AgentError, UsageError
from liteship.types import ReportMixin

OPENCV_HINT = "pip install opencv-python-headless (or apt install python3-opencv)"
PICAMERA_HINT = (
    "apt install python3-picamera2 (Raspberry Pi OS), and run liteship from a virtualenv made with "
    "python3 -m venv --system-site-packages (or with the system Python)"
)
VENV_HINT = (
    "recreate the virtualenv with python3 -m venv --system-site-packages (picamera2 comes from apt, "
    "not pip), or install liteship for the system Python"
)
SYSTEM_SITE = Path("/usr/lib/python3/dist-packages")  # where apt puts python3-picamera2


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
            raise AgentError(
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


# Pixel order in memory of each picamera2 (libcamera) format: libcamera names formats by the order of a
# little-endian word, so "RGB888" is B, G, R in memory (raspberrypi/picamera2#1148, #191, #848).
PICAMERA_CHANNELS = {"RGB888": "BGR", "BGR888": "RGB", "XRGB8888": "BGRX", "XBGR8888": "RGBX"}
PICAMERA_FORMAT = "RGB888"  # supported on every Pi camera stack; reordered to RGB below


def picamera_rgb(array: np.ndarray, fmt: str) -> np.ndarray:
    """RGB ``(H, W, 3)`` uint8 pixels from a picamera2 array in format ``fmt`` (see PICAMERA_CHANNELS).

    Raises:
        AgentError: A format whose channel order is unknown (a YUV or raw stream).
    """
    order = PICAMERA_CHANNELS.get(fmt)
    if order is None:
        raise AgentError(
            f"picamera2 delivers format {fmt!r}; expected one of {', '.join(PICAMERA_CHANNELS)}.",
            hint="Configure the main stream as RGB888 (liteship does so unless another process changed it).",
        )
    return np.ascontiguousarray(array[..., [order.index(c) for c in "RGB"]])


def _no_picamera() -> AgentError:
    return AgentError(
        "picamera2 sees no camera: libcamera lists none.",
        hint="Check the ribbon cable and that the camera is enabled (rpicam-hello --list-cameras lists "
        "it); a USB camera is camera:0 (OpenCV).",
    )


class PiCameraSource:
    """The Raspberry Pi camera through picamera2 (an ``RGB888`` stream, which is B, G, R in memory).

    Raises:
        AgentError: No camera is attached, or picamera2 cannot start it.
    """

    def __init__(self) -> None:
        from picamera2 import Picamera2  # only reached when importable

        if not Picamera2.global_camera_info():  # Picamera2() would raise IndexError
            raise _no_picamera()
        try:
            self.cam = Picamera2()
            self.cam.configure(self.cam.create_preview_configuration(main={"format": PICAMERA_FORMAT}))
            self.cam.start()
        except IndexError:
            raise _no_picamera() from None
        except RuntimeError as e:  # the camera is held by another process, or libcamera failed
            raise AgentError(
                f"picamera2 cannot start the camera ({e}).",
                hint="Check that no other process (rpicam-*, another agent) holds the camera.",
            ) from None
        self.format = self.cam.camera_configuration()["main"]["format"]

    def __iter__(self) -> Iterator[Frame]:
        i = 0
        while True:
            yield Frame(name=f"frame-{i}", pixels=picamera_rgb(self.cam.capture_array(), self.format))
            i += 1

    def close(self) -> None:
        self.cam.stop()
        self.cam.close()


def _picamera2_missing() -> str:
    """Why ``import picamera2`` fails here: not installed, or installed for the system Python only."""
    if (SYSTEM_SITE / "picamera2").is_dir() and sys.prefix != sys.base_prefix:
        return (
            f"picamera2 is installed for the system Python ({SYSTEM_SITE}) but this virtualenv "
            f"({sys.prefix}) does not see it"
        )
    return "picamera2 is not installed"


def _picamera2_fix(missing: str) -> str:
    if "virtualenv" in missing:
        return VENV_HINT
    return PICAMERA_HINT


def _open_camera(index: str) -> Any:
    """``camera``: picamera2 when importable, else OpenCV index 0; ``camera:N``: OpenCV index N."""
    missing = ""
    if not index:
        try:
            import picamera2  # noqa: F401
        except ImportError:
            missing = _picamera2_missing()
        else:
            return PiCameraSource()
    number = int(index or 0)
    try:
        return OpenCVSource(number)
    except AgentError as e:
        if "not installed" in e.message:
            because = f"{missing}, and OpenCV is not installed" if missing else e.message
            fix = f"{_picamera2_fix(missing)}; or, for a USB camera, {OPENCV_HINT}"
            raise AgentError(f"no camera backend: {because}.", hint=fix) from None
        device = f"/dev/video{number}"
        seen = "does not exist" if not Path(device).exists() else "does not deliver frames"
        because = f" ({missing})" if missing else ""
        raise AgentError(
            f"OpenCV is installed but camera {number} ({device}) {seen}{because}.",
            hint=f"A Raspberry Pi CSI camera needs picamera2 ({_picamera2_fix(missing)}); a USB "
            "camera shows as /dev/videoN (give camera:N). `liteship agent doctor` lists what it sees.",
        ) from None


def open_frame_source(spec: str, *, loop: bool = False) -> Any:
    """Open ``camera[:N]``, ``video:PATH``, ``rtsp://URL`` or ``images:DIR``.

    Raises:
        UsageError: An unknown kind. AgentError: The backend it needs is not installed, the camera
            is absent, or the folder or file does not exist (bad input, exit 1 like every missing path).
    """
    kind, _, rest = spec.partition(":")
    if kind == "images":
        return ImageFolderSource(rest, loop=loop)
    if kind == "video":
        if not Path(rest).is_file():
            raise AgentError(
                f"video file {rest!r} does not exist.", hint="Give video:PATH with a video file."
            )
        return OpenCVSource(rest, loop=loop)
    if kind in ("rtsp", "rtsps"):
        return OpenCVSource(rest if rest.startswith("rtsp") else spec)
    if kind == "camera":
        if rest and not rest.isdigit():
            raise UsageError(f"camera index {rest!r} is not a number; expected camera or camera:N.")
        return _open_camera(rest)
    raise UsageError(f"unknown source {spec!r}; expected camera[:N], video:PATH, rtsp://URL or images:DIR.")


@dataclass(frozen=True)
class CameraBackend(ReportMixin):
    """One camera backend as ``liteship agent doctor`` sees it."""

    name: str
    usable: bool
    detail: str
    hint: str = ""


def _picamera2_backend() -> CameraBackend:
    try:
        from picamera2 import Picamera2
    except ImportError:
        missing = _picamera2_missing()
        return CameraBackend("picamera2", False, missing, _picamera2_fix(missing))
    try:
        cameras = Picamera2.global_camera_info()
    except Exception as e:  # libcamera itself failed: report it, never crash the report
        return CameraBackend("picamera2", False, f"libcamera failed: {e}", "Run rpicam-hello --list-cameras.")
    if not cameras:
        return CameraBackend(
            "picamera2", False, "installed, but libcamera lists no camera", _no_picamera().hint or ""
        )
    names = ", ".join(str(c.get("Model", "?")) for c in cameras)
    return CameraBackend("picamera2", True, f"{len(cameras)} camera(s): {names} (source camera)")


def _opencv_backend() -> CameraBackend:
    try:
        cv2 = _cv2()
    except AgentError as e:
        return CameraBackend("opencv", False, e.message, OPENCV_HINT)
    devices = sorted(str(p) for p in Path("/dev").glob("video[0-9]*"))
    if not devices:
        return CameraBackend(
            "opencv",
            False,
            f"OpenCV {getattr(cv2, '__version__', '?')} is installed, but there is no /dev/videoN device",
            "Plug in a USB camera; a Raspberry Pi CSI camera needs picamera2.",
        )
    return CameraBackend(
        "opencv", True, f"OpenCV {getattr(cv2, '__version__', '?')}: {', '.join(devices)} (source camera:N)"
    )


def camera_backends() -> list[CameraBackend]:
    """What ``source camera`` can use here: picamera2 and OpenCV, each usable or why not (no camera
    is opened, so a running agent keeps its camera)."""
    return [_picamera2_backend(), _opencv_backend()]


__all__ = [
    "CameraBackend",
    "camera_backends",
    "picamera_rgb",
    "Frame",
    "ImageFolderSource",
    "OpenCVSource",
    "PiCameraSource",
    "open_frame_source",
]
