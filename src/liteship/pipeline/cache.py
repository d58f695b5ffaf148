"""A reference runner that computes each distinct input once: validating six variants against the
same source must not run the (slow, TensorFlow) reference six times."""

from __future__ import annotations

import numpy as np

from liteship.runtime.base import Runner
from liteship.runtime.recorded import feed_key
from liteship.types import TensorSpec


class CachingRunner(Runner):
    """Wraps a runner; identical feeds (by content) return the stored outputs."""

    def __init__(self, inner: Runner) -> None:
        self.inner = inner
        self.backend = f"{inner.backend} (cached)"
        self.name = inner.name
        self._cache: dict[bytes, dict[str, np.ndarray]] = {}
        self.hits = 0

    @property
    def input_specs(self) -> list[TensorSpec]:
        return self.inner.input_specs

    @property
    def output_specs(self) -> list[TensorSpec]:
        return self.inner.output_specs

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        key = feed_key(feed)
        hit = self._cache.get(key)
        if hit is not None:
            self.hits += 1
            return hit
        out = self.inner._infer(feed)
        self._cache[key] = out
        return out

    def close(self) -> None:
        self.inner.close()
