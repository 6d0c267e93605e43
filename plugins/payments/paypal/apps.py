"""App config of the PayPal payment plugin (installed = listed in KAMENG_BUILTIN_PLUGINS)."""
from plugins.base import PluginAppConfig


class PayPalPaymentsConfig(PluginAppConfig):
    name = "plugins.payments.paypal"
    label = "payments_paypal"
    verbose_name = "PayPal payments"
    plugin = "plugins.payments.paypal.plugin.PayPalPaymentPlugin"
    default = True
