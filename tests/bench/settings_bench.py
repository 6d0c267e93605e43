"""Settings for the benchmarks: the test settings, plus the production password
hashers, and

* Celery tasks are *sent* to the broker instead of run eagerly (as in production: the
  welcome e-mail and the pool refill never run on the signup request). Nothing consumes
  them; the benchmark refills the pool itself, outside the timed region.
  ``BENCH_CELERY_EAGER=1`` restores the test behaviour.
* an optional throw-away tenant app ``kameng_bench_app`` (bench_migrate writes it into a
  temp dir named by ``BENCH_APP_DIR``), whose migrations come from the module named by
  ``BENCH_MIGRATIONS_MODULE`` so one process can run with 0001 and a later one with 0002.
"""
import os
import sys

os.environ.setdefault("KAMENG_ENV", "test")
os.environ.setdefault("LOG_LEVEL", "WARNING")

from platform_core.settings_test import *  # noqa: E402,F401,F403
from platform_core.settings_test import INSTALLED_APPS, TENANT_APPS  # noqa: E402

CELERY_TASK_ALWAYS_EAGER = os.environ.get("BENCH_CELERY_EAGER", "0") == "1"
# the production hashers: a cheap test hasher would hide what a checkout costs
PASSWORD_HASHERS = ["django.contrib.auth.hashers.Argon2PasswordHasher",
                    "django.contrib.auth.hashers.PBKDF2PasswordHasher"]
KAMENG_SPARE_SHOPS = int(os.environ.get("KAMENG_SPARE_SHOPS", "5"))

BENCH_APP = "kameng_bench_app"
if os.environ.get("BENCH_MIGRATIONS_MODULE"):
    if os.environ.get("BENCH_APP_DIR") and os.environ["BENCH_APP_DIR"] not in sys.path:
        sys.path.insert(0, os.environ["BENCH_APP_DIR"])
    TENANT_APPS = [*TENANT_APPS, BENCH_APP]
    INSTALLED_APPS = [*INSTALLED_APPS, BENCH_APP]
    MIGRATION_MODULES = {BENCH_APP: os.environ["BENCH_MIGRATIONS_MODULE"]}
