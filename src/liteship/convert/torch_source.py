"""PyTorch sources: an ``nn.Module`` (with sample inputs) → .tflite through litert-torch.

Three forms, one record (:class:`TorchModel`):

- Python: ``convert(TorchModel(net, (torch.randn(1, 3, 32, 32),)), "net.tflite")``;
- a ``torch.export`` file: ``net.pt2`` (``torch.export.save``; its example inputs give the shapes);
- a factory: ``net.py:build`` — ``build()`` returns the module, or ``(module, sample_inputs)``; without
  sample inputs, ``input_shape`` (CLI ``--input-shape 1,3,32,32``) says the shape.

**Layout.** Shapes are given as the module takes them (NCHW for images). The .tflite takes **NHWC**:
every 4-D input is wrapped with litert-torch's ``to_channel_last_io``, so the converted model, its
preprocessing declaration, calibration folders and ``liteship run`` all use NHWC like every other
liteship model. :class:`~liteship.runtime.reference.TorchRunner` takes NHWC too and transposes for the
module, so ``validate`` compares like with like. Outputs keep the module's layout.

Recipes: ``none``; ``int8`` (PT2E static, per-channel int8 weights and int8 activations, calibrated
on the same calibration data as the TF recipes); ``dynamic`` (PT2E dynamic); and ``int16x8``,
``weight-int8``, ``weight-int4`` (the float export quantized by ai-edge-quantizer, as for a float
.tflite source). ``float16`` and ``int8-fallback`` are TFLite-converter recipes: a clear error.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import re
import sys
import time
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from liteship._quiet import native_stderr_silenced
from liteship.convert.calibration import load_calibration
from liteship.convert.finish import finish_conversion
from liteship.convert.recipes import Recipe
from liteship.convert.sources import Source, first_line, parse_torch_spec, quiet_stdout
from liteship.convert.tflite_quant import as_feed, quantize_keeping_float, signature_inputs
from liteship.convert.torch_model import TorchModel, is_torch_object
from liteship.errors import ConversionError, UsageError
from liteship.progress import track

if TYPE_CHECKING:
    from liteship.convert.options import ConversionOptions

INSTALL_HINT = "Install the extra: pip install 'liteship[torch]'."
PT2E_RECIPES = ("int8", "dynamic")
AEQ_RECIPES = ("int16x8", "weight-int8", "weight-int4")
TORCH_RECIPES = ("none", *PT2E_RECIPES, *AEQ_RECIPES)


@contextlib.contextmanager
def quiet_torch() -> Iterator[None]:
    """Keep torch's, torchao's and litert-torch's chatter (missing CUDA kernels, deprecations, progress
    lines) off the user's terminal: stdout, fd 2 and Python's stderr, unless ``LITESHIP_VERBOSE``."""

    if os.environ.get("LITESHIP_VERBOSE"):
        yield
        return
    with quiet_stdout(), native_stderr_silenced(), contextlib.redirect_stderr(io.StringIO()):
        yield


def import_torch() -> Any:
    """Import ``torch`` (and check ``litert_torch`` is there).

    Raises:
        UsageError: The torch extra is not installed.
    """
    try:
        with quiet_torch():  # torchao prints its missing CUDA kernels and deprecations on import
            import torch
            import torchao  # noqa: F401

        if importlib.util.find_spec("litert_torch") is None:
            raise ImportError("litert_torch")
    except ImportError as e:
        raise UsageError(
            "converting a PyTorch model needs torch and litert-torch, which are not installed.",
            hint=INSTALL_HINT,
        ) from e
    return torch


def parse_input_shape(text: str) -> tuple[int, ...]:
    """``"1,3,32,32"`` or ``"1x3x32x32"`` → ``(1, 3, 32, 32)``.

    Raises:
        UsageError: Not a list of 1 to 6 positive integers up to 65536.
    """
    parts = [p for p in re.split(r"[,xX\s]+", text.strip()) if p]
    if not parts or len(parts) > 6 or not all(p.isdigit() for p in parts):
        raise UsageError(
            f"`input_shape` must be 1 to 6 positive integers like 1,3,224,224 (batch first, the module's "
            f"own layout), got {text!r}.",
            parameter="input_shape",
        )
    dims = tuple(int(p) for p in parts)
    if any(d < 1 or d > 65536 for d in dims):
        raise UsageError(
            f"`input_shape` {list(dims)} has a dimension outside 1..65536.", parameter="input_shape"
        )
    return dims


def load_torch_source(source: Any, input_shape: Sequence[int] | None = None) -> TorchModel:
    """Recognize a PyTorch source: a :class:`TorchModel`, an ``nn.Module`` (needs ``input_shape``), a
    ``.pt2`` file, or a ``module.py:factory`` spec.

    Raises:
        UsageError: torch is missing, no input shape is known, or the factory is unusable.
        ConversionError: The file cannot be read or loaded.
    """
    if isinstance(source, TorchModel):
        return source
    torch = import_torch()
    shape = tuple(input_shape) if input_shape else None
    if isinstance(source, torch.nn.Module):
        return _with_samples(source, None, shape, type(source).__name__)

    text = str(source)
    spec = parse_torch_spec(text)
    if spec is not None:
        return _from_factory(spec[0], spec[1], shape)
    path = Path(text)
    if not path.is_file():
        raise ConversionError(f"PyTorch file {text!r} does not exist.", hint="Check the path.")
    try:
        program = torch.export.load(str(path))
    except Exception as e:  # torch raises RuntimeError/zipfile errors/KeyError on bad files
        raise ConversionError(
            f"cannot load {text!r} as a torch.export program: {first_line(e)}",
            hint="Save one with torch.export.save(torch.export.export(module, args), 'model.pt2').",
        ) from e
    args = tuple(getattr(program, "example_inputs", None) or ((), {}))[0]
    return _with_samples(program.module(), tuple(args) or None, shape, path.name)


def _from_factory(file: Path, factory: str, shape: tuple[int, ...] | None) -> TorchModel:
    import torch

    if not file.is_file():
        raise ConversionError(f"PyTorch module file {str(file)!r} does not exist.", hint="Check the path.")
    name = f"liteship_torch_source_{abs(hash(str(file.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise ConversionError(f"cannot import {str(file)!r} as a Python module.")
    mod = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(file.resolve().parent))  # so it can import its neighbours
    try:
        spec.loader.exec_module(mod)
        fn = getattr(mod, factory, None)
        if not callable(fn):
            raise UsageError(
                f"{str(file)!r} has no function {factory!r}.",
                hint=f"Define {factory}() returning the nn.Module (or (module, sample_inputs)).",
            )
        made = fn()
    except (UsageError, ConversionError):
        raise
    except Exception as e:  # the user's code can raise anything
        raise ConversionError(
            f"{str(file)}:{factory}() failed: {type(e).__name__}: {first_line(e)}",
            hint="Run the factory in Python to see the full traceback.",
        ) from e
    finally:
        sys.path.remove(str(file.resolve().parent))
    samples = None
    if isinstance(made, tuple) and len(made) == 2 and isinstance(made[0], torch.nn.Module):
        made, samples = made
        samples = tuple(samples) if isinstance(samples, (tuple, list)) else (samples,)
    if not isinstance(made, torch.nn.Module):
        raise UsageError(
            f"{str(file)}:{factory}() returned a {type(made).__name__}, not a torch.nn.Module.",
            hint="Return the module, or (module, sample_inputs).",
        )
    return _with_samples(made, samples, shape, f"{file.name}:{factory}")


def _with_samples(
    module: Any, samples: tuple[Any, ...] | None, shape: tuple[int, ...] | None, label: str
) -> TorchModel:
    import torch

    if shape is not None:
        samples = (torch.rand(*shape),)
    if not samples:
        raise UsageError(
            f"the input shape of PyTorch model {label!r} is unknown.",
            hint="Pass input_shape (CLI: --input-shape 1,3,224,224, the module's own NCHW layout), or "
            "return (module, sample_inputs) from the factory, or save a .pt2 with torch.export.",
            parameter="input_shape",
        )
    return TorchModel(_eval_mode(module), tuple(samples), label)


def _eval_mode(module: Any) -> Any:
    """``module.eval()``; a torch.export graph module refuses that and needs torchao's helper."""
    try:
        return module.eval()
    except NotImplementedError:
        from torchao.quantization.pt2e import move_exported_model_to_eval

        return move_exported_model_to_eval(module)


def _check(recipe: str, io_type: str | None, calibration: Any, keep: Sequence[str]) -> None:
    if recipe not in TORCH_RECIPES:
        raise UsageError(
            f"recipe {recipe!r} does not work on a PyTorch source; expected one of {', '.join(TORCH_RECIPES)}.",
            hint="float16 and int8-fallback are TFLite-converter recipes (TF/Keras sources only).",
            parameter="quantize",
        )
    if io_type not in (None, "float32"):
        raise UsageError(
            f"`io_type` {io_type!r} does not work on a PyTorch source: litert-torch keeps float32 model "
            "inputs and outputs (int8 models quantize and dequantize inside).",
            hint="Leave io_type unset (float32).",
            parameter="io_type",
        )
    if recipe in ("int8", "int16x8") and calibration is None:
        raise UsageError(
            f"recipe {recipe!r} needs calibration data, but `calibration` is not set.",
            hint="Pass `calibration` (an image folder, a .npy or .npz file; NHWC like the .tflite), or "
            "use dynamic, weight-int8 or weight-int4.",
            parameter="calibration",
        )
    if keep and recipe in PT2E_RECIPES:
        raise UsageError(
            f"`keep_float_layers` does not work with PT2E recipe {recipe!r}.",
            hint="Use int16x8, weight-int8 or weight-int4 (ai-edge-quantizer), or convert to none and "
            "quantize the .tflite.",
            parameter="keep_float_layers",
        )


def convert_torch(
    source: Any, output: str | Path | None, opts: ConversionOptions, input_shape: Sequence[int] | None = None
) -> Any:
    """Convert a PyTorch model with litert-torch: what :func:`liteship.convert.convert` does for a
    PyTorch source. ``opts`` mean what its keywords mean there (the fixes go through the float graph:
    :mod:`liteship.convert.frontends`); ``input_shape`` is the module's input
    shape (NCHW) when the source does not carry sample inputs.

    Returns:
        A :class:`~liteship.convert.ConversionReport` (``source_kind`` ``"torch"``, ``method``
        ``litert-torch``, ``litert-torch+pt2e`` or ``litert-torch+ai-edge-quantizer``).

    Raises:
        UsageError: A recipe litert-torch cannot do, a missing extra, an unknown input shape.
        ConversionError: The module does not export (the exporter's message, shortened to what failed
            and where).
    """

    quantize, io_type, calibration, progress = opts.quantize, opts.io_type, opts.calibration, opts.progress
    keep = opts.keep
    _check(quantize, io_type, calibration, keep)
    started = time.perf_counter()
    model = load_torch_source(source, input_shape)
    pre = opts.resolved_preprocessing()
    calib = None
    if quantize in ("int8", "int16x8"):
        calib = load_calibration(
            calibration,
            input_shapes=model.tflite_shapes(),
            samples=opts.calibration_samples,
            preprocessing=pre,
        )
    notes = [
        f"the .tflite takes NHWC input {list(s)} (the module takes NCHW; litert-torch's to_channel_last_io "
        "transposes inside the model)."
        for i, s in enumerate(model.tflite_shapes().values())
        if i in model.nhwc_indices()
    ]
    if quantize == "int8":
        data, method = _convert_pt2e(model, calib, dynamic=False, progress=progress), "litert-torch+pt2e"
    elif quantize == "dynamic":
        data, method = _convert_pt2e(model, None, dynamic=True, progress=progress), "litert-torch+pt2e"
    else:
        data, method = _convert_float(model), "litert-torch"
    if quantize in AEQ_RECIPES:
        names = list(signature_inputs(data)[1])
        samples = [as_feed(s, names) for s in calib.samples] if calib else None
        data = quantize_keeping_float(data, quantize, calibration=samples, keep_float=keep)
        method = "litert-torch+ai-edge-quantizer"
    if calibration is not None and calib is None:
        notes.append(f"`calibration` was given but recipe {quantize!r} does not calibrate; it was not used.")
    recipe = Recipe(quantize, f"PyTorch via {method}", calib is not None, ("float32",))
    src = Source("torch", model.name, model.module)
    seconds = time.perf_counter() - started
    return finish_conversion(data, src, method, notes, recipe, "float32", calib, pre, keep, output, seconds)


def _nchw_args(model: TorchModel, sample: Any) -> tuple[Any, ...]:
    """A calibration sample (NHWC arrays, the .tflite's layout) → the module's arguments."""
    import torch

    arrays = list(sample.values()) if isinstance(sample, dict) else list(sample)
    nhwc = set(model.nhwc_indices())
    return tuple(
        torch.from_numpy(np.ascontiguousarray(np.moveaxis(a, -1, 1) if i in nhwc else a, dtype=np.float32))
        for i, a in enumerate(arrays)
    )


def _nhwc_samples(model: TorchModel) -> tuple[Any, ...]:
    nhwc = set(model.nhwc_indices())
    return tuple(
        x.permute(0, 2, 3, 1).contiguous() if i in nhwc else x for i, x in enumerate(model.sample_inputs)
    )


def _run_litert_torch(model: TorchModel, module: Any, quant_config: Any = None) -> bytes:
    with quiet_torch():
        import litert_torch

    wrapped = (
        litert_torch.to_channel_last_io(module, args=model.nhwc_indices()) if model.nhwc_indices() else module
    )
    with quiet_torch():  # litert-torch prints its progress on stdout
        edge = litert_torch.convert(wrapped, _nhwc_samples(model), quant_config=quant_config)
        return bytes(edge.model_content())


def _convert_float(model: TorchModel) -> bytes:
    import_torch()
    try:
        return _run_litert_torch(model, model.module)
    except (UsageError, ConversionError):
        raise
    except Exception as e:  # torch.export / litert-torch raise many types
        raise export_error(e, model) from e


def _convert_pt2e(model: TorchModel, calib: Any, *, dynamic: bool, progress: bool) -> bytes:
    torch = import_torch()

    with quiet_torch():
        from litert_torch.quantize import pt2e_quantizer as pq
        from litert_torch.quantize.quant_config import QuantConfig
        from torchao.quantization.pt2e import move_exported_model_to_eval, quantize_pt2e

    quantizer = pq.PT2EQuantizer().set_global(
        pq.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=dynamic)
    )
    try:
        exported = torch.export.export(model.module, model.sample_inputs).module()
        prepared = move_exported_model_to_eval(quantize_pt2e.prepare_pt2e(exported, quantizer))
        with torch.no_grad():
            if calib is not None:
                for sample in track(
                    calib.samples, total=len(calib), description="calibrating", enabled=progress
                ):
                    prepared(*_nchw_args(model, sample))
            else:
                prepared(*model.sample_inputs)
        converted = move_exported_model_to_eval(quantize_pt2e.convert_pt2e(prepared, fold_quantize=False))
        return _run_litert_torch(model, converted, QuantConfig(pt2e_quantizer=quantizer))
    except (UsageError, ConversionError):
        raise
    except Exception as e:  # torch.export / torchao / litert-torch raise many types
        raise export_error(e, model) from e


_OP = re.compile(r"\b(aten\.[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)?)")


def export_error(e: BaseException, model: TorchModel) -> ConversionError:
    """The exporter's message shortened to what failed: the op, the layer (the module whose
    ``forward`` was running, by its name in the model) and the source line, plus what to try."""

    text = str(e)
    where = _user_frame(e, model)
    op = _OP.search(text)
    if "data-dependent" in text or "GuardOnDataDependent" in type(e).__name__:
        what = (
            "it branches on a tensor's value (data-dependent control flow), which torch.export cannot trace"
        )
        hint = "Replace the Python `if`/loop on tensor values with torch.where / torch.cond, or move it out of forward()."
    elif op and ("lower" in text.lower() or "not supported" in text.lower() or "no lowering" in text.lower()):
        what = f"litert-torch cannot lower {op.group(1)}"
        hint = f"Replace {op.group(1)} with supported ops, or set LITESHIP_VERBOSE=1 for the full message."
    else:
        what = f"{type(e).__name__}: {first_line(e)}"
        hint = "Check that the module runs on the sample inputs (model(*args)) and exports with torch.export.export(model, args)."
    place = f" in {where}" if where else ""
    return ConversionError(f"PyTorch model {model.name!r} does not export{place}: {what}.", hint=hint)


def _user_frame(e: BaseException, model: TorchModel) -> str:
    """``layer 'block.2' (Gate.forward, net.py:14)`` for the deepest traceback frame in user code."""
    import torch

    names = {id(m): n for n, m in model.module.named_modules()}
    best = ""
    cause: BaseException | None = e
    while cause is not None:
        for frame, lineno in traceback.walk_tb(cause.__traceback__):
            file = frame.f_code.co_filename
            if any(part in file for part in ("/torch/", "/torchao/", "/litert_torch/", "/liteship/", "<")):
                continue
            this = frame.f_locals.get("self")
            layer = names.get(id(this)) if isinstance(this, torch.nn.Module) else None
            loc = (
                f"{type(this).__name__}.{frame.f_code.co_name}" if this is not None else frame.f_code.co_name
            )
            label = f"layer {layer!r} " if layer else ("the top module " if layer == "" else "")
            best = f"{label}({loc}, {Path(file).name}:{lineno})"
        cause = cause.__cause__ or cause.__context__
    return best


__all__ = [
    "TorchModel",
    "TORCH_RECIPES",
    "convert_torch",
    "export_error",
    "import_torch",
    "is_torch_object",
    "load_torch_source",
    "parse_input_shape",
]
