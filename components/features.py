"""The one definition of every feature key, shared by ingestion, Transform, the model and the eval config."""

# Raw features, as ingestion writes them into tf.Example records.
IMAGE_KEY = "image_bytes"  # The encoded image file (JPEG or PNG after ingestion).
LABEL_KEY = "label"  # The class name: the name of the class folder.
SOURCE_URI_KEY = "source_uri"  # Where the file was read from, for tracing a prediction back to its file.
# Metadata of the file as read (statistics and the validation gate use them; the model does not).
FORMAT_KEY = "image_format"  # "JPEG", "PNG", "GIF", "BMP", "WEBP", ... (Pillow's name of the file's format).
HEIGHT_KEY = "image_height"  # Pixels, after EXIF orientation.
WIDTH_KEY = "image_width"
CHANNELS_KEY = "image_channels"  # Bands of the file: 1 grayscale/palette, 3 RGB, 4 RGBA/CMYK.
BYTE_SIZE_KEY = "image_byte_size"  # Size of the file in bytes.
SHA256_KEY = "image_sha256"  # Hex sha256 of the file: duplicates and the split are decided by it.

# Transformed features, as the Transform graph outputs them.
TRANSFORMED_IMAGE_KEY = "image_xf"  # float32 [height, width, 3], scaled to [-1, 1] as MobileNetV2 expects.
TRANSFORMED_LABEL_KEY = "label_xf"  # int64 class id from the label vocabulary.

# Name of the vocabulary file Transform writes; its line i is the name of class id i.
LABEL_VOCABULARY_NAME = "label_vocabulary"

# Output names of the exported model's signatures.
PROBABILITIES_KEY = "probabilities"
TOP_K_IDS_KEY = "top_k_class_ids"
TOP_K_NAMES_KEY = "top_k_class_names"
TOP_K_SCORES_KEY = "top_k_scores"

# Signature names of the exported model.
SERVING_SIGNATURE = "serving_default"  # Batch of encoded image bytes in, named classes out.
TF_EXAMPLE_SIGNATURE = "serving_tf_example"  # Serialized tf.Example in (what TFMA and InfraValidator send).
TRANSFORM_SIGNATURE = "transform_features"  # Serialized tf.Example in, transformed features out (labels for TFMA).

# Files the export writes beside the SavedModel. TF Serving reads assets.extra/ for warmup and ignores
# the rest of it, so the model's own description travels with every pushed version.
ASSETS_EXTRA_DIR = "assets.extra"
WARMUP_FILE_NAME = "tf_serving_warmup_requests"
MODEL_INFO_FILE_NAME = "model_info.json"  # Class names, input limits, training settings.
TFLITE_DIR = "tflite"  # TFLite exports and their evaluation, beside the SavedModel in its version folder.
TFLITE_EVALUATION_FILE_NAME = "tflite_evaluation.json"
MODEL_CARD_FILE_NAME = "model_card.md"
