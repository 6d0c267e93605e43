"""Payment jobs sent by beat to every live shop."""
from celery import shared_task


@shared_task(name="payments.reconcile_yesterday", ignore_result=True)
def reconcile_yesterday() -> int:
    """对账: each payment method with a settlement report, for yesterday (UTC)."""
    from platform_core.payments.reconciliation import reconcile_yesterday as run

    return sum(run_.open_items for run_ in run())
