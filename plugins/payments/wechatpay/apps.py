"""App config of the wechatpay payment plugin (installed = listed in KAMENG_BUILTIN_PLUGINS)."""
from plugins.base import PluginAppConfig


class WeChatPayPaymentsConfig(PluginAppConfig):
    name = "plugins.payments.wechatpay"
    label = "payments_wechatpay"
    verbose_name = "WeChatPay payments"
    plugin = "plugins.payments.wechatpay.plugin.WeChatPayPaymentPlugin"
    default = True
