"""App config of the Stripe payment plugin (installed = listed in KAMENG_BUILTIN_PLUGINS)."""
from plugins.base import PluginAppConfig


class StripePaymentsConfig(PluginAppConfig):
    name = "plugins.payments.stripe"
    label = "payments_stripe"
    verbose_name = "Stripe card payments"
    plugin = "plugins.payments.stripe.plugin.StripePaymentPlugin"
    default = True
