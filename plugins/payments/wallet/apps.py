"""App config of the wallet payment plugin (installed = listed in KAMENG_BUILTIN_PLUGINS)."""
from plugins.base import PluginAppConfig


class WalletPaymentsConfig(PluginAppConfig):
    name = "plugins.payments.wallet"
    label = "payments_wallet"
    verbose_name = "Wallet payments"
    plugin = "plugins.payments.wallet.plugin.WalletPaymentPlugin"
    default = True
