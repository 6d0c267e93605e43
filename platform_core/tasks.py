import time

from celery import shared_task
from django.conf import settings

HEARTBEAT_KEY = "kameng:worker-heartbeat"


def redis_client():
    import redis

    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


@shared_task(name="platform_core.tasks.worker_heartbeat", ignore_result=True)
def worker_heartbeat() -> None:
    """Proves a worker consumes the queue; /healthz reads the timestamp it leaves."""
    redis_client().set(HEARTBEAT_KEY, f"{time.time():.0f}", ex=settings.KAMENG_WORKER_HEARTBEAT_SECONDS * 4)
