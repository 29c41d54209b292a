# syntax=docker/dockerfile:1
# The repro image: the pipeline and its exact environment (requirements.lock), CUDA-capable.
#
#   docker build -t repro .
#   docker run --rm --gpus all --ipc=host -v dvc-cache:/cache repro dvc repro
#
# Base: a slim Python 3.11 image, pinned to an exact tag (pin the digest too for bit-for-bit
# rebuilds: `docker buildx imagetools inspect python:3.11.7-slim-bookworm`, then
# `--build-arg BASE=python:3.11.7-slim-bookworm@sha256:...`). It is CUDA-capable without a CUDA
# base: the locked torch 2.14.1 wheel brings its own CUDA 13 runtime, cuDNN 9 and NCCL as
# nvidia-* wheels (requirements.lock), and `--gpus all` (NVIDIA container toolkit) injects the
# host driver (CUDA 13 needs driver >= 580). An nvidia/cuda base would only add a second copy of
# those libraries (several GB) that torch does not use. The lock needs Python >= 3.11.5 (e.g.
# soupsieve 4.1.2): a distribution's python3.11 (Debian bookworm 3.11.2) cannot install it.
ARG BASE=python:3.11.7-slim-bookworm
FROM ${BASE}

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    DVC_NO_ANALYTICS=1 NO_ALBUMENTATIONS_UPDATE=1 VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH HOME=/home/repro

# git: DVC and `dvc exp run`; make: the same install recipe as CI (`make venv`).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends git make \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /repro
# Exactly CI's install: `make venv` (Makefile) = pip and setuptools, `pip install -r requirements.lock`,
# torchattacks --no-deps, the package itself (-e, --no-deps) and the `python3` Jupyter kernel that
# papermill uses. Only these files go in first, so source edits do not invalidate this layer; the
# package is installed editable from a placeholder and the real source is copied over it below.
COPY Makefile requirements.lock pyproject.toml README.md ./
RUN mkdir repro && touch repro/__init__.py \
 && make venv VENV=/opt/venv PYTHON=python3.11 \
 && rm -rf repro

# Settings for every user id the container may run as (`--user "$(id -u):$(id -g)"`):
# git identity and safe.directory system-wide (for `dvc exp run` and mounted checkouts owned by
# another uid); the DVC cache in /cache (system-level DVC config, below the repository's own),
# a volume or host folder shared between runs and containers.
RUN git config --system --add safe.directory '*' \
 && git config --system user.name repro \
 && git config --system user.email repro@localhost \
 && git config --system init.defaultBranch main \
 && mkdir -p /cache \
 && dvc config --system cache.dir /cache \
 && dvc config --system core.analytics false \
 && dvc config --system core.check_update false \
 && useradd --create-home --home-dir /home/repro --uid 1000 --user-group repro \
 && chmod 1777 /cache /home/repro

COPY --chmod=0755 docker/entrypoint.sh /usr/local/bin/repro-entrypoint
COPY --chown=repro:repro . .
# The baked-in workspace is writable for any user id too (a mounted checkout is the usual case).
RUN chmod -R a+rwX /repro
USER 1000:1000
VOLUME ["/cache"]
ENTRYPOINT ["/usr/local/bin/repro-entrypoint"]
CMD ["dvc", "repro"]
