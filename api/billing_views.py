"""Billing in the API: on a shop host the shop's plan, usage, invoices, pay, change
plan, cancel; on the platform host the plan catalogue and (platform staff) revenue,
subscriptions and invoices. Views call billing services and selectors only."""
from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny, BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from api.exceptions import InputError
from api.permissions import IsShopMember
from billing import collection, invoicing, selectors, services
from billing.gateway import billing_gateway
from billing.limits import shop_usage
from billing.models import Invoice, Subscription
from plugins.payment import PaymentError
from tenants.services import membership_for

BILLING_ROLES = {"owner", "finance"}
INVOICE_READERS = {"owner", "admin", "finance"}


class IsBillingMember(IsShopMember):
    """Any member reads; owner and finance pay, change plan or cancel."""

    message = "Only the shop's owner and finance members handle billing."

    def has_permission(self, request, view):
        if not super().has_permission(request, view):
            return False
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return True
        return membership_for(request.user, request.tenant).role in BILLING_ROLES


class CanReadInvoices(IsBillingMember):
    message = "Only the shop's owner, admins and finance members see invoices."

    def has_permission(self, request, view):
        return super().has_permission(request, view) and \
            membership_for(request.user, request.tenant).role in INVOICE_READERS


class IsPlatformStaff(BasePermission):
    def has_permission(self, request, view):
        return bool(request.user and request.user.is_active and request.user.is_staff
                    and getattr(request.tenant, "schema_name", None) == "public")


class PlanSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    monthly_fee = serializers.IntegerField(help_text="Minor units.")
    currency = serializers.CharField()
    commission_bp = serializers.IntegerField()
    max_products = serializers.IntegerField(allow_null=True)
    max_staff_seats = serializers.IntegerField(allow_null=True)
    max_custom_domains = serializers.IntegerField(allow_null=True)
    max_monthly_orders = serializers.IntegerField(allow_null=True)
    features = serializers.ListField(child=serializers.CharField())
    trial_days = serializers.IntegerField()


class SubscriptionSerializer(serializers.Serializer):
    plan = PlanSerializer()
    status = serializers.CharField()
    trial_ends_at = serializers.DateTimeField(allow_null=True)
    cancel_at_period_end = serializers.BooleanField()
    past_due_since = serializers.DateTimeField(allow_null=True)


class UsageSerializer(serializers.Serializer):
    limit = serializers.CharField()
    used = serializers.IntegerField()
    allowed = serializers.IntegerField(allow_null=True)


class InvoiceLineSerializer(serializers.Serializer):
    kind = serializers.CharField()
    description = serializers.CharField()
    quantity = serializers.IntegerField()
    amount = serializers.IntegerField()


class InvoiceSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    number = serializers.CharField()
    kind = serializers.CharField()
    status = serializers.CharField()
    currency = serializers.CharField()
    subtotal = serializers.IntegerField()
    tax_bp = serializers.IntegerField()
    tax = serializers.IntegerField()
    total = serializers.IntegerField()
    amount_due = serializers.SerializerMethodField()
    period_start = serializers.DateField(allow_null=True)
    period_end = serializers.DateField(allow_null=True)
    issued_at = serializers.DateTimeField()
    paid_at = serializers.DateTimeField(allow_null=True)
    lines = InvoiceLineSerializer(many=True)

    def get_amount_due(self, invoice) -> int:
        return selectors.amount_due(invoice)


class SavedCardSerializer(serializers.Serializer):
    brand = serializers.CharField(source="card_brand")
    last4 = serializers.CharField(source="card_last4")
    saved_at = serializers.DateTimeField(source="card_saved_at")


class BillingOverviewSerializer(serializers.Serializer):
    subscription = SubscriptionSerializer(allow_null=True)
    saved_card = SavedCardSerializer(allow_null=True)
    usage = UsageSerializer(many=True)
    month_gmv = serializers.IntegerField()
    plans = PlanSerializer(many=True)


def _billing_error(exc: services.BillingError):
    return InputError(exc.message, field=exc.field, code=exc.code, status_code=exc.status)


class ShopBillingApi(APIView):
    permission_classes = [IsBillingMember]

    @extend_schema(responses=BillingOverviewSerializer)
    def get(self, request):
        shop = request.tenant
        today = timezone.localdate()
        month = selectors.usage_between(shop, today.replace(day=1), services.next_month_start(today))
        return Response(BillingOverviewSerializer({
            "subscription": selectors.subscription_for(shop), "usage": shop_usage(shop), "month_gmv": month["gmv"],
            "plans": selectors.plans_on_offer(),
            "saved_card": selectors.saved_card(shop, billing_gateway().slug)}).data)


class PlanChangeInputSerializer(serializers.Serializer):
    plan = serializers.CharField(max_length=30)


class ShopPlanApi(APIView):
    permission_classes = [IsBillingMember]

    @extend_schema(request=PlanChangeInputSerializer, responses=SubscriptionSerializer)
    def post(self, request):
        data = PlanChangeInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            subscription = services.subscription_change_plan(shop=request.tenant, plan_code=data.validated_data["plan"],
                                                             actor=request.user, request=request)
        except services.BillingError as exc:
            raise _billing_error(exc) from None
        return Response(SubscriptionSerializer(subscription).data)


class ShopCancelApi(APIView):
    permission_classes = [IsBillingMember]

    @extend_schema(request=None, responses=SubscriptionSerializer)
    def post(self, request):
        try:
            subscription = services.subscription_cancel(shop=request.tenant, actor=request.user, request=request)
        except services.BillingError as exc:
            raise _billing_error(exc) from None
        return Response(SubscriptionSerializer(subscription).data)

    @extend_schema(request=None, responses=SubscriptionSerializer, description="Take back a pending cancellation.")
    def delete(self, request):
        try:
            subscription = services.subscription_resume(shop=request.tenant, actor=request.user, request=request)
        except services.BillingError as exc:
            raise _billing_error(exc) from None
        return Response(SubscriptionSerializer(subscription).data)


class ShopInvoiceListApi(APIView):
    permission_classes = [CanReadInvoices]

    @extend_schema(responses=InvoiceSerializer(many=True))
    def get(self, request):
        invoices = selectors.invoices_for_shop(request.tenant).prefetch_related("lines")[:100]
        return Response(InvoiceSerializer(invoices, many=True).data)


def _own_invoice(request, pk) -> Invoice:
    invoice = selectors.invoices_for_shop(request.tenant).filter(pk=pk).first()
    if invoice is None:
        raise NotFound("No such invoice.")
    return invoice


class DownloadSerializer(serializers.Serializer):
    url = serializers.CharField(help_text="Signed link; expires after KAMENG_BILLING_LINK_SECONDS.")


class ShopInvoiceDownloadApi(APIView):
    permission_classes = [CanReadInvoices]

    @extend_schema(responses=DownloadSerializer)
    def get(self, request, pk):
        url = invoicing.invoice_download_url(invoice=_own_invoice(request, pk), host_prefix="/manage")
        return Response({"url": request.build_absolute_uri(url)})


class PayOutputSerializer(serializers.Serializer):
    attempt = serializers.IntegerField()
    pay_url = serializers.CharField()
    amount = serializers.IntegerField()
    currency = serializers.CharField()


class ShopInvoicePayApi(APIView):
    permission_classes = [IsBillingMember]

    @extend_schema(request=None, responses=PayOutputSerializer)
    def post(self, request, pk):
        from billing.views import _platform_url

        invoice = _own_invoice(request, pk)
        try:
            attempt = collection.invoice_pay_start(
                invoice=invoice, actor=request.user, request=request,
                return_url=request.build_absolute_uri("/manage/billing/") + "?attempt={attempt}",
                notify_url=_platform_url(collection.webhook_path()))
        except services.BillingError as exc:
            raise _billing_error(exc) from None
        except PaymentError as exc:
            raise InputError(exc.message, code="payment_failed", status_code=409) from None
        return Response({"attempt": attempt.pk, "pay_url": attempt.pay_url, "amount": attempt.amount,
                         "currency": attempt.currency}, status=status.HTTP_201_CREATED)


# --- platform host -------------------------------------------------------------------

class PlanInputSerializer(serializers.Serializer):
    code = serializers.SlugField(max_length=30)
    name = serializers.CharField(max_length=60)
    monthly_fee = serializers.IntegerField(min_value=0, help_text="Minor units.")
    currency = serializers.RegexField(r"^[A-Z]{3}$", default="CNY")
    commission_bp = serializers.IntegerField(min_value=0, max_value=10000)
    max_products = serializers.IntegerField(min_value=0, allow_null=True, required=False)
    max_staff_seats = serializers.IntegerField(min_value=1, allow_null=True, required=False)
    max_custom_domains = serializers.IntegerField(min_value=0, allow_null=True, required=False)
    max_monthly_orders = serializers.IntegerField(min_value=0, allow_null=True, required=False)
    features = serializers.ListField(child=serializers.CharField(max_length=60), default=list)
    trial_days = serializers.IntegerField(min_value=0, max_value=365, default=14)
    is_active = serializers.BooleanField(default=True)


class PlanListApi(APIView):
    """``GET``: the plans on offer (public). ``POST``: create one (platform staff)."""

    def get_permissions(self):
        return [AllowAny()] if self.request.method == "GET" else [IsPlatformStaff()]

    @extend_schema(responses=PlanSerializer(many=True))
    def get(self, request):
        return Response(PlanSerializer(selectors.plans_on_offer(), many=True).data)

    @extend_schema(request=PlanInputSerializer, responses=PlanSerializer)
    def post(self, request):
        from billing.models import Plan

        data = PlanInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if Plan.objects.filter(code=data.validated_data["code"]).exists():
            raise InputError("A plan with this code exists.", field="code", code="taken", status_code=409)
        try:
            plan = services.plan_save(plan=Plan(**data.validated_data), actor=request.user, request=request)
        except services.BillingError as exc:
            raise _billing_error(exc) from None
        return Response(PlanSerializer(plan).data, status=status.HTTP_201_CREATED)


class RevenueSerializer(serializers.Serializer):
    counts = serializers.DictField(child=serializers.IntegerField())
    mrr = serializers.DictField(child=serializers.IntegerField())
    gmv = serializers.DictField(child=serializers.IntegerField())
    invoiced = serializers.DictField(child=serializers.IntegerField())
    collected = serializers.DictField(child=serializers.IntegerField())


class RevenueApi(APIView):
    permission_classes = [IsPlatformStaff]

    @extend_schema(responses=RevenueSerializer)
    def get(self, request):
        today = timezone.localdate()
        summary = selectors.revenue_summary(first=today.replace(day=1), end=services.next_month_start(today))
        return Response(RevenueSerializer(summary).data)


class PlatformSubscriptionSerializer(SubscriptionSerializer):
    shop = serializers.CharField(source="shop.slug")


class SubscriptionListApi(APIView):
    permission_classes = [IsPlatformStaff]

    @extend_schema(responses=PlatformSubscriptionSerializer(many=True))
    def get(self, request):
        subs = Subscription.objects.select_related("plan", "shop").order_by("shop__slug")
        if request.query_params.get("status"):
            subs = subs.filter(status=request.query_params["status"])
        return Response(PlatformSubscriptionSerializer(subs[:500], many=True).data)


class PlatformInvoiceSerializer(InvoiceSerializer):
    shop = serializers.CharField(source="shop.slug")


class InvoiceListApi(APIView):
    permission_classes = [IsPlatformStaff]

    @extend_schema(responses=PlatformInvoiceSerializer(many=True))
    def get(self, request):
        invoices = Invoice.objects.select_related("shop").prefetch_related("lines").order_by("-issued_at", "-id")
        return Response(PlatformInvoiceSerializer(invoices[:500], many=True).data)
