"""The custom Trainer: MobileNetV2 transfer learning in two phases (see training.py)."""
from components.trainer.autograph import skip_tf_keras_conversion

# Before any tf_keras model is traced, from any entry point (the Trainer, the benchmarks, the tests).
skip_tf_keras_conversion()
