"""Wrong gradients planted in TensorFlow's own gradient registry, as a TensorFlow bug looks to the runner.

TensorFlow finds an op's gradient function by the op's type in one registry
(``tensorflow.python.framework.ops._gradient_registry``); eager tapes, ``tf.function``,
XLA, nested tapes (the wrapped function is itself differentiated) and forward mode
(ForwardAccumulator builds JVPs from the backward functions) all go through it. So
wrapping one entry, and restoring it afterwards, is an honest way to hand the runner
a wrong derivative it did not make itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

#: What a plant does to each gradient an op's function returns: (the op, the gradient) -> the gradient.
Wrong = Callable[[Any, Any], Any]


def scaled(factor: float) -> Wrong:
    """Every element times ``factor`` (1.01: one percent off)."""
    def wrong(op: Any, grad: Any) -> Any:
        from runner.tfenv import tf

        return grad * tf.cast(factor, grad.dtype)
    return wrong


def sign_flipped_every_other() -> Wrong:
    """Elements 1, 3, 5, ... of the flattened gradient negated: as large as the right one, differently
    pointed."""
    def wrong(op: Any, grad: Any) -> Any:
        from runner.tfenv import tf

        flat = tf.reshape(grad, [-1])
        signs = 1 - 2 * (tf.range(tf.size(flat)) % 2)
        return tf.reshape(flat * tf.cast(signs, flat.dtype), tf.shape(grad))
    return wrong


def tails_of_sigmoid(factor: float, beyond: float) -> Wrong:
    """Off by ``factor`` only where sigmoid's input is beyond ``+-beyond``: there the derivative is below
    1e-3 of its peak, so an error only per-element tolerances see."""
    def wrong(op: Any, grad: Any) -> Any:
        from runner.tfenv import tf

        y = op.outputs[0]  # sigmoid(x): its tails are where y is near 0 or 1
        edge = tf.cast(tf.sigmoid(tf.constant(-beyond, tf.float64)), y.dtype)
        tail = tf.logical_or(y < edge, y > 1 - edge)
        return tf.where(tail, grad * tf.cast(factor, grad.dtype), grad)
    return wrong


@contextlib.contextmanager
def planted(op_type: str, wrong: Wrong) -> Iterator[None]:
    """Inside the block, TensorFlow's gradient of ``op_type`` is ``wrong`` applied to the true one."""
    from tensorflow.python.framework import ops

    from runner.tfenv import tf  # noqa: F401  (TensorFlow loaded, its registry filled)

    entry = ops._gradient_registry._registry[op_type]
    original = entry["type"]

    def gradient(op: Any, *grads: Any) -> Any:
        found = original(op, *grads)
        if isinstance(found, list | tuple):
            return type(found)(None if g is None else wrong(op, g) for g in found)
        return None if found is None else wrong(op, found)

    # Forward mode traces each op's JVP from its gradient function once and keeps it: emptied on the way
    # in, forward mode builds its JVPs from the plant; on the way out, it forgets them.
    from tensorflow.python.eager import forwardprop

    forwardprop._jvp_function_cache.clear()
    entry["type"] = gradient
    try:
        yield
    finally:
        entry["type"] = original
        forwardprop._jvp_function_cache.clear()
