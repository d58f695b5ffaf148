"""The agent on an accelerator: the smoke test runs there, and a GPU that cannot start falls back to the
CPU (logged, reported), never a crash or a rollback. GPU code runs in processes without TensorFlow
(LiteRT 2.3's GPU accelerator crashes next to it); no Vulkan driver is simulated with VK_ICD_FILENAMES."""

from __future__ import annotations

import json

from agent_test_helpers import build

_SMOKE = """
import json, os, sys
from liteship.package import smoke_test
from liteship.runtime.factory import device_runner
lsp, key, model = sys.argv[1:4]
r = smoke_test(lsp, public_key=key, num_threads=1, accelerator="gpu,cpu")
out = {"ok": r.ok, "failures": list(r.failures), "backend": r.backend}
if os.environ.get("VK_ICD_FILENAMES"):
    runner, why = device_runner(model, accelerator="gpu")
    out.update(runner=type(runner).__name__, why=why)
print(json.dumps(out))
"""


def _smoke(no_tf_python, *args, env=None) -> dict:
    prelude = f"import sys\nsys.argv[1:] = {[str(a) for a in args]!r}\n"
    out = no_tf_python(prelude + _SMOKE, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_smoke_test_on_the_gpu_and_fallback_when_it_cannot_start(
    gpu, tflite_static, keys, golden, tmp_path, no_tf_python
):
    lsp = build(tflite_static.read_bytes(), tmp_path, "1.0.0", keys.private_path, golden)
    r = _smoke(no_tf_python, lsp, keys.public_path, tflite_static)
    assert r["ok"], r["failures"]  # golden outputs within the package's tolerance on the GPU
    assert r["backend"].endswith("CompiledModel on gpu,cpu")
    r = _smoke(
        no_tf_python, lsp, keys.public_path, tflite_static, env={"VK_ICD_FILENAMES": "/nonexistent/icd.json"}
    )
    assert r["ok"], r["failures"]  # the update is not refused: the model ran, on the CPU
    assert "CompiledModel on cpu" in r["backend"] and "No adapters found" in r["backend"]
    assert r["runner"] == "LiteRTRunner" and "failed to initialise" in r["why"]
