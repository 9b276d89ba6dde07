"""The monitor's defaults, in a module light enough for the CLI's parser (no TensorFlow)."""
DEFAULT_SAMPLE_SIZE = 500
# Largest drop of the mean top-1 confidence below eval's that is not a finding (absolute).
DEFAULT_MAX_CONFIDENCE_DROP = 0.1
