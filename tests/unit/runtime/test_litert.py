"""LiteRTRunner on real models: float and int8 I/O, feed errors, batching, raw mode, signatures."""

from __future__ import annotations

import numpy as np
import pytest

from liteship.errors import InferenceError
from liteship.runtime import LiteRTRunner, dequantize, quantize

MOBILENET_QUANT = "mobilenet_v1_0.25_224_quant.tflite"


@pytest.fixture(scope="module")
def two_signature_model(tmp_path_factory):
    """A tiny model with signatures 'add' (x, y) and 'scale' (x), converted by TensorFlow."""
    tf = pytest.importorskip("tensorflow")

    class M(tf.Module):
        @tf.function(
            input_signature=[tf.TensorSpec([None, 3], tf.float32), tf.TensorSpec([None, 3], tf.float32)]
        )
        def add(self, x, y):
            return {"sum": x + y}

        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32)])
        def scale(self, x):
            return {"scaled": x * 2.0}

    m = M()
    fns = [m.add.get_concrete_function(), m.scale.get_concrete_function()]
    conv = tf.lite.TFLiteConverter.from_concrete_functions(fns, m)
    p = tmp_path_factory.mktemp("sig") / "two_signatures.tflite"
    p.write_bytes(conv.convert())
    return p


def test_float_model_matches_raw_interpreter(tflite_float, digits):
    from ai_edge_litert.interpreter import Interpreter

    x = digits[2][:1]
    it = Interpreter(model_path=str(tflite_float))
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    want = it.get_tensor(it.get_output_details()[0]["index"])
    with LiteRTRunner(tflite_float, num_threads=1) as r:
        assert r.backend.startswith("ai-edge-litert")
        (got,) = r.infer(x).values()
        # positional shortcut and a sample without its batch dimension
        (got2,) = r.infer(x[0]).values()
    np.testing.assert_allclose(got, want, rtol=1e-6)
    np.testing.assert_array_equal(got, got2)


def test_int8_model_quantizes_feed_and_dequantizes_output(tflite_int8, tflite_float, digits):
    x = digits[2][:8]
    with LiteRTRunner(tflite_int8, num_threads=1) as r, LiteRTRunner(tflite_float, num_threads=1) as f:
        (inp,), (out,) = r.input_specs, r.output_specs
        assert inp.dtype == "int8" and inp.quantized and out.quantized
        (probs,) = r.infer(x).values()
        assert probs.dtype == np.float32 and probs.shape == (8, 10)
        (ref,) = f.infer(x).values()
        assert (probs.argmax(1) == ref.argmax(1)).mean() >= 0.75
        # the same thing by hand with the model's own parameters
        with LiteRTRunner(tflite_int8, num_threads=1, raw=True) as raw:
            (q,) = raw.infer(quantize(x, inp.scale, inp.zero_point, np.int8)).values()
        assert q.dtype == np.int8
        np.testing.assert_array_equal(probs, dequantize(q, out.scale, out.zero_point))


def test_raw_mode_rejects_float_feed(tflite_int8, digits):
    with (
        LiteRTRunner(tflite_int8, raw=True) as r,
        pytest.raises(InferenceError, match="dtype float32; expected int8"),
    ):
        r.infer(digits[2][:1])


@pytest.mark.parametrize(
    ("feed", "match"),
    [
        (
            lambda name: {"nope": np.zeros((1, 8, 8, 1), np.float32)},
            r"unknown: \['nope'\].*Expected inputs: ",
        ),
        (
            lambda name: {name: np.zeros((1, 7, 8, 1), np.float32)},
            r"shape \[1, 7, 8, 1\]; expected \[-1, 8, 8, 1\]",
        ),
        (lambda name: {name: np.zeros((8, 8), np.float32)}, r"shape \[8, 8\]"),
        (lambda name: {name: np.zeros((1, 8, 8, 1), np.int16)}, r"dtype int16; expected int8"),
        (lambda name: {name: np.full((1, 8, 8, 1), "a")}, r"dtype <U1"),
        (lambda name: [np.zeros((1, 8, 8, 1))] * 2, r"got 2 arrays for a model with 1 inputs"),
    ],
)
def test_feed_errors_list_expected_inputs(tflite_int8, feed, match):
    with LiteRTRunner(tflite_int8) as r:
        with pytest.raises(InferenceError, match=match) as e:
            r.infer(feed(r.input_specs[0].name))
        assert r.input_specs[0].describe() in str(e.value)
        # the runner still works after a rejected feed
        assert r.infer(np.zeros((1, 8, 8, 1), np.float32))


def test_batch_by_resize(tflite_float, digits):
    x = digits[2][:5]
    with LiteRTRunner(tflite_float, num_threads=1) as r:
        (batched,) = r.infer(x).values()
        singles = np.concatenate([next(iter(r.infer(s[None]).values())) for s in x])
        assert r.warnings == []  # resized, no per-sample loop
    np.testing.assert_allclose(batched, singles, rtol=1e-5, atol=1e-6)


def test_batch_by_loop_when_resize_fails(third_party_models):
    """XNNPACK cannot reshape this static-batch model: the runner must recover and loop."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
    with LiteRTRunner(third_party_models / MOBILENET_QUANT, num_threads=1, raw=True) as r:
        (batched,) = r.infer(x).values()
        assert batched.shape == (3, 1001)
        assert any("one sample at a time" in w for w in r.warnings)
        singles = [next(iter(r.infer(s).values())) for s in x]
        assert len(r.warnings) == 1  # decided once
        (again,) = r.infer(x[:2]).values()
    np.testing.assert_array_equal(batched, np.concatenate(singles))
    np.testing.assert_array_equal(again, batched[:2])


def test_signatures(two_signature_model):
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    with LiteRTRunner(two_signature_model, signature="add") as r:
        assert sorted(r.signatures) == ["add", "scale"]
        assert sorted(s.name for s in r.input_specs) == ["x", "y"]
        assert r.infer({"x": x, "y": x})["sum"].tolist() == (2 * x).tolist()
    with LiteRTRunner(two_signature_model, signature="scale") as r:
        assert [s.name for s in r.output_specs] == ["scaled"]
        np.testing.assert_array_equal(r.infer(x)["scaled"], 2 * x)
        np.testing.assert_array_equal(r.infer(x[:1])["scaled"], 2 * x[:1])
    with pytest.raises(InferenceError, match=r"no signature 'mul'; it has \['add', 'scale'\]"):
        LiteRTRunner(two_signature_model, signature="mul")
    with LiteRTRunner(two_signature_model) as r:
        assert any("2 signatures" in w for w in r.warnings)


def test_xnnpack_switch_and_delegate_summary(third_party_models):
    path = third_party_models / MOBILENET_QUANT
    with LiteRTRunner(path, num_threads=1) as r:
        (xnn,) = r.delegate_summary()
        assert xnn.name == "XNNPACK" and xnn.total_nodes == 31 and 0 < xnn.nodes <= 31
        assert xnn.partitions >= 1
    with LiteRTRunner(path, num_threads=1, use_xnnpack=False) as r:
        assert r.delegate_summary() == []
        (y,) = r.infer(np.zeros((1, 224, 224, 3), np.float32)).values()
        assert y.shape == (1, 1001)


def test_closed_runner_says_so(tflite_float):
    r = LiteRTRunner(tflite_float)
    r.close()
    with pytest.raises(InferenceError, match="closed"):
        r.infer(np.zeros((1, 8, 8, 1), np.float32))


def test_set_inputs_invoke_get_outputs_equal_infer(tflite_float, tflite_int8, digits):
    x = digits[2][:4]
    for path in (tflite_float, tflite_int8):  # the int8 model quantizes the float feed, as infer does
        with LiteRTRunner(path, num_threads=1) as r:
            want = r.infer(x[:1])
            r.set_inputs(x[0])  # one rank short gets a batch of 1, as in infer
            r.invoke()
            got = r.get_outputs()
            assert list(got) == list(want)
            for name in want:
                np.testing.assert_array_equal(got[name], want[name])
            r.invoke()  # again on the same inputs, nothing set in between
            np.testing.assert_array_equal(r.get_outputs()[name], want[name])
            r.set_inputs(x)  # another batch size: resized
            r.invoke()
            np.testing.assert_array_equal(r.get_outputs()[name], r.infer(x)[name])


def test_split_inference_on_a_signature(two_signature_model):
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    with LiteRTRunner(two_signature_model, signature="add") as r:
        r.set_inputs({"x": x, "y": 3 * x})
        r.invoke()
        assert r.get_outputs()["sum"].tolist() == (4 * x).tolist()
        r.set_inputs({"x": x[:1], "y": x[:1]})
        r.invoke()
        assert r.get_outputs()["sum"].tolist() == (2 * x[:1]).tolist()
        assert r.infer({"x": x, "y": x})["sum"].tolist() == (2 * x).tolist()  # infer still works


def test_split_inference_errors(tflite_int8, third_party_models):
    with LiteRTRunner(tflite_int8, raw=True) as r:
        with pytest.raises(InferenceError, match="no inputs are set"):
            r.invoke()
        with pytest.raises(InferenceError, match="no inputs are set"):
            r.get_outputs()
        with pytest.raises(InferenceError, match="dtype float32; expected int8"):
            r.set_inputs(np.zeros((1, 8, 8, 1), np.float32))
        r.set_inputs(np.zeros((1, 8, 8, 1), np.int8))
        r.invoke()
    with pytest.raises(InferenceError, match="closed"):
        r.invoke()
    with pytest.raises(InferenceError, match="closed"):
        r.set_inputs(np.zeros((1, 8, 8, 1), np.int8))
    # a batch the model cannot be resized to: an error (infer would loop), and the runner still works
    x = np.zeros((3, 224, 224, 3), np.uint8)
    with LiteRTRunner(third_party_models / MOBILENET_QUANT, num_threads=1, raw=True) as r:
        with pytest.raises(InferenceError, match=r"does not accept inputs of shapes .*\[3, 224, 224, 3\]"):
            r.set_inputs(x)
        with pytest.raises(InferenceError, match="no inputs are set"):
            r.invoke()
        r.set_inputs(x[:1])
        r.invoke()
        (y,) = r.get_outputs().values()
        assert y.shape == (1, 1001)


def test_runtime_runs_without_tensorflow(no_tf_python, tflite_int8):
    res = no_tf_python(f"""
        import numpy as np
        from liteship.runtime import LiteRTRunner
        with LiteRTRunner({str(tflite_int8)!r}) as r:
            (y,) = r.infer(np.zeros((2, 8, 8, 1), np.float32)).values()
        assert "tensorflow" not in sys.modules and "keras" not in sys.modules
        print(r.backend, y.shape, y.dtype)
    """)
    assert res.returncode == 0, res.stderr
    assert "ai-edge-litert" in res.stdout and "(2, 10) float32" in res.stdout


def _kernel_quantize(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """LiteRT's optimized QUANTIZE kernel (XNNPACK's too): rint(x * (1/scale)) + zp, ties to even."""
    q = np.rint(x.astype(np.float32) * (np.float32(1) / np.float32(scale))) + zero_point
    return np.clip(q, -128, 127).astype(np.int8)


def test_float_feeds_are_quantized_by_litert_in_the_graph(tflite_int8, digits):
    """Issue 22 (14): the interpreter runs a float-input copy whose QUANTIZE op quantizes the feed; call
    after call the outputs are those of a raw run on the kernel's bytes (ties to even), and differ from
    quantize()'s (ties away from zero) only where the feed sits exactly halfway between two steps."""
    xs = [digits[2][i : i + 1] for i in range(8)]
    xs.append(digits[2][:1] * 50.0)  # beyond the input's range: clipped
    with (
        LiteRTRunner(tflite_int8, num_threads=1) as r,
        LiteRTRunner(tflite_int8, num_threads=1, raw=True) as raw,
    ):
        (inp,), (out,) = r.input_specs, r.output_specs
        assert (inp.dtype, inp.scale, inp.zero_point) == (
            "int8",
            raw.input_specs[0].scale,
            raw.input_specs[0].zero_point,
        )
        k = np.arange(64, dtype=np.float32).reshape(1, 8, 8, 1) - inp.zero_point - 32
        xs.append(((k + np.float32(0.5)) * np.float32(inp.scale)).astype(np.float32))  # exact ties
        ties = 0
        for x in xs:
            (got,) = r.infer(x).values()
            q = _kernel_quantize(x, inp.scale, inp.zero_point)
            (want,) = raw.infer(q).values()
            np.testing.assert_array_equal(got, dequantize(want, out.scale, out.zero_point))
            away = quantize(x, inp.scale, inp.zero_point, np.int8)
            halfway = np.abs(x / np.float32(inp.scale) % 1 - 0.5) < 1e-6
            assert np.all((away == q) | halfway)
            ties += int((away != q).sum())
        assert ties > 0  # the digits sit on ties: the two roundings are told apart here
        (y,) = r.infer(np.full((1, 8, 8, 1), np.nan, np.float32)).values()  # a NaN runs (the kernel's bytes)
        assert y.shape == (1, 10)


def test_integer_feeds_reach_the_quantized_tensor_unchanged(tflite_int8, digits):
    """Every int8 value fed to a non-raw runner (whose graph quantizes floats) gives the raw run's outputs."""
    with (
        LiteRTRunner(tflite_int8, num_threads=1) as r,
        LiteRTRunner(tflite_int8, num_threads=1, raw=True) as raw,
    ):
        (out,) = r.output_specs
        values = np.arange(-128, 128, dtype=np.int16).astype(np.int8)
        for start in range(0, 256, 64):
            q = np.resize(values[start : start + 64], (1, 8, 8, 1))
            (got,) = r.infer(q).values()
            (want,) = raw.infer(q).values()
            np.testing.assert_array_equal(got, dequantize(want, out.scale, out.zero_point))


def test_infers_fast_path_equals_the_checked_one(tflite_int8, tflite_float, digits):
    """Issue 22 (14): one array of the allocated shape skips check_feed; a dict, a list, another dtype,
    a sample without its batch dimension or a new batch size take the checked way, to the same outputs."""
    x = digits[2][:1]
    with (
        LiteRTRunner(tflite_int8, num_threads=1) as r,
        LiteRTRunner(tflite_int8, num_threads=1, raw=True) as raw,
        LiteRTRunner(tflite_float, num_threads=1) as f,
    ):
        (inp,) = r.input_specs
        q = quantize(x, inp.scale, inp.zero_point, np.int8)
        for runner, feed in ((r, x), (raw, q), (f, x)):
            name = runner.input_specs[0].name
            (fast,) = runner.infer(feed).values()
            for other in ({name: feed}, [feed], feed[0], np.concatenate([feed, feed])[:1]):
                (got,) = runner.infer(other).values()
                np.testing.assert_array_equal(got, fast)
            (batched,) = runner.infer(np.concatenate([feed, feed])).values()  # resized: the fast path follows
            (again,) = runner(np.concatenate([feed, feed])).values()
            np.testing.assert_array_equal(batched, again)
        (as64,) = r.infer(x.astype(np.float64)).values()  # not float32: checked, then quantized alike
        np.testing.assert_array_equal(as64, next(iter(r.infer(x).values())))
        with pytest.raises(InferenceError, match="no elements"):
            r.infer(np.zeros((0, 8, 8, 1), np.float32))
