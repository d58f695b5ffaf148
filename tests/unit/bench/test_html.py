"""The bench page and the SVG chart helpers it uses (liteship.report.charts)."""

import re

import pytest

from liteship.bench import BenchEntry, BenchReport, LatencyStats
from liteship.bench.html import short_names, write_html
from liteship.report import charts


def _entry(model: str, threads: int, samples: tuple[float, ...]) -> BenchEntry:
    return BenchEntry(
        model=model, path=model, backend="ai-edge-litert", threads=threads, inputs="random", timed="invoke",
        init_ms=3.0, first_inference_ms=2.0, warmup=5, latency=LatencyStats.from_samples(samples),
        elapsed_s=1.0,
        throughput=len(samples) / 1.0, model_size_bytes=2**20, rss_delta_bytes=None, peak_rss_bytes=2**21,
        samples_ms=samples,
    )  # fmt: skip


@pytest.fixture
def report() -> BenchReport:
    return BenchReport(
        entries=(
            _entry("a/<model>.tflite", 1, (1.0, 1.1, 1.2, 5.0)),
            _entry("b/model.tflite", 2, (0.5, 0.6)),
        ),
        runs=2,
        warmup=5,
        min_seconds=1.0,
        machine={"cpu": "Test CPU & co", "cpu_count": 2},
    )


def test_page_is_self_contained_with_one_histogram_per_entry(report, tmp_path):
    path = write_html(report, tmp_path / "out" / "bench.html")
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<svg") == len(report.entries) + 1  # + the median bar chart
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert "a/&lt;model&gt;.tflite @ 1 thread" in page and "<model>" not in page
    assert "Test CPU &amp; co" in page
    assert "–" in page  # a missing figure (rss delta) shows as a dash, not "None"
    assert "None" not in page
    assert "<th>timed</th><td>invoke</td><td>invoke</td>" in page  # what a run timed, per entry
    assert "the interpreter&#x27;s invoke alone, inputs set before the timer" in page


def test_short_names_use_file_names_only_when_unique():
    same = (_entry("a/model.tflite", 1, (1.0,)), _entry("b/model.tflite", 1, (1.0,)))
    assert short_names(same) == ["a/model.tflite", "b/model.tflite"]
    one = (
        _entry("x/one.tflite", 1, (1.0,)),
        _entry("x/one.tflite", 2, (1.0,)),
        _entry("y/two.tflite", 1, (1.0,)),
    )
    assert short_names(one) == ["one.tflite", "one.tflite", "two.tflite"]


def test_histogram_draws_one_bar_per_filled_bin_and_labelled_markers():
    svg = charts.histogram([1, 1, 2, 2, 2, 10], bins=3, title='lat "x" <ms>', markers=[("p50", 2.0)])
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert svg.count("<rect") == 2  # bins [1,4) and [7,10]; the middle one is empty
    assert "lat &quot;x&quot; &lt;ms&gt;" in svg and "<ms>" not in svg
    assert ">p50 2</text>" in svg
    assert "xmlns" not in svg and charts.standalone(svg).startswith('<svg xmlns="http://www.w3.org/2000/svg"')


def test_histogram_of_equal_or_no_values():
    assert charts.histogram([3.0, 3.0]).count("<rect") == 1
    assert "no data" in charts.histogram([])
    assert "no data" in charts.histogram([float("nan")])


def test_bar_chart_one_bar_per_value_with_escaped_labels():
    svg = charts.bar_chart(["fp32", "int8 & <x>"], [4.0, 1.5], title="median", value_label="ms")
    assert svg.count("<rect") == 2 and "int8 &amp; &lt;x&gt;" in svg
    widths = [float(w) for w in re.findall(r'<rect [^>]*width="([\d.]+)"', svg)]
    assert widths[0] > widths[1] > 0
    with pytest.raises(ValueError, match="2 labels but 1 values"):
        charts.bar_chart(["a", "b"], [1.0])


def test_scatter_labels_points_and_highlights():
    svg = charts.scatter([(1.0, 0.9), (0.3, 0.85)], labels=["fp32", "int8"], highlight=[1], x_label="MB")
    assert svg.count("<circle") == 2 and ">int8</text>" in svg and 'r="6"' in svg
    with pytest.raises(ValueError):
        charts.scatter([(1, 2)], labels=["a", "b"])


def test_nice_ticks_cover_the_range_with_round_steps():
    ticks = charts.nice_ticks(0.31, 0.86, 5)
    assert ticks[0] <= 0.31 and ticks[-1] >= 0.86
    steps = {round(b - a, 9) for a, b in zip(ticks[:-1], ticks[1:], strict=True)}
    assert len(steps) == 1 and steps.pop() in (0.1, 0.2, 0.25)
