from plugins.base import PluginAppConfig


class RefundGatewayConfig(PluginAppConfig):
    name = "tests.testplugins.refund_gateway"
    label = "refund_gateway"
    plugin = "tests.testplugins.refund_gateway.plugin.RefundGatewayPlugin"
    default = True
