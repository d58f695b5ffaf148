"""Session-scoped fixtures: real tiny models built here (never downloaded), real datasets.

The digits data is scikit-learn's bundled 8x8 handwritten digits (ships inside the package).
Models are converted with TensorFlow's own converter here, independently of liteship.convert, so the
runtime/validate/bench tests do not depend on the code they are not testing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _runtime_dir() -> None:
    """LiteRT's GPU accelerator (WebGPU over Vulkan) wants XDG_RUNTIME_DIR to be an existing directory;
    CI shells often have none. Subprocesses (CLI, agents) inherit it."""
    current = os.environ.get("XDG_RUNTIME_DIR")
    if current and os.path.isdir(current):
        return
    import tempfile

    os.environ["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="liteship-xdg-")  # mode 0700


_runtime_dir()
REPO = Path(__file__).resolve().parents[1]
SHARED_MODELS = REPO / "tests" / "data" / "third_party"


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test): float32 (N, 8, 8, 1) in 0..1, int64 labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[..., None]
    y = d.target.astype(np.int64)
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(x))
    x, y = x[idx], y[idx]
    return x[:1400], y[:1400], x[1400:], y[1400:]


def build_digits_cnn(x_train: np.ndarray, y_train: np.ndarray, epochs: int = 4):
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1), name="image"),
            keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1"),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv2"),
            keras.layers.MaxPooling2D(2, name="pool"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(32, activation="relu", name="fc1"),
            keras.layers.Dense(10, activation="softmax", name="probs"),
        ],
        name="digits_cnn",
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=epochs, batch_size=64, verbose=0)
    return model


@pytest.fixture(scope="session")
def keras_model(digits):
    """A small trained CNN on the digits (about 95 % test accuracy)."""
    x_train, y_train, _, _ = digits
    return build_digits_cnn(x_train, y_train)


def build_outlier_cnn(x_train: np.ndarray, y_train: np.ndarray, factor: float = 1000.0, epochs: int = 10):
    """The digits CNN with an outlier channel: conv ``c1``'s output channel 0 is ``factor``× larger than
    the others and ``c2`` divides it back, so the float function is the same, but one per-tensor int8
    scale for ``c1``'s output flattens every other channel to zero (the pattern BatchNorm folding leaves
    behind). Float ≈ 98 % on the 397 held-out digits; plain int8 ≈ 50 %."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1), name="image"),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="c1"),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="c2"),
            keras.layers.MaxPooling2D(2, name="pool"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(64, activation="relu", name="fc1"),
            keras.layers.Dense(10, activation="softmax", name="probs"),
        ],
        name="outlier_cnn",
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=0)
    k1, b1 = model.get_layer("c1").get_weights()
    k2, b2 = model.get_layer("c2").get_weights()
    k1[..., 0] *= factor
    b1[0] *= factor
    k2[:, :, 0, :] /= factor
    model.get_layer("c1").set_weights([k1, b1])
    model.get_layer("c2").set_weights([k2, b2])
    return model


@pytest.fixture(scope="session")
def outlier_model(digits):
    """The outlier-channel digits CNN (see ``build_outlier_cnn``)."""
    return build_outlier_cnn(digits[0], digits[1])


def build_depthwise_outlier_cnn(x_train: np.ndarray, y_train: np.ndarray, factor: float = 400.0):
    """The MobileNet pattern with outlier channels (issue 20): ``pw`` → BatchNorm ``bn`` → ReLU → depthwise
    ``dw`` (ReLU) → 1×1 ``pw2`` (ReLU) → Flatten → ``probs``, trained on the digits; then two of ``bn``'s
    channels scaled up by ``factor`` and ``dw``'s kernel scaled down to match. The float function is
    unchanged (ReLU is positively homogeneous); int8's per-tensor activation scale is not."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1), name="image"),
            keras.layers.Conv2D(16, 3, padding="same", use_bias=False, name="pw"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.ReLU(name="relu"),
            keras.layers.DepthwiseConv2D(3, padding="same", activation="relu", name="dw"),
            keras.layers.Conv2D(16, 1, activation="relu", name="pw2"),
            keras.layers.Flatten(name="flat"),
            keras.layers.Dense(10, activation="softmax", name="probs"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x_train, y_train, epochs=12, batch_size=64, verbose=0)
    gamma, beta, mean, var = model.get_layer("bn").get_weights()
    k, b = model.get_layer("dw").get_weights()
    for c in (3, 7):
        gamma[c] *= factor
        beta[c] *= factor
        k[:, :, c, 0] /= factor
    model.get_layer("bn").set_weights([gamma, beta, mean, var])
    model.get_layer("dw").set_weights([k, b])
    return model


@pytest.fixture(scope="session")
def depthwise_outlier_path(digits, model_dir) -> Path:
    """``build_depthwise_outlier_cnn`` saved as .keras."""
    path = model_dir / "depthwise_outliers.keras"
    build_depthwise_outlier_cnn(digits[0], digits[1]).save(path)
    return path


@pytest.fixture(scope="session")
def depthwise_outlier_tflite(depthwise_outlier_path, model_dir) -> Path:
    """The same model as a float .tflite (TFLite's converter, not liteship's)."""
    import keras
    import tensorflow as tf

    model = keras.models.load_model(depthwise_outlier_path, compile=False)
    path = model_dir / "depthwise_outliers.tflite"
    path.write_bytes(bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert()))
    return path


HIGH_BIAS = 20.0  # build_high_bias_cnn: c1's pre-activation on the digits spreads ~±1 around it


def build_high_bias_cnn():
    """High-bias absorption's fixture (issue 9): ``c1`` (ReLU, bias 20 on half its channels) → ``c2``
    (valid 3×3, ReLU) → Flatten → linear ``head``, untrained. Half of c1's output channels live on
    ~[19, 21], so one per-tensor int8 scale spends most of its 256 levels on an offset that c2's bias could
    take (``liteship.quantize.absorb``)."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1), name="image"),
            keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c1"),
            keras.layers.Conv2D(16, 3, activation="relu", name="c2"),
            keras.layers.Flatten(name="flat"),
            keras.layers.Dense(10, name="head"),
        ],
        name="high_bias_cnn",
    )
    kernel, bias = model.get_layer("c1").get_weights()
    bias[:4] = HIGH_BIAS
    model.get_layer("c1").set_weights([kernel, bias])
    return model


def int8_activation_scale(model: bytes, layer: str) -> float:
    """The int8 scale of Keras layer ``layer``'s output activation in a converted model, as LiteRT sees it."""
    import re

    from ai_edge_litert.interpreter import Interpreter

    pattern = re.compile(rf"/{layer}(_\d+)?/")  # TF names the layer c1_1 inside the converted function
    scales = [
        float(d["quantization"][0])
        for d in Interpreter(model_content=model).get_tensor_details()
        if pattern.search(d["name"]) and d["dtype"] == np.int8 and len(d["shape"]) == 4 and d["shape"][0] == 1
    ]
    assert len(scales) == 1, f"expected one int8 activation tensor of {layer}, found {len(scales)}"
    return scales[0]


@pytest.fixture(scope="session")
def high_bias_model():
    """See ``build_high_bias_cnn`` (do not change its weights: clone it)."""
    return build_high_bias_cnn()


@pytest.fixture(scope="session")
def activation_scale():
    """``activation_scale(model_bytes, "c1")``: see ``int8_activation_scale``."""
    return int8_activation_scale


@pytest.fixture(scope="session")
def outlier_path(outlier_model, model_dir) -> Path:
    p = model_dir / "outlier.keras"
    outlier_model.save(p)
    return p


@pytest.fixture(scope="session")
def digits_val_full_npz(digits, model_dir) -> Path:
    """All 397 held-out digits with labels."""
    p = model_dir / "val_full.npz"
    np.savez(p, x=digits[2], y=digits[3])
    return p


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def keras_path(keras_model, model_dir) -> Path:
    p = model_dir / "digits.keras"
    keras_model.save(p)
    return p


@pytest.fixture(scope="session")
def saved_model_dir(keras_model, model_dir) -> Path:
    p = model_dir / "digits_savedmodel"
    keras_model.export(str(p), verbose=False)
    return p


@pytest.fixture(scope="session")
def calib_npy(digits, model_dir) -> Path:
    p = model_dir / "calib.npy"
    np.save(p, digits[0][:200])
    return p


@pytest.fixture(scope="session")
def val_npz(digits, model_dir) -> Path:
    p = model_dir / "val.npz"
    np.savez(p, x=digits[2][:200], y=digits[3][:200])
    return p


def _tf_convert(saved_model_dir: Path, calib: np.ndarray | None, io_type=None) -> bytes:
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
    if calib is not None:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]

        def rep():
            for s in calib[:100]:
                yield [s[None].astype(np.float32)]

        conv.representative_dataset = rep
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if io_type is not None:
            conv.inference_input_type = io_type
            conv.inference_output_type = io_type
    return conv.convert()


@pytest.fixture(scope="session")
def tflite_float(saved_model_dir, model_dir) -> Path:
    """The digits CNN as a float32 .tflite, made by TensorFlow's converter directly."""
    p = model_dir / "digits_float.tflite"
    p.write_bytes(_tf_convert(saved_model_dir, None))
    return p


@pytest.fixture(scope="session")
def tflite_int8(saved_model_dir, digits, model_dir) -> Path:
    """The digits CNN fully int8-quantized with int8 input/output, by TensorFlow's converter directly."""
    import tensorflow as tf

    p = model_dir / "digits_int8.tflite"
    p.write_bytes(_tf_convert(saved_model_dir, digits[0], tf.int8))
    return p


@pytest.fixture(scope="session")
def third_party_models() -> Path:
    """tests/data/third_party: real .tflite files made by other tools (see its README for attribution)."""
    return SHARED_MODELS


NO_TF_PRELUDE = textwrap.dedent("""
    import sys, importlib.abc
    class _BlockTF(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("tensorflow", "keras", "torch"):
                raise ImportError(f"{name} is blocked: this test proves the device side runs without TensorFlow")
    sys.meta_path.insert(0, _BlockTF())
""")


def run_python_without_tensorflow(
    code: str, *, timeout: float = 120, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter where importing tensorflow or keras raises ImportError."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", NO_TF_PRELUDE + "\n" + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=full_env,
    )


@pytest.fixture
def no_tf_python():
    """``no_tf_python(code)`` runs code in a subprocess where TensorFlow cannot be imported."""
    return run_python_without_tensorflow


def run_liteship(
    *args: str, timeout: float = 600, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run the real ``liteship`` console script."""
    exe = Path(sys.executable).parent / "liteship"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "liteship.cli.main"]
    return subprocess.run(
        [*cmd, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def cli():
    """``cli("inspect", path, "--json")`` runs the real console script and returns CompletedProcess."""
    return run_liteship


@pytest.fixture
def convert_cli():
    """``convert_cli(source, out, calibration, *flags, recipe="int8")`` runs `liteship convert SOURCE -o OUT
    -q RECIPE --calibration CALIBRATION FLAGS…` (the graph-fix and range-setting CLI tests)."""

    def run(source, out, calibration, *flags: str, recipe: str = "int8") -> subprocess.CompletedProcess:
        return run_liteship(
            "convert", str(source), "-o", str(out), "-q", recipe, "--calibration", str(calibration), *flags
        )

    return run


# -- PyTorch sources (issue 13): a small CNN on the digits, trained here in a second ---------------------
TORCH_DIGITS_NET = textwrap.dedent('''
    """The digits CNN in PyTorch (NCHW), written out by the tests as a module.py:factory source."""
    from pathlib import Path

    import torch
    from torch import nn


    class DigitsNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
            self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
            self.pool = nn.MaxPool2d(2)
            self.fc1 = nn.Linear(16 * 4 * 4, 32)
            self.fc2 = nn.Linear(32, 10)

        def forward(self, x):
            x = torch.relu(self.conv1(x))
            x = self.pool(torch.relu(self.conv2(x)))
            x = torch.relu(self.fc1(torch.flatten(x, 1)))
            return torch.softmax(self.fc2(x), dim=1)


    def build():
        net = DigitsNet()
        weights = Path(__file__).with_name("digits_net.pt")
        if weights.exists():
            net.load_state_dict(torch.load(weights))
        return net.eval()


    def build_with_samples():
        return build(), (torch.zeros(1, 1, 8, 8),)
''')


@pytest.fixture(scope="session")
def torch_digits(digits, model_dir):
    """(module file, trained nn.Module): the digits CNN in PyTorch, trained here (about 95 % accuracy)."""
    pytest.importorskip("torch", reason="the torch extra (pip install 'liteship[torch]') is not installed")
    import importlib.util

    import torch

    folder = model_dir / "torch_digits"
    folder.mkdir(exist_ok=True)
    net_py = folder / "digits_net.py"
    net_py.write_text(TORCH_DIGITS_NET)
    spec = importlib.util.spec_from_file_location("liteship_test_digits_net", net_py)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    torch.manual_seed(0)
    net = mod.DigitsNet()
    x = torch.from_numpy(np.moveaxis(digits[0], -1, 1).copy())
    y = torch.from_numpy(digits[1])
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(60):
        opt.zero_grad()
        loss = torch.nn.functional.nll_loss(torch.log(net(x) + 1e-9), y)
        loss.backward()
        opt.step()
    torch.save(net.state_dict(), folder / "digits_net.pt")
    return net_py, net.eval()


def _static_tflite(keras_model, float16: bool = False) -> bytes:
    import keras
    import tensorflow as tf

    static = keras.models.clone_model(keras_model, input_tensors=keras.Input((8, 8, 1), batch_size=1))
    static.set_weights(keras_model.get_weights())
    conv = tf.lite.TFLiteConverter.from_keras_model(static)
    if float16:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    return conv.convert()


@pytest.fixture(scope="session")
def tflite_static(keras_model, model_dir) -> Path:
    """The digits CNN with a fixed batch of 1 (GPU accelerators take static shapes only), float32."""
    p = model_dir / "digits_static.tflite"
    p.write_bytes(_static_tflite(keras_model))
    return p


@pytest.fixture(scope="session")
def tflite_static_fp16(keras_model, model_dir) -> Path:
    """As ``tflite_static``, with float16 weights (DEQUANTIZE ops in front of them)."""
    p = model_dir / "digits_static_fp16.tflite"
    p.write_bytes(_static_tflite(keras_model, float16=True))
    return p


GPU_PROBE = """
import sys
from liteship.runtime.compiled import AcceleratorError, CompiledModelRunner
try:
    CompiledModelRunner(sys.argv[1], accelerator="gpu").close()
except AcceleratorError as e:
    print(e.message)
    raise SystemExit(3)
"""


@pytest.fixture(scope="session")
def gpu(tflite_static) -> str:
    """``"gpu"`` when LiteRT's GPU accelerator starts here (Mesa's software Vulkan device is enough), else
    the test skips, saying why and how to get one. Probed in a process without TensorFlow: LiteRT 2.3's
    GPU accelerator crashes a process that has imported it, so GPU tests run theirs in subprocesses."""
    out = subprocess.run(
        [sys.executable, "-c", GPU_PROBE, str(tflite_static)], capture_output=True, text=True, timeout=300
    )
    why = out.stdout.strip() or out.stderr.strip()[-300:] or f"exit code {out.returncode}"
    if out.returncode == 3 and "failed to initialise" not in why:
        pytest.fail(f"the GPU started but rejected the static digits CNN: {why}")
    if out.returncode != 0:
        pytest.skip(
            f"no GPU for LiteRT here ({why}) — install a Vulkan driver: scripts/os-deps.sh as root "
            "(mesa-vulkan-drivers >= 25 from Debian backports)."
        )
    return "gpu"
