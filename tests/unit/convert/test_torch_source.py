"""PyTorch sources through litert-torch: convert → validate against the module → bench, the file forms,
the layout (NHWC), and the bad inputs (issue 13)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("litert_torch", reason="the torch extra (pip install 'liteship[torch]') is not installed")

import torch  # noqa: E402

from liteship.convert import TorchModel, convert  # noqa: E402
from liteship.errors import ConversionError, UsageError  # noqa: E402


@pytest.fixture(scope="module")
def torch_int8(torch_digits, calib_npy, tmp_path_factory):
    _, net = torch_digits
    out = tmp_path_factory.mktemp("torch") / "digits.int8.tflite"
    src = TorchModel(net, (torch.zeros(1, 1, 8, 8),), "digits")
    return convert(src, out, quantize="int8", calibration=calib_npy, calibration_samples=100), out


def test_float_conversion_takes_nhwc_and_matches_the_module(torch_digits, digits, tmp_path):
    from liteship.runtime import LiteRTRunner, TorchRunner

    _, net = torch_digits
    out = tmp_path / "digits.tflite"
    report = convert(TorchModel(net, (torch.zeros(1, 1, 8, 8),)), out)
    assert report.source_kind == "torch" and report.method == "litert-torch"
    assert list(report.inputs[0].shape) == [1, 8, 8, 1]  # NHWC, like every liteship model
    assert any("NHWC" in w for w in report.warnings)
    x = digits[2][:16]
    with LiteRTRunner(out) as lite, TorchRunner(TorchModel(net, (torch.zeros(1, 1, 8, 8),))) as ref:
        assert ref.input_specs[0].shape == (1, 8, 8, 1)
        got = np.concatenate([next(iter(lite.infer(s[None]).values())) for s in x])
        want = np.concatenate([next(iter(ref.infer(s[None]).values())) for s in x])
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_pt2e_int8_validates_against_the_pytorch_module(torch_int8, torch_digits, val_npz):
    from liteship.validate import validate

    report, out = torch_int8
    assert report.method == "litert-torch+pt2e" and report.calibration_samples == 100
    assert report.ratio_to_float32 < 0.5
    net_py, net = torch_digits
    v = validate(out, TorchModel(net, (torch.zeros(1, 1, 8, 8),)), val_npz, raise_on_failure=False)
    assert v.agreement[0].top1 >= 0.9, v.agreement
    assert v.agreement[0].candidate_accuracy is not None and v.agreement[0].accuracy_drop < 3.0


def test_factory_file_form_through_the_cli(cli, torch_digits, tmp_path):
    net_py, _ = torch_digits
    r = cli(
        "convert", f"{net_py}:build", "--input-shape", "1,1,8,8", "-o", str(tmp_path / "a.tflite"), "--json"
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["inputs"][0]["shape"] == [1, 8, 8, 1]
    assert r.stderr.strip() == ""  # torchao's and litert-torch's chatter stays out of the user's way
    r = cli("convert", f"{net_py}:build", "--input-shape", "1,3,-2")
    assert r.returncode == 2 and "1 to 6 positive integers" in r.stderr and "Traceback" not in r.stderr


def test_pt2_file_and_factory_with_samples(torch_digits, tmp_path, val_npz):
    from liteship.validate import validate

    net_py, net = torch_digits
    report = convert(f"{net_py}:build_with_samples", tmp_path / "d.tflite", quantize="dynamic")
    assert report.method == "litert-torch+pt2e" and list(report.inputs[0].shape) == [1, 8, 8, 1]
    pt2 = tmp_path / "digits.pt2"
    torch.export.save(torch.export.export(net, (torch.zeros(1, 1, 8, 8),)), str(pt2))
    report = convert(pt2, tmp_path / "w.tflite", quantize="weight-int8")
    assert report.method == "litert-torch+ai-edge-quantizer"
    v = validate(tmp_path / "w.tflite", pt2, val_npz, raise_on_failure=False)  # the .pt2 as reference
    assert v.agreement[0].top1 >= 0.95 and "torch" in v.reference_backend


def test_bench_runs_the_converted_model(torch_int8):
    from liteship.bench import benchmark

    _, out = torch_int8
    report = benchmark(out, runs=5, warmup=1, threads=[1], min_seconds=0.0, progress=False)
    (entry,) = report.entries
    assert entry.latency.count >= 5 and entry.latency.min_ms > 0 and "litert" in entry.backend


def test_recipes_it_cannot_do_and_missing_shapes(torch_digits, calib_npy):
    _, net = torch_digits
    src = TorchModel(net, (torch.zeros(1, 1, 8, 8),))
    with pytest.raises(UsageError, match="does not work on a PyTorch source"):
        convert(src, None, quantize="float16")
    with pytest.raises(UsageError, match="io_type"):
        convert(src, None, quantize="int8", io_type="int8", calibration=calib_npy)
    with pytest.raises(UsageError, match="input shape of PyTorch model"):
        convert(net, None)
    net_py, _ = torch_digits
    with pytest.raises(UsageError, match="--input-shape|input_shape"):
        convert(f"{net_py}:build", None)
    with pytest.raises(UsageError, match="has no function"):
        convert(f"{net_py}:nope", None)


class _Gate(torch.nn.Module):
    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow: torch.export cannot trace it
            return x * 2
        return x


class _Branchy(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.gate = _Gate()

    def forward(self, x):
        return self.gate(self.conv(x))


def test_a_module_that_does_not_export_names_the_layer_and_what_to_try():
    with pytest.raises(ConversionError) as e:
        convert(TorchModel(_Branchy(), (torch.rand(1, 1, 8, 8),), "branchy"), None)
    text = str(e.value)
    assert "does not export" in text and "'gate'" in text and "_Gate.forward" in text
    assert "torch.where" in text and len(text) < 600


def test_missing_torch_extra_is_one_line_naming_the_install(no_tf_python, torch_digits):
    net_py, _ = torch_digits
    proc = no_tf_python(
        f"""
        from liteship.convert.torch_source import load_torch_source
        from liteship.errors import UsageError
        try:
            load_torch_source({f"{net_py}:build"!r}, (1, 1, 8, 8))
        except UsageError as e:
            print("usage:", e)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert "pip install 'liteship[torch]'" in proc.stdout


def test_accuracy_fixes_act_on_the_float_graph_of_a_pytorch_source(
    torch_digits, calib_npy, val_npz, tmp_path
):
    # issue 20: every repair on every source — litert-torch's float .tflite, then the graph fixes
    from liteship.validate import validate

    _, net = torch_digits
    src = TorchModel(net, (torch.zeros(1, 1, 8, 8),), "digits")
    out = tmp_path / "digits.fixed.tflite"
    report = convert(
        src,
        out,
        quantize="int8",
        calibration=calib_npy,
        calibration_samples=100,
        equalize=True,
        bias_correction=True,
        range_setting="mse",
        progress=False,
    )
    assert report.source_kind == "torch" and report.method == "litert-torch+tflite-mlir-quantizer"
    assert {"equalize", "bias_correction", "range_setting"} <= set(report.graph_fixes or {})
    v = validate(out, src, val_npz, raise_on_failure=False)
    assert v.agreement[0].top1 >= 0.9, v.agreement
