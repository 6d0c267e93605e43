from plugins.base import PluginAppConfig


class DummyGatewayConfig(PluginAppConfig):
    name = "tests.testplugins.dummy_gateway"
    label = "dummy_gateway"
    plugin = "tests.testplugins.dummy_gateway.plugin.DummyGatewayPlugin"
    default = True
