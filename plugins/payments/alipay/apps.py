"""App config of the alipay payment plugin (installed = listed in KAMENG_BUILTIN_PLUGINS)."""
from plugins.base import PluginAppConfig


class AlipayPaymentsConfig(PluginAppConfig):
    name = "plugins.payments.alipay"
    label = "payments_alipay"
    verbose_name = "Alipay payments"
    plugin = "plugins.payments.alipay.plugin.AlipayPaymentPlugin"
    default = True
