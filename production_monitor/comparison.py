"""The measurements: TFDV skew of the images' format and size against the training statistics, the
predicted-class mix against the eval split's (L-infinity), and the mean top-1 confidence against eval's."""
import collections
import dataclasses
import logging
from typing import Dict, List, Optional, Sequence

import numpy as np
import tensorflow as tf
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2

from components import features
from production_monitor.sample import SampledImage

# The features of an image the monitor can compute from a file alone (what ingestion records beside it).
IMAGE_FEATURES = (features.FORMAT_KEY, features.HEIGHT_KEY, features.WIDTH_KEY, features.CHANNELS_KEY,
                  features.BYTE_SIZE_KEY)
# The format's skew threshold (L-infinity of the format shares) when the schema states none for it.
DEFAULT_FORMAT_SKEW_LINF = 0.2
PREDICT_BATCH_SIZE = 32


@dataclasses.dataclass(frozen=True)
class Finding:
    kind: str  # "skew", "schema", "class_mix" or "confidence"
    subject: str  # A feature, or "predicted class" / "top-1 confidence"
    measured: float
    threshold: float
    detail: str


def image_statistics(images: Sequence[SampledImage]) -> statistics_pb2.DatasetFeatureStatisticsList:
    """TFDV statistics of the images' format and size, with the feature names and types ingestion writes."""
    import pandas as pd
    import tensorflow_data_validation as tfdv

    frame = pd.DataFrame({
        features.FORMAT_KEY: [image.checked.source_format for image in images],
        features.HEIGHT_KEY: np.array([image.checked.height for image in images], dtype=np.int64),
        features.WIDTH_KEY: np.array([image.checked.width for image in images], dtype=np.int64),
        features.CHANNELS_KEY: np.array([image.checked.channels for image in images], dtype=np.int64),
        features.BYTE_SIZE_KEY: np.array([image.checked.byte_size for image in images], dtype=np.int64),
    })
    return tfdv.generate_statistics_from_dataframe(frame, n_jobs=1)


def image_schema(schema: schema_pb2.Schema) -> schema_pb2.Schema:
    """The schema's image features only, each with a skew comparator: the schema's own drift threshold where
    it states one (height, width), DEFAULT_FORMAT_SKEW_LINF for the format."""
    kept = schema_pb2.Schema()
    kept.CopyFrom(schema)
    del kept.feature[:]
    for feature in schema.feature:
        if feature.name not in IMAGE_FEATURES:
            continue
        copy = kept.feature.add()
        copy.CopyFrom(feature)
        if feature.HasField("drift_comparator"):
            copy.skew_comparator.CopyFrom(feature.drift_comparator)
        elif feature.name == features.FORMAT_KEY:
            copy.skew_comparator.infinity_norm.threshold = DEFAULT_FORMAT_SKEW_LINF
        copy.ClearField("drift_comparator")
    return kept


def skew_findings(train: statistics_pb2.DatasetFeatureStatisticsList,
                  production: statistics_pb2.DatasetFeatureStatisticsList,
                  schema: schema_pb2.Schema) -> (List[Finding], Dict[str, float]):
    """TFDV's skew between training and production (serving) statistics, and production against the schema's
    domains and ranges. Returns the findings and every measured skew distance by feature."""
    import tensorflow_data_validation as tfdv

    checked = image_schema(schema)
    skew = tfdv.validate_statistics(statistics=train, schema=checked, serving_statistics=production)
    distances, findings = {}, []
    for info in skew.drift_skew_info:
        name = info.path.step[-1]
        for measurement in info.skew_measurements:
            distances[name] = max(distances.get(name, 0.0), measurement.value)
            if measurement.value > measurement.threshold:
                kind = anomalies_pb2.DriftSkewInfo.Measurement.Type.Name(measurement.type).lower()
                findings.append(Finding("skew", name, measurement.value, measurement.threshold,
                                        f"{kind} {measurement.value:.3f} > {measurement.threshold}"))
    domain = tfdv.validate_statistics(statistics=production, schema=checked)
    for name, info in sorted(domain.anomaly_info.items()):
        findings.append(Finding("schema", name, 1.0, 0.0, info.description or info.short_description))
    return findings, distances


class ServedModel:
    """The served version's serving_default signature, on encoded image bytes, as TF Serving runs it."""

    def __init__(self, version_dir: str):
        self._signature = tf.saved_model.load(version_dir).signatures[features.SERVING_SIGNATURE]

    def _top1(self, batch: Sequence[bytes]):
        outputs = self._signature(**{features.IMAGE_KEY: tf.constant(list(batch))})
        names = [row[0].decode("utf-8") for row in outputs[features.TOP_K_NAMES_KEY].numpy()]
        return names, outputs[features.TOP_K_SCORES_KEY].numpy()[:, 0].tolist()

    def top1(self, images: Sequence[bytes]):
        """(class name, score) per image, None for an image the model refuses (INVALID_ARGUMENT, as TF
        Serving would answer that request); one refused image does not lose its batch."""
        results: List[Optional[tuple]] = []
        for start in range(0, len(images), PREDICT_BATCH_SIZE):
            batch = images[start:start + PREDICT_BATCH_SIZE]
            try:
                results += list(zip(*self._top1(batch)))
            except tf.errors.InvalidArgumentError:
                for image in batch:
                    try:
                        names, scores = self._top1([image])
                        results.append((names[0], scores[0]))
                    except tf.errors.InvalidArgumentError as error:
                        logging.info("The model refuses an image: %s", error.message.splitlines()[0])
                        results.append(None)
        return results


def eval_images(pattern: str, limit: int) -> List[bytes]:
    """Up to `limit` encoded images of the eval split (GZIP TFRecords of tf.Example, as ingestion writes)."""
    paths = sorted(tf.io.gfile.glob(pattern))
    if not paths:
        raise ValueError(f"No eval examples at {pattern}.")
    images = []
    for record in tf.data.TFRecordDataset(paths, compression_type="GZIP").take(limit):
        example = tf.train.Example.FromString(record.numpy())
        images.append(example.features.feature[features.IMAGE_KEY].bytes_list.value[0])
    return images


@dataclasses.dataclass(frozen=True)
class PredictionSummary:
    count: int
    refused: int
    class_shares: Dict[str, float]
    mean_confidence: float


def summarize(predictions: Sequence[Optional[tuple]], class_names: Sequence[str]) -> PredictionSummary:
    answered = [p for p in predictions if p is not None]
    counts = collections.Counter(name for name, _ in answered)
    total = max(len(answered), 1)
    return PredictionSummary(len(answered), len(predictions) - len(answered),
                             {name: counts.get(name, 0) / total for name in class_names},
                             float(np.mean([score for _, score in answered])) if answered else float("nan"))


def class_mix_linf(production: PredictionSummary, reference: PredictionSummary) -> float:
    return max(abs(production.class_shares[name] - reference.class_shares[name]) for name in reference.class_shares)


def label_linf_threshold(schema: schema_pb2.Schema) -> float:
    """The schema's L-infinity threshold on the label's distribution (its drift comparator), reused for the
    predicted-class mix."""
    for feature in schema.feature:
        if feature.name == features.LABEL_KEY and feature.drift_comparator.HasField("infinity_norm"):
            return feature.drift_comparator.infinity_norm.threshold
    raise ValueError("The schema states no L-infinity drift threshold for the label; the class mix needs one.")
