"""Quantize → dequantize exactness on known scales, as TFLite's kernels compute it."""

from __future__ import annotations

import numpy as np
import pytest

from liteship.runtime.quant import dequantize, quantize


@pytest.mark.parametrize(
    ("x", "scale", "zp", "dtype", "want"),
    [
        # ties round half away from zero (std::round), not to even
        ([0.25, 0.75, 1.25, -0.25, -0.75, -1.25], 0.5, 0, "int8", [1, 2, 3, -1, -2, -3]),
        # just below a tie rounds down: float32 double rounding would give 1
        ([np.nextafter(np.float32(0.5), np.float32(0))], 1.0, 0, "int8", [0]),
        # zero point added after rounding, then clipped to the dtype
        ([0.0, 1.0, -1.0, 1000.0, -1000.0], 0.5, 10, "int8", [10, 12, 8, 127, -128]),
        ([0.0, -0.1, 1.0, 300.0], 1 / 128, 128, "uint8", [128, 115, 255, 255]),
        ([-1.0, 1.0, 2.5e4], 1.0, 0, "int16", [-1, 1, 25000]),
    ],
)
def test_quantize_known_values(x, scale, zp, dtype, want):
    q = quantize(np.asarray(x, np.float32), scale, zp, dtype)
    assert q.dtype == np.dtype(dtype)
    assert q.tolist() == want


def test_round_trip_is_exact_on_the_grid():
    scale, zp = 0.0078125, -3
    q = np.arange(-128, 128, dtype=np.int8)
    assert np.array_equal(quantize(dequantize(q, scale, zp), scale, zp, np.int8), q)


def test_dequantize_matches_formula():
    q = np.array([[-128, 0, 127]], np.int8)
    out = dequantize(q, 0.5, -128)
    assert out.dtype == np.float32
    assert out.tolist() == [[0.0, 64.0, 127.5]]


def test_quantize_matches_tflite_quantize_kernel():
    """Compare with TFLite's reference QUANTIZE kernel on exact .5 ties and their neighbours.

    Note: the optimized QUANTIZE kernel (the default resolver) computes rint(x * (1/scale)), i.e. rounds
    ties to even; the reference kernel, and liteship, round half away from zero. They differ by one step
    on exact ties only.
    """
    tf = pytest.importorskip("tensorflow")
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    x = np.zeros((1, 120), np.float32)

    @tf.function(input_signature=[tf.TensorSpec(x.shape, tf.float32)])
    def f(t):
        return tf.nn.relu6(t + 3.0)

    conv = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: iter([[np.full(x.shape, v, np.float32)] for v in (-1.3, 1.7)])
    it = Interpreter(
        model_content=conv.convert(),
        experimental_preserve_all_tensors=True,
        experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
    )
    it.allocate_tensors()
    (op,) = [o for o in it._get_ops_details() if o["op_name"] == "QUANTIZE"]
    out = op["outputs"][0]
    scale, zp = it._get_tensor_details(out, 0)["quantization"]
    # exact ties k + 0.5 (as far as float32 allows) and their float32 neighbours
    ties = ((np.arange(-60, 60) + 0.5) * scale).astype(np.float32)[:40]
    x = np.concatenate([ties, np.nextafter(ties, np.float32(9)), np.nextafter(ties, np.float32(-9))])
    x = x[None].astype(np.float32)
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    assert np.array_equal(quantize(x, scale, zp, np.int8), it.get_tensor(out))


def test_the_preallocated_quantizer_gives_quantizes_bytes():
    """Issue 22 (14): Runner.infer quantizes into buffers allocated once; same arithmetic, same bytes."""
    from liteship.runtime.quant import Quantizer

    rng = np.random.default_rng(0)
    edges = np.array([0.5, -0.5, 1.5, -1.5, 0.49999997, -0.49999997, 1e9, -1e9, 0.0, -0.0], np.float32)
    for scale, zp, dtype in ((0.0078125, -1, "int8"), (0.02, 128, "uint8"), (0.001, 3, "int16")):
        q = Quantizer(scale, zp, dtype)
        for x in (rng.normal(0, 2, (1, 224, 224, 3)).astype(np.float32), edges * scale, rng.normal(0, 1, 7)):
            got = q(x)
            want = quantize(x, scale, zp, dtype)
            assert got.dtype == want.dtype and got.tobytes() == want.tobytes(), (scale, zp, dtype, x.dtype)
        first = q(edges).copy()
        assert q(edges * 2) is q(edges) and np.array_equal(q(edges), first)  # one buffer, reused


def _paths_case(rng, dtype):
    """A scale, a zero point and inputs on every tie k + 0.5 of the dtype's range, the integers, and
    their float32 neighbours."""
    info = np.iinfo(dtype)
    scale = float(np.float32(10 ** rng.uniform(-4, 0)))
    zp = int(rng.integers(info.min, info.max + 1))
    k = np.arange(info.min - zp, info.max - zp)
    x = np.concatenate([(k + 0.5) * scale, k * scale]).astype(np.float32)
    return scale, zp, np.concatenate([x, np.nextafter(x, np.float32(9)), np.nextafter(x, np.float32(-9))])


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_every_path_of_the_quantizer_gives_quantizes_bytes(dtype):
    """Issue 22 (14): the integer passes (no clip, a clip on int16, a clip on floats) and the fallbacks
    (NaN, float64 feeds) give quantize()'s bytes, ties and the dtype's edges included."""
    from liteship.runtime.quant import Quantizer

    rng = np.random.default_rng(3)
    for _ in range(30):
        scale, zp, x = _paths_case(rng, dtype)
        q = Quantizer(scale, zp, dtype)
        assert q._fast
        wide = np.concatenate([x, x * 3])  # beyond the dtype: clipped on int16
        huge = np.concatenate([x, np.array([1e38, -1e38, np.inf, -np.inf, 1e-45, -0.0], np.float32)])
        for feed in (x, wide, huge, x.astype(np.float64)):
            want = quantize(feed, scale, zp, dtype)
            assert q(feed).tobytes() == want.tobytes(), (scale, zp, feed.dtype)
        with np.errstate(invalid="ignore"):  # quantize()'s cast of a NaN warns
            want = quantize(np.append(x, np.nan), scale, zp, dtype)
        assert q(np.append(x, np.nan)).tobytes() == want.tobytes()


def test_the_quantizer_writes_into_a_given_array_and_refuses_another_shape():
    from liteship.runtime.quant import Quantizer

    q = Quantizer(0.5, 3, "int8")
    x = np.array([[0.25, -0.25, 1000.0, -2.5]], np.float32)
    target = np.zeros((1, 4), np.int8)
    assert q(x, out=target) is target and target.tolist() == [[4, 2, 127, -2]]
    with pytest.raises(ValueError, match="expected"):
        q(x, out=np.zeros((4,), np.int8))
    with pytest.raises(ValueError, match="expected"):
        q(x, out=np.zeros((1, 4), np.uint8))
    # no integer shortcut where it cannot be exact: the scalar's half underflows, the dtype is 16-bit
    assert not Quantizer(1e-38, 0, "int8")._fast and not Quantizer(0.5, 0, "int16")._fast
    assert q(np.zeros((0, 4), np.float32)).shape == (0, 4)  # nothing to reduce: quantize()'s passes


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_the_quantizer_clips_exactly_where_the_extremes_cross_a_bound(dtype):
    """Issue 22 (14): the clip is skipped, one-sided or two-sided from the extremes' float32 quotients;
    extremes on and around ``2L - 1``, ``2L``, ``2B``, ``2B + 1`` (in units of scale/2) give quantize()'s
    bytes either way."""
    from liteship.runtime.quant import Quantizer

    rng = np.random.default_rng(5)
    info = np.iinfo(dtype)
    for _ in range(20):
        scale = float(np.float32(10 ** rng.uniform(-4, 0)))
        zp = int(rng.integers(info.min, info.max + 1))
        q = Quantizer(scale, zp, dtype)
        h = np.float32(scale) / np.float32(2)
        base = (rng.uniform(-0.5, 0.5, 16) * scale).astype(np.float32)
        for bound in (2 * (info.min - zp), 2 * (info.max - zp)):
            for off in (-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5):
                v = np.float32((bound + off) * h)
                near = [v, *(np.nextafter(v, np.float32(s * np.inf)) for s in (1, -1))]
                for e in near:
                    for feed in (np.append(base, e), np.append(base, [e, -e])):
                        feed = feed.astype(np.float32)
                        want = quantize(feed, scale, zp, dtype)
                        assert q(feed).tobytes() == want.tobytes(), (scale, zp, float(e))
