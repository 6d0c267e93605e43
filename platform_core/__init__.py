"""Kameng host package: settings, URLs, Celery app, CLI, embedded dev stack, shared core."""
from platform_core.celery import app as celery_app

__all__ = ["celery_app"]
