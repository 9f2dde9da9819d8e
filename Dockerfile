# syntax=docker/dockerfile:1
# warning_system: one image for the API (gunicorn), the consumer and the one-shot
# jobs (migrate, create_topics). Build: docker build -t warning-system .
#
# Two stages: the builder installs the pinned requirements into a virtualenv; the
# runtime stage copies only that venv and the code, so no pip cache, build tools
# or requirements layers ship. Every dependency has a manylinux wheel (psycopg,
# confluent-kafka and xgboost-cpu bundle their C libraries), so no apt packages
# are needed in either stage.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY requirements.txt /tmp/requirements.txt
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install --upgrade pip \
    && pip install -r /tmp/requirements.txt


FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_SETTINGS_MODULE=warning_system.settings.production \
    STATIC_ROOT=/app/staticfiles \
    MODEL_DIR=/app/models \
    MALLOC_ARENA_MAX=2

# The app runs unprivileged and cannot modify its own code, static files or models
# (all owned by root); it only needs to read them.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-log-init --create-home --home-dir /home/app app

COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
# The code and the committed models/ directory (landslide/flood .ubj + metadata),
# so an image always carries the models it was tested with.
COPY . /app

# Production settings refuse to load without a real SECRET_KEY and ALLOWED_HOSTS;
# collectstatic touches neither, so harmless build-only values are passed inline
# for this one command and never persist in the image's environment.
RUN SECRET_KEY=collectstatic-at-build-time-only-not-a-secret-0123456789abcdef \
    ALLOWED_HOSTS=build.invalid \
    python manage.py collectstatic --noinput \
    && python -m compileall -q /app

USER app
EXPOSE 8000

# /api/v1/health answers 503 when the database, broker or models fail. Django
# rejects a Host header not in ALLOWED_HOSTS, so the probe sends the first
# allowed host (a leading-dot wildcard matches its bare domain).
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os,urllib.request as u;h=os.environ.get('ALLOWED_HOSTS','').split(',')[0].strip().lstrip('.');h=h if h not in ('','*') else 'localhost';u.urlopen(u.Request('http://127.0.0.1:8000/api/v1/health',headers={'Host':h}),timeout=8)"]

CMD ["gunicorn", "-c", "gunicorn.conf.py", "warning_system.wsgi:application"]
