import pytest

from liteship.errors import UsageError
from liteship.pipeline.config import load_config
from liteship.pipeline.select import Candidate, select_variant
from liteship.report.pareto import pareto_front

VARIANTS = [
    Candidate("none", size_bytes=4_000_000, p50_ms=10.0, accuracy_drop=0.0, agreement=1.0),
    Candidate("float16", size_bytes=2_000_000, p50_ms=10.5, accuracy_drop=0.0, agreement=1.0),
    Candidate("dynamic", size_bytes=1_000_000, p50_ms=6.0, accuracy_drop=0.3, agreement=0.995),
    Candidate("int8", size_bytes=1_050_000, p50_ms=4.0, accuracy_drop=2.5, agreement=0.96),
]


def test_fastest_passing_variant_is_chosen():
    sel = select_variant(VARIANTS, max_accuracy_drop=1.0, min_agreement=0.99)
    assert sel.chosen == "dynamic"
    assert sel.failures_by_recipe.keys() == {"int8"}
    assert any("accuracy drop 2.50" in f for f in sel.failures_by_recipe["int8"])
    assert any("agreement 0.9600 < min_agreement 0.99" in f for f in sel.failures_by_recipe["int8"])


def test_size_objective_and_size_gate():
    assert select_variant(VARIANTS, objective="size", max_accuracy_drop=5).chosen == "dynamic"
    sel = select_variant(VARIANTS, objective="latency", max_accuracy_drop=5, max_size_mb=1.02)
    assert sel.chosen == "dynamic"  # int8 is faster but 1.05 MB


def test_nothing_passes_lists_every_gate_per_variant():
    sel = select_variant(VARIANTS, max_latency_ms=1.0, max_size_mb=0.5)
    assert sel.chosen is None
    assert set(sel.failures_by_recipe) == {v.recipe for v in VARIANTS}
    assert all(len(f) == 2 for f in sel.failures_by_recipe.values())


def test_missing_latency_fails_a_latency_gate():
    sel = select_variant([Candidate("none", size_bytes=10)], max_latency_ms=5)
    assert sel.chosen is None and "not measured" in sel.verdicts[0].failures[0]


def test_pareto_front():
    pts = [("a", 10, 0.9), ("b", 5, 0.8), ("c", 6, 0.79), ("d", 10, 0.95)]
    assert sorted(pareto_front(pts)) == ["b", "d"]


def test_config_errors_list_every_problem(tmp_path):
    cfg = tmp_path / "liteship.yaml"
    cfg.write_text("source: m.keras\nmodel_id: Bad Id\nrecipes: [int9]\ncalibration: {data: c.npy}\n")
    with pytest.raises(UsageError) as e:
        load_config(cfg)
    msg = str(e.value)
    assert "model_id" in msg and "int9" in msg and "validation" in msg


def test_config_resolves_paths_against_its_folder(tmp_path):
    cfg = tmp_path / "liteship.yaml"
    cfg.write_text("source: m.keras\nmodel_id: m\ncalibration: {data: c.npy}\nvalidation: {data: v.npz}\n")
    c = load_config(cfg)
    assert c.path(c.source) == tmp_path / "m.keras"
    assert c.recipes == ["none", "dynamic", "int8", "int8-fallback", "float16", "int16x8"]


def test_pairs_of_one_variant_compete_and_the_chosen_pair_is_named():
    # the same float16 file on the Interpreter and on the GPU: the GPU pair is faster but its fp16
    # kernels lose SQNR; the gate decides which pair ships
    pairs = [
        Candidate("float16", size_bytes=2_000_000, p50_ms=10.5, sqnr_db=80.0),
        Candidate("float16", size_bytes=2_000_000, p50_ms=3.0, sqnr_db=45.0, accelerator="gpu"),
    ]
    sel = select_variant(pairs)
    assert (sel.chosen, sel.chosen_accelerator) == ("float16", "gpu")
    sel = select_variant(pairs, min_sqnr=60)
    assert (sel.chosen, sel.chosen_accelerator) == ("float16", None)
    assert list(sel.failures_by_recipe) == ["float16 on gpu"] and sel.verdicts[1].accelerator == "gpu"


def test_min_accuracy_is_an_absolute_floor():
    """Issue 22 (9): a variant as bad as its reference passes every relative gate; min_accuracy stops it."""
    bad = Candidate("none", size_bytes=10, p50_ms=1.0, accuracy_drop=0.0, agreement=1.0, accuracy=0.13)
    assert select_variant([bad], max_accuracy_drop=1.0, min_agreement=0.98).chosen == "none"
    sel = select_variant([bad], max_accuracy_drop=1.0, min_agreement=0.98, min_accuracy=0.9)
    (failure,) = sel.verdicts[0].failures
    assert sel.chosen is None and failure.startswith("top-1 accuracy 0.1300 < min_accuracy 0.9")
    assert "the reference model scores 0.1300 too" in failure and "preprocessing" in failure
    unlabelled = Candidate("none", size_bytes=10, agreement=1.0)
    assert "no labels" in select_variant([unlabelled], min_accuracy=0.5).verdicts[0].failures[0]
    good = Candidate("int8", size_bytes=10, accuracy_drop=0.5, agreement=0.99, accuracy=0.95)
    assert select_variant([good], min_accuracy=0.9).chosen == "int8"
