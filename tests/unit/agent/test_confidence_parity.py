"""Drift compares like with like: for a logits model, the confidences the real agent loop bins into its
telemetry window are the ones the package's reference histogram was built from (one rule,
:mod:`liteship.confidence`), not raw logits against probabilities."""

from __future__ import annotations

import json

import numpy as np
import pytest
from agent_test_helpers import build
from PIL import Image

from liteship.agent.health import HealthWindow
from liteship.agent.loop import AgentLoop
from liteship.agent.sinks import FileSink
from liteship.agent.sources import ImageFolderSource
from liteship.agent.store import Store
from liteship.agent.telemetry import Spool
from liteship.confidence import confidence_counts
from liteship.package import verify_package
from liteship.runtime import LiteRTRunner


@pytest.fixture(scope="module")
def logits_tflite() -> bytes:
    """An 8x8 digit → 10 logits model (no softmax), weights small enough that on 0..255 pixels its
    softmax confidences spread over many bins."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(1)
    m = keras.Sequential(
        [keras.Input((8, 8, 1), name="image"), keras.layers.Flatten(), keras.layers.Dense(10, name="logits")]
    )
    kernel, bias = m.layers[-1].get_weights()
    m.layers[-1].set_weights([np.random.default_rng(1).normal(0, 0.004, kernel.shape), bias])
    return tf.lite.TFLiteConverter.from_keras_model(m).convert()


def _run_agent(lsp, digit_pngs, keys, tmp_path, frames: int) -> tuple[dict, list[dict]]:
    """Install ``lsp`` and run the real agent loop over the frames: its one telemetry window and its
    per-frame results."""
    store = Store(tmp_path / "state", keys.public_path)
    store.install(lsp)
    store.commit()
    loop = AgentLoop(
        store,
        ImageFolderSource(digit_pngs),
        FileSink(tmp_path / "out.jsonl"),
        Spool(tmp_path / "spool"),
        health=HealthWindow(store, inferences=10),
        window_s=3600,
        num_threads=1,
        max_frames=frames,
    )
    loop.run()
    (window,) = [json.loads(p.read_text()) for p in loop.spool.pending()]
    results = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    return window, results


def test_agent_telemetry_and_reference_histogram_agree_for_logits(logits_tflite, digit_pngs, keys, tmp_path):
    frames = sorted(digit_pngs.glob("*.png"))
    pixels = np.stack(
        [np.asarray(Image.open(f), np.float32)[..., None] for f in frames]
    )  # as the agent reads
    lsp = build(
        logits_tflite, tmp_path / "lsp", "1.0.0", keys.private_path, pixels[:4], reference_data=pixels
    )
    reference = verify_package(lsp, keys.public_path).reference_histogram
    assert reference is not None and sum(reference["counts"]) == len(frames)

    window, results = _run_agent(lsp, digit_pngs, keys, tmp_path, len(frames))
    assert window["inferences"] == len(frames)
    assert window["confidence_hist"] == reference["counts"]

    # The check can fail: these are logits (outside [0, 1]) whose softmax spreads over several bins,
    # so binning the raw top-1 logit, as the agent once did, gives another histogram.
    with LiteRTRunner(logits_tflite, num_threads=1) as r:
        name = r.input_specs[0].name
        logits = np.concatenate([next(iter(r.infer({name: p[None]}).values())) for p in pixels])
    assert logits.min() < 0 and logits.max() > 1
    assert sum(1 for c in reference["counts"] if c) >= 3
    assert list(confidence_counts(logits.max(axis=1))) != reference["counts"]
    assert all(0.0 < r["score"] <= 1.0 for r in results)


@pytest.fixture(scope="module")
def unit_logits_tflite() -> bytes:
    """An 8x8 digit → 10 logits model (no softmax) whose logits on 0..255 pixels all lie in [0, 1]
    (bias 0.5, tiny weights): the values look like probabilities, the graph says logits."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(2)
    m = keras.Sequential(
        [keras.Input((8, 8, 1), name="image"), keras.layers.Flatten(), keras.layers.Dense(10, name="logits")]
    )
    kernel, bias = m.layers[-1].get_weights()
    m.layers[-1].set_weights([np.random.default_rng(2).normal(0, 0.00015, kernel.shape), bias + 0.5])
    return tf.lite.TFLiteConverter.from_keras_model(m).convert()


def _softmax_top1(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).max(axis=1)


def test_logits_that_lie_in_0_1_still_go_through_softmax_on_the_agent_and_in_the_reference(
    unit_logits_tflite, digit_pngs, keys, tmp_path
):
    from liteship.model.outputs import score_kind
    from liteship.validate import validate

    frames = sorted(digit_pngs.glob("*.png"))
    pixels = np.stack([np.asarray(Image.open(f), np.float32)[..., None] for f in frames])
    with LiteRTRunner(unit_logits_tflite, num_threads=1) as r:
        name, out = r.input_specs[0].name, r.output_specs[0].name
        logits = np.concatenate([r.infer({name: p[None]})[out] for p in pixels]).astype(np.float64)
    # The trap: every frame's logits look like probabilities, so a per-row rule takes the top logit.
    assert logits.min() >= 0.0 and logits.max() <= 1.0
    assert score_kind(unit_logits_tflite, out) == "logits"
    expected = _softmax_top1(logits)
    per_row = list(confidence_counts(logits.max(axis=1)))
    assert list(confidence_counts(expected)) != per_row  # the check below can fail

    lsp = build(
        unit_logits_tflite, tmp_path / "lsp", "1.0.0", keys.private_path, pixels[:4], reference_data=pixels
    )
    reference = verify_package(lsp, keys.public_path).reference_histogram
    assert reference["counts"] == list(confidence_counts(expected))

    window, results = _run_agent(lsp, digit_pngs, keys, tmp_path, len(frames))
    assert window["confidence_hist"] == reference["counts"]
    np.testing.assert_allclose([r["score"] for r in results], expected, rtol=1e-6)

    # validate (the pipeline's source of the packaged reference) decides the same way
    report = validate(unit_logits_tflite, unit_logits_tflite, pixels, progress=False)
    h = report.confidence_histogram
    assert h is not None and h.scores == "logits" and h.softmax_applied
    assert list(h.counts) == reference["counts"]
