# The back-office image: one image for web (gunicorn), worker and beat (Celery); compose.yaml
# runs each with its own command. Production settings only: every deploy-specific value comes
# from the environment at run time (README "Configuration", "Deployment"), none is baked in.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
RUN useradd --system --uid 10001 --user-group --home-dir /app --no-create-home backoffice

# The pinned tree first, so that a code change does not reinstall it. The lock pins the whole
# tree (the development tools too); --no-deps installs exactly it and pip check proves it whole.
COPY requirements.lock ./
RUN python -m pip install "pip==25.3" \
 && python -m pip install --no-deps -r requirements.lock \
 && python -m pip check

COPY . .
# Static files are collected into the image (whitenoise serves them, compressed). The key and
# field key below exist only for this build step: settings refuse to start without them.
RUN DEBUG=0 SECRET_KEY=collectstatic-only-not-a-secret \
    FIELD_ENCRYPTION_KEYS=ZGV2LW9ubHktZmllbGQta2V5LW5vdC1mb3ItcHJvZCE= \
    AUDIT_CHECKPOINT_SIGNING_KEY=Y29sbGVjdHN0YXRpYy1vbmx5LW5vdC1hLXNlY3JldCE= \
    python manage.py collectstatic --no-input --verbosity 0 \
 && mkdir -p /app/var/private /tmp/prometheus \
 && chown -R backoffice:backoffice /app/var /tmp/prometheus

USER backoffice
EXPOSE 8000
# The web process; compose.yaml's worker and beat override the command.
CMD ["gunicorn", "--config", "config/gunicorn.conf.py"]
