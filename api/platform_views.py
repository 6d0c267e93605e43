"""Platform API: create shops, list my shops."""
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from tenants import services
from tenants.models import Shop, ShopMembership


class ShopOutputSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    status = serializers.CharField()
    language = serializers.CharField()
    currency = serializers.CharField()
    url = serializers.SerializerMethodField()
    console_url = serializers.SerializerMethodField()

    def get_url(self, shop) -> str:
        return services.shop_url(shop, "/")

    def get_console_url(self, shop) -> str:
        return services.shop_url(shop, "/manage/")


class ShopCreateInputSerializer(serializers.Serializer):
    slug = serializers.CharField(max_length=60)
    name = serializers.CharField(max_length=200)
    language = serializers.ChoiceField(choices=Shop.Language.values, default=Shop.Language.ZH_HANS)
    currency = serializers.CharField(max_length=3, default="CNY")
    sample_catalog = serializers.BooleanField(default=True)
    email = serializers.EmailField(required=False, help_text="New owner account (when not authenticated).")
    password = serializers.CharField(required=False, write_only=True, style={"input_type": "password"})


class ShopListCreateApi(APIView):
    """``GET``: the caller's shops. ``POST``: open a shop — as the signed-in merchant
    (token), or with ``email`` + ``password`` for a new account."""

    throttle_scope = "signup"

    def get_permissions(self):
        return [AllowAny()] if self.request.method == "POST" else super().get_permissions()

    def get_throttles(self):
        return [ScopedRateThrottle()] if self.request.method == "POST" else []

    @extend_schema(responses=ShopOutputSerializer(many=True))
    def get(self, request):
        shops = [m.shop for m in ShopMembership.objects.select_related("shop").filter(merchant=request.user)
                 .exclude(shop__slug=None).order_by("shop__name")]
        return Response(ShopOutputSerializer(shops, many=True).data)

    @extend_schema(request=ShopCreateInputSerializer, responses={201: ShopOutputSerializer})
    def post(self, request):
        data = ShopCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        owner = request.user if request.user.is_authenticated else None
        if owner is None and not (values.get("email") and values.get("password")):
            return Response({"detail": "Authenticate, or give email and password for a new account."},
                            status=status.HTTP_400_BAD_REQUEST)
        created = services.shop_create(
            slug=values["slug"], name=values["name"], language=values["language"], currency=values["currency"],
            sample_catalog=values["sample_catalog"], owner=owner, owner_email=values.get("email", ""),
            owner_password=values.get("password") if owner is None else None, request=request,
        )
        return Response(ShopOutputSerializer(created.shop).data, status=status.HTTP_201_CREATED)
