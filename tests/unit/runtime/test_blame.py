"""Blaming the ops an accelerator rejects by compiling pieces of the model (issue 15): the sub-models
are real models (they compute what the whole does), and on the GPU the bisection blames the op LiteRT
itself names."""

from __future__ import annotations

import json

import numpy as np

from liteship.model.flatbuffer import load_model
from liteship.runtime import LiteRTRunner
from liteship.runtime.blame import blame_ops, op_range_model, op_type

MOBILENET = "mobilenet_v1_0.25_224_1_metadata_1.tflite"  # LiteRT's GPU rejects its SQUEEZE (op #29)


def test_op_ranges_are_models_that_chain_to_the_whole(tflite_static, digits):
    loaded = load_model(tflite_static)
    n = len(loaded.model.subgraphs[0].operators)
    x = digits[2][:1]
    with LiteRTRunner(tflite_static) as whole:
        want = next(iter(whole.infer(x).values()))
    for cut in (1, n // 2, n - 1):
        with (
            LiteRTRunner(op_range_model(loaded, 0, cut)) as head,
            LiteRTRunner(op_range_model(loaded, cut, n)) as tail,
        ):
            mid = head.infer(x)
            assert {s.name for s in tail.input_specs} == set(mid)  # the tensors handed on, by name
            got = next(iter(tail.infer(mid).values()))
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_bisection_finds_every_op_that_fails_alone(tflite_static):
    # a real CPU compile of each piece, refused when the piece holds a given op type: the bisection must
    # name each op of that type, and only those
    from liteship.runtime.compiled import rejection_checker

    loaded = load_model(tflite_static)
    types = [op_type(loaded, i) for i in range(len(loaded.model.subgraphs[0].operators))]
    cpu = rejection_checker(("cpu",))
    seen: list[bytes] = []

    def check(data: bytes) -> str | None:
        seen.append(data)
        piece = load_model(data)
        ops = [op_type(piece, i) for i in range(len(piece.model.subgraphs[0].operators))]
        return cpu(data) or ("no CONV_2D here" if "CONV_2D" in ops else None)

    blamed = blame_ops(loaded, check)
    assert [b.index for b in blamed] == [i for i, t in enumerate(types) if t == "CONV_2D"] != []
    assert all(b.op == "CONV_2D" and b.reason == "no CONV_2D here" for b in blamed)
    assert len(seen) < 4 * len(types)  # bisection, not every range
    assert blame_ops(loaded, cpu) == ()  # the CPU takes every piece


_BLAME = """
from liteship.runtime.blame import blame_ops
from liteship.runtime.compiled import AcceleratorError, CompiledModelRunner, rejection_checker
blamed = blame_ops(sys.argv[1], rejection_checker(("gpu",)))  # the log is not read
try:
    CompiledModelRunner(sys.argv[1], accelerator="gpu")
    named = []
except AcceleratorError as e:
    named = [r.op for r in e.details["placement"].rejected]
print(json.dumps({"blamed": [[b.index, b.op] for b in blamed], "named": named}))
"""


def test_on_the_gpu_bisection_blames_the_op_litert_names(gpu, third_party_models, no_tf_python):
    prelude = f"import json, sys\nsys.argv[1:] = [{str(third_party_models / MOBILENET)!r}]\n"
    out = no_tf_python(prelude + _BLAME, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["named"] == ["SQUEEZE"]
    assert r["blamed"] == [[29, "SQUEEZE"]]
