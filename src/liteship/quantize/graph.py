"""Small Keras graph helpers shared by the graph fixes (public Keras API only)."""

from __future__ import annotations

from typing import Any


def clone(model: Any) -> Any:
    """A copy of ``model`` with its own weights (changing one leaves the other as it was)."""
    import keras

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def consumers(model: Any) -> dict[int, list[Any]]:
    """``{id(tensor): [layers reading it]}`` over the model's layers."""
    out: dict[int, list[Any]] = {}
    for layer in model.layers:
        try:
            inputs = layer.input
        except (AttributeError, ValueError):  # an InputLayer, or a layer called more than once
            continue
        for t in inputs if isinstance(inputs, (list, tuple)) else [inputs]:
            out.setdefault(id(t), []).append(layer)
    return out


__all__ = ["clone", "consumers"]
