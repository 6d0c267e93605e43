from django import forms

from plugins.base import Plugin, PluginKind


class StoreNoticeForm(forms.Form):
    message = forms.CharField(max_length=280, help_text="Shown on top of every storefront page.")
    style = forms.ChoiceField(choices=[("info", "Info"), ("warning", "Warning"), ("success", "Success")],
                              initial="info")
    link = forms.URLField(required=False, assume_scheme="https", help_text="Optional: where the notice links to.")

    def clean_message(self):
        message = self.cleaned_data["message"].strip()
        if not message:
            raise forms.ValidationError("Write the notice text.")
        return message


class StoreNoticePlugin(Plugin):
    slug = "store-notice"
    name = "Store notice"
    kind = PluginKind.MARKETING
    version = "1.0"
    description = "Show a banner (opening hours, a promotion, a warning) on every storefront page."
    settings_form = StoreNoticeForm

    def storefront_banners(self, request=None):
        settings = self.settings
        if not settings.get("message"):
            return None
        return {"message": settings["message"], "style": settings.get("style", "info"), "link": settings.get("link", "")}
