from plugins.base import PluginAppConfig


class StoreNoticeConfig(PluginAppConfig):
    name = "plugins.marketing.store_notice"
    label = "store_notice"
    verbose_name = "Store notice"
    plugin = "plugins.marketing.store_notice.plugin.StoreNoticePlugin"
    default = True
