"""Keeps AutoGraph from transpiling tf_keras, as TensorFlow itself does for the `keras` package.

TF 2.16's AutoGraph skips modules named `tensorflow` or `keras`, but Keras 2 now ships as `tf_keras`, which
its list does not name. AutoGraph then rewrites hundreds of tf_keras functions (fit's train step, every
layer's call) from their source on each first trace. Measured on 2 CPU cores: tracing MobileNetV2's
forward pass 15.5 s -> 1.6 s, ten epochs of the phase-1 head 21.6 s -> 2.9 s, tracing the phase-2 train
step 34 s -> 10 s. tf_keras is the same code that TF 2.15 and earlier never converted, so skipping it
changes no computation. The rules are a private list: when it is absent, nothing is changed.
"""
import logging

_TF_KERAS = "tf_keras"


def skip_tf_keras_conversion() -> bool:
    """Adds a DoNotConvert rule for tf_keras in front of AutoGraph's rules; True when it is in place."""
    try:
        from tensorflow.python.autograph.core import config
    except ImportError:  # A TensorFlow without the private module: keep its default behaviour.
        logging.warning("AutoGraph's conversion rules not found; tf_keras stays converted (slower tracing)")
        return False
    rules = tuple(config.CONVERSION_RULES)
    if not any(isinstance(rule, config.DoNotConvert) and rule.matches(_TF_KERAS) for rule in rules):
        config.CONVERSION_RULES = (config.DoNotConvert(_TF_KERAS),) + rules
    return True
