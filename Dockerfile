# One image for every Backroom process: worker(s), dashboard, HTTP ingest, simulators, history sink.
#
#   docker build -t backroom .                  # or: docker compose up --build (docs/operations.md)
#   docker run --rm backroom backroom --help
#
# Runtime dependencies only: `pip install .` without extras, so no ultralytics/torch (training
# stays on a developer machine); detection runs on ONNX Runtime with the weights from models/.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, from the project metadata alone, so a code change does not reinstall them.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt

COPY backroom/ backroom/
COPY streams/ streams/
COPY producers/ producers/
COPY consumers/ consumers/
COPY dashboard/ dashboard/
COPY broker/ broker/
COPY cli/ cli/
COPY bench/ bench/
RUN pip install --no-deps . && rm -rf build *.egg-info

# Data, not code: the installed package cannot find models/ next to itself, so say where it is.
COPY models/ /app/models/

# A fixed non-root user; the volume mount points exist and belong to it, so named volumes
# created from them are writable.
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /data backroom \
    && mkdir -p /data /frames /history \
    && chown backroom:backroom /data /frames /history
USER backroom

ENV BACKROOM_DATA_DIR=/data \
    BACKROOM_FRAME_ROOT=/frames \
    BACKROOM_HISTORY_FILE=/history/history.duckdb \
    BACKROOM_DETECTOR_MODEL=/app/models/shelf-gap.onnx \
    BACKROOM_METRICS_HOST=0.0.0.0 \
    BACKROOM_LOG_FORMAT=json

# Worker metrics, dashboard, ingest API.
EXPOSE 9108 8000 8001
CMD ["backroom", "worker"]
