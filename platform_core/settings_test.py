"""Test settings: the same settings on a throw-away embedded PostgreSQL + Redis."""
import os
import tempfile

os.environ.setdefault("KAMENG_ENV", "test")
if not os.environ.get("DATABASE_URL"):
    # one throw-away directory per test run; tests/conftest.py stops and removes it
    from pathlib import Path

    from platform_core import devstack as _devstack

    if "KAMENG_DEVSTACK_DIR" not in os.environ:
        _devstack.reap_orphaned(Path(tempfile.gettempdir()), "kameng-test-")  # runs that were killed
        os.environ["KAMENG_DEVSTACK_DIR"] = tempfile.mkdtemp(prefix="kameng-test-")
        (Path(os.environ["KAMENG_DEVSTACK_DIR"]) / _devstack.OWNER_FILE).write_text(str(os.getpid()))
    os.environ.setdefault("KAMENG_STATE_DIR", os.environ["KAMENG_DEVSTACK_DIR"])

    os.environ.setdefault("KAMENG_PG_PORT", str(_devstack.free_port()))
    os.environ.setdefault("KAMENG_REDIS_PORT", str(_devstack.free_port()))
    os.environ["KAMENG_TEST_OWNS_DEVSTACK"] = "1"

from platform_core.settings import *  # noqa: E402,F401,F403

PLATFORM_DOMAIN = "kameng.test"
ALLOWED_HOSTS = ["*"]
# tests run tasks in-process; a real worker started by a test (KAMENG_TEST_WORKER=1) sends
# the tasks its tasks send (follow-ups, retries) through the broker, as in production
CELERY_TASK_ALWAYS_EAGER = os.environ.get("KAMENG_TEST_WORKER") != "1"
CELERY_TASK_EAGER_PROPAGATES = True
KAMENG_SPARE_SHOPS = 2

# a plugin that exists only for the tests (secrets, validation, a pipeline hook)
KAMENG_PLUGIN_APPS = [*KAMENG_PLUGIN_APPS, "tests.testplugins.dummy_gateway"]  # noqa: F405
TENANT_APPS = [*TENANT_APPS, "tests.testplugins.dummy_gateway"]  # noqa: F405
INSTALLED_APPS = [*INSTALLED_APPS, "tests.testplugins.dummy_gateway"]  # noqa: F405
