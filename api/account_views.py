"""Shop API: the merchant accounts of a payment plugin (owner and admins only).
Secrets are write-only: answers name the stored secret fields, never their values."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from api.permissions import MANAGER_ROLES, IsShopManager
from api.shop_views import PluginTestConnectionOutput
from tenants.services import membership_for
from plugins import accounts as account_services
from plugins.models import PluginConfig
from plugins.registry import UnknownPlugin, get_plugin_class
from plugins.services import PluginError, plugin_test_connection


class IsShopManagerEvenToRead(IsShopManager):
    """Owner or admin only, reads too: merchant ids and gateway settings are the
    shop's business relationships, not every staff member's."""

    message = "Only the shop's owner and admins can see or change merchant accounts."

    def has_permission(self, request, view):
        shop = getattr(request, "tenant", None)
        membership = membership_for(request.user, shop) if getattr(shop, "pk", None) else None
        return membership is not None and membership.role in MANAGER_ROLES


class AccountOutputSerializer(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()
    priority = serializers.IntegerField()
    enabled = serializers.BooleanField()
    settings = serializers.DictField(help_text="Settings without secrets.")
    stored_secrets = serializers.ListField(child=serializers.CharField(), help_text="Names of stored secrets.")
    webhook_path = serializers.CharField()


class AccountCreateInputSerializer(serializers.Serializer):
    key = serializers.CharField(max_length=40)
    label = serializers.CharField(max_length=80)
    priority = serializers.IntegerField(required=False, min_value=0, max_value=1000)
    enabled = serializers.BooleanField(required=False, default=True)
    settings = serializers.DictField(help_text="What the plugin's settings take; secrets are write-only.")


class AccountUpdateInputSerializer(serializers.Serializer):
    label = serializers.CharField(max_length=80, required=False)
    priority = serializers.IntegerField(required=False, min_value=0, max_value=1000)
    enabled = serializers.BooleanField(required=False)
    settings = serializers.DictField(required=False, help_text="Secrets left out keep their stored values.")


class AccountReorderInputSerializer(serializers.Serializer):
    keys = serializers.ListField(child=serializers.CharField(max_length=40), allow_empty=False)


def _config(slug: str) -> PluginConfig | None:
    try:
        get_plugin_class(slug)
    except UnknownPlugin:
        raise NotFound("No such plugin.") from None
    return PluginConfig.objects.filter(slug=slug).first()


def _output(slug: str, config, account) -> dict:
    settings = dict(config.settings if account.key == account_services.MAIN_ACCOUNT else account.settings)
    return {"key": account.key, "label": account.label, "priority": account.priority, "enabled": account.enabled,
            "settings": settings, "stored_secrets": account_services.stored_secret_fields(config, account),
            "webhook_path": f"/hooks/payments/{slug}/"
                            + ("" if account.key == account_services.MAIN_ACCOUNT else f"{account.key}/")}


class PluginAccountListApi(APIView):
    permission_classes = [IsShopManagerEvenToRead]

    @extend_schema(responses=AccountOutputSerializer(many=True), summary="A payment plugin's merchant accounts, "
                   "in the order payments try them")
    def get(self, request, slug):
        config = _config(slug)
        return Response([_output(slug, config, a) for a in account_services.plugin_accounts(config=config)])

    @extend_schema(request=AccountCreateInputSerializer, responses={201: AccountOutputSerializer},
                   summary="Add a merchant account (e.g. a backup merchant)")
    def post(self, request, slug):
        _config(slug)
        data = AccountCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        account = account_services.plugin_account_save(
            shop=request.tenant, slug=slug, key=values["key"], label=values["label"], data=values["settings"],
            priority=values.get("priority"), enabled=values["enabled"], create=True, actor=request.user,
            request=request)
        return Response(_output(slug, _config(slug), account), status=201)


class PluginAccountDetailApi(APIView):
    permission_classes = [IsShopManagerEvenToRead]

    def _account(self, slug, key):
        config = _config(slug)
        account = account_services.plugin_account(config=config, key=key)
        if account is None:
            raise NotFound("No such account.")
        return config, account

    @extend_schema(responses=AccountOutputSerializer)
    def get(self, request, slug, key):
        config, account = self._account(slug, key)
        return Response(_output(slug, config, account))

    @extend_schema(request=AccountUpdateInputSerializer, responses=AccountOutputSerializer,
                   summary="Change a merchant account: name, priority, on/off, settings")
    def patch(self, request, slug, key):
        _, account = self._account(slug, key)
        data = AccountUpdateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        account = account_services.plugin_account_save(
            shop=request.tenant, slug=slug, key=key, label=values.get("label", account.label),
            data=values.get("settings"), priority=values.get("priority"), enabled=values.get("enabled"),
            actor=request.user, request=request)
        config, account = self._account(slug, key)
        return Response(_output(slug, config, account))

    @extend_schema(request=None, responses={204: None}, summary="Remove a backup merchant account")
    def delete(self, request, slug, key):
        self._account(slug, key)
        account_services.plugin_account_delete(shop=request.tenant, slug=slug, key=key, actor=request.user,
                                               request=request)
        return Response(status=204)


class PluginAccountReorderApi(APIView):
    permission_classes = [IsShopManagerEvenToRead]

    @extend_schema(request=AccountReorderInputSerializer, responses=AccountOutputSerializer(many=True),
                   summary="Set the order in which payments try the merchant accounts")
    def post(self, request, slug):
        config = _config(slug)
        data = AccountReorderInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        accounts = account_services.plugin_accounts_reorder(shop=request.tenant, slug=slug,
                                                            keys=data.validated_data["keys"], actor=request.user,
                                                            request=request)
        config = _config(slug)
        return Response([_output(slug, config, a) for a in accounts])


class PluginAccountTestConnectionApi(APIView):
    permission_classes = [IsShopManagerEvenToRead]

    @extend_schema(request=None, responses={200: PluginTestConnectionOutput, 400: PluginTestConnectionOutput},
                   summary="Test one merchant account's saved credentials; nothing is charged")
    def post(self, request, slug, key):
        _config(slug)
        try:
            message = plugin_test_connection(shop=request.tenant, slug=slug, account=key, actor=request.user,
                                             request=request)
        except PluginError as exc:
            return Response({"ok": False, "message": exc.message}, status=400)
        return Response({"ok": True, "message": message})
