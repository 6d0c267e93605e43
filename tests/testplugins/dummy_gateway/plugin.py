from django import forms

from plugins.base import Plugin, PluginKind


class DummyGatewayForm(forms.Form):
    merchant_id = forms.RegexField(regex=r"^M[0-9]{4}$", error_messages={"invalid": "Merchant IDs look like M1234."})
    api_key = forms.CharField(min_length=8)
    discount = forms.IntegerField(min_value=0, max_value=10_000, initial=0, required=False)


class DummyGatewayPlugin(Plugin):
    slug = "dummy-gateway"
    name = "Dummy gateway"
    kind = PluginKind.PAYMENT
    description = "Test double."
    settings_form = DummyGatewayForm
    secret_fields = ("api_key",)

    calls: list[str] = []

    def price_adjust(self, price, **kwargs):
        type(self).calls.append(self.shop.slug)
        return price - int(self.settings.get("discount") or 0)
