"""TFLite Metadata: interoperability with tflite-support's files, write/read round trips, errors."""

from __future__ import annotations

import io
import json
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from flatbuffers import number_types as N
from flatbuffers.table import Table

from liteship.errors import MetadataError, ModelError
from liteship.model import flatbuffer as fbm
from liteship.model import metadata as M
from liteship.model import metadata_schema as ms

REAL = ["mobilenet_v1_0.25_224_quant.tflite", "mobilenet_v1_0.25_224_1_metadata_1.tflite"]
DIGITS = [str(i) for i in range(10)]


def expected_json(third_party_models: Path, name: str) -> dict:
    return json.loads((third_party_models / f"{name}.metadata.json").read_text())


# ------------------------------------------------------------------ files written by tflite-support


@pytest.mark.parametrize("name", REAL)
def test_reads_tflite_support_metadata_as_its_displayer_prints_it(third_party_models, name):
    assert M.read_metadata(third_party_models / name) == expected_json(third_party_models, name)


@pytest.mark.parametrize("name", REAL)
def test_json_packs_and_reads_back_unchanged(third_party_models, name):
    want = expected_json(third_party_models, name)
    buf = ms.pack_metadata(ms.from_json(ms.ModelMetadata, want))
    assert buf[4:8] == b"M001"
    assert ms.to_json(ms.unpack_metadata(buf)) == want


def test_labels_and_normalization_from_a_tflite_support_model(third_party_models):
    model = third_party_models / REAL[0]
    labels = M.labels_from_metadata(model)
    assert len(labels) == 1001 and labels[:2] == ["background", "tench"]
    prep = M.normalization_from_metadata(model)
    assert prep.mean == (127.5,) and prep.std == (127.5,) and prep.grayscale is False
    assert set(M.associated_files(model)) == {"labels.txt"}


def test_model_without_metadata(third_party_models):
    model = third_party_models / "whitespace_tokenizer_flex_delegate.tflite"
    assert M.read_metadata(model) == {}
    assert M.labels_from_metadata(model) is None
    assert M.normalization_from_metadata(model) is None


# ------------------------------------------------------------------ writing


def written_digits(tflite_float: Path, **overrides) -> bytes:
    kwargs = dict(
        name="digits CNN",
        version="1.2.0",
        description="Handwritten digit classifier.",
        author="liteship tests",
        license="Apache-2.0",
        labels=DIGITS,
        input_mean=0.0,
        input_std=255.0,
        input_descriptions=["8x8 grayscale digit"],
        output_descriptions=["class probabilities"],
        output_min=0.0,
        output_max=1.0,
    )
    kwargs.update(overrides)
    return M.write_metadata(tflite_float, **kwargs)


def test_write_read_round_trip_float(tflite_float):
    data = written_digits(tflite_float)
    assert M.read_metadata(data) == {
        "name": "digits CNN",
        "description": "Handwritten digit classifier.",
        "version": "1.2.0",
        "subgraph_metadata": [
            {
                "input_tensor_metadata": [
                    {
                        "name": "image",
                        "description": "8x8 grayscale digit",
                        "content": {
                            "content_properties_type": "ImageProperties",
                            "content_properties": {"color_space": "GRAYSCALE"},
                        },
                        "process_units": [
                            {
                                "options_type": "NormalizationOptions",
                                "options": {"mean": [0.0], "std": [255.0]},
                            }
                        ],
                        # (0 - 0) / 255 and (255 - 0) / 255: the value range after normalization
                        "stats": {"max": [1.0], "min": [0.0]},
                    }
                ],
                "output_tensor_metadata": [
                    {
                        "name": "probability",
                        "description": "class probabilities",
                        "content": {"content_properties_type": "FeatureProperties"},
                        "stats": {"max": [1.0], "min": [0.0]},
                        "associated_files": [
                            {
                                "name": "labels.txt",
                                "description": M.LABELS_DESCRIPTION,
                                "type": "TENSOR_AXIS_LABELS",
                            }
                        ],
                    }
                ],
            }
        ],
        "author": "liteship tests",
        "license": "Apache-2.0",
        "min_parser_version": "1.0.0",
    }
    assert M.labels_from_metadata(data) == DIGITS
    prep = M.normalization_from_metadata(data)
    assert prep.mean == (0.0,) and prep.std == (255.0,) and prep.grayscale is True


def test_labels_file_is_zipped_and_readable_with_zipfile(tflite_int8, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("zero\none\ntwo\nthree\nfour\nfive\nsix\nseven\neight\nnine\n")
    out = tmp_path / "int8_md.tflite"
    data = M.write_metadata(tflite_int8, out, name="digits int8", labels=labels, input_mean=0, input_std=255)
    assert out.read_bytes() == data
    with zipfile.ZipFile(out) as zf:
        assert zf.namelist() == ["labels.txt"]
        assert zf.read("labels.txt") == labels.read_bytes()
    assert M.labels_from_metadata(out)[9] == "nine"
    tensor = M.read_metadata(out)["subgraph_metadata"][0]["input_tensor_metadata"][0]
    assert tensor["stats"] == {"max": [127.0], "min": [-128.0]}  # an int8 tensor's own range


def test_written_model_still_runs_in_litert(tflite_float, tflite_int8, digits):
    from liteship.runtime import LiteRTRunner

    x = digits[2][:1]
    for path in (tflite_float, tflite_int8):
        with LiteRTRunner(path) as before, LiteRTRunner(written_digits(path, input_std=1.0)) as after:
            name = before.input_specs[0].name
            want, got = before.infer({name: x}), after.infer({name: x})
            assert want.keys() == got.keys()
            for k in want:
                np.testing.assert_array_equal(got[k], want[k])


def test_rewriting_replaces_metadata_and_files(tflite_float, tmp_path):
    with_info = fbm.write_liteship_info(tflite_float.read_bytes(), {"recipe": "float32"})
    first = M.write_metadata(with_info, name="first", labels=DIGITS)
    classes = tmp_path / "classes.txt"
    classes.write_text("\n".join(f"c{i}" for i in range(10)))
    second = M.write_metadata(first, name="second", labels=classes)

    names = [
        m.name.decode() if isinstance(m.name, bytes) else m.name
        for m in fbm.load_model(second).model.metadata
    ]
    assert sorted(names) == sorted(set(names)) and names.count(M.METADATA_ENTRY) == 1
    assert fbm.read_liteship_info(second) == {"recipe": "float32"}  # other entries are kept
    assert M.read_metadata(second)["name"] == "second"
    assert zipfile.ZipFile(io.BytesIO(second)).namelist() == ["classes.txt"]
    assert second.count(b"PK\x05\x06") == 1  # one zip archive: the old one is not left behind
    assert M.labels_from_metadata(second) == [f"c{i}" for i in range(10)]
    assert len(fbm.load_model(second).model.buffers) == len(fbm.load_model(first).model.buffers)


def test_rewriting_without_labels_keeps_the_labels_and_the_normalization(tflite_float):
    """Issue 20: metadata written onto a model with associated files keeps them (and what it declared)."""
    first = written_digits(tflite_float)
    data = M.write_metadata(first, name="no labels")
    assert M.associated_files(data) == M.associated_files(first) != {}
    assert data.count(b"PK\x05\x06") == 1
    assert M.labels_from_metadata(data) == M.labels_from_metadata(first)
    assert M.normalization_from_metadata(data) == M.normalization_from_metadata(first)
    assert M.read_metadata(data)["name"] == "no labels"


def test_rewriting_keeps_files_other_than_labels(tflite_float):
    with_vocab = fbm.attach_files(written_digits(tflite_float), {"vocab.txt": b"a\nb\n"})
    data = M.write_metadata(with_vocab, name="new labels", labels=[f"n{i}" for i in range(10)])
    assert M.associated_files(data)["vocab.txt"] == b"a\nb\n"
    assert M.labels_from_metadata(data) == [f"n{i}" for i in range(10)]


def test_written_buffer_has_the_published_field_ids(tflite_float):
    """Decoded with raw flatbuffers accessors and the ids from metadata_schema.fbs, not the bindings."""
    raw = fbm.load_model(written_digits(tflite_float)).metadata[M.METADATA_ENTRY]
    assert raw[4:8] == b"M001"
    root = Table(raw, struct.unpack_from("<I", raw, 0)[0])

    def string(tab: Table, field_id: int) -> str:
        return tab.String(tab.Offset(4 + 2 * field_id) + tab.Pos).decode()

    def first_of_vector(tab: Table, field_id: int) -> Table:
        return Table(raw, tab.Indirect(tab.Vector(tab.Offset(4 + 2 * field_id))))

    assert string(root, 0) == "digits CNN"  # ModelMetadata.name
    assert string(root, 2) == "1.2.0"  # .version
    assert string(root, 4) == "liteship tests"  # .author
    assert string(root, 5) == "Apache-2.0"  # .license
    assert string(root, 7) == "1.0.0"  # .min_parser_version
    output = first_of_vector(first_of_vector(root, 3), 3)  # subgraph_metadata[0].output_tensor_metadata[0]
    label_file = first_of_vector(output, 6)  # TensorMetadata.associated_files[0]
    assert string(label_file, 0) == "labels.txt"
    assert (
        label_file.Get(N.Int8Flags, label_file.Offset(8) + label_file.Pos) == 2
    )  # type = TENSOR_AXIS_LABELS
    content = Table(raw, output.Indirect(output.Offset(10) + output.Pos))  # TensorMetadata.content (id 3)
    assert content.Get(N.Uint8Flags, content.Offset(4) + content.Pos) == 1  # union tag FeatureProperties


@pytest.mark.parametrize(
    ("extra", "version"),
    [
        ({}, "1.0.0"),
        ({"type": ms.AssociatedFileType.VOCABULARY}, "1.0.1"),
        ({"type": ms.AssociatedFileType.SCANN_INDEX_FILE}, "1.4.0"),
        ({"version": "3"}, "1.4.1"),
    ],
)
def test_min_parser_version(extra, version):
    f = ms.AssociatedFile(name="f.txt", **extra)
    md = ms.ModelMetadata(subgraph_metadata=[ms.SubGraphMetadata(associated_files=[f])])
    assert ms.min_parser_version(md) == version
    audio = ms.Content(content_properties=ms.AudioProperties(sample_rate=16000, channels=1))
    md.subgraph_metadata[0].input_tensor_metadata = [ms.TensorMetadata(content=audio)]
    assert ms.min_parser_version(md) == max(version, "1.3.0")


def test_write_model_metadata_refuses_unnamed_files(tflite_float):
    md = ms.ModelMetadata(associated_files=[ms.AssociatedFile(name="vocab.txt")])
    with pytest.raises(MetadataError, match="vocab.txt"):
        M.write_model_metadata(tflite_float, md, {})
    data = M.write_model_metadata(tflite_float, md, {"vocab.txt": b"a\nb\n"})
    assert M.read_metadata(data)["associated_files"] == [{"name": "vocab.txt"}]


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"labels": DIGITS[:9]}, "9 labels given, but no output"),
        ({"input_mean": 127.5}, "needs both input_mean and input_std"),
        ({"input_mean": 0, "input_std": 0}, r"input_std \[0.0\] must be > 0"),
        ({"input_std": 0}, r"input_std \[0.0\] must be > 0"),  # the real problem, not "needs both"
        ({"input_mean": 0, "input_std": -1}, r"input_std \[-1.0\] must be > 0"),
        ({"input_mean": [1, 2, 3], "input_std": 1}, r"input_mean has 3 values, but input 0 .* 1 channel"),
        ({"input_mean": 0, "input_std": [1, 2]}, r"input_std has 2 values, but input 0 .* 1 channel"),
        ({"input_min": 5, "input_max": 1}, r"input_min \[5.0\] is greater than input_max \[1.0\]"),
        ({"output_min": [0, 2], "output_max": 1}, r"output_min \[0.0, 2.0\] is greater than output_max"),
        ({"input_mean": float("nan"), "input_std": 1}, "NaN or Inf"),
        ({"input_names": ["a", "b"]}, "2 input names given, but the model has 1"),
        ({"color_space": "cmyk"}, "not one of"),
        ({"labels": Path("/nonexistent/labels.txt")}, "does not exist"),
        ({"labels": Path("/")}, "labels file '/' is a directory"),
    ],
)
def test_write_errors_say_what_is_wrong(tflite_float, kwargs, message):
    with pytest.raises(MetadataError, match=message):
        M.write_metadata(tflite_float, **kwargs)


def test_valid_per_channel_and_range_values_are_accepted(tflite_float):
    data = M.write_metadata(tflite_float, input_mean=0, input_std=[16], input_min=0, input_max=[1.0])
    tensor = M.read_metadata(data)["subgraph_metadata"][0]["input_tensor_metadata"][0]
    assert tensor["process_units"][0]["options"] == {"mean": [0.0], "std": [16.0]}
    assert tensor["stats"] == {"max": [1.0], "min": [0.0]}


def test_written_files_get_the_normal_mode_and_keep_an_existing_one(tflite_float, tmp_path):
    import os
    import stat

    old = os.umask(0o027)
    try:
        out = tmp_path / "new.tflite"
        M.write_metadata(tflite_float, out, name="x")
        assert stat.S_IMODE(out.stat().st_mode) == 0o640  # 0o666 & ~umask, not mkstemp's 0600
        out.chmod(0o604)
        M.write_metadata(out, out, name="y")  # in place
        assert stat.S_IMODE(out.stat().st_mode) == 0o604
        assert M.read_metadata(out)["name"] == "y"
    finally:
        os.umask(old)


def test_metadata_naming_a_missing_file(tflite_float):
    md = ms.ModelMetadata(
        subgraph_metadata=[
            ms.SubGraphMetadata(
                output_tensor_metadata=[
                    ms.TensorMetadata(
                        associated_files=[
                            ms.AssociatedFile(
                                name="labels.txt", type=ms.AssociatedFileType.TENSOR_AXIS_LABELS
                            )
                        ]
                    )
                ]
            )
        ]
    )
    data = fbm.set_metadata_entry(tflite_float.read_bytes(), M.METADATA_ENTRY, ms.pack_metadata(md))
    with pytest.raises(MetadataError, match="names associated file 'labels.txt'"):
        M.labels_from_metadata(data)
    assert M.metadata_report(data).missing_files == ["labels.txt"]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\x00\x01", "at least 8 bytes"),
        (b"\x10\x00\x00\x00TFL3" + b"\x00" * 16, "expected b'M001'"),
        (b"\xff\xff\xff\x7fM001" + b"\x00" * 16, "outside"),
    ],
)
def test_corrupt_metadata_buffer_is_a_clear_error(tflite_float, payload, message):
    data = fbm.set_metadata_entry(tflite_float.read_bytes(), M.METADATA_ENTRY, payload)
    with pytest.raises(MetadataError, match=message) as info:
        M.read_metadata(data)
    assert "TFLITE_METADATA" in str(info.value)


def test_truncated_and_flipped_metadata_never_crash(third_party_models):
    raw = fbm.load_model(third_party_models / REAL[0]).metadata[M.METADATA_ENTRY]
    with pytest.raises(MetadataError):
        ms.unpack_metadata(raw[: len(raw) // 2])
    outcomes = set()
    for i in range(8, len(raw)):  # every byte after the identifier, one at a time
        corrupt = bytearray(raw)
        corrupt[i] ^= 0xFF
        try:
            ms.to_json(ms.unpack_metadata(bytes(corrupt)))
            outcomes.add("read")
        except MetadataError:
            outcomes.add("error")
    assert outcomes == {"read", "error"}  # flipped string bytes still read; broken offsets are refused


def test_not_a_model_is_a_model_error(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a model at all")
    with pytest.raises(ModelError):
        M.read_metadata(bad)


def test_works_without_tensorflow(no_tf_python, third_party_models, tmp_path):
    result = no_tf_python(
        f"""
        import json, sys
        from liteship.model.metadata import read_metadata, write_metadata, labels_from_metadata
        src = {str(third_party_models / REAL[0])!r}
        out = write_metadata(src, {str(tmp_path / "out.tflite")!r}, name="again", labels=labels_from_metadata(src),
                             input_mean=127.5, input_std=127.5)
        assert read_metadata(out)["name"] == "again"
        assert "tensorflow" not in sys.modules
        print(json.dumps(read_metadata(src)))
        """
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == expected_json(third_party_models, REAL[0])
