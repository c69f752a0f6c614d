"""Webhook ingest over HTTP under gunicorn, against /healthz on the same server in the same run.

The production server (gunicorn with config/gunicorn.conf.py, as `make serve` and compose run
it: threaded workers, the JSON access log, multiprocess metrics) with 3 workers and production
settings (DEBUG off, persistent database connections: CONN_MAX_AGE=60 with health checks, a
Redis broker so the hand-off after each response is a real publish), on a throwaway test
database; its output (the access log) goes to a file, shown if it fails to start. `--threads`
overrides the threads per worker (1: the sync server this bench measured before). 8 concurrent
clients (processes, so that the client is not one GIL) post distinct, correctly signed Stripe
events for a fixed time, then GET /healthz for the same time; twice, alternating. Printed:
requests/s, p50 and p99 of each, and the ratios (target: webhooks >= 0.4x /healthz's
throughput, p99 <= 3x /healthz's).

    make bench     # or: .venv/bin/python bench/webhook_ingest.py --seconds 10 --rounds 3
    BENCH_REDIS_URL=redis://127.0.0.1:6379/15 (default) is the broker; its queue is emptied.

PostgreSQL when DATABASE_URL points at one (the server is other processes and must see the
test database); on SQLite it says so and stops.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import http.client
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DEBUG", "1")
BROKER = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
SECRET = "whsec_bench_ingest"  # noqa: S105 - a throwaway secret for the bench's own server  # nosec B105
CLIENTS = 8
WORKERS = 3


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _sign(body: str) -> str:
    stamp = int(time.time())
    digest = hmac.new(SECRET.encode(), f"{stamp}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"t={stamp},v1={digest}"


def _client(port: int, kind: str, seconds: float, number: int, out: multiprocessing.Queue) -> None:
    """One client: requests one after another for `seconds`; its latencies in ms."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < deadline:
        n += 1
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        if kind == "webhook":
            body = json.dumps(
                {
                    "id": f"evt_ingest_{os.getpid()}_{number}_{n}_{time.time_ns()}",
                    "object": "event",
                    "type": "payment_intent.succeeded",
                    "created": int(time.time()),
                    "data": {"object": {"id": f"pi_ingest_{n}", "status": "succeeded"}},
                }
            )
            headers = {"Content-Type": "application/json", "Stripe-Signature": _sign(body)}
            started = time.perf_counter()
            conn.request("POST", "/webhooks/stripe/", body=body, headers=headers)
        else:
            started = time.perf_counter()
            conn.request("GET", "/healthz")
        response = conn.getresponse()
        response.read()
        latencies.append((time.perf_counter() - started) * 1000)
        conn.close()
        if response.status != 200:
            errors += 1
    out.put((latencies, errors))


def _load(port: int, kind: str, seconds: float) -> dict[str, float]:
    out: multiprocessing.Queue = multiprocessing.Queue()
    procs = [
        multiprocessing.Process(target=_client, args=(port, kind, seconds, i, out))
        for i in range(CLIENTS)
    ]
    started = time.perf_counter()
    for proc in procs:
        proc.start()
    results = [out.get() for _ in procs]
    elapsed = time.perf_counter() - started
    for proc in procs:
        proc.join()
    latencies = sorted(ms for result, _ in results for ms in result)
    errors = sum(e for _, e in results)
    if errors:
        raise SystemExit(f"{kind}: {errors} answers were not 200")
    return {
        "rps": len(latencies) / elapsed,
        "p50": statistics.median(latencies),
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "n": len(latencies),
    }


def _server(
    database: str, port: int, threads: int | None, output: IO[bytes]
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DEBUG": "0",
        "SECRET_KEY": base64.b64encode(os.urandom(32)).decode(),
        "FIELD_ENCRYPTION_KEYS": os.environ.get(
            "FIELD_ENCRYPTION_KEYS", "ZGV2LW9ubHktZmllbGQta2V5LW5vdC1mb3ItcHJvZCE="
        ),
        # Production refuses to start without a checkpoint signing key; any key does here.
        "AUDIT_CHECKPOINT_SIGNING_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "0",  # plain HTTP on loopback, as behind a TLS-terminating proxy
        "DATABASE_URL": database,
        "CONN_MAX_AGE": "60",
        "CELERY_BROKER_URL": BROKER,
        "STRIPE_WEBHOOK_SECRET": SECRET,
        "LOG_LEVEL": "WARNING",
        "WEB_CONCURRENCY": str(WORKERS),
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "PROMETHEUS_MULTIPROC_DIR": str(Path(output.name).parent / "metrics"),
        # No recycling of workers: a restart every ~2,000 requests costs whichever measure is
        # running a second of imports, the same for every endpoint but landing on one.
        "GUNICORN_MAX_REQUESTS": "0",
    }
    if threads is not None:
        env["GUNICORN_THREADS"] = str(threads)
    # Our own interpreter and arguments.
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", "config/gunicorn.conf.py"],
        cwd=ROOT,
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
    )


def _up(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/healthz")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5, help="per measure and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--threads", type=int, default=None, help="per worker (default: the configuration's)"
    )
    args = parser.parse_args()

    import django

    django.setup()
    import redis
    from django.db import connection

    from payments.models import WebhookEvent

    if connection.vendor != "postgresql":
        print("webhook ingest bench: needs PostgreSQL (set DATABASE_URL); skipped")
        return
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    db = connection.settings_dict
    host = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    database = f"postgres://{db['USER']}@{host}/{db['NAME']}"
    connection.close()
    queue = redis.Redis.from_url(BROKER)
    port = _free_port()
    scratch = tempfile.TemporaryDirectory(prefix="bench-ingest-")
    output = open(Path(scratch.name) / "server.log", "w+b")  # noqa: SIM115 - closed below
    server = _server(database, port, args.threads, output)
    try:
        deadline = time.monotonic() + 60
        while not _up(port):
            if time.monotonic() > deadline or server.poll() is not None:
                output.seek(0)
                sys.stderr.write(output.read()[-4000:].decode(errors="replace"))
                raise SystemExit("gunicorn did not start")
            time.sleep(0.2)
        _load(port, "webhook", 1)  # warm: every worker has its connection and its imports
        _load(port, "healthz", 1)
        rounds: dict[str, list[dict[str, float]]] = {"webhook": [], "healthz": []}
        for number in range(1, args.rounds + 1):
            for kind in ("healthz", "webhook"):
                result = _load(port, kind, args.seconds)
                rounds[kind].append(result)
                print(
                    f"  round {number}/{args.rounds} {kind:8} {result['rps']:7.0f} req/s  "
                    f"p50 {result['p50']:6.1f} ms  p99 {result['p99']:6.1f} ms"
                )
        stored = WebhookEvent.objects.count()
        sent = int(sum(r["n"] for r in rounds["webhook"]))
        summary = {
            kind: {key: statistics.median(r[key] for r in results) for key in ("rps", "p50", "p99")}
            for kind, results in rounds.items()
        }
        web, health = summary["webhook"], summary["healthz"]
        print(
            f"\nWebhook ingest under gunicorn ({WORKERS} workers x {args.threads or 'default'} "
            f"threads, {CLIENTS} clients, CONN_MAX_AGE=60), "
            f"median of {args.rounds} rounds of {args.seconds:g}s:"
        )
        print("| measure | requests/s | p50 | p99 |\n| --- | --- | --- | --- |")
        for kind, name in (("healthz", "`/healthz`"), ("webhook", "signed Stripe webhook")):
            r = summary[kind]
            print(f"| {name} | {r['rps']:.0f} | {r['p50']:.1f} ms | {r['p99']:.1f} ms |")
        print(
            f"ratio: {web['rps'] / health['rps']:.2f}x /healthz's throughput (target >= 0.4x), "
            f"p99 {web['p99'] / health['p99']:.2f}x /healthz's (target <= 3x)"
        )
        print(f"events stored: {stored} (plus 1 s of warm-up) of {sent} acknowledged in rounds")
        from measuring import Figure, report  # make bench's summary

        report(
            "webhook_ingest",
            [
                Figure("webhook ingest", web["rps"], "req/s", health["rps"], "/healthz", ">= 0.4x"),
                Figure("webhook ingest, p99", web["p99"], "ms", health["p99"], "/healthz", "<= 3x"),
                Figure("webhook ingest, p50", web["p50"], "ms", health["p50"], "/healthz"),
            ],
            details={"rounds": rounds, "stored": stored, "acknowledged": sent},
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
        output.close()
        scratch.cleanup()
        queue.delete("celery")
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
