"""The deployability rule table, on hand-made model facts (no files needed)."""

from __future__ import annotations

import pytest

from liteship.errors import UsageError
from liteship.model.inspect import inspect_model
from liteship.model.targets import (
    TARGET_NAMES,
    TARGETS,
    ModelFacts,
    OpUse,
    check_target,
    resolve_targets,
)

F32 = frozenset({"float32"})
I8 = frozenset({"int8"})


def facts(
    *ops: OpUse, kind: str = "float32", subgraphs: int = 1, dynamic: tuple[str, ...] = ()
) -> ModelFacts:
    return ModelFacts(kind=kind, subgraphs=subgraphs, dynamic_shapes=dynamic, ops=ops)


def op(name: str, dtypes: frozenset[str] = F32, category: str = "builtin", fp16: bool = False) -> OpUse:
    return OpUse(name, category, dtypes, fp16)


CNN_F32 = (op("CONV_2D"), op("MAX_POOL_2D"), op("FULLY_CONNECTED"), op("SOFTMAX"))
CNN_I8 = (op("CONV_2D", I8), op("FULLY_CONNECTED", I8), op("SOFTMAX", I8))


def test_every_target_names_its_sources():
    for name, target in TARGETS.items():
        assert target.name == name
        assert target.sources and all(len(s) > 10 for s in target.sources)


def test_resolve_targets_all_default_dedup_and_unknown():
    assert resolve_targets(None) == TARGET_NAMES
    assert resolve_targets(["all"]) == TARGET_NAMES
    assert resolve_targets(["GPU", "gpu", "micro"]) == ("gpu", "micro")
    with pytest.raises(UsageError, match="tpu.*expected some of cpu"):
        resolve_targets(["tpu"])


@pytest.mark.parametrize("target", TARGET_NAMES)
def test_flex_op_blocks_every_target(target):
    v = check_target(facts(*CNN_I8, op("FlexErf", category="flex"), kind="full-int8"), target)
    assert v.verdict == "blocked"
    assert "FlexErf" in v.blocking_ops
    assert "Flex" in v.blocking_ops["FlexErf"]


def test_cpu_runs_every_builtin_but_not_unknown_custom_ops():
    assert check_target(facts(*CNN_F32, op("TILE"), op("SELECT")), "cpu").verdict == "ok"
    known = op("TFLite_Detection_PostProcess", category="custom")
    assert check_target(facts(*CNN_F32, known), "cpu").verdict == "ok"
    v = check_target(facts(*CNN_F32, op("MyOp", category="custom")), "cpu")
    assert v.verdict == "blocked" and "register" in v.blocking_ops["MyOp"]


def test_edgetpu_needs_full_int8():
    assert check_target(facts(*CNN_I8, kind="full-int8"), "edgetpu").verdict == "ok"
    for kind in ("float32", "float16", "dynamic-range", "int16x8"):
        v = check_target(facts(*CNN_F32, kind=kind), "edgetpu")
        assert v.verdict == "blocked", kind
        assert "8-bit" in v.reasons[0]


def test_edgetpu_static_shapes_and_one_subgraph():
    v = check_target(facts(*CNN_I8, kind="full-int8", dynamic=("input",)), "edgetpu")
    assert v.verdict == "blocked" and "static shapes" in v.reasons[0]
    v = check_target(facts(*CNN_I8, kind="full-int8", subgraphs=2), "edgetpu")
    assert v.verdict == "blocked" and "2 subgraphs" in v.reasons[0]


def test_dynamic_batch_blocks_edgetpu_but_not_micro():
    f = ModelFacts("full-int8", 1, (), CNN_I8, dynamic_batch=("input",))
    v = check_target(f, "edgetpu")
    assert v.verdict == "blocked" and "fixed batch size" in v.reasons[0]
    micro = check_target(f, "micro")
    assert micro.verdict == "ok" and not micro.reasons
    # ok, but never silently: the rule says tensor sizes are static, so the verdict says why this passes
    assert micro.notes and "ignores shape_signature" in micro.notes[0] and "input" in micro.notes[0]
    assert any("shape_signature is not read" in s for s in micro.sources)
    static = check_target(ModelFacts("full-int8", 1, (), CNN_I8), "micro")
    assert static.verdict == "ok" and static.notes == ()


def test_edgetpu_unsupported_op_falls_back_and_compiled_model_is_ok():
    v = check_target(facts(*CNN_I8, op("FLOOR_MOD", I8), kind="full-int8"), "edgetpu")
    assert v.verdict == "partial" and list(v.fallback_ops) == ["FLOOR_MOD"]
    compiled = facts(op("edgetpu-custom-op", I8, category="custom"), kind="full-int8")
    assert check_target(compiled, "edgetpu").verdict == "ok"
    assert check_target(compiled, "gpu").verdict == "blocked"


def test_gpu_op_set_runtime_dtypes_and_fp16_weights():
    assert check_target(facts(*CNN_F32), "gpu").verdict == "ok"
    v = check_target(facts(*CNN_F32, op("TILE")), "gpu")
    assert v.verdict == "partial" and "op set" in v.fallback_ops["TILE"]
    v = check_target(facts(op("ADD", frozenset({"int16"}))), "gpu")
    assert v.verdict == "partial" and "int16" in v.fallback_ops["ADD"]
    # float16 recipe: DEQUANTIZE of constant fp16 weights is folded by the delegate
    fp16 = facts(op("DEQUANTIZE", F32, fp16=True), *CNN_F32, kind="float16")
    assert check_target(fp16, "gpu").verdict == "ok"
    assert check_target(fp16, "xnnpack").verdict == "ok"


def test_xnnpack_quantized_ops_use_the_quantized_list():
    assert check_target(facts(*CNN_F32), "xnnpack").verdict == "ok"
    v = check_target(facts(*CNN_I8, kind="full-int8"), "xnnpack")
    assert v.verdict == "partial" and list(v.fallback_ops) == ["SOFTMAX"]
    v = check_target(facts(*CNN_F32, kind="dynamic-range"), "xnnpack")
    assert v.verdict == "partial" and "hybrid" in v.reasons[0]


def test_micro_has_no_fallback():
    assert check_target(facts(*CNN_I8, kind="full-int8"), "micro").verdict == "ok"
    v = check_target(facts(*CNN_I8, op("TILE", I8), kind="full-int8"), "micro")
    assert v.verdict == "blocked" and "TILE" in v.blocking_ops
    v = check_target(facts(op("CONV_2D", frozenset({"uint8"})), kind="full-int8"), "micro")
    assert v.verdict == "blocked" and "uint8" in v.blocking_ops["CONV_2D"]
    for kind in ("dynamic-range", "float16"):
        assert check_target(facts(*CNN_F32, kind=kind), "micro").verdict == "blocked"
    v = check_target(facts(*CNN_I8, kind="full-int8", dynamic=("x",)), "micro")
    assert v.verdict == "blocked"


def test_quantize_ops_are_exempt_from_dtype_checks():
    io = (
        op("QUANTIZE", frozenset({"uint8", "int8"})),
        *CNN_I8,
        op("DEQUANTIZE", frozenset({"int8", "float32"})),
    )
    v = check_target(facts(*io, kind="full-int8"), "micro")
    assert v.verdict == "ok", v.reasons


def test_verdict_to_dict_is_json_ready():
    d = check_target(facts(*CNN_F32, op("TILE")), "gpu").to_dict()
    assert d["verdict"] == "partial" and d["fallback_ops"] == {"TILE": "not in the GPU delegate op set"}
    assert d["target"] == "gpu" and d["sources"]


def _ops_left_on_cpu(path) -> set[str]:
    """Op types LiteRT's default XNNPACK delegate does NOT take, read from the interpreter's own graph:
    a node belongs to a partition when the DELEGATE kernel's outputs depend on it without passing
    through the kernel's inputs."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    interp.allocate_tensors()
    ops = interp._get_ops_details()
    producer = {t: op for op in ops if op["op_name"] != "DELEGATE" for t in op["outputs"]}
    inside: set[int] = set()
    for kernel in (op for op in ops if op["op_name"] == "DELEGATE"):
        stop, todo, seen = set(kernel["inputs"]), list(kernel["outputs"]), set()
        while todo:
            t = todo.pop()
            if t in seen or t in stop or t not in producer:
                continue
            seen.add(t)
            node = producer[t]
            inside.add(node["index"])
            todo += [i for i in node["inputs"] if i >= 0]
    return {op["op_name"] for op in ops if op["op_name"] != "DELEGATE" and op["index"] not in inside}


@pytest.mark.parametrize("model", ["int8", "float", "third_party_uint8"])
def test_xnnpack_verdict_matches_the_runtime(model, tflite_int8, tflite_float, third_party_models):
    path = {
        "int8": tflite_int8,
        "float": tflite_float,
        "third_party_uint8": third_party_models / "mobilenet_v1_0.25_224_quant.tflite",
    }[model]
    verdict = inspect_model(path, targets=["xnnpack"]).target("xnnpack")
    predicted = set(verdict.fallback_ops) | set(verdict.blocking_ops)
    assert predicted == _ops_left_on_cpu(path), verdict
