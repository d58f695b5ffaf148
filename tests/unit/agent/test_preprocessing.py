"""Issue 11: the agent prepares frames with liteship.data's one implementation (identical bytes to what
`validate` feeds), and an unreadable preprocessing declaration is a failed smoke test, never silent
un-normalized inference."""

from __future__ import annotations

import numpy as np
import pytest
from agent_test_helpers import build
from PIL import Image

from liteship.agent.loop import LoadedModel
from liteship.agent.sources import Frame
from liteship.agent.store import Store
from liteship.data import load_dataset, parse_labels, read_labels
from liteship.errors import DataError, MetadataError, ModelError, UpdateRefused
from liteship.model.flatbuffer import write_liteship_info
from liteship.package import extract_verified, smoke_test
from liteship.runtime import LiteRTRunner
from liteship.validate.comparator import candidate_preprocessing


@pytest.fixture(scope="module")
def recorded_model(tflite_float, tmp_path_factory):
    path = tmp_path_factory.mktemp("rec") / "digits_std16.tflite"
    path.write_bytes(
        write_liteship_info(tflite_float.read_bytes(), {"preprocessing": {"mean": [0], "std": [16]}})
    )
    return path


def test_agent_and_validate_inputs_are_byte_identical(recorded_model, keys, golden, digit_pngs, tmp_path):
    store = Store(tmp_path / "state", keys.public_path)
    store.install(build(recorded_model.read_bytes(), tmp_path / "pkg", "1.0.0", keys.private_path, golden))
    model = LoadedModel(store.current_dir(), num_threads=1)
    with LiteRTRunner(str(recorded_model), num_threads=1) as runner:  # what `validate` does
        pre, source = candidate_preprocessing(recorded_model, runner)
        dataset = load_dataset(digit_pngs, preprocessing=pre, input_shape=runner.input_specs[0].shape)
    assert source == "candidate metadata" and model.pre == pre
    assert model.preprocessing_text == "mean 0 std 16 from the model's liteship record"  # issue 20: said
    files = sorted(digit_pngs.iterdir())
    for i, path in enumerate(files[:10]):
        agent = model.prepare(Frame(path.name, path=path))
        expected = np.asarray(dataset[i][0], dtype=np.float32)[None]
        assert agent.dtype == expected.dtype and agent.tobytes() == expected.tobytes(), path
        pixels = np.asarray(Image.open(path).convert("RGB"))  # what a camera source hands over
        assert model.prepare(Frame("cam", pixels=pixels)).tobytes() == expected.tobytes()
    model.close()


def test_unreadable_preprocessing_is_a_failed_smoke_test(tflite_float, keys, golden, tmp_path):
    bad = write_liteship_info(tflite_float.read_bytes(), {"preprocessing": {"mean": [0], "std": [0]}})
    package = build(bad, tmp_path / "pkg", "1.0.0", keys.private_path, golden)
    folder = tmp_path / "x"
    extract_verified(package, keys.public_path, folder)
    result = smoke_test(folder)
    assert not result.ok and any("preprocessing declaration" in f for f in result.failures), result
    with pytest.raises(ModelError, match="un-normalized"):
        LoadedModel(folder, num_threads=1)
    store = Store(tmp_path / "state", keys.public_path)
    with pytest.raises(UpdateRefused) as e:
        store.install(package)
    assert e.value.reason == "smoke-test" and store.current_version() is None


def test_one_label_rule_and_one_std_rule(tmp_path):
    from liteship.model.metadata import _split_labels
    from liteship.runtime.predict import _override
    from liteship.types import Preprocessing

    raw = "\ufeffcat\r\ndog\r\n\r\nbird\r\n".encode()
    assert parse_labels(raw) == ["cat", "dog", "", "bird"] == _split_labels(raw)
    (tmp_path / "l.txt").write_bytes(raw)
    assert read_labels(tmp_path / "l.txt") == parse_labels(raw) and parse_labels(b"\n") == []
    for std in ([0.0], [-1.0], [float("nan")], [float("inf")]):
        with pytest.raises(DataError, match="std"):
            Preprocessing(std=tuple(std))
        with pytest.raises(Exception, match="std") as e:
            _override(None, std, True, False)
        assert type(e.value).__name__ == "UsageError"
    from liteship.model.metadata import _normalization

    with pytest.raises(MetadataError, match="input_std"):
        _normalization([127.5], [-1.0], None)
