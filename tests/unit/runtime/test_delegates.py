"""Delegate failures: a missing library, a library that is no delegate, a delegate that fails; fallback."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from liteship.errors import DelegateError
from liteship.runtime import DelegateSpec, LiteRTRunner

FAKE_DELEGATE_C = r"""
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
/* TfLiteDelegate's layout: data_, Prepare, CopyFromBufferHandle, CopyToBufferHandle, FreeBufferHandle,
   flags, opaque_delegate_builder. Prepare returning 0 takes no nodes; returning 1 fails to apply. */
typedef struct D { void* data; int (*prepare)(void*, struct D*); void* a; void* b; void* c; int64_t flags; void* o; } D;
static int ok(void* ctx, D* d) { return 0; }
static int fail(void* ctx, D* d) { return 1; }
D* tflite_plugin_create_delegate(char** k, char** v, size_t n, void (*report)(const char*)) {
  int bad = 0;
  for (size_t i = 0; i < n; i++) {
    if (!strcmp(k[i], "mode") && !strcmp(v[i], "refuse")) { report("fake: refusing to start"); return NULL; }
    if (!strcmp(k[i], "mode") && !strcmp(v[i], "fail")) bad = 1;
  }
  D* d = calloc(1, sizeof(D));
  d->prepare = bad ? fail : ok;
  return d;
}
void tflite_plugin_destroy_delegate(D* d) { free(d); }
"""


@pytest.fixture(scope="module")
def fake_delegate(tmp_path_factory):
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed: cannot build the test delegate library")
    d = tmp_path_factory.mktemp("delegate")
    (d / "fake.c").write_text(FAKE_DELEGATE_C)
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(d / "libfake.so"), str(d / "fake.c")], check=True)
    return str(d / "libfake.so")


@pytest.fixture(scope="module")
def not_a_delegate(tmp_path_factory):
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed: cannot build a plain shared library")
    d = tmp_path_factory.mktemp("plain")
    (d / "plain.c").write_text("int answer(void) { return 42; }\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(d / "libplain.so"), str(d / "plain.c")], check=True)
    return str(d / "libplain.so")


def test_missing_library(tflite_float, tmp_path):
    with pytest.raises(DelegateError, match="cannot load delegate library .*missing.so.*delegate_fallback"):
        LiteRTRunner(tflite_float, delegates=[tmp_path / "missing.so"])


def test_library_without_delegate_interface(tflite_float, not_a_delegate):
    with pytest.raises(
        DelegateError, match="is not a TFLite external delegate: it lacks tflite_plugin_create"
    ):
        LiteRTRunner(tflite_float, delegates=[not_a_delegate])


def test_delegate_refuses_options(tflite_float, fake_delegate):
    with pytest.raises(
        DelegateError, match=r"failed to initialise with options \{'mode': 'refuse'\}.*refusing"
    ):
        LiteRTRunner(tflite_float, delegates=[(fake_delegate, {"mode": "refuse"})])


def test_delegate_fails_to_apply(tflite_float, fake_delegate):
    with pytest.raises(DelegateError, match="libfake.so could not be applied to the model"):
        LiteRTRunner(tflite_float, delegates=[DelegateSpec(fake_delegate, {"mode": "fail"})])


@pytest.mark.parametrize("mode", ["refuse", "fail"])
def test_fallback_runs_on_cpu(tflite_float, fake_delegate, mode):
    with LiteRTRunner(tflite_float, delegates=[(fake_delegate, {"mode": mode})], delegate_fallback=True) as r:
        assert len(r.warnings) == 1 and "libfake.so" in r.warnings[0] and "delegate_fallback" in r.warnings[0]
        assert [u.name for u in r.delegate_summary()] == ["XNNPACK"]
        (y,) = r.infer(np.zeros((1, 8, 8, 1), np.float32)).values()
    assert y.shape == (1, 10)


def test_working_delegate_is_counted(third_party_models, fake_delegate):
    # A static-shape model: delegates without the dynamic-tensor flag refuse dynamic batch models.
    path = third_party_models / "mobilenet_v1_0.25_224_quant.tflite"
    with LiteRTRunner(path, num_threads=1, delegates=[fake_delegate]) as r:
        fake, xnn = r.delegate_summary()
        assert (fake.name, fake.nodes, fake.partitions) == ("libfake.so", 0, 0)
        assert xnn.name == "XNNPACK" and xnn.nodes > 0
        assert r.warnings == []


def test_relative_path_to_an_existing_library_loads(third_party_models, fake_delegate, monkeypatch):
    # dlopen("libfake.so") searches the library path, not the working directory: the file must still load
    from pathlib import Path

    lib = Path(fake_delegate)
    monkeypatch.chdir(lib.parent)
    path = third_party_models / "mobilenet_v1_0.25_224_quant.tflite"
    for given in (lib.name, f"./{lib.name}"):
        with LiteRTRunner(path, num_threads=1, delegates=[given]) as r:
            assert r.delegate_summary()[0].name == "libfake.so"


def test_relative_path_to_a_non_library_names_the_real_problem(tflite_float, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "random.tflite").write_bytes(tflite_float.read_bytes())
    with pytest.raises(DelegateError, match="invalid ELF header") as e:
        LiteRTRunner(tflite_float, delegates=["random.tflite"])
    assert "cannot open shared object file" not in str(e.value)
    with pytest.raises(DelegateError, match="is a directory"):
        LiteRTRunner(tflite_float, delegates=["."])
