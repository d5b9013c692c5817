# prodcat REST API (`prodcat serve`) on CPU.
#   docker build -t prodcat .
#   docker run --rm -p 8000:8000 -v "$PWD/model:/model:ro" prodcat
# Two stages: the first builds a virtual environment (CPU-only torch from PyTorch's CPU index,
# then prodcat with its serve and image extras); the second copies it into a slim image that
# runs as an unprivileged user. The model bundle is mounted at /model, never baked in.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/prodcat
ENV PATH=/opt/prodcat/bin:$PATH
# torch first, pinned exactly and from the CPU index, so nothing pulls a CUDA build
RUN pip install --index-url "${TORCH_INDEX}" "torch==2.13.0"
WORKDIR /build
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN pip install ".[serve,image]"

FROM ${PYTHON_IMAGE} AS runtime
# OpenCV (pulled in by the OCR of the image preset) loads libGL and GLib, which slim images lack
RUN apt-get update && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin prodcat
COPY --from=build /opt/prodcat /opt/prodcat
ENV PATH=/opt/prodcat/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PRODCAT_CACHE_DIR=/home/prodcat/.cache/prodcat
USER prodcat
WORKDIR /home/prodcat
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/ready', timeout=4)"]
ENTRYPOINT ["prodcat", "serve", "--model", "/model", "--host", "0.0.0.0"]
CMD ["--port", "8000", "--workers", "1"]
