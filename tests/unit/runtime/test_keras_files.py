"""A corrupt .keras/.h5 file is named as what it is, the same way by convert and by the Keras reference
runner (the tour found `validate --reference corrupt.keras` reporting Keras's "File not found")."""

from __future__ import annotations

import pytest

from liteship.convert.sources import check_source_path
from liteship.errors import ConversionError, ModelError
from liteship.runtime.reference import KerasRunner


@pytest.mark.parametrize(
    "name, needle", [("bad.keras", "not a .keras archive"), ("bad.h5", "not an HDF5 file")]
)
def test_corrupt_keras_files_are_named_by_convert_and_by_the_reference_runner(tmp_path, name, needle):
    bad = tmp_path / name
    bad.write_bytes(b"nope, not a model")
    with pytest.raises(ModelError, match=needle) as e:
        KerasRunner(bad)
    assert "File not found" not in str(e.value)
    with pytest.raises(ConversionError, match=needle):
        check_source_path(bad)


def test_a_real_keras_save_still_loads(keras_path):
    with KerasRunner(keras_path) as r:
        assert r.output_specs


def test_a_keras_save_or_a_package_given_as_a_tflite_is_named(keras_path, tmp_path):
    import io
    import zipfile

    from liteship.model.flatbuffer import load_model

    renamed = tmp_path / "model.tflite"
    renamed.write_bytes(keras_path.read_bytes())
    # bench, run, validate, metadata and package all load through here
    with pytest.raises(ModelError, match=r"it is a Keras model \(a .keras zip archive\)"):
        load_model(renamed)
    lsp = io.BytesIO()
    with zipfile.ZipFile(lsp, "w") as z:
        z.writestr("manifest.json", "{}")
        z.writestr("config.json", "{}")
    with pytest.raises(ModelError, match="it is a liteship package"):
        load_model(lsp.getvalue())
