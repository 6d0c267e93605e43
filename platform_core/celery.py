"""Celery app: every task carries the shop schema it was sent from (tenant-schemas-celery).

Tasks sent while a shop schema is active run in that shop; tasks sent from the public
schema run in public. Beat sends per-shop entries to every live shop only.
"""
import os

from celery.schedules import crontab
from tenant_schemas_celery.app import CeleryApp

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "platform_core.settings")

app = CeleryApp("kameng")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

PUBLIC = "public"
app.conf.beat_schedule = {
    # platform-wide jobs run once, in the public schema
    "worker-heartbeat": {
        "task": "platform_core.tasks.worker_heartbeat",
        "schedule": 15.0,
        "tenant_schemas": [PUBLIC],
    },
    # per-shop jobs (sent to every live shop)
    "expire-unpaid-orders": {"task": "orders.expire_due", "schedule": 60.0},
    # delivery e-mails a lost wake-up left queued (decision 0044)
    "send-pending-order-emails": {"task": "orders.send_pending_emails", "schedule": 60.0},
    "refund-stale-awaiting-stock": {"task": "orders.refund_stale_awaiting_stock", "schedule": 900.0},
    "poll-pending-payments": {"task": "payments.poll_pending", "schedule": 300.0},
    # gateways publish a day's settlement in the early morning (UTC+8 shops: before opening)
    "reconcile-payments": {"task": "payments.reconcile_yesterday", "schedule": crontab(hour=2, minute=30)},
    "retry-failed-reconciliations": {"task": "payments.retry_failed_reconciliations", "schedule": 900.0},
    "refill-spare-shops": {
        "task": "tenants.tasks.refill_spare_shops",
        "schedule": 300.0,
        "tenant_schemas": [PUBLIC],
    },
    # platform billing (docs/billing.md): all in public, all safe to run twice
    "billing-meter-usage": {"task": "billing.meter_usage", "schedule": 3600.0, "tenant_schemas": [PUBLIC]},
    "billing-roll-subscriptions": {"task": "billing.roll_subscriptions", "schedule": 3600.0,
                                   "tenant_schemas": [PUBLIC]},
    "billing-issue-monthly-invoices": {"task": "billing.issue_monthly_invoices", "schedule": 3600.0,
                                       "tenant_schemas": [PUBLIC]},
    "billing-dunning": {"task": "billing.run_dunning", "schedule": 3600.0, "tenant_schemas": [PUBLIC]},
}
# (assigned, never read here: reading app.conf at import would load Django's settings —
# and start the embedded stack — before a command or a benchmark has set its environment)

