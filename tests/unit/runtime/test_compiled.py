"""CompiledModelRunner on real models, on the real CPU and (software Vulkan) GPU accelerators of LiteRT.

GPU tests need LiteRT's GPU accelerator to start (the ``gpu`` fixture skips, saying why, when it cannot).
Tolerances: the CPU accelerator runs the same XNNPACK kernels as the Interpreter, so float outputs agree
to 1e-5 and int8 outputs exactly. GPU kernels may compute in float16 (about 3 significant digits): the
digits CNN's softmax outputs, in 0..1, agree within 2e-3 absolute and keep every top-1 class.
LiteRT 2.3's GPU accelerator crashes a process that has imported TensorFlow (this one has: the fixtures
convert with it), so GPU code runs in fresh processes that cannot import TensorFlow.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from liteship.errors import InferenceError
from liteship.runtime import CompiledModelRunner, LiteRTRunner
from liteship.runtime.compiled import AcceleratorError, parse_accelerator
from liteship.runtime.factory import open_runner
from liteship.runtime.placement import parse_placement_log

MOBILENET = "mobilenet_v1_0.25_224_1_metadata_1.tflite"  # float32; LiteRT's GPU rejects its SQUEEZE
GPU_ATOL = 2e-3


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


def _on_gpu(no_tf_python, code: str, *args: object, env: dict[str, str] | None = None) -> dict:
    """Run ``code`` with ``sys.argv[1:] = args`` in a process without TensorFlow; its last line is JSON."""
    prelude = f"import json, sys\nimport numpy as np\nsys.argv[1:] = {[str(a) for a in args]!r}\n"
    out = no_tf_python(prelude + code, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


_MATCH = """
from liteship.runtime import CompiledModelRunner
x, result = np.load(sys.argv[1]), {}
for path in sys.argv[2:]:
    with CompiledModelRunner(path, accelerator="gpu") as g, CompiledModelRunner(path) as c:
        got, want = g.infer(x), c.infer(x)
        result[path] = {
            "accelerator": g.accelerator, "full": g.is_fully_accelerated(), "async": [g.asynchronous, c.asynchronous],
            "max_abs": max(float(np.abs(got[k] - want[k]).max()) for k in want),
            "top1": all(bool((got[k].argmax(-1) == want[k].argmax(-1)).all()) for k in want),
        }
print(json.dumps(result))
"""


def test_gpu_matches_cpu_float32_and_float16(
    gpu, tflite_static, tflite_static_fp16, digits, tmp_path, no_tf_python
):
    np.save(tmp_path / "x.npy", digits[2][:32])
    got = _on_gpu(no_tf_python, _MATCH, tmp_path / "x.npy", tflite_static, tflite_static_fp16)
    for path in (tflite_static, tflite_static_fp16):
        r = got[str(path)]
        assert r["accelerator"] == "gpu" and r["full"] is True and r["async"] == [True, False]
        assert 0 <= r["max_abs"] <= GPU_ATOL and r["top1"], path.name


_REJECTED = """
from liteship.runtime import CompiledModelRunner, LiteRTRunner
from liteship.runtime.compiled import AcceleratorError
path, dynamic = sys.argv[1], sys.argv[2]
xs = np.random.default_rng(1).uniform(0, 1, (3, 8, 8, 1)).astype(np.float32)
with CompiledModelRunner(dynamic, accelerator="gpu") as d, LiteRTRunner(dynamic) as ref:
    got, want = next(iter(d.infer(xs).values())), next(iter(ref.infer(xs).values()))
    dynamic = {"accelerator": d.accelerator, "full": d.is_fully_accelerated(), "warnings": d.warnings,
               "shape": list(got.shape), "max_abs": float(np.abs(got - want).max())}
try:
    CompiledModelRunner(path, accelerator="gpu")
    error = hint = None
except AcceleratorError as e:
    error, hint = e.message, e.hint
x = np.random.default_rng(0).uniform(-1, 1, (1, 224, 224, 3)).astype(np.float32)
with CompiledModelRunner(path, accelerator="gpu,cpu") as r, LiteRTRunner(path) as ref:
    got, want = next(iter(r.infer(x).values())), next(iter(ref.infer(x).values()))
    p = r.placement
    print(json.dumps({
        "error": error, "hint": hint, "accelerator": r.accelerator, "full": r.is_fully_accelerated(),
        "fallback": r.fallback, "rejected": [o.op for o in p.rejected], "on_gpu": p.accelerated_ops,
        "on_cpu": p.cpu_ops, "max_abs": float(np.abs(got - want).max()), "dynamic": dynamic,
    }))
"""


def test_gpu_rejected_op_named_or_run_on_cpu(gpu, third_party_models, tflite_float, no_tf_python):
    r = _on_gpu(no_tf_python, _REJECTED, third_party_models / MOBILENET, tflite_float)
    # a -1 batch: the GPU takes static shapes only, so the runner compiles a batch-1 copy and says so;
    # a batch of 3 then runs sample by sample and matches the CPU interpreter
    d = r["dynamic"]
    assert d["accelerator"] == "gpu" and d["full"] is True and d["shape"] == [3, 10]
    assert any("dynamic batch" in w and "batch 1" in w for w in d["warnings"]), d["warnings"]
    assert d["max_abs"] <= GPU_ATOL
    assert "rejects SQUEEZE (Operation is not supported)" in r["error"]
    assert "accelerator='gpu,cpu'" in r["hint"]
    assert r["accelerator"] == "gpu,cpu" and r["full"] is False and r["fallback"] is None
    assert r["rejected"] == ["SQUEEZE"] and r["on_cpu"] == 2 and r["on_gpu"] > 20
    assert r["max_abs"] <= GPU_ATOL


_NO_ICD = """
from liteship.runtime.compiled import AcceleratorError, CompiledModelRunner
r = CompiledModelRunner(sys.argv[1], accelerator="gpu,cpu")
out = r.infer(np.zeros((1, 8, 8, 1), np.float32))
try:
    CompiledModelRunner(sys.argv[1], accelerator="gpu")
    error = None
except AcceleratorError as e:
    error = e.message
print(json.dumps({"accelerator": r.accelerator, "fallback": r.fallback, "warnings": r.warnings, "error": error}))
"""


def test_gpu_that_fails_to_start_falls_back_to_cpu(gpu, tflite_static, no_tf_python):
    """No Vulkan driver (VK_ICD_FILENAMES naming nothing): LiteRT itself fails even with the CPU in the
    set; the runner compiles for the CPU alone and says why."""
    r = _on_gpu(no_tf_python, _NO_ICD, tflite_static, env={"VK_ICD_FILENAMES": "/nonexistent/icd.json"})
    assert r["accelerator"] == "cpu"
    assert "failed to initialise" in r["fallback"] and "No adapters found" in r["fallback"]
    assert any("Running on the CPU alone" in w for w in r["warnings"])
    assert "gpu accelerator failed to initialise" in r["error"]


def test_gpu_refused_in_a_process_with_tensorflow(tflite_static):
    """Here TensorFlow is imported (the fixtures convert with it): starting the GPU would crash the process,
    so the runner refuses, and with the CPU in the set falls back to it."""
    import tensorflow  # noqa: F401

    with pytest.raises(AcceleratorError, match="imported TensorFlow"):
        CompiledModelRunner(tflite_static, accelerator="gpu")
    with CompiledModelRunner(tflite_static, accelerator="auto") as r:
        assert r.accelerator == "cpu" and "imported TensorFlow" in (r.fallback or "")
