"""Shop API: start a payment for an order (headless storefronts, integrations)."""
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from api.permissions import IsShopManager
from platform_core.orders.models import Order
from platform_core.payments.services import UnknownProvider, payment_start
from plugins.payment import PaymentError
from tenants.services import shop_url


class PaymentStartInput(serializers.Serializer):
    provider = serializers.SlugField(help_text="Slug of an enabled payment plugin, e.g. sandbox.")
    return_url = serializers.URLField(required=False, help_text="Where the buyer lands after paying "
                                                                "(default: the order page).")


class PaymentStartOutput(serializers.Serializer):
    payment_id = serializers.IntegerField()
    provider = serializers.CharField()
    amount = serializers.IntegerField(help_text="Minor units.")
    currency = serializers.CharField()
    action = serializers.CharField(help_text="redirect | qr | instant")
    url = serializers.CharField(allow_blank=True)
    qr_text = serializers.CharField(allow_blank=True)
    external_id = serializers.CharField(allow_blank=True, help_text="The gateway's id of this payment.")


class OrderPaymentStartApi(APIView):
    permission_classes = [IsShopManager]

    @extend_schema(request=PaymentStartInput, responses={201: PaymentStartOutput,
                                                         400: OpenApiResponse(description="Cannot start"),
                                                         404: OpenApiResponse(description="No such order")},
                   summary="Start paying an order with one of the shop's payment methods")
    def post(self, request, number):
        data = PaymentStartInput(data=request.data)
        data.is_valid(raise_exception=True)
        order = Order.objects.filter(number=number).first()
        if order is None:
            raise NotFound("No such order in this shop.")
        shop = request.tenant
        return_url = data.validated_data.get("return_url") or shop_url(shop, f"/order/{order.number}/?t={order.access_token}")
        notify_url = shop_url(shop, f"/hooks/payments/{data.validated_data['provider']}/")
        try:
            payment, action = payment_start(order=order, provider_slug=data.validated_data["provider"],
                                            return_url=return_url, notify_url=notify_url)
        except UnknownProvider as exc:
            return Response({"detail": str(exc), "field": "provider", "code": "unknown_provider"}, status=400)
        except PaymentError as exc:
            return Response({"detail": exc.message, "code": "payment_error", "retryable": exc.retryable},
                            status=503 if exc.retryable else 409)
        return Response(PaymentStartOutput({
            "payment_id": payment.pk, "provider": payment.provider, "amount": payment.amount,
            "currency": payment.currency, "action": action.kind, "url": action.url, "qr_text": action.qr_text,
            "external_id": payment.external_id or "",
        }).data, status=status.HTTP_201_CREATED)
