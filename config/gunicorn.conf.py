"""gunicorn's configuration for production (`make serve`, compose.yaml's web service).

Every value can be changed from the environment: WEB_CONCURRENCY (worker processes, default two
per core plus one), GUNICORN_THREADS (threads per worker, default 4), GUNICORN_BIND (default
0.0.0.0:8000), GUNICORN_TIMEOUT (seconds a request may take before its worker is replaced,
default 30), LOG_LEVEL. The access log is one JSON line per request (config/gunicorn_logging.py)
with the path but never the query string, headers or body.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

wsgi_app = "config.wsgi:application"
bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")  # nosec B104
workers = int(os.environ.get("WEB_CONCURRENCY", str(2 * (os.cpu_count() or 1) + 1)))
# Threads, not more processes: a webhook spends most of its time waiting for PostgreSQL to flush
# its commit to disk, and while one thread waits the worker answers others (and their commits
# share a flush). Measured with bench/webhook_ingest.py on 2 cores: 3 sync workers acknowledged
# 0.20x /healthz's throughput, 3 workers of 4 threads 0.37x. Each thread holds its own database
# connection: workers x threads connections per server.
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# A request that takes longer has hung: its worker is replaced (and the client gets a 502 from
# the proxy). Webhooks and screens answer in milliseconds; exports stream, and each chunk
# written resets nothing, so keep exports within this or raise it.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
# Behind a load balancer that keeps connections open (its idle timeout must be longer).
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
# Recycle workers now and then, staggered, so that slow leaks never add up.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "2000"))
max_requests_jitter = max_requests // 10
# Heartbeat files on tmpfs when there is one (a container's /tmp may be a slow overlay).
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108  # nosec B108
# No control socket: several servers on one host would share its default path.
control_socket_disable = True
# The peer's address is kept as is; Django believes X-Forwarded-For only from TRUSTED_PROXIES.
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")
proc_name = "backoffice-web"

accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
logger_class = "config.gunicorn_logging.JsonLogger"

# Prometheus (config/metrics.py): each worker writes its series to files in one directory and
# /metrics sums them, so a scrape that lands on any worker sees the whole server. The directory
# is emptied at start: series of a previous run would be added to this one's.
_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(
    prefix="backoffice-metrics-"
)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir
raw_env = [f"PROMETHEUS_MULTIPROC_DIR={_metrics_dir}"]


def on_starting(server: Any) -> None:
    os.makedirs(_metrics_dir, exist_ok=True)
    for name in os.listdir(_metrics_dir):
        path = os.path.join(_metrics_dir, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
    server.log.info(
        "backoffice: %d workers x %d threads on %s, timeout %ds", workers, threads, bind, timeout
    )


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
