# syntax=docker/dockerfile:1
# First draft (finished in the sharing-and-scale issue). The torch 2.14.1 wheel carries its own
# CUDA 13 runtime (nvidia-* wheels), so a slim Python base is CUDA-capable under `--gpus all`
# (the host driver is injected by the NVIDIA container toolkit).
FROM python:3.11.7-slim-bookworm

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH

RUN apt-get update \
 && apt-get install -y --no-install-recommends git make \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /repro
# Same install steps as `make venv` (CI): the lock file, then the package without dependencies.
COPY requirements.lock pyproject.toml README.md ./
RUN python -m venv /opt/venv \
 && pip install --quiet --upgrade "pip>=24" "setuptools>=64" \
 && pip install --quiet -r requirements.lock
COPY repro ./repro
RUN pip install --quiet --no-deps --no-build-isolation -e . \
 && python -m ipykernel install --sys-prefix --name python3

COPY . .
RUN useradd --create-home --uid 1000 repro && chown -R repro /repro
USER repro
RUN git config --global --add safe.directory /repro \
 && git config --global user.name repro && git config --global user.email repro@localhost

CMD ["dvc", "repro"]
