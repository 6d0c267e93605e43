"""App config of the epay payment plugin (installed = listed in KAMENG_BUILTIN_PLUGINS)."""
from plugins.base import PluginAppConfig


class EPayPaymentsConfig(PluginAppConfig):
    name = "plugins.payments.epay"
    label = "payments_epay"
    verbose_name = "EPay payments"
    plugin = "plugins.payments.epay.plugin.EPayPaymentPlugin"
    default = True
