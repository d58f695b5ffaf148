"""Issue 22, items 1–4: the camera paths (picamera2 and OpenCV) on test doubles at the libraries'
boundary (``tests/unit/agent/fakes``: known pictures, the real libraries' pixel order), run through the
agent's real loop; no camera, and picamera2 invisible to a virtualenv, are one clear error line.

The pictures are coloured (red ≠ blue), so a red/blue swap changes the model's (grayscale) input.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from liteship.agent import sources
from liteship.agent.loop import LoadedModel
from liteship.agent.sources import camera_backends, open_frame_source
from liteship.agent.store import Store
from liteship.data import load_image
from liteship.errors import AgentError

FAKES = Path(__file__).with_name("fakes")
FRAMES = 12


def _fake(monkeypatch, name: str) -> None:
    path = FAKES / name / "__init__.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setitem(sys.modules, name, module)


@pytest.fixture(scope="module")
def colour_pictures(digits, tmp_path_factory) -> Path:
    """32x32 colour pictures of digits: red = the digit, green = half of it, blue = its negative."""
    folder = tmp_path_factory.mktemp("camera")
    for i, img in enumerate(digits[2][:FRAMES]):
        g = np.kron(img[..., 0], np.ones((4, 4))) * 255
        rgb = np.stack([g, g / 2, 255 - g], axis=-1).astype(np.uint8)
        Image.fromarray(rgb, "RGB").save(folder / f"{i:04d}.png")
    return folder


@pytest.fixture
def installed(tmp_path, keys, packages):
    store = Store(tmp_path / "state", keys.public_path)
    store.install(packages["1.0.0"])
    return store


@pytest.mark.parametrize("backend", ["picamera2", "opencv"])
def test_camera_frames_are_validates_input(backend, monkeypatch, colour_pictures, installed):
    monkeypatch.setenv("LITESHIP_FAKE_CAMERA", str(colour_pictures))
    _fake(monkeypatch, "cv2")
    if backend == "picamera2":
        _fake(monkeypatch, "picamera2")
    else:
        monkeypatch.setitem(sys.modules, "picamera2", None)
    model = LoadedModel(installed.current_dir(), num_threads=1)
    source = open_frame_source("camera")
    assert type(source).__name__ == {"picamera2": "PiCameraSource", "opencv": "OpenCVSource"}[backend]
    try:
        for path, frame in zip(sorted(colour_pictures.iterdir()), source, strict=False):
            assert np.array_equal(frame.pixels, np.asarray(Image.open(path).convert("RGB"))), path
            expected = load_image(path, model.pre, model.input.shape)[None]  # what `validate` feeds
            assert model.prepare(frame).tobytes() == expected.tobytes(), path
    finally:
        source.close()
        model.close()


@pytest.mark.parametrize("fmt", ["RGB888", "BGR888", "XRGB8888", "XBGR8888"])
def test_every_picamera_format_gives_rgb(fmt, monkeypatch, colour_pictures):
    monkeypatch.setenv("LITESHIP_FAKE_CAMERA", str(colour_pictures))
    _fake(monkeypatch, "picamera2")
    cam = sys.modules["picamera2"].Picamera2()
    cam.configure(cam.create_preview_configuration(main={"format": fmt}))
    cam.start()
    first = np.asarray(Image.open(sorted(colour_pictures.iterdir())[0]).convert("RGB"))
    assert np.array_equal(sources.picamera_rgb(cam.capture_array(), fmt), first)
    with pytest.raises(AgentError, match="YUV420"):
        sources.picamera_rgb(cam.capture_array(), "YUV420")


def _agent(cli, state: Path, keys, source: str, camera: Path | str) -> tuple[int, list[dict], str]:
    env = {
        "PYTHONPATH": os.pathsep.join([str(FAKES), os.environ.get("PYTHONPATH", "")]),
        "LITESHIP_FAKE_CAMERA": str(camera),
    }
    r = cli(
        "agent", "run", "--state-dir", str(state), "--key", keys.public_path,
        "--source", source, "--threads", "1", "--max-frames", str(FRAMES), env=env,
    )  # fmt: skip
    return r.returncode, [json.loads(line) for line in r.stdout.splitlines()], r.stderr


def test_agent_loop_on_fake_cameras_matches_the_pictures(cli, installed, keys, colour_pictures):
    code, from_files, err = _agent(cli, installed.root, keys, f"images:{colour_pictures}", "")
    assert code == 0, err
    for source in ("camera", "camera:0"):  # picamera2, then OpenCV
        code, results, err = _agent(cli, installed.root, keys, source, colour_pictures)
        assert code == 0, err
        assert [r["frame"] for r in results] == [f"frame-{i}" for i in range(FRAMES)]
        assert [(r["class"], r["score"]) for r in results] == [(r["class"], r["score"]) for r in from_files]


def test_no_camera_is_one_error_line(cli, installed, keys):
    code, results, err = _agent(cli, installed.root, keys, "camera", "")
    lines = err.strip().splitlines()
    assert code == 1 and results == [] and len(lines) == 1, err
    assert "picamera2 sees no camera" in lines[0] and "rpicam-hello --list-cameras" in lines[0]
    assert "bug in liteship" not in err


def test_picamera2_outside_the_virtualenv_is_named(monkeypatch, tmp_path):
    system = tmp_path / "dist-packages"
    (system / "picamera2").mkdir(parents=True)
    monkeypatch.setattr(sources, "SYSTEM_SITE", system)
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "venv"))  # a virtualenv: prefix != base_prefix
    monkeypatch.setitem(sys.modules, "picamera2", None)
    monkeypatch.delenv("LITESHIP_FAKE_CAMERA", raising=False)
    _fake(monkeypatch, "cv2")  # OpenCV installed, no /dev/video0 answering
    with pytest.raises(AgentError) as e:
        open_frame_source("camera")
    text = str(e.value)
    assert "OpenCV is installed but camera 0 (/dev/video0)" in text
    assert "does not see it" in text and "--system-site-packages" in text
    assert "pip install opencv-python-headless" not in text
    cams = {c.name: c for c in camera_backends()}
    assert not cams["picamera2"].usable and "--system-site-packages" in cams["picamera2"].hint
    monkeypatch.setitem(sys.modules, "cv2", None)  # neither backend
    with pytest.raises(AgentError, match="no camera backend: picamera2 is installed for the system"):
        open_frame_source("camera")


def test_doctor_lists_the_camera_backends(cli, colour_pictures):
    env = {"PYTHONPATH": os.pathsep.join([str(FAKES), os.environ.get("PYTHONPATH", "")])}
    r = cli("agent", "doctor", "--json", env={**env, "LITESHIP_FAKE_CAMERA": str(colour_pictures)})
    assert r.returncode == 0, r.stderr
    cams = {c["name"]: c for c in json.loads(r.stdout)["cameras"]}
    assert cams["picamera2"]["usable"] and "imx708" in cams["picamera2"]["detail"]
    r = cli("agent", "doctor", env={**env, "LITESHIP_FAKE_CAMERA": ""})
    assert r.returncode == 0, r.stderr
    assert "picamera2  unusable  installed, but libcamera lists no camera" in r.stdout, r.stdout
    assert "rpicam-hello" in r.stdout
