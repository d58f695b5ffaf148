"""RecordedRunner: replays outputs a model produced elsewhere (another process, another accelerator).

The pipeline validates a variant on the GPU in a child process without TensorFlow (LiteRT 2.3's GPU
accelerator crashes a process that imported it), then compares the outputs here, against the TensorFlow
reference, with the same ``validate()`` as every other variant. This runner is that candidate: each
sample's outputs are looked up by the content of its inputs, so batching and order do not matter.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import numpy as np

from liteship.errors import InferenceError
from liteship.runtime.base import FixedSpecsRunner
from liteship.types import TensorSpec


def feed_key(feed: Mapping[str, np.ndarray]) -> bytes:
    """A feed's identity by content: its input names, dtypes, shapes and bytes (sha256)."""
    h = hashlib.sha256()
    for name in sorted(feed):
        a = np.ascontiguousarray(feed[name])
        h.update(name.encode() + str(a.dtype).encode() + str(a.shape).encode() + a.tobytes())
    return h.digest()


class RecordedRunner(FixedSpecsRunner):
    """A runner whose outputs were computed before, sample by sample.

    Args:
        inputs: ``{input name: stacked samples}`` that were run.
        outputs: ``{output name: stacked outputs}``, row ``i`` for input row ``i``.
        input_specs: The model's inputs (names, shapes, dtypes).
        output_specs: The model's outputs.
        backend: What computed the outputs, e.g. ``"ai-edge-litert 2.3.0 CompiledModel on gpu"``.
        name: A short label for reports.
        warnings: What that runner reported.
        model_bytes: The model file's bytes (validate reads its calibration record), if known.

    Raises:
        InferenceError: (from :meth:`infer`) a sample that was not recorded.
    """

    def __init__(
        self,
        inputs: Mapping[str, np.ndarray],
        outputs: Mapping[str, np.ndarray],
        *,
        input_specs: Sequence[TensorSpec],
        output_specs: Sequence[TensorSpec],
        backend: str,
        name: str,
        warnings: Sequence[str] = (),
        model_bytes: bytes | None = None,
    ) -> None:
        self._input_specs, self._output_specs = list(input_specs), list(output_specs)
        self.backend, self.name = backend, name
        self.warnings = list(warnings)
        self.model_bytes = model_bytes
        n = {len(v) for v in (*inputs.values(), *outputs.values())}
        if len(n) != 1:
            raise InferenceError(
                f"recorded inputs and outputs of {name} have different sample counts {sorted(n)}.",
                hint="Record one output row per input row.",
            )
        self._rows = {
            feed_key({k: v[i] for k, v in inputs.items()}): {k: v[i] for k, v in outputs.items()}
            for i in range(n.pop())
        }

    def accepts_dtype(self, spec: TensorSpec, dtype: np.dtype) -> bool:
        return dtype.kind in "fiub"  # the recording runner checked the dtypes already

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        batch = len(next(iter(feed.values())))
        rows = []
        for i in range(batch):
            row = self._rows.get(feed_key({k: v[i] for k, v in feed.items()}))
            if row is None:
                raise InferenceError(
                    f"{self.name}: sample {i} of this batch was not recorded ({len(self._rows)} were).",
                    hint="Record the outputs of every sample you compare (the same preprocessed inputs).",
                )
            rows.append(row)
        return {s.name: np.stack([r[s.name] for r in rows]) for s in self._output_specs}


__all__ = ["RecordedRunner", "feed_key"]
