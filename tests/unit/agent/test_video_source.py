"""``video:PATH`` for real: an MJPG .avi written by OpenCV, decoded by the agent's OpenCV source,
preprocessed from the model's metadata and classified; broken and missing files give one error line.

The OpenCV tests are skipped when ``cv2`` is missing (it is not a liteship dependency; the dev extra
installs opencv-python-headless). What a device without OpenCV is told is tested without it.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from PIL import Image

from liteship.agent.loop import LoadedModel
from liteship.agent.sources import Frame, open_frame_source
from liteship.agent.store import Store
from liteship.errors import AgentError

SCALE = 8  # 8x8 digits → 64x64 video frames; the model's preprocessing resizes them back to 8x8
FRAMES = 40


def needs_cv2():
    """``cv2``, or a skip that says why (missing, or installed but broken, e.g. libGL for opencv-python)."""
    try:
        import cv2
    except ImportError as e:
        pytest.skip(
            f"OpenCV is not importable ({e}), so video:PATH is untested here: "
            "pip install opencv-python-headless"
        )
    return cv2


def upscaled(digit: np.ndarray) -> np.ndarray:
    """An 8x8 digit in 0..1 as a 64x64 RGB uint8 image (nearest neighbour: sharp pixel blocks)."""
    gray = (digit[..., 0] * 255).astype(np.uint8)
    return np.repeat(np.repeat(gray, SCALE, axis=0), SCALE, axis=1)[..., None].repeat(3, axis=-1)


@pytest.fixture(scope="module")
def digits_video(digits, tmp_path_factory):
    """An MJPG .avi of the first 40 test digits, one per frame, and the frames written."""
    cv2 = needs_cv2()
    path = tmp_path_factory.mktemp("video") / "digits.avi"
    size = 8 * SCALE
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (size, size))
    assert writer.isOpened(), "OpenCV cannot write MJPG .avi here"
    frames = [upscaled(d) for d in digits[2][:FRAMES]]
    for rgb in frames:
        writer.write(np.ascontiguousarray(rgb[..., ::-1]))  # OpenCV writes BGR
    writer.release()
    return path, frames


@pytest.fixture
def installed(tmp_path, keys, packages):
    store = Store(tmp_path / "state", keys.public_path)
    store.install(packages["1.0.0"])
    store.commit()
    return store


def test_video_frames_decode_and_get_the_models_preprocessing(digits_video, installed, digits):
    path, written = digits_video
    source = open_frame_source(f"video:{path}")
    try:
        frames = list(source)
    finally:
        source.close()
    assert [f.name for f in frames] == [f"frame-{i}" for i in range(FRAMES)]
    assert all(f.pixels.shape == (64, 64, 3) and f.pixels.dtype == np.uint8 for f in frames)
    # the content survives MJPG (lossy): each decoded frame is far closer to its own digit than to others
    diffs = np.array([[np.abs(f.pixels.astype(float) - w).mean() for w in written] for f in frames])
    assert np.all(np.argmin(diffs, axis=1) == np.arange(FRAMES)) and np.diag(diffs).max() < 10

    model = LoadedModel(installed.current_dir(), num_threads=1)
    try:
        agree = correct = 0
        for frame, rgb, label in zip(frames, written, digits[3][:FRAMES], strict=True):
            x = model.prepare(frame)  # 64x64 RGB → 8x8 grayscale, as the model's metadata says
            reference = model.prepare(Frame("written", pixels=rgb))  # the same frame before MJPG
            assert x.shape == reference.shape == (1, 8, 8, 1) and x.dtype == np.float32
            assert np.abs(x - reference).max() < 6.0  # values 0..255; only MJPG's loss differs
            k = model.infer(x)[0]
            agree += k == model.infer(reference)[0]
            correct += k == label
        assert agree >= FRAMES - 2, f"decoded and written frames agree on {agree}/{FRAMES} classes"
        assert correct >= 0.75 * FRAMES, f"{correct}/{FRAMES} video frames classified correctly"
    finally:
        model.close()


def test_cli_runs_on_a_video_file(cli, digits_video, installed, keys, digit_pngs):
    path, _ = digits_video

    def run(source: str, *extra: str) -> list[dict]:
        r = cli(
            "agent", "run", "--state-dir", str(installed.root), "--key", keys.public_path,
            "--source", source, "--threads", "1", *extra,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert all(line.startswith("{") for line in r.stderr.splitlines() if line.strip()), r.stderr
        return [json.loads(line) for line in r.stdout.splitlines()]

    results = run(f"video:{path}", "--max-frames", "25")
    assert [r["frame"] for r in results] == [f"frame-{i}" for i in range(25)]
    assert all(r["version"] == "1.0.0" and 0 <= r["score"] <= 1 and r["latency_ms"] > 0 for r in results)
    from_pngs = run(f"images:{digit_pngs}", "--max-frames", "25")
    agree = sum(a["class"] == b["class"] for a, b in zip(results, from_pngs, strict=True))
    assert agree >= 22, f"video and PNG frames agree on {agree}/25 classes"
    looped = run(f"video:{path}", "--loop", "--max-frames", str(FRAMES + 5))  # rewinds at the end
    assert len(looped) == FRAMES + 5 and looped[FRAMES]["frame"] == f"frame-{FRAMES}"
    assert looped[FRAMES]["class"] == looped[0]["class"]


@pytest.mark.parametrize("kind", ["missing", "garbage", "truncated", "no-frames"])
def test_bad_video_files_give_one_error_line(cli, installed, keys, tmp_path, request, kind):
    cv2 = None if kind == "missing" else needs_cv2()  # a missing file is refused before OpenCV loads
    bad = tmp_path / f"{kind}.avi"
    if kind == "garbage":
        bad.write_bytes(b"RIFF\0\0\0\0AVI LIST" + np.random.default_rng(0).bytes(4000))
    elif kind == "truncated":
        path, _ = request.getfixturevalue("digits_video")
        bad.write_bytes(path.read_bytes()[:600])  # the header is cut: nothing decodes
    elif kind == "no-frames":
        cv2.VideoWriter(str(bad), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 64)).release()
    r = cli(
        "agent", "run", "--state-dir", str(installed.root), "--key", keys.public_path,
        "--source", f"video:{bad}", "--max-frames", "3",
    )  # fmt: skip
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and r.stdout == "", r.stderr
    assert len(lines) == 1 and lines[0].startswith("error:") and str(bad) in lines[0], r.stderr
    expected = {
        "missing": "does not exist",
        "garbage": "cannot open",
        "truncated": "cannot open",
        "no-frames": "decodes no frame",
    }[kind]
    assert expected in lines[0]


def test_without_opencv_video_and_camera_say_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 raises ImportError
    monkeypatch.setitem(sys.modules, "picamera2", None)
    video = tmp_path / "v.avi"
    video.write_bytes(b"\0")
    with pytest.raises(AgentError, match="opencv-python-headless"):
        open_frame_source(f"video:{video}")
    with pytest.raises(AgentError, match="opencv-python-headless"):
        open_frame_source("rtsp://127.0.0.1:8554/cam")
    with pytest.raises(AgentError, match="picamera2") as e:
        open_frame_source("camera")
    assert "opencv-python-headless" in str(e.value)


def test_written_digits_are_the_pngs_content(digits, digit_pngs):
    """The video and the PNG folder hold the same digits, so their classes are comparable."""
    png = np.asarray(Image.open(sorted(digit_pngs.iterdir())[5]).convert("L"), dtype=np.uint8)
    assert np.array_equal(upscaled(digits[2][5])[::SCALE, ::SCALE, 0], png)
