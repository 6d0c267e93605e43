"""Which features a shop's plan includes — the one place every check asks.

Until plans exist (billing), every shop has the features in
``settings.KAMENG_DEFAULT_FEATURES``; the billing app will answer from the plan.
"""
from django.conf import settings

ALL_FEATURES = ("plugins.payment", "plugins.marketing", "plugins.distribution", "plugins.supplier")


def shop_features(shop) -> frozenset[str]:
    return frozenset(getattr(settings, "KAMENG_DEFAULT_FEATURES", ALL_FEATURES))


def shop_has_feature(shop, feature: str) -> bool:
    return feature in shop_features(shop)
