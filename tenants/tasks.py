"""Thin Celery wrappers around tenants services."""
from celery import shared_task
from django.core.mail import send_mail
from django.template.loader import render_to_string


@shared_task(name="tenants.tasks.refill_spare_shops", ignore_result=True)
def refill_spare_shops() -> int:
    from tenants.services import spare_pool_refill

    return spare_pool_refill()


@shared_task(name="tenants.tasks.send_welcome_email", ignore_result=True, autoretry_for=(OSError,),
             retry_backoff=10, max_retries=5)
def send_welcome_email(shop_id: int) -> None:
    from tenants.models import Shop, ShopMembership
    from tenants.services import shop_url

    shop = Shop.objects.get(pk=shop_id)
    owner = ShopMembership.objects.select_related("merchant").filter(
        shop=shop, role=ShopMembership.Role.OWNER).first()
    if owner is None:
        return
    context = {"shop": shop, "console_url": shop_url(shop, "/manage/"), "store_url": shop_url(shop, "/")}
    send_mail(
        subject=f"Your shop {shop.name} is live",
        message=render_to_string("kameng/email/welcome.txt", context),
        from_email=None,
        recipient_list=[owner.merchant.email],
    )
