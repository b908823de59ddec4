# noise-search in a container: the image the docker-compose workers and dashboard run.
#   docker build -t noise-search .
#   docker run --rm noise-search run studies/circles.toml --storage postgresql+psycopg://...
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=3

WORKDIR /app
# Dependencies in their own layer (an empty package stands in for the code), so that editing
# the code or a study file does not download TensorFlow again.
COPY pyproject.toml README.md ./
RUN mkdir search && touch search/__init__.py \
    && pip install . && pip uninstall -y noise-search && rm -rf search build
COPY search ./search
RUN pip install --no-deps .
COPY studies ./studies

RUN useradd --create-home --uid 1000 noise && chown -R noise /app
USER noise

ENTRYPOINT ["noise-search"]
CMD ["--help"]
