"""Shop API: reconciliation (对账) runs and findings."""
from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from api.exceptions import InputError
from api.permissions import IsShopFinance
from platform_core.payments import reconciliation as recon
from platform_core.payments.models import ReconciliationItem, ReconciliationRun


class FindingOutput(serializers.ModelSerializer):
    fixable = serializers.BooleanField(read_only=True)
    order_number = serializers.SerializerMethodField()

    class Meta:
        model = ReconciliationItem
        fields = ["id", "kind", "status", "external_id", "payment_external_id", "order_number", "gateway_amount",
                  "kameng_amount", "currency", "detail", "fixable", "resolved_by", "resolved_at", "resolution"]

    def get_order_number(self, item) -> str | None:
        return item.payment.order.number if item.payment_id else None


class RunOutput(serializers.ModelSerializer):
    findings = FindingOutput(many=True, source="items.all")

    class Meta:
        model = ReconciliationRun
        fields = ["id", "provider", "day", "status", "message", "gateway_payments", "gateway_refunds",
                  "gateway_net", "matched", "open_items", "finished_at", "failed_attempts", "retry_at", "findings"]
        extra_kwargs = {"failed_attempts": {"help_text": "Failed runs: tries in a row that failed."},
                        "retry_at": {"help_text": "Failed runs: when Kameng tries again by itself (null: it "
                                                  "will not; the message says what to fix)."}}


class RunInput(serializers.Serializer):
    provider = serializers.SlugField(help_text="A payment method with a settlement report, e.g. sandbox.")
    day = serializers.DateField(help_text="The UTC day to reconcile (today or earlier, up to 400 days back).")


class DismissInput(serializers.Serializer):
    note = serializers.CharField(max_length=300, help_text="Why no change is needed (kept in the audit log).")


def _refused(exc: recon.ReconciliationError):
    return InputError(exc.message, field=exc.field, code="reconciliation", status_code=exc.status)


def _valid(serializer_class, data):
    serializer = serializer_class(data=data)
    if not serializer.is_valid():
        field, problems = next(iter(serializer.errors.items()))
        raise InputError(str(problems[0]), field=field)
    return serializer.validated_data


class ReconciliationApi(APIView):
    permission_classes = [IsShopFinance]

    @extend_schema(summary="Reconciliation runs (newest day first)", responses={200: RunOutput(many=True)},
                   parameters=[OpenApiParameter("day", str), OpenApiParameter("provider", str)])
    def get(self, request):
        runs = ReconciliationRun.objects.prefetch_related("items__payment__order").order_by("-day", "provider")
        if request.query_params.get("provider"):
            runs = runs.filter(provider=request.query_params["provider"][:40])
        day = request.query_params.get("day")
        if day:
            if not _is_date(day):
                raise InputError("day is YYYY-MM-DD.", field="day")
            runs = runs.filter(day=day)
        return Response(RunOutput(runs[:60], many=True).data)

    @extend_schema(summary="Reconcile one payment method for one day (again: decisions are kept)",
                   request=RunInput, responses={201: RunOutput, 400: OpenApiResponse(description="Refused")})
    def post(self, request):
        values = _valid(RunInput, request.data)
        try:
            run = recon.reconcile_day(provider_slug=values["provider"], day=values["day"], actor=request.user,
                                      request=request)
        except recon.ReconciliationError as exc:
            raise _refused(exc) from None
        return Response(RunOutput(run).data, status=status.HTTP_201_CREATED)


def _is_date(text: str) -> bool:
    try:
        serializers.DateField().to_internal_value(text)
    except serializers.ValidationError:
        return False
    return True


class FindingFixApi(APIView):
    permission_classes = [IsShopFinance]

    @extend_schema(summary="Record what the gateway did (a lost payment or an outside refund)", request=None,
                   responses={200: FindingOutput, 404: OpenApiResponse(description="No such finding"),
                              409: OpenApiResponse(description="Already decided, or needs a person")})
    def post(self, request, pk: int):
        try:
            item = recon.reconciliation_fix(item_id=pk, actor=request.user, request=request)
        except recon.ReconciliationError as exc:
            raise _refused(exc) from None
        return Response(FindingOutput(item).data)


class FindingDismissApi(APIView):
    permission_classes = [IsShopFinance]

    @extend_schema(summary="Close a finding without a change, saying why", request=DismissInput,
                   responses={200: FindingOutput, 404: OpenApiResponse(description="No such finding"),
                              409: OpenApiResponse(description="Already decided")})
    def post(self, request, pk: int):
        values = _valid(DismissInput, request.data)
        try:
            item = recon.reconciliation_dismiss(item_id=pk, note=values["note"], actor=request.user,
                                                request=request)
        except recon.ReconciliationError as exc:
            raise _refused(exc) from None
        return Response(FindingOutput(item).data)
