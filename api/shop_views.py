"""Shop API (on each shop host): the shop itself and its plugins."""
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from api.permissions import IsShopManager, IsShopMember
from api.platform_views import ShopOutputSerializer
from plugins import selectors, services
from plugins.registry import UnknownPlugin


class ShopDetailApi(APIView):
    permission_classes = [IsShopMember]

    @extend_schema(responses=ShopOutputSerializer)
    def get(self, request):
        return Response(ShopOutputSerializer(request.tenant).data)


class PluginOutputSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    kind = serializers.CharField()
    version = serializers.CharField()
    description = serializers.CharField()
    enabled = serializers.BooleanField()
    configured = serializers.BooleanField()
    unavailable_reason = serializers.CharField(allow_null=True)


class PluginUpdateInputSerializer(serializers.Serializer):
    enabled = serializers.BooleanField(required=False)
    settings = serializers.DictField(required=False, help_text="Settings and secrets; secrets are write-only.")


class PluginListApi(APIView):
    permission_classes = [IsShopMember]

    @extend_schema(responses=PluginOutputSerializer(many=True))
    def get(self, request):
        return Response(PluginOutputSerializer(selectors.plugin_list(shop=request.tenant), many=True).data)


class PluginDetailApi(APIView):
    permission_classes = [IsShopManager]

    def _listing(self, request, slug):
        for item in selectors.plugin_list(shop=request.tenant):
            if item.slug == slug:
                return item
        raise NotFound("No such plugin.")

    @extend_schema(responses=PluginOutputSerializer)
    def get(self, request, slug):
        return Response(PluginOutputSerializer(self._listing(request, slug)).data)

    @extend_schema(request=PluginUpdateInputSerializer, responses=PluginOutputSerializer)
    def patch(self, request, slug):
        data = PluginUpdateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        try:
            if "settings" in values:
                services.plugin_configure(shop=request.tenant, slug=slug, data=values["settings"],
                                          enable=values.get("enabled"), actor=request.user, request=request)
            elif values.get("enabled") is True:
                services.plugin_enable(shop=request.tenant, slug=slug, actor=request.user, request=request)
            elif values.get("enabled") is False:
                services.plugin_disable(shop=request.tenant, slug=slug, actor=request.user, request=request)
        except UnknownPlugin:
            raise NotFound("No such plugin.") from None
        return Response(PluginOutputSerializer(self._listing(request, slug)).data)


class PluginTestConnectionOutput(serializers.Serializer):
    ok = serializers.BooleanField()
    message = serializers.CharField()


class PluginTestConnectionApi(APIView):
    """Ask the plugin's service whether the saved credentials work (payment gateways)."""

    permission_classes = [IsShopManager]

    @extend_schema(request=None, responses={200: PluginTestConnectionOutput, 400: PluginTestConnectionOutput},
                   summary="Test a plugin's saved credentials against its service; nothing is charged")
    def post(self, request, slug):
        try:
            message = services.plugin_test_connection(shop=request.tenant, slug=slug, actor=request.user,
                                                      request=request)
        except UnknownPlugin:
            raise NotFound("No such plugin.") from None
        except services.PluginError as exc:
            return Response({"ok": False, "message": exc.message}, status=400)
        return Response({"ok": True, "message": message})
