"""Which features a shop's plan includes — the one place every check asks.

The answer comes from the shop's billing plan (``billing.limits``); only when no plans
exist at all does it fall back to ``settings.KAMENG_DEFAULT_FEATURES``.
"""
from django.conf import settings

ALL_FEATURES = ("plugins.payment", "plugins.marketing", "plugins.distribution", "plugins.supplier")


def shop_features(shop) -> frozenset[str]:
    from billing.limits import plan_features

    features = plan_features(shop)
    if features is None:
        return frozenset(getattr(settings, "KAMENG_DEFAULT_FEATURES", ALL_FEATURES))
    return features


def shop_has_feature(shop, feature: str) -> bool:
    return feature in shop_features(shop)


def feature_refusal(shop, features, label: str) -> str | None:
    """None if the plan includes any of ``features``, else why not (naming a plan that does)."""
    from billing.limits import feature_refusal as refusal

    if shop_features(shop) & set(features):  # one plan lookup, whatever the number of features
        return None
    return refusal(shop, features, label) or f"Your plan does not include {label}."
