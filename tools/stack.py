"""The compose stack's processes without containers: gunicorn (web), a Celery worker and beat,
on this machine's PostgreSQL and Redis, with the settings compose.yaml gives them.

Usage (the environment names the database, the broker and the secrets, as for `make serve`):

    DATABASE_URL=postgres://... CELERY_BROKER_URL=redis://... SECRET_KEY=... \\
    FIELD_ENCRYPTION_KEYS=... python tools/stack.py [--port 8000] [--migrate]

It prints each step, waits until the web answers /readyz and the worker is consuming, then runs
until Ctrl-C (or SIGTERM) and stops all three. Each process's output goes to a log file in
--log-dir (default var/stack/). tests/test_stack.py starts it around a signed webhook.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
REQUIRED = (
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "SECRET_KEY",
    "FIELD_ENCRYPTION_KEYS",
    "AUDIT_CHECKPOINT_SIGNING_KEY",
)


class StackError(RuntimeError):
    pass


class Stack:
    def __init__(
        self,
        *,
        env: dict[str, str],
        port: int,
        worker_metrics_port: int,
        log_dir: Path,
        web_workers: int = 2,
        worker_concurrency: int = 2,
        say: object = print,
    ) -> None:
        missing = [name for name in REQUIRED if not env.get(name)]
        if missing:
            raise StackError(f"set {', '.join(missing)} (see the module's docstring)")
        self.port, self.worker_metrics_port = port, worker_metrics_port
        self.log_dir = log_dir
        self.say = say
        self.scratch = Path(tempfile.mkdtemp(prefix="backoffice-stack-"))
        # What compose.yaml sets for the app services; the caller's environment wins.
        self.env = {
            "DEBUG": "0",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SECURE_SSL_REDIRECT": "0",
            "LOG_FORMAT": "json",
            "CONN_MAX_AGE": "60",
            **env,
        }
        self.web_workers, self.worker_concurrency = web_workers, worker_concurrency
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[IO[bytes]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def _spawn(self, name: str, argv: list[str], **extra: str) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path(name), "wb")  # noqa: SIM115 - the child holds it open
        self._logs.append(log)
        self.processes[name] = subprocess.Popen(  # noqa: S603 - our own fixed commands
            argv,
            cwd=ROOT,
            env=self.env | extra,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us only; we stop each child in order
        )
        self.say(f"  {name}: pid {self.processes[name].pid}, log {self.log_path(name)}")

    def migrate(self) -> None:
        self.say("migrate: applying migrations...")
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--no-input", "--verbosity", "1"],
            cwd=ROOT,
            env=self.env,
            check=True,
        )

    def start(self, timeout: float = 60.0) -> None:
        started = time.monotonic()
        self.say(f"web: gunicorn, {self.web_workers} workers, on {self.url}")
        self._spawn(
            "web",
            [str(BIN / "gunicorn"), "--config", "config/gunicorn.conf.py"],
            GUNICORN_BIND=f"127.0.0.1:{self.port}",
            WEB_CONCURRENCY=str(self.web_workers),
            PROMETHEUS_MULTIPROC_DIR=str(self.scratch / "web-metrics"),
        )
        self.say(f"worker: celery, concurrency {self.worker_concurrency}")
        (self.scratch / "worker-metrics").mkdir(exist_ok=True)
        self._spawn(
            "worker",
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-l",
                "INFO",
                "--concurrency",
                str(self.worker_concurrency),
                "--without-gossip",
                "--without-mingle",
            ],
            WORKER_METRICS_PORT=str(self.worker_metrics_port),
            WORKER_METRICS_ADDRESS="127.0.0.1",
            PROMETHEUS_MULTIPROC_DIR=str(self.scratch / "worker-metrics"),
        )
        self.say("beat: celery beat")
        self._spawn(
            "beat",
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "beat",
                "-l",
                "INFO",
                "--schedule",
                str(self.scratch / "beat-schedule"),
            ],
        )
        try:
            self._wait("web answers /readyz", self._web_ready, started, timeout)
            self._wait("worker is consuming", self._worker_ready, started, timeout)
        except StackError:
            self.stop()
            raise
        self.say(f"stack up in {time.monotonic() - started:.1f} s")

    def _wait(self, what: str, ready: object, started: float, timeout: float) -> None:
        while time.monotonic() - started < timeout:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise StackError(
                        f"{name} exited with {process.returncode}; see {self.log_path(name)}"
                    )
            if ready():  # type: ignore[operator]
                self.say(f"  {what} ({time.monotonic() - started:.1f} s)")
                return
            time.sleep(0.25)
        raise StackError(f"timed out after {timeout:.0f} s waiting until the {what}")

    def _web_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as answer:  # noqa: S310
                return bool(answer.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def _worker_ready(self) -> bool:
        # The worker opens its metrics port when it is ready to consume (config/metrics.py).
        try:
            with socket.create_connection(("127.0.0.1", self.worker_metrics_port), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        # Beat first (no new tasks), then web (no new webhooks), then the worker, which may be
        # finishing a task: SIGTERM is Celery's and gunicorn's graceful stop.
        for name in ("beat", "web", "worker"):
            process = self.processes.pop(name, None)
            if process is None:
                continue
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)
            self.say(f"{name}: stopped ({process.returncode})")
        for log in self._logs:
            log.close()
        self._logs.clear()
        shutil.rmtree(self.scratch, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--worker-metrics-port", type=int, default=9100)
    parser.add_argument("--log-dir", type=Path, default=ROOT / "var" / "stack")
    parser.add_argument("--migrate", action="store_true", help="apply migrations first")
    args = parser.parse_args()
    try:
        stack = Stack(
            env=dict(os.environ),
            port=args.port,
            worker_metrics_port=args.worker_metrics_port,
            log_dir=args.log_dir,
        )
        if args.migrate:
            stack.migrate()
        stack.start()
    except (StackError, subprocess.CalledProcessError) as exc:
        print(f"stack: {exc}", file=sys.stderr)
        return 1
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    print("Ctrl-C stops the stack.")
    try:
        while not stopping:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
