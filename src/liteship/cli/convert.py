"""``liteship convert``: parse flags → ``liteship.convert.convert`` → render its report."""

from __future__ import annotations

import re
from pathlib import Path

import click

from liteship.cli._common import console, emit_json, json_option, parse_floats, quiet_tensorflow
from liteship.convert import convert
from liteship.convert.recipes import RECIPE_NAMES  # RECIPES, then the weight-only ones
from liteship.errors import LiteshipError

# Library messages name parameters (`calibration`); the CLI user knows them as flags.
FLAGS = {
    "calibration": "--calibration",
    "calibration_samples": "--calibration-samples",
    "quantize": "--quantize",
    "io_type": "--io-type",
    "allow_select_tf_ops": "--allow-select-tf-ops",
    "allow_custom_ops": "--allow-custom-ops",
    "keep_float_layers": "--keep-float",
    "input_shape": "--input-shape",
    "equalize": "--equalize",
    "bias_correction": "--bias-correction",
    "range_setting": "--range-setting",
    "absorb_high_bias": "--absorb-high-bias",
    "adaround": "--adaround",
}


def _parse_size(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*[xX,]\s*(\d+)\s*", value)
    if not match:
        raise click.BadParameter(f"--size must be HxW, e.g. 224x224, got {value!r}.")
    return int(match.group(1)), int(match.group(2))


def _flag_names(error: LiteshipError) -> LiteshipError:
    text = str(error)
    for param, flag in FLAGS.items():
        text = text.replace(f"`{param}`", f"`{flag}`")
    error.args = (text,)
    return error


@click.command(name="convert")
@click.argument("source", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="Output .tflite. Defaults to SOURCE's name + .tflite.",
)
@click.option(
    "--quantize",
    "-q",
    type=click.Choice(RECIPE_NAMES),
    default="none",
    show_default=True,
    help="Quantization recipe. A float .tflite source (ai-edge-quantizer) takes none, int8, int16x8, dynamic, "
    "weight-int8, weight-int4; a PyTorch source the same (int8/dynamic through PT2E); float16 and "
    "int8-fallback need a TF/Keras source.",
)
@click.option(
    "--io-type",
    type=click.Choice(("float32", "int8", "uint8", "int16")),
    help="Model input/output type (int8 by default for --quantize int8; int16 only with int16x8).",
)
@click.option(
    "--calibration", type=click.Path(path_type=Path), help="Calibration data: image folder, .npy or .npz."
)
@click.option(
    "--calibration-samples",
    type=click.IntRange(min=1),
    default=200,
    show_default=True,
    help="Calibration samples to use at most.",
)
@click.option("--mean", help="Normalization mean, one value or per channel: 127.5 or 123.7,116.3,103.5.")
@click.option("--std", help="Normalization standard deviation, one value or per channel.")
@click.option("--size", help="Resize calibration images to HxW (default: the model's input size).")
@click.option("--channel-order", type=click.Choice(("rgb", "bgr")), default="rgb", show_default=True)
@click.option(
    "--allow-select-tf-ops", is_flag=True, help="Run ops without a builtin kernel as TensorFlow (Flex) ops."
)
@click.option("--allow-custom-ops", is_flag=True, help="Keep ops without a builtin kernel as custom ops.")
@click.option(
    "--keep-float",
    "keep_float",
    multiple=True,
    help="Op type (MEAN) or tensor name to keep in float (int8 recipes); repeatable.",
)
@click.option(
    "--input-shape",
    help="PyTorch module.py:factory source: the module's input shape, batch first in its own layout "
    "(NCHW), e.g. 1,3,224,224. The .tflite takes NHWC.",
)
@click.option(
    "--equalize",
    is_flag=True,
    help="Cross-layer equalization first (integer recipes; a Keras source, or a float .tflite's graph, "
    "depthwise convolutions and ReLU6 included).",
)
@click.option(
    "--absorb-high-bias",
    is_flag=True,
    help="Move each ReLU layer's always-on output (its minimum on the calibration data) into the next "
    "layer's bias first, after --equalize: narrower int8 activation ranges (int8 recipes; Keras, float "
    ".tflite or PyTorch source).",
)
@click.option(
    "--bias-correction",
    is_flag=True,
    help="Correct int8 weight-rounding bias on the calibration data first (integer recipes; Keras or float "
    ".tflite source).",
)
@click.option(
    "--adaround",
    is_flag=True,
    help="Learn each int8 weight's rounding (up or down) to reproduce every layer's float output on the "
    "calibration data (AdaRound; int8 of a float .tflite source; ~1-2 min for a MobileNet).",
)
@click.option(
    "--range-setting",
    type=click.Choice(["minmax", "percentile", "mse"]),
    default="minmax",
    show_default=True,
    help="How int8 activation ranges are set from the calibration data: TFLite's plain min/max, a "
    "99.99th percentile, or the range with the least expected quantization error (int8 recipes).",
)
@json_option
def cli(
    source: Path,
    output: Path | None,
    quantize: str,
    io_type: str | None,
    calibration: Path | None,
    calibration_samples: int,
    mean: str | None,
    std: str | None,
    size: str | None,
    channel_order: str,
    allow_select_tf_ops: bool,
    allow_custom_ops: bool,
    keep_float: tuple[str, ...],
    input_shape: str | None,
    equalize: bool,
    absorb_high_bias: bool,
    bias_correction: bool,
    adaround: bool,
    range_setting: str,
    as_json: bool,
) -> None:
    """Convert SOURCE to a .tflite: a SavedModel directory, a .keras or .h5 file (TFLite converter); a
    float32 .tflite (quantized by ai-edge-quantizer, its metadata kept); or a PyTorch model, as a
    torch.export .pt2 file or module.py:factory (litert-torch; the .tflite takes NHWC).

    \b
    Examples:
      liteship convert model.keras -o model.tflite
      liteship convert saved_model/ -o model_int8.tflite --quantize int8 --calibration calib.npy
      liteship convert model.keras -o m.tflite -q int8 --calibration images/ --mean 127.5 --std 127.5
      liteship convert zoo_float.tflite -q weight-int4
      liteship convert net.py:build --input-shape 1,3,32,32 -q int8 --calibration calib.npy
      liteship convert model.keras -o m.tflite -q int8 --calibration calib.npy --equalize
      liteship convert model.keras -o m.tflite -q int8 --calibration calib.npy --equalize --absorb-high-bias
      liteship convert model.keras -o m.tflite -q int8 --calibration images/ --range-setting mse
      liteship convert zoo_float.tflite -q int8 --calibration photos/ --equalize --adaround --bias-correction
    """
    quiet_tensorflow()

    try:
        given = {  # only what was given: a .tflite source's own declaration fills the rest
            "mean": parse_floats(mean, "--mean"),
            "std": parse_floats(std, "--std"),
            "size": _parse_size(size),
            "channel_order": None if channel_order == "rgb" else channel_order,
        }
        pre = {k: v for k, v in given.items() if v}
        suffix = "" if quantize == "none" else f".{quantize}"
        out = output or source.with_name(f"{source.stem if source.is_file() else source.name}{suffix}.tflite")
        if output is None and out == source:  # a float .tflite converted with recipe none
            out = source.with_name(f"{source.stem}.liteship.tflite")
        model: object = str(source)
        if input_shape is not None:
            from liteship.convert.sources import source_kind
            from liteship.convert.torch_source import load_torch_source, parse_input_shape

            if source_kind(str(source)) != "torch":
                raise click.UsageError("--input-shape is for PyTorch sources (module.py:factory or .pt2).")

            model = load_torch_source(str(source), parse_input_shape(input_shape))
        report = convert(
            model,
            out,
            quantize=quantize,
            io_type=io_type,
            calibration=str(calibration) if calibration is not None else None,
            calibration_samples=calibration_samples,
            preprocessing=pre,
            allow_select_tf_ops=allow_select_tf_ops,
            allow_custom_ops=allow_custom_ops,
            keep_float_layers=keep_float,
            equalize=equalize,
            bias_correction=bias_correction,
            range_setting=range_setting,
            absorb_high_bias=absorb_high_bias,
            adaround=adaround,
            progress=not as_json,
        )
    except LiteshipError as e:
        raise _flag_names(e) from e.__cause__
    if as_json:
        emit_json(report)
        return
    for line in report.summary_lines():
        console.print(line, markup=False)
