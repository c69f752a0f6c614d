import os

from celery import Celery

from config import metrics, request_id

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("backoffice")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Keep the LOGGING of config/settings.py (JSON lines with the request id) in worker and beat.
app.conf.worker_hijack_root_logger = False

request_id.connect()
metrics.connect_worker()
