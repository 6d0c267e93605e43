"""Payment jobs sent by beat to every live shop."""
from celery import shared_task


@shared_task(name="payments.reconcile_yesterday", ignore_result=True)
def reconcile_yesterday() -> int:
    """对账: each payment method with a settlement report, for yesterday (UTC)."""
    from platform_core.payments.reconciliation import reconcile_yesterday as run

    return sum(run_.open_items for run_ in run())


@shared_task(name="payments.retry_failed_reconciliations", ignore_result=True)
def retry_failed_reconciliations() -> int:
    """Failed 对账 days whose automatic retry is due (a report published late)."""
    from platform_core.payments.reconciliation import retry_due_reconciliations

    return len(retry_due_reconciliations())
