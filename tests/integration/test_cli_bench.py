"""`liteship bench` through the real console script."""

import json

import pytest


def test_json_has_one_entry_per_model_and_thread_count(cli, tflite_float, tflite_int8):
    p = cli(
        "bench", str(tflite_float), str(tflite_int8), "--threads", "1,2",
        "--runs", "5", "--warmup", "1", "--min-seconds", "0", "--json",
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert [(e["path"], e["threads"]) for e in d["entries"]] == [
        (str(tflite_float), 1), (str(tflite_float), 2), (str(tflite_int8), 1), (str(tflite_int8), 2),
    ]  # fmt: skip
    for e in d["entries"]:
        lat = e["latency"]
        assert e["runs"] == lat["count"] >= 5
        assert (
            lat["min_ms"] <= lat["p50_ms"] <= lat["p90_ms"] <= lat["p95_ms"] <= lat["p99_ms"] <= lat["max_ms"]
        )
        assert e["init_ms"] > 0 and e["throughput"] > 0 and "samples_ms" not in e
        assert e["timed"] == "invoke"
    assert d["runs"] == 5 and d["warmup"] == 1 and d["measure"] == "invoke"


def test_measure_infer_times_whole_infer_calls(cli, tflite_float):
    p = cli("bench", str(tflite_float), "--runs", "3", "--min-seconds", "0", "--measure", "infer", "--json")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["measure"] == "infer" and [e["timed"] for e in d["entries"]] == ["infer"]
    p = cli("bench", str(tflite_float), "--measure", "all")
    assert p.returncode == 2 and "--measure" in p.stderr


def test_samples_flag_keeps_raw_latencies(cli, tflite_float):
    p = cli("bench", str(tflite_float), "--runs", "3", "--min-seconds", "0", "--json", "--samples")
    assert p.returncode == 0, p.stderr
    (e,) = json.loads(p.stdout)["entries"]
    assert len(e["samples_ms"]) == e["runs"] >= 3


def test_table_and_html_page(cli, tflite_float, tflite_int8, val_npz, tmp_path):
    out = tmp_path / "bench.html"
    p = cli(
        "bench", str(tflite_float), str(tflite_int8), "--threads", "1", "--runs", "5", "--min-seconds", "0",
        "--data", str(val_npz), "--html", str(out),
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "digits_float.tflite" in p.stdout and "digits_int8.tflite" in p.stdout and "p99 (ms)" in p.stdout
    assert "invoke alone, inputs set before the timer" in " ".join(p.stdout.split())  # the footnote
    page = out.read_text(encoding="utf-8")
    assert page.count("<svg") == 2 + 1  # one histogram per model, plus the median chart
    assert "http://" not in page and "https://" not in page
    assert f"wrote {out}" in p.stderr.replace("\n", "")


def test_a_corrupt_model_is_a_one_line_error(cli, tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x00" * 64)
    p = cli("bench", str(bad), "--runs", "1", "--min-seconds", "0")
    assert p.returncode == 1
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "bad.tflite" in lines[0], p.stderr
    assert "Traceback" not in p.stderr


def test_bad_thread_list_is_a_usage_error(cli, tflite_float):
    p = cli("bench", str(tflite_float), "--threads", "one")
    assert p.returncode == 2 and "--threads" in p.stderr


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e9"])
def test_min_seconds_must_be_finite_and_bounded(cli, tflite_float, value):
    """Issue 21 item 13: NaN and infinity were an internal error."""
    r = cli("bench", str(tflite_float), "--min-seconds", value)
    assert r.returncode == 2 and "--min-seconds" in r.stderr and "internal error" not in r.stderr, r.stderr


def test_samples_without_json_is_a_usage_error(cli, tflite_float):
    r = cli("bench", str(tflite_float), "--samples", "--runs", "1", "--min-seconds", "0")
    assert r.returncode == 2 and "--samples" in r.stderr and "--json" in r.stderr


def test_html_into_a_directory_or_missing_place_is_one_line(cli, tflite_float, tmp_path):
    r = cli("bench", str(tflite_float), "--html", str(tmp_path), "--runs", "1", "--min-seconds", "0")
    assert r.returncode == 2 and "is a directory" in r.stderr and "Traceback" not in r.stderr
    blocked = tmp_path / "file"
    blocked.write_text("")  # a file where a folder should be: mkdir fails
    out = blocked / "b.html"
    r = cli("bench", str(tflite_float), "--html", str(out), "--runs", "1", "--min-seconds", "0")
    assert r.returncode == 1 and "cannot write the HTML page" in r.stderr and "Traceback" not in r.stderr


def test_table_labels_memory_rows_and_explains_them(cli, tflite_float, tflite_int8):
    r = cli("bench", str(tflite_float), str(tflite_int8), "--runs", "2", "--min-seconds", "0")
    assert r.returncode == 0, r.stderr
    assert "tensors, activations (KiB)" in r.stdout and "process RSS growth" in r.stdout
    assert "model memory, RSS" not in r.stdout and "one-time setup" in r.stdout
