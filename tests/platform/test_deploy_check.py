"""Production settings: Django's deployment checklist passes, and the process refuses to
start without its secrets. Each case runs the real settings module in a subprocess with
a clean, production-like environment (nothing inherited from the test run)."""
from __future__ import annotations

import os
import secrets
import subprocess
import sys
from base64 import urlsafe_b64encode
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]


def _database_url() -> str:
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    db = settings.DATABASES["default"]
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def production_env(tmp_path: Path, **overrides: str | None) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "DJANGO_SETTINGS_MODULE": "platform_core.settings",
        "KAMENG_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(48),  # 64 characters
        "KAMENG_MASTER_KEY": urlsafe_b64encode(os.urandom(32)).decode(),
        "DATABASE_URL": _database_url(),
        "REDIS_URL": os.environ.get("REDIS_URL") or settings.REDIS_URL,
        "PLATFORM_DOMAIN": "example.com",
        "KAMENG_STATE_DIR": str(tmp_path / "state"),
    }
    assert len(env["SECRET_KEY"]) == 64
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def deploy_check(env: dict[str, str]) -> subprocess.CompletedProcess:
    return run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)


def test_production_settings_pass_check_deploy(tmp_path):
    result = deploy_check(production_env(tmp_path))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARNINGS" not in output and "ERRORS" not in output, output
    assert "no issues" in output


def test_check_deploy_does_flag_a_weakened_setting(tmp_path):
    """The check above can fail: switching HSTS off is reported and fails the run."""
    result = deploy_check(production_env(tmp_path, SECURE_HSTS_SECONDS="0"))
    assert result.returncode != 0
    assert "security.W004" in result.stdout + result.stderr


@pytest.mark.parametrize("name, value", [
    ("SECRET_KEY", None),
    ("SECRET_KEY", "   "),
    ("KAMENG_MASTER_KEY", None),
    ("KAMENG_MASTER_KEY", ""),
    ("DATABASE_URL", None),
    ("REDIS_URL", None),
])
def test_production_refuses_to_start_without(tmp_path, name, value):
    env = production_env(tmp_path, **{name: value})
    result = run(["-c", "import django; django.setup(); print('started')"], env)
    assert result.returncode != 0
    assert "started" not in result.stdout
    assert "ImproperlyConfigured" in result.stderr
    assert f"{name} is not set" in result.stderr, result.stderr
    # no development fallback: nothing generated, no embedded services started
    assert not (tmp_path / "state").exists()


def test_production_settings_values(tmp_path):
    code = ("from django.conf import settings as s; "
            "print(s.DEBUG, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_SSL_REDIRECT, "
            "s.SECURE_PROXY_SSL_HEADER == ('HTTP_X_FORWARDED_PROTO', 'https'), s.PLATFORM_SCHEME)")
    result = run(["-c", code], production_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True", "True", "True", "True", "https"]
