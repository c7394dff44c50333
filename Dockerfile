# kdgrade image.  REQUIREMENTS=requirements/serve.txt (default): web, short-task worker, beat, no torch.
# REQUIREMENTS=requirements.txt: adds the training stack, for the training worker.
FROM python:3.11-slim
ARG REQUIREMENTS=requirements/serve.txt
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 KDGRADE_DATA_DIR=/var/lib/kdgrade \
    KDGRADE_STATIC_ROOT=/opt/kdgrade/static
WORKDIR /opt/kdgrade
COPY requirements.txt ./
COPY requirements/ requirements/
RUN pip install --no-cache-dir -r "$REQUIREMENTS" -c requirements/constraints.txt
COPY . .
# Static files are part of the image (the settings check needs a key and hosts; placeholders do for this).
RUN KDGRADE_MODE=production SECRET_KEY=collectstatic-only-placeholder-0123456789abcdef0123456789 \
    ALLOWED_HOSTS=build python manage.py collectstatic --noinput -v0
RUN useradd --system --home /var/lib/kdgrade kdgrade && mkdir -p /var/lib/kdgrade && chown kdgrade /var/lib/kdgrade
USER kdgrade
EXPOSE 8000
CMD ["gunicorn", "kdgrade.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--threads", "4", \
     "--access-logfile", "-", "--graceful-timeout", "25"]
