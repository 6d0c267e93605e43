from celery import shared_task
from django.db import connection


@shared_task(name="tests.record_schema")
def record_schema(key: str) -> str:
    """Writes the schema the task ran in to Redis, so a test can see it."""
    from platform_core.tasks import redis_client

    redis_client().set(key, connection.schema_name, ex=60)
    return connection.schema_name
