from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "api"
    verbose_name = "API"

    def ready(self):
        from django.db.models.signals import post_delete, post_save
        from rest_framework.authtoken.models import Token

        from api.authentication import forget_authenticated
        from tenants.models import Merchant, ShopMembership

        # a token, merchant or membership changed through this process counts at once
        for model in (Token, Merchant, ShopMembership):
            post_save.connect(forget_authenticated, sender=model, dispatch_uid=f"api-token-{model.__name__}-saved")
            post_delete.connect(forget_authenticated, sender=model, dispatch_uid=f"api-token-{model.__name__}-deleted")
