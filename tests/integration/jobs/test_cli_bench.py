"""`liteship fleet bench` and `liteship pipeline select` on bad input: one line, the right exit code."""

from __future__ import annotations

import pytest

from .conftest import MODEL_FILE


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (("fleet", "bench", str(MODEL_FILE)), 2, "exactly one of --device, --group, --profile"),
        (("fleet", "bench", str(MODEL_FILE), "--device", "a", "--group", "g"), 2, "exactly one of"),
        (("fleet", "bench", str(MODEL_FILE), "--profile", "machine"), 2, "is not KEY=VALUE"),
        (("fleet", "bench", "missing.tflite", "--device", "a"), 1, "does not exist"),
        (("fleet", "bench", str(MODEL_FILE), "--device", "a", "--runs", "0"), 2, "--runs"),
        (
            ("fleet", "bench", "results", "job-x", "--server", "http://127.0.0.1:9"),
            1,
            "cannot reach the fleet",
        ),
        (("pipeline", "select", "nothere.json", "--job", "job-x"), 1, "cannot read the pipeline report"),
    ],
)
def test_bad_input_one_line(cli, tmp_path, args, code, text):
    r = cli(*args, env={"LITESHIP_TOKEN": "t" * 32, "LITESHIP_SERVER": "http://127.0.0.1:9"})
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    last = r.stderr.strip().splitlines()[-1]  # click's usage errors print the usage first
    assert text in last and "Traceback" not in r.stderr, r.stderr


def test_pipeline_select_refuses_a_file_that_is_no_report(cli, tmp_path):
    (tmp_path / "r.json").write_text('{"not": "a report"}')
    r = cli(
        "pipeline", "select", str(tmp_path / "r.json"), "--job", "job-x", env={"LITESHIP_TOKEN": "t" * 32}
    )
    assert r.returncode == 2 and "is not a pipeline report" in r.stderr, r.stderr
    (tmp_path / "r.json").write_text('{"variants": []}')
    r = cli("pipeline", "select", str(tmp_path / "r.json"), env={"LITESHIP_TOKEN": "t" * 32})
    assert r.returncode == 2 and "give a bench job id (--job), or devices" in r.stderr, r.stderr


def test_bench_results_render_device_strings_as_text(capsys):
    """Issue 21 item 11: a device id, profile or variant name of ``[/]`` is text, not rich markup."""
    from liteship.cli.fleet_bench import render_results

    result = {"name": "[/]", "ok": False, "error": "[bold]", "threads": 1}
    job = {
        "id": "job-1",
        "state": "done",
        "tasks": [
            {"device_id": "[/]", "state": "done", "profile": {"machine": "[/]"}, "results": [result]},
            {"device_id": "[red]", "state": "failed", "profile": {}, "results": [], "error": "[/]"},
        ],
    }
    render_results(job)
    out = capsys.readouterr().out
    assert out.count("[/]") >= 3 and "[red]" in out
