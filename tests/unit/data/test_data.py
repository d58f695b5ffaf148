from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from liteship.data import load_dataset
from liteship.errors import DataError
from liteship.types import Preprocessing


def test_npz_with_one_hot_labels(tmp_path: Path):
    x = np.arange(24, dtype=np.float32).reshape(3, 2, 2, 2)
    y = np.eye(4)[[1, 3, 0]]
    np.savez(tmp_path / "d.npz", x=x, y=y)
    ds = load_dataset(tmp_path / "d.npz", preprocessing=Preprocessing(mean=1.0, std=2.0))
    assert len(ds) == 3 and ds.has_labels
    assert ds.labels() == [1, 3, 0]
    np.testing.assert_allclose(ds[1][0], (x[1] - 1.0) / 2.0)


def test_image_folder_with_classes_resizes_and_labels(tmp_path: Path):
    for cls, color in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
        (tmp_path / cls).mkdir()
        Image.new("RGB", (20, 10), color).save(tmp_path / cls / "a.png")
    ds = load_dataset(tmp_path, input_shape=(1, 4, 6, 3), preprocessing=Preprocessing(std=255.0))
    assert ds.class_names == ["cat", "dog"] and ds.labels() == [0, 1]
    x, _ = ds[0]
    assert x.shape == (4, 6, 3) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, 0], [1.0, 0.0, 0.0], atol=1e-6)
    bgr = load_dataset(tmp_path, input_shape=(1, 4, 6, 3), preprocessing=Preprocessing(channel_order="bgr"))
    np.testing.assert_allclose(bgr[0][0][0, 0], [0.0, 0.0, 255.0])


@pytest.mark.parametrize(
    "make, needle",
    [
        (lambda p: p / "missing.npy", "does not exist"),
        (lambda p: (p / "bad.npy").write_bytes(b"not numpy") and p / "bad.npy", "not a numpy file"),
        (lambda p: (np.savez(p / "n.npz", a=np.zeros(3)), p / "n.npz")[1], "expected one named 'x'"),
        (lambda p: ((p / "empty").mkdir(), p / "empty")[1], "holds no images"),
        (lambda p: ((p / "f.txt").write_text("x"), p / "f.txt")[1], "unknown file type"),
    ],
)
def test_bad_sources_raise_clear_errors(tmp_path: Path, make, needle):
    with pytest.raises(DataError, match=needle):
        load_dataset(make(tmp_path))


def test_preprocessing_rejects_zero_std():
    with pytest.raises(DataError, match="std"):
        Preprocessing(std=0.0)


def test_fixture_models_run_without_tensorflow(tflite_int8, no_tf_python):
    r = no_tf_python(f"""
        import numpy as np
        from ai_edge_litert.interpreter import Interpreter
        it = Interpreter(model_path={str(tflite_int8)!r}); it.allocate_tensors()
        d = it.get_input_details()[0]
        assert d["dtype"] == np.int8, d
        import liteship, liteship.data, liteship.types, liteship.errors
        try:
            import tensorflow
        except ImportError:
            print("blocked")
    """)
    assert r.returncode == 0, r.stderr
    assert "blocked" in r.stdout
