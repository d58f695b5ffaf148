"""CompiledModelRunner on real models, on the real CPU and (software Vulkan) GPU accelerators of LiteRT.

GPU tests need LiteRT's GPU accelerator to start (the ``gpu`` fixture skips, saying why, when it cannot).
Tolerances: the CPU accelerator runs the same XNNPACK kernels as the Interpreter, so float outputs agree
to 1e-5 and int8 outputs exactly. GPU kernels may compute in float16 (about 3 significant digits): the
digits CNN's softmax outputs, in 0..1, agree within 2e-3 absolute and keep every top-1 class.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from liteship.errors import InferenceError
from liteship.runtime import CompiledModelRunner, LiteRTRunner
from liteship.runtime.compiled import (
    AcceleratorError,
    open_runner,
    parse_accelerator,
    parse_placement_log,
)

MOBILENET = "mobilenet_v1_0.25_224_1_metadata_1.tflite"  # float32; LiteRT's GPU rejects its SQUEEZE
GPU_ATOL = 2e-3


@pytest.fixture(scope="module")
def tflite_fp16(saved_model_dir, tmp_path_factory):
    """The digits CNN with float16 weights (DEQUANTIZE ops in front of each weight), by TensorFlow."""
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.target_spec.supported_types = [tf.float16]
    p = tmp_path_factory.mktemp("fp16") / "digits_fp16.tflite"
    p.write_bytes(conv.convert())
    return p


def test_parse_accelerator():
    assert parse_accelerator("cpu,gpu") == ("gpu", "cpu")  # order does not matter: LiteRT's is fixed
    assert parse_accelerator(" GPU , cpu ,gpu") == ("gpu", "cpu")
    assert parse_accelerator("auto") == ("auto",)
    for bad in ("tpu", "", "auto,cpu"):
        with pytest.raises(AcceleratorError, match="expected one of cpu, gpu, npu"):
            parse_accelerator(bad)


def test_parse_placement_log():
    text = (
        "INFO: noise\nERROR: Following operations are not supported by GPU delegate:\n"
        "SQUEEZE: Operation is not supported.\nGATHER: Only 1D indices are supported.\n"
        "29 operations will run on the GPU, and the remaining 2 operations will run on the CPU.\n"
    )
    rejected, on_gpu, on_cpu = parse_placement_log(text)
    assert [(r.op, r.reason) for r in rejected] == [
        ("SQUEEZE", "Operation is not supported."),
        ("GATHER", "Only 1D indices are supported."),
    ]
    assert (on_gpu, on_cpu) == (29, 2)
    assert parse_placement_log("nothing here") == ((), None, None)


def test_cpu_matches_interpreter_float_and_int8(tflite_float, tflite_int8, digits):
    x = digits[2][:16]
    for model, exact in ((tflite_float, False), (tflite_int8, True)):
        with CompiledModelRunner(model, num_threads=1) as c, LiteRTRunner(model, num_threads=1) as i:
            assert c.accelerator == "cpu" and "CompiledModel" in c.backend
            assert [s.name for s in c.input_specs] == [s.name for s in i.input_specs]  # same tensor names
            assert c.input_specs == i.input_specs and c.output_specs == i.output_specs  # quantization too
            got, want = c.infer(x), i.infer(x)  # a batch of 16: one sample at a time (see the runner)
            assert list(got) == list(want)
            for k in want:
                if exact:
                    np.testing.assert_array_equal(got[k], want[k])
                else:
                    np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-6)


def test_raw_int8_io_and_feed_errors(tflite_int8, digits):
    with CompiledModelRunner(tflite_int8, raw=True) as r:
        (spec,) = r.input_specs
        with pytest.raises(InferenceError, match="dtype float32; expected int8"):
            r.infer(digits[2][:1])
        q = np.zeros((1, 8, 8, 1), np.int8)
        (out,) = r.infer(q).values()
        assert out.dtype == np.int8
        with pytest.raises(InferenceError, match="shape"):
            r.infer(np.zeros((1, 9, 9, 1), np.int8))


def test_signatures_and_dynamic_batch(tmp_path):
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
    p = tmp_path / "two.tflite"
    p.write_bytes(tf.lite.TFLiteConverter.from_concrete_functions(fns, m).convert())
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    with CompiledModelRunner(p, signature="scale") as r:
        assert set(r.signatures) == {"add", "scale"}
        assert [s.name for s in r.input_specs] == ["x"] and r.input_specs[0].shape == (-1, 3)
        np.testing.assert_array_equal(r.infer({"x": x})["scaled"], x * 2)  # a batch of 4, per sample
        np.testing.assert_array_equal(r.infer({"x": x[:1]})["scaled"], x[:1] * 2)
        assert any("one sample at a time" in w for w in r.warnings)
        with pytest.raises(InferenceError, match="compiled for inputs"):
            r.set_inputs({"x": x})  # the split path (bench) takes the compiled shapes only
    with CompiledModelRunner(p, signature="add") as r:
        np.testing.assert_array_equal(r.infer({"x": x, "y": x})["sum"], x + x)
    with pytest.raises(InferenceError, match="no signature 'nope'"):
        CompiledModelRunner(p, signature="nope")


def test_open_runner_picks_the_api(tflite_float):
    from liteship.errors import UsageError

    assert isinstance(open_runner(tflite_float), LiteRTRunner)
    assert isinstance(open_runner(tflite_float, accelerator="cpu"), CompiledModelRunner)
    with pytest.raises(UsageError, match="delegates apply to the Interpreter"):
        open_runner(tflite_float, accelerator="cpu", delegates=["x.so"])


@pytest.mark.parametrize("model", ["tflite_float", "tflite_fp16"])
def test_gpu_matches_cpu(gpu, model, request, digits):
    path = request.getfixturevalue(model)
    x = digits[2][:32]
    with CompiledModelRunner(path, accelerator=gpu) as g, CompiledModelRunner(path) as c:
        assert g.accelerator == "gpu" and g.is_fully_accelerated() is True
        assert g.asynchronous and not c.asynchronous
        got, want = g.infer(x), c.infer(x)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], atol=GPU_ATOL)
        np.testing.assert_array_equal(got[k].argmax(-1), want[k].argmax(-1))


def test_gpu_rejected_op_named_or_run_on_cpu(gpu, third_party_models):
    path = third_party_models / MOBILENET
    with pytest.raises(AcceleratorError) as err:
        CompiledModelRunner(path, accelerator="gpu")
    assert "rejects SQUEEZE (Operation is not supported)" in err.value.message
    assert "accelerator='gpu,cpu'" in (err.value.hint or "")
    x = np.random.default_rng(0).uniform(-1, 1, (1, 224, 224, 3)).astype(np.float32)
    with CompiledModelRunner(path, accelerator="gpu,cpu") as r, LiteRTRunner(path) as ref:
        assert r.accelerator == "gpu,cpu" and r.is_fully_accelerated() is False and r.fallback is None
        assert [o.op for o in r.placement.rejected] == ["SQUEEZE"]
        assert r.placement.accelerated_ops is not None and r.placement.cpu_ops == 2
        (got,), (want,) = r.infer(x).values(), ref.infer(x).values()
    np.testing.assert_allclose(got, want, atol=GPU_ATOL)


_NO_ICD = """
import sys
from liteship.runtime.compiled import AcceleratorError, CompiledModelRunner
r = CompiledModelRunner(sys.argv[1], accelerator="gpu,cpu")
print("accelerator", r.accelerator)
print("fallback", r.fallback)
r.infer(r.input_specs and __import__("numpy").zeros((1, 8, 8, 1), "float32"))
try:
    CompiledModelRunner(sys.argv[1], accelerator="gpu")
except AcceleratorError as e:
    print("error", e.message)
"""


def test_gpu_that_fails_to_start_falls_back_to_cpu(gpu, tflite_float):
    """No Vulkan driver (VK_ICD_FILENAMES naming nothing): LiteRT itself fails even with the CPU in the
    set; the runner compiles for the CPU alone and says why. In a subprocess: the loader reads it once."""
    env = {**os.environ, "VK_ICD_FILENAMES": "/nonexistent/icd.json"}
    out = subprocess.run(
        [sys.executable, "-c", _NO_ICD, str(tflite_float)], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines() if " " in line)
    assert lines["accelerator"] == "cpu"
    assert "failed to initialise" in lines["fallback"] and "No adapters found" in lines["fallback"]
    assert "gpu accelerator failed to initialise" in lines["error"]
