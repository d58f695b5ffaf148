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
