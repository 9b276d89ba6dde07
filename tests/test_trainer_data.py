"""The Trainer's input pipeline (components/trainer/data.py) on real GZIP examples through a real Transform graph."""
import math

import pytest
import tensorflow as tf
import tensorflow_transform as tft

from components.trainer import data, serving, training
from components.trainer.hparams import TrainingConfig
from tests.test_kfp_multiworker import write_examples

PER_CLASS = 3  # Three classes (tests/conftest.py COLORS): 9 examples.


@pytest.fixture
def decoded(tmp_path, transform_output_dir):
    files = [write_examples(tmp_path / "examples.gz", per_class=PER_CLASS)]
    tft_output = tft.TFTransformOutput(transform_output_dir)
    num_classes = len(serving.read_class_names(tft_output))
    config = TrainingConfig(image_size=32, batch_size=4)

    def make(num_examples):
        return data.decoded_examples(files, tft_output, config, num_examples, num_classes), config

    return make


def test_decoded_examples_know_their_count_without_a_pass(decoded):
    # Unknown before (unbatch hides it): the phase-2 cache check then decoded the split once more only to count
    # it, and Keras' fit synchronized after every step of the image path.
    examples, config = decoded(3 * PER_CLASS)
    assert int(examples.cardinality()) == 3 * PER_CLASS
    assert training._cardinality(examples) == 3 * PER_CLASS
    batches = data.batched(examples, config, 3 * PER_CLASS, shuffle=True)
    assert int(batches.cardinality()) == math.ceil(3 * PER_CLASS / config.batch_size)
    assert sum(int(tf.shape(images)[0]) for images, _ in batches) == 3 * PER_CLASS


def test_a_record_count_that_no_longer_holds_fails_with_a_clear_error(decoded):
    examples, _ = decoded(3 * PER_CLASS + 1)
    with pytest.raises(tf.errors.FailedPreconditionError, match="expected to contain 10 element"):
        for _ in examples:
            pass
