"""Importing the host package must not load Django's settings: in development that
starts the embedded stack, so a command or a benchmark that sets DATABASE_URL after
importing (bench harness, `kameng` sub-commands) would talk to a second, empty stack."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_importing_platform_core_leaves_settings_unloaded():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "kameng_settings_that_do_not_exist"}
    code = ("import platform_core, platform_core.cli, platform_core.devstack, platform_core.celery\n"
            "from django.conf import settings\n"
            "assert not settings.configured, 'settings were loaded at import'\n")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stderr[-2000:]
