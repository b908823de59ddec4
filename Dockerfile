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
# Dependencies first, so that editing a study file or the code does not reinstall TensorFlow.
COPY pyproject.toml README.md ./
COPY search ./search
RUN pip install .
COPY studies ./studies

RUN useradd --create-home --uid 1000 noise && chown -R noise /app
USER noise

ENTRYPOINT ["noise-search"]
CMD ["--help"]
