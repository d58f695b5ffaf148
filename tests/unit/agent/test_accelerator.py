"""The agent on an accelerator: the smoke test runs there, and a GPU that cannot start falls back to the
CPU (logged, reported), never a crash or a rollback. GPU code runs in processes without TensorFlow
(LiteRT 2.3's GPU accelerator crashes next to it); no Vulkan driver is simulated with VK_ICD_FILENAMES."""

from __future__ import annotations

import json

from agent_test_helpers import build

_SMOKE = """
import json, sys
from liteship.package import smoke_test
from liteship.runtime.compiled import device_runner
r = smoke_test(sys.argv[1], public_key=sys.argv[2], num_threads=1, accelerator="gpu,cpu")
runner, why = device_runner(sys.argv[3], accelerator="gpu")
print(json.dumps({"ok": r.ok, "failures": list(r.failures), "backend": r.backend,
                  "runner": type(runner).__name__, "why": why}))
"""


def test_gpu_that_fails_to_start_falls_back_in_smoke_test_and_runner(
    gpu, packages, keys, tflite_static, no_tf_python
):
    env = {"VK_ICD_FILENAMES": "/nonexistent/icd.json"}
    out = no_tf_python(
        "import sys\nsys.argv[1:] = "
        + repr([str(packages["1.0.0"]), str(keys.public_path), str(tflite_static)])
        + "\n"
        + _SMOKE,
        timeout=300,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["ok"], r["failures"]  # the update is not refused: the model ran, on the CPU
    assert "CompiledModel on cpu" in r["backend"] and "No adapters found" in r["backend"]
    assert r["runner"] == "LiteRTRunner" and "failed to initialise" in r["why"]


def test_smoke_test_runs_on_the_gpu(gpu, tflite_static, keys, golden, tmp_path, no_tf_python):
    code = """
import json, sys
from liteship.package import smoke_test
r = smoke_test(sys.argv[1], public_key=sys.argv[2], num_threads=1, accelerator="gpu,cpu")
print(json.dumps({"ok": r.ok, "failures": list(r.failures), "backend": r.backend}))
"""
    lsp = build(tflite_static.read_bytes(), tmp_path, "1.0.0", keys.private_path, golden)
    out = no_tf_python(
        "import sys\nsys.argv[1:] = " + repr([str(lsp), str(keys.public_path)]) + "\n" + code,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["ok"], r["failures"]  # golden outputs within the package's tolerance on the GPU
    assert r["backend"].endswith("CompiledModel on gpu,cpu")
