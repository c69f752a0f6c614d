"""`make run` writes a development .env when there is none (tools/dev_env.py), so manage.py
commands work as the README writes them without exporting DEBUG; an existing .env is kept."""

from __future__ import annotations

import base64
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _read(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k: v for k, v in pairs if not k.startswith("#")}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The Makefile and the script in a temp dir, as a fresh checkout has them."""
    (tmp_path / "tools").mkdir()
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    shutil.copy(ROOT / "tools" / "dev_env.py", tmp_path / "tools" / "dev_env.py")
    return tmp_path


def _make(project: Path, *args: str) -> str:
    done = subprocess.run(
        ["make", "-C", str(project), f"PYTHON={sys.executable}", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout


def test_make_writes_a_development_env_with_random_secrets(project: Path) -> None:
    _make(project, ".env")
    env_file = project / ".env"
    values = _read(env_file)
    assert values["DEBUG"] == "1"
    assert len(values["SECRET_KEY"]) >= 50 and "dev-only" not in values["SECRET_KEY"]
    keys = values["FIELD_ENCRYPTION_KEYS"].split(",")
    for key in keys:
        assert len(base64.urlsafe_b64decode(key)) == 32  # a Fernet key's shape
    # Newest first: a random one, then the built-in development key so that a database
    # seeded before the file existed stays readable.
    assert keys[1] == "ZGV2LW9ubHktZmllbGQta2V5LW5vdC1mb3ItcHJvZCE="
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600


def test_an_existing_env_is_never_overwritten(project: Path) -> None:
    (project / ".env").write_text("SECRET_KEY=mine\n")
    _make(project, ".env")
    subprocess.run(
        [sys.executable, str(project / "tools" / "dev_env.py"), str(project / ".env")], check=True
    )
    assert (project / ".env").read_text() == "SECRET_KEY=mine\n"


def test_run_writes_env_before_migrating_and_announces_the_real_port(project: Path) -> None:
    plan = _make(project, "-n", "-o", ".venv/bin/.installed", "run", "PORT=8123")
    lines = plan.splitlines()
    written = next(i for i, line in enumerate(lines) if "tools/dev_env.py .env" in line)
    migrated = next(i for i, line in enumerate(lines) if "manage.py migrate" in line)
    assert written < migrated
    assert any("PORT=8123" in line and "seed_demo" in line for line in lines)
    assert any("http://127.0.0.1:8123/admin/" in line for line in lines)


def test_settings_start_from_the_written_env_without_debug_exported(project: Path) -> None:
    _make(project, ".env")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DEBUG", "SECRET_KEY", "FIELD_ENCRYPTION_KEYS", "DJANGO_SETTINGS_MODULE"}
    }
    env |= _read(project / ".env")  # what settings reads from the .env, as values
    done = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def test_seed_demo_names_the_port_make_run_serves_on(monkeypatch) -> None:
    from io import StringIO

    from kyc.demo.staff import print_credentials

    monkeypatch.setenv("PORT", "8123")
    out = StringIO()
    print_credentials(out.write)
    assert "Sign in at http://127.0.0.1:8123/admin/" in out.getvalue()
