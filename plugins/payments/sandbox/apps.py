"""App config of the sandbox payment plugin (installed = listed in KAMENG_BUILTIN_PLUGINS)."""
from plugins.base import PluginAppConfig


class SandboxPaymentsConfig(PluginAppConfig):
    name = "plugins.payments.sandbox"
    label = "payments_sandbox"
    verbose_name = "Sandbox payments"
    plugin = "plugins.payments.sandbox.plugin.SandboxPaymentPlugin"
    default = True
