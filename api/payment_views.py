"""Shop API: payment methods with their fees for an order, starting a payment, and the
shop's fee rule per payment method (headless storefronts, integrations)."""
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from api.exceptions import InputError
from api.permissions import IsShopManager
from api.rendering import rendered
from api.serializers_commerce import PaymentStartInput, PaymentStartOutput
from platform_core.orders.models import Order
from platform_core.payments import selectors as payment_selectors
from platform_core.payments.models import Payment, PaymentMethodFee
from platform_core.payments.services import (FeeError, GatewayAddresses, PreparedPayment, UnknownProvider,
                                             payment_method_fee_set, payment_prepare, payment_start)
from plugins.payment import PaymentError, PaymentPlugin
from tenants.services import shop_url


def _order_or_404(number: str) -> Order:
    order = Order.objects.filter(number=number).first()
    if order is None:
        raise NotFound("No such order in this shop.")
    return order




class OrderPaymentStartApi(APIView):
    permission_classes = [IsShopManager]

    @extend_schema(request=PaymentStartInput, responses={201: PaymentStartOutput,
                                                         400: OpenApiResponse(description="Cannot start"),
                                                         404: OpenApiResponse(description="No such order")},
                   summary="Start paying an order with one of the shop's payment methods")
    def post(self, request, number):
        data = PaymentStartInput(data=request.data)
        data.is_valid(raise_exception=True)
        body, code, _ = api_payment_start(request, _order_or_404(number), data.validated_data["provider"],
                                          data.validated_data.get("return_url"))
        return Response(body, status=code)


#: order_place's within_transaction_keys for payment_prepared_with_order
PAYMENT_KEY = (Payment,)


def _gateway_addresses(request, order: Order, provider: str, return_url: str | None) -> GatewayAddresses:
    """Where the buyer comes back to (the order's page unless the caller says) and where
    the provider's webhooks go."""
    shop = request.tenant
    return GatewayAddresses(
        return_url=return_url or shop_url(shop, f"/order/{order.number}/?t={order.access_token}"),
        notify_url=shop_url(shop, f"/hooks/payments/{provider}/"))


def payment_prepared_with_order(request, provider: str, return_url: str | None, prepared: dict):
    """For placing an order with ``payment``: a ``within_transaction`` for order_place
    (with ``within_transaction_keys=PAYMENT_KEY``) that starts the order's payment at its
    gateway and writes it, with the gateway's answer, in the order's own transaction (no
    second transaction, no second lock of the new order, no UPDATE after the call; its
    INSERT goes to the database with the key claim; decision 0053), into ``prepared``
    (order id -> PreparedPayment). A method that cannot take the order writes nothing:
    the order stands, and starting the payment afterwards gives the answer with the
    reason; a gateway that takes no account leaves a failed payment, as a later start
    would."""

    def prepare(order: Order, keys: dict) -> None:
        if order.total == 0:  # free: delivered once its stock is reserved, nothing to pay
            return
        try:
            prepared[order.pk] = payment_prepare(order=order, provider_slug=provider, placed_now=True,
                                                 key=keys[Payment],
                                                 ask_gateway=_gateway_addresses(request, order, provider, return_url))
        except (UnknownProvider, PaymentError):
            pass  # raised before anything was written; payment_start says why

    return prepare


def api_payment_start(request, order: Order, provider: str, return_url: str | None, *,
                      prepared: PreparedPayment | None = None) -> tuple[dict, int, Payment | None]:
    """Start paying ``order`` with ``provider``: the answer's body and status, for this
    endpoint and for placing an order with ``payment`` in one request, and the payment
    (None when it could not start). ``prepared``: its payment written already (and its
    gateway asked, with the addresses it keeps, when the order was placed with it)."""
    addresses = (prepared and prepared.addresses) or _gateway_addresses(request, order, provider, return_url)
    try:
        payment, action = payment_start(order=order, provider_slug=provider, return_url=addresses.return_url,
                                        notify_url=addresses.notify_url, prepared=prepared)
    except UnknownProvider as exc:
        return {"detail": str(exc), "field": "provider", "code": "unknown_provider"}, 400, None
    except PaymentError as exc:
        return {"detail": exc.message, "code": "payment_error", "retryable": exc.retryable}, \
            503 if exc.retryable else 409, None
    return rendered(PaymentStartOutput, {
        "payment_id": payment.pk, "provider": payment.provider, "amount": payment.amount,
        "order_total": payment.amount - payment.buyer_fee, "fee": payment.fee,
        "fee_passed_to_buyer": payment.fee_paid_by_buyer, "currency": payment.currency, "action": action.kind,
        "url": action.url, "qr_text": action.qr_text, "external_id": payment.external_id or "",
    }), status.HTTP_201_CREATED, payment


class PaymentMethodOutput(serializers.Serializer):
    provider = serializers.CharField()
    name = serializers.CharField(help_text="The name buyers see.")
    fee = serializers.IntegerField(help_text="The buyer's payment fee with this method, minor units (0 when the "
                                             "shop bears it or there is none).")
    amount = serializers.IntegerField(help_text="What the buyer pays with this method, minor units.")
    currency = serializers.CharField()


class OrderPaymentMethodsApi(APIView):
    """Before paying: each method the order can be paid with, with the fee the buyer pays
    and the amount to pay (what a payment started now would ask for)."""

    permission_classes = [IsShopManager]

    @extend_schema(responses={200: PaymentMethodOutput(many=True),
                              404: OpenApiResponse(description="No such order")},
                   summary="Payment methods for an order, with the buyer's fee and the amount to pay")
    def get(self, request, number):
        order = _order_or_404(number)
        if order.status != Order.Status.PENDING_PAYMENT:
            return Response([])
        return Response(PaymentMethodOutput([
            {"provider": method.slug, "name": method.name, "fee": method.quote.buyer_fee,
             "amount": method.quote.amount, "currency": order.currency}
            for method in payment_selectors.order_payment_methods(order)], many=True).data)


class PaymentFeeSerializer(serializers.Serializer):
    provider = serializers.CharField(read_only=True)
    fixed = serializers.IntegerField(help_text="Fixed part, minor units (0 to 100000).")
    basis_points = serializers.IntegerField(help_text="Percentage of the order total in basis points "
                                                      "(100 = 1 %; 0 to 2000).")
    passed_to_buyer = serializers.BooleanField(help_text="True: the buyer pays the fee on top of the order "
                                                         "total. False: the shop bears it (recorded only).")
    takes_fees = serializers.BooleanField(read_only=True, help_text="False for the wallet, which carries no fee.")
    updated_at = serializers.DateTimeField(read_only=True, allow_null=True)
    updated_by = serializers.CharField(read_only=True)


def _payment_plugin_or_404(slug: str) -> type[PaymentPlugin]:
    plugin_class = payment_selectors.payment_plugin_class(slug)
    if plugin_class is None:
        raise NotFound("No such payment method.")
    return plugin_class


def _fee_body(plugin_class, rule: PaymentMethodFee | None) -> dict:
    return {"provider": plugin_class.slug, "fixed": rule.fixed if rule else 0,
            "basis_points": rule.basis_points if rule else 0,
            "passed_to_buyer": rule.passed_to_buyer if rule else False, "takes_fees": plugin_class.takes_fees(),
            "updated_at": rule.updated_at if rule else None, "updated_by": rule.updated_by if rule else ""}


class PaymentFeeApi(APIView):
    """The shop's fee rule for one payment method: members read it, owners and admins set it."""

    permission_classes = [IsShopManager]

    @extend_schema(responses={200: PaymentFeeSerializer, 404: OpenApiResponse(description="No such method")},
                   summary="A payment method's fee rule")
    def get(self, request, slug):
        plugin_class = _payment_plugin_or_404(slug)
        return Response(PaymentFeeSerializer(_fee_body(plugin_class, payment_selectors.payment_method_fee_get(slug)))
                        .data)

    @extend_schema(request=PaymentFeeSerializer,
                   responses={200: PaymentFeeSerializer, 400: OpenApiResponse(description="Refused, with the field"),
                              404: OpenApiResponse(description="No such method")},
                   summary="Set a payment method's fee (fixed + basis points) and whether the buyer pays it")
    def put(self, request, slug):
        plugin_class = _payment_plugin_or_404(slug)
        data = PaymentFeeSerializer(data=request.data)
        if not data.is_valid():
            field, problems = next(iter(data.errors.items()))
            raise InputError(f"{field}: {problems[0]}", field=field, errors=data.errors)
        values = data.validated_data
        try:
            rule = payment_method_fee_set(provider_slug=slug, fixed=values["fixed"],
                                          basis_points=values["basis_points"],
                                          passed_to_buyer=values["passed_to_buyer"], actor=request.user,
                                          request=request)
        except FeeError as exc:
            raise InputError(exc.message, field=exc.field, code=exc.code, status_code=exc.status) from None
        return Response(PaymentFeeSerializer(_fee_body(plugin_class, rule)).data)
