"""Shop API: catalog, card-key stock, orders, refunds, after-sales tickets, customers.

Members of the shop read; its owner and admins write (``IsShopManager``). Views check
the shape of the input, call the services and render; every refusal is a 4xx
``{"detail", "field", "code"}``. Money is integer minor units in ``*_minor`` fields.
"""
from __future__ import annotations

import copy
import re
from contextlib import contextmanager

from django.db import transaction
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response

from api import serializers_commerce as s
from api.exceptions import InputError
from api.rendering import rendered, validated_values
from api.permissions import MANAGER_ROLES, IsShopManager, IsShopMember
from platform_core.audit.services import audit_record
from platform_core.catalog import selectors as catalog_selectors
from platform_core.catalog import services as catalog
from platform_core.catalog.models import Product
from platform_core.db.rows import remember_related
from platform_core.orders import selectors as order_selectors
from platform_core.orders import services as orders
from platform_core.orders.models import Order, Ticket
from tenants.services import membership_for

ERROR_RESPONSES = {
    400: OpenApiResponse(description="Invalid input: `{detail, field, code}`"),
    403: OpenApiResponse(description="Not a member of this shop, or not allowed to change it"),
    404: OpenApiResponse(description="Not found in this shop"),
}
IDEMPOTENCY_KEY_RE = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")


# --- plumbing ------------------------------------------------------------------------

class ManagersOnly(IsShopMember):
    """Owner or admin of this shop, even to read (plaintext keys)."""

    message = "Only the shop's owner and admins can see delivered keys."

    def has_permission(self, request, view):
        shop = getattr(request, "tenant", None)
        membership = membership_for(request.user, shop) if getattr(shop, "pk", None) else None
        return membership is not None and membership.role in MANAGER_ROLES


class Pagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 200


def _error_path(errors, prefix: str = "") -> tuple[str, str, str]:
    """The first problem in DRF's nested errors as (field path, message, code)."""
    if isinstance(errors, dict):
        for key, value in errors.items():
            if isinstance(key, int):
                path = f"{prefix}[{key}]"
            elif key == "non_field_errors":
                path = prefix
            else:
                path = f"{prefix}.{key}" if prefix else str(key)
            found = _error_path(value, path)
            if found[1]:
                return found
        return prefix, "", ""
    if isinstance(errors, list):
        for index, value in enumerate(errors):
            if isinstance(value, (dict, list)):
                found = _error_path(value, f"{prefix}[{index}]")
                if found[1]:
                    return found
            elif value:
                return prefix, str(value), getattr(value, "code", "invalid") or "invalid"
        return prefix, "", ""
    return prefix, str(errors), getattr(errors, "code", "invalid") or "invalid"


def _refused(errors) -> InputError:
    field, message, code = _error_path(errors)
    return InputError(message or "Invalid input.", field=field, code=code, errors=errors)


def validated(serializer_class, request_data, **kwargs):
    serializer = serializer_class(data=request_data, **kwargs)
    if not serializer.is_valid():
        raise _refused(serializer.errors)
    return serializer


def not_found(what: str) -> InputError:
    return InputError(f"No such {what} in this shop.", code="not_found", status_code=404)


# API field names differ from the services' where money or ids are concerned
_CATALOG_FIELD_NAMES = [(r"\bunit_price\b", "unit_price_minor"), (r"\bprice\b", "price_minor"),
                        (r"\bparent\b", "parent_id"), (r"\bcategory\b", "category_id")]


@contextmanager
def api_field_names(renames=_CATALOG_FIELD_NAMES):
    """Re-raise service errors with the field named as the API client wrote it."""
    try:
        yield
    except (catalog.CatalogError, orders.OrderError) as exc:
        for pattern, replacement in renames:
            exc.field = re.sub(pattern, replacement, exc.field or "")
        raise


def query_text(request, name: str, max_length: int = 100) -> str:
    """A free-text query parameter; PostgreSQL refuses NUL characters, so they are a 400."""
    value = request.query_params.get(name) or ""
    if "\x00" in value:
        raise InputError(f"{name} contains a NUL character.", field=name)
    return value.strip()[:max_length]


def _order_or_404(number: str, *, with_history: bool = False) -> Order:
    if not number.isdigit() or len(number) > 24:  # order numbers are digits
        raise not_found("order")
    order = (order_selectors.order_with_history(number=number) if with_history
             else order_selectors.order_get(number=number))
    if order is None:
        raise not_found("order")
    return order


def _bounded_id(value) -> bool:
    return isinstance(value, int) and 0 < value <= s.MAX_ID


# --- catalog -------------------------------------------------------------------------

class CategoryListApi(GenericAPIView):
    permission_classes = [IsShopManager]
    serializer_class = s.CategoryOutput

    @extend_schema(responses=s.CategoryOutput(many=True), summary="List categories (two levels)")
    def get(self, request):
        return Response(s.CategoryOutput(catalog_selectors.category_list(), many=True).data)

    @extend_schema(request=s.CategoryInput, responses={201: s.CategoryOutput, **ERROR_RESPONSES},
                   summary="Create a category")
    def post(self, request):
        values = validated(s.CategoryInput, request.data).to_service()
        with api_field_names():
            category = catalog.category_create(actor=request.user, request=request, **values)
        return Response(s.CategoryOutput(category).data, status=status.HTTP_201_CREATED)


class CategoryDetailApi(GenericAPIView):
    permission_classes = [IsShopManager]
    serializer_class = s.CategoryOutput

    def _category(self, pk):
        category = catalog_selectors.category_get(category_id=pk) if _bounded_id(pk) else None
        if category is None:
            raise not_found("category")
        return category

    @extend_schema(responses={200: s.CategoryOutput, **ERROR_RESPONSES}, summary="A category")
    def get(self, request, pk):
        return Response(s.CategoryOutput(self._category(pk)).data)

    @extend_schema(request=s.CategoryInput, responses={200: s.CategoryOutput, **ERROR_RESPONSES},
                   summary="Change a category")
    def patch(self, request, pk):
        category = self._category(pk)
        values = validated(s.CategoryInput, request.data, partial=True).to_service()
        with api_field_names():
            category = catalog.category_update(category=category, changes=values, actor=request.user,
                                               request=request)
        return Response(s.CategoryOutput(category).data)

    @extend_schema(responses={204: None, **ERROR_RESPONSES},
                   summary="Delete a category (its products stay, without a category)")
    def delete(self, request, pk):
        catalog.category_delete(category=self._category(pk), actor=request.user, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ProductListApi(GenericAPIView):
    permission_classes = [IsShopManager]
    serializer_class = s.ProductOutput
    pagination_class = Pagination

    @extend_schema(
        summary="List products with their SKUs",
        parameters=[
            OpenApiParameter("category", int, description="Category id (includes its sub-categories)"),
            OpenApiParameter("type", str, enum=Product.Type.values),
            OpenApiParameter("visible", bool),
            OpenApiParameter("q", str, description="Part of the product name"),
        ],
        responses={200: s.ProductOutput(many=True), **ERROR_RESPONSES},
    )
    def get(self, request):
        params = request.query_params
        category = params.get("category")
        if category is not None and (not category.isdigit() or not _bounded_id(int(category))):
            raise InputError("category is a category id.", field="category")
        product_type = params.get("type") or None
        if product_type is not None and product_type not in Product.Type.values:
            raise InputError(f"type is one of {', '.join(Product.Type.values)}.", field="type")
        visible = params.get("visible")
        if visible is not None and visible not in ("true", "false", "1", "0"):
            raise InputError("visible is true or false.", field="visible")
        products = catalog_selectors.product_list(
            category_id=int(category) if category else None, product_type=product_type,
            visible=None if visible is None else visible in ("true", "1"), search=query_text(request, "q"))
        page = self.paginate_queryset(products)
        return self.get_paginated_response(s.ProductOutput(page, many=True).data)

    @extend_schema(request=s.ProductInput, responses={201: s.ProductOutput, **ERROR_RESPONSES},
                   summary="Create a product (optionally with its SKUs and wholesale prices)")
    def post(self, request):
        values = validated(s.ProductInput, request.data).to_service()
        skus = []
        for sku_values in values.pop("skus", []):
            service_values, tiers = s.sku_service_values(sku_values)
            skus.append({**service_values, **({"wholesale_prices": tiers} if tiers else {})})
        with api_field_names():
            product = catalog.product_create(actor=request.user, request=request, skus=skus, **values)
        return Response(s.ProductOutput(catalog_selectors.product_get(product_id=product.pk)).data,
                        status=status.HTTP_201_CREATED)


class ProductDetailApi(GenericAPIView):
    permission_classes = [IsShopManager]
    serializer_class = s.ProductOutput

    def _product(self, pk):
        product = catalog_selectors.product_get(product_id=pk) if _bounded_id(pk) else None
        if product is None:
            raise not_found("product")
        return product

    @extend_schema(responses={200: s.ProductOutput, **ERROR_RESPONSES}, summary="A product with its SKUs")
    def get(self, request, pk):
        return Response(s.ProductOutput(self._product(pk)).data)

    @extend_schema(request=s.ProductInput, responses={200: s.ProductOutput, **ERROR_RESPONSES},
                   summary="Change a product (SKUs change through /skus/)")
    def patch(self, request, pk):
        product = self._product(pk)
        values = validated(s.ProductInput, request.data, partial=True).to_service()
        if "skus" in values:
            raise InputError("Change SKUs through /api/v1/skus/<id>/ or add them through "
                             f"/api/v1/products/{product.pk}/skus/.", field="skus")
        with api_field_names():
            catalog.product_update(product=product, changes=values, actor=request.user, request=request)
        return Response(s.ProductOutput(catalog_selectors.product_get(product_id=product.pk)).data)


class ProductSKUCreateApi(GenericAPIView):
    permission_classes = [IsShopManager]
    serializer_class = s.SKUOutput

    @extend_schema(request=s.SKUInput, responses={201: s.SKUOutput, **ERROR_RESPONSES},
                   summary="Add a SKU to a product")
    def post(self, request, pk):
        product = catalog_selectors.product_get(product_id=pk) if _bounded_id(pk) else None
        if product is None:
            raise not_found("product")
        values, tiers = s.sku_service_values(validated(s.SKUInput, request.data).validated_data)
        with api_field_names(), transaction.atomic():
            sku = catalog.sku_create(product=product, actor=request.user, request=request, **values)
            if tiers:
                catalog.wholesale_price_set(sku=sku, tiers=tiers, actor=request.user, request=request)
        return Response(s.SKUOutput(catalog_selectors.sku_get(sku_id=sku.pk)).data, status=status.HTTP_201_CREATED)


def _sku_or_404(pk):
    sku = catalog_selectors.sku_get(sku_id=pk) if _bounded_id(pk) else None
    if sku is None:
        raise not_found("SKU")
    return sku


class SKUDetailApi(GenericAPIView):
    permission_classes = [IsShopManager]
    serializer_class = s.SKUOutput

    @extend_schema(responses={200: s.SKUOutput, **ERROR_RESPONSES}, summary="A SKU with stock and wholesale prices")
    def get(self, request, pk):
        return Response(s.SKUOutput(_sku_or_404(pk)).data)

    @extend_schema(request=s.SKUInput, responses={200: s.SKUOutput, **ERROR_RESPONSES},
                   summary="Change a SKU; wholesale_prices, when given, replaces them all")
    def patch(self, request, pk):
        sku = _sku_or_404(pk)
        values, tiers = s.sku_service_values(validated(s.SKUInput, request.data, partial=True).validated_data)
        with api_field_names(), transaction.atomic():
            if values:
                sku = catalog.sku_update(sku=sku, changes=values, actor=request.user, request=request)
            if tiers is not None:
                catalog.wholesale_price_set(sku=sku, tiers=tiers, actor=request.user, request=request)
        return Response(s.SKUOutput(catalog_selectors.sku_get(sku_id=sku.pk)).data)


class SKUStockApi(GenericAPIView):
    permission_classes = [IsShopManager]
    serializer_class = s.StockOutput

    @extend_schema(responses={200: s.StockOutput, **ERROR_RESPONSES}, summary="Stock counters of a SKU")
    def get(self, request, pk):
        counts = catalog_selectors.sku_stock(_sku_or_404(pk))
        return Response(s.StockOutput(counts).data)


class SKUKeysImportApi(GenericAPIView):
    """Import card keys: JSON ``{"keys": [...], "loop": false}`` or a multipart file."""

    permission_classes = [IsShopManager]
    parser_classes = [JSONParser, MultiPartParser, FormParser]
    serializer_class = s.KeysImportOutput

    @extend_schema(
        summary="Import card keys into a SKU",
        request={"application/json": s.KeysImportJsonInput, "multipart/form-data": s.KeysImportFileInput},
        responses={201: s.KeysImportOutput, 409: OpenApiResponse(description="Not a card-key product"),
                   **ERROR_RESPONSES},
    )
    def post(self, request, pk):
        # imported here: the inventory services are their own, heavier module
        from platform_core.inventory.parsers import guess_format, parse_separator
        from platform_core.inventory.services import keys_import

        sku = _sku_or_404(pk)
        if "file" in request.FILES or request.content_type.startswith("multipart/"):
            values = validated(s.KeysImportFileInput, request.data).validated_data
            upload = values["file"]
            head = upload.read(8)
            upload.seek(0)
            batch = keys_import(shop=request.tenant, sku=sku, source="api", stream=upload,
                                filename=upload.name or "", fmt=values.get("format") or guess_format(upload.name, head),
                                separator=parse_separator(values.get("separator")), pairs=values["pairs"],
                                loop=values["loop"], actor=request.user)
        else:
            values = validated(s.KeysImportJsonInput, request.data).validated_data
            batch = keys_import(shop=request.tenant, sku=sku, source="api", lines=values["keys"],
                                separator=parse_separator(values.get("separator")), loop=values["loop"],
                                actor=request.user)
        return Response(s.KeysImportOutput(batch).data, status=status.HTTP_201_CREATED)


# --- orders --------------------------------------------------------------------------

class OrderListApi(GenericAPIView):
    permission_classes = [IsShopManager]
    serializer_class = s.OrderOutput
    pagination_class = Pagination

    @extend_schema(
        summary="List orders, newest first",
        parameters=[OpenApiParameter("status", str, enum=Order.Status.values),
                    OpenApiParameter("contact", str, description="Exact e-mail or phone"),
                    OpenApiParameter("number", str)],
        responses={200: s.OrderOutput(many=True), **ERROR_RESPONSES},
    )
    def get(self, request):
        params = request.query_params
        order_status = params.get("status") or None
        if order_status is not None and order_status not in Order.Status.values:
            raise InputError(f"status is one of {', '.join(Order.Status.values)}.", field="status")
        found = order_selectors.order_list(status=order_status, contact=query_text(request, "contact", 254),
                                           number=query_text(request, "number", 24)).prefetch_related("lines")
        page = self.paginate_queryset(found)
        return self.get_paginated_response(s.OrderOutput(page, many=True).data)

    @extend_schema(
        summary="Place an order (integrations)",
        description="Reserves stock for the shop's reservation window. Send an `Idempotency-Key` header: "
                    "a retried request with the same key returns the same order with 200 instead of 201 "
                    "(and starts no second payment). With `payment`, the payment starts in the same request.",
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER,
                                     description="Up to 64 letters, digits, `_ . : -`")],
        request=s.OrderCreateInput,
        responses={201: s.OrderPlacedOutput, 200: s.OrderDetailOutput,
                   409: OpenApiResponse(description="Out of stock, or the key was used for another order"),
                   429: OpenApiResponse(description="Too many unpaid orders for this contact"), **ERROR_RESPONSES},
    )
    def post(self, request):
        values, errors = validated_values(s.OrderCreateInput, request.data)  # every checkout: bound once
        if errors is not None:
            raise _refused(errors)
        stored_key = self._idempotency_key(request)
        lines = [orders.LineRequest(sku_id=line["sku_id"], quantity=line["quantity"], account=line["account"])
                 for line in values["lines"]]
        if stored_key:
            existing = order_selectors.order_by_idempotency_key(stored_key)
            if existing is not None:
                self._same_request_or_409(existing, lines)
                return Response(s.OrderDetailOutput(existing).data, status=status.HTTP_200_OK)
        renames = [(r"^sku$", "lines.sku_id"), (r"^quantity$", "lines.quantity"), (r"^account$", "lines.account")]
        prepared, within_transaction, within_transaction_keys = {}, None, ()
        if values.get("payment"):
            from api.payment_views import PAYMENT_KEY, payment_prepared_with_order

            within_transaction = payment_prepared_with_order(request, values["payment"]["provider"],
                                                             values["payment"].get("return_url"), prepared)
            within_transaction_keys = PAYMENT_KEY
        try:
            with api_field_names(renames):
                order = orders.order_place(lines=lines, contact=values["contact"],
                                           query_password=values["query_password"], idempotency_key=stored_key,
                                           actor=getattr(request.user, "email", "api"),
                                           language=request.tenant.language, within_transaction=within_transaction,
                                           within_transaction_keys=within_transaction_keys)
        except orders.OrderError as exc:  # name the line whose SKU is not ours (checked only on failure)
            if exc.code == "not_found" and exc.line is not None \
                    and catalog_selectors.sku_get(sku_id=lines[exc.line].sku_id) is None:
                raise InputError("No such SKU in this shop.", field=f"lines[{exc.line}].sku_id",
                                 code="not_found") from None
            raise
        extra, started = {}, []
        if values.get("payment"):
            from api.payment_views import api_payment_start

            body, code, payment = api_payment_start(request, order, values["payment"]["provider"],
                                                    values["payment"].get("return_url"),
                                                    prepared=prepared.get(order.pk))
            # the order stands either way: a failed start can be retried on /payments/
            extra = {"payment": body, "payment_error": None} if code == status.HTTP_201_CREATED else \
                {"payment": None, "payment_error": {**body, "status": code}}
            started = [payment] if payment is not None and body.get("action") != "instant" else None
        # a new order waiting for its payment is what we hold; one that changed meanwhile
        # (free, paid instantly, a start that failed) is read again
        if started is not None and order.status == Order.Status.PENDING_PAYMENT and hasattr(order, "placed_lines"):
            for payment in started:
                remember_related(payment, refunds=[])
            order = copy.copy(order)
            remember_related(order, lines=order.placed_lines, events=order.placed_events, payments=started,
                             tickets=[])
        else:
            order = order_selectors.order_with_history(number=order.number)
        return Response({**rendered(s.OrderDetailOutput, order), **extra}, status=status.HTTP_201_CREATED)

    @staticmethod
    def _idempotency_key(request) -> str | None:
        key = request.headers.get("Idempotency-Key")
        if key is None:
            return None
        if not IDEMPOTENCY_KEY_RE.match(key):
            raise InputError("Idempotency-Key is 1 to 64 letters, digits or _ . : -", field="Idempotency-Key")
        return f"api:{key}"  # apart from keys the storefront may use

    @staticmethod
    def _same_request_or_409(order: Order, lines) -> None:
        asked = sorted((line.sku_id, line.quantity) for line in lines)
        placed = sorted(order.lines.values_list("sku_id", "quantity"))
        if asked != placed:
            raise InputError("This Idempotency-Key was already used for a different order.",
                             field="Idempotency-Key", code="idempotency_key_reused", status_code=409)


class OrderDetailApi(GenericAPIView):
    permission_classes = [IsShopManager]
    serializer_class = s.OrderDetailOutput

    @extend_schema(responses={200: s.OrderDetailOutput, **ERROR_RESPONSES},
                   summary="An order with its lines, history, payments and refunds (no keys)")
    def get(self, request, number):
        return Response(s.OrderDetailOutput(_order_or_404(number, with_history=True)).data)


class OrderKeysApi(GenericAPIView):
    permission_classes = [ManagersOnly]
    serializer_class = s.OrderKeysOutput

    @extend_schema(responses={200: s.OrderKeysOutput, **ERROR_RESPONSES},
                   summary="The order's delivered keys in plaintext (owner/admin; audited)")
    def get(self, request, number):
        order = _order_or_404(number)
        items = orders.order_delivered_items(order)
        audit_record(action="order.keys_viewed", actor=request.user, target=order, request=request,
                     data={"number": order.number, "count": len(items), "via": "api"})
        data = {"number": order.number, "items": [
            {"delivered_key_id": item.delivered_key_id, "line_title": item.line_title, "secret": item.secret,
             "replaced": item.replaced} for item in items]}
        return Response(s.OrderKeysOutput(data).data)


class OrderRefundApi(GenericAPIView):
    permission_classes = [IsShopManager]
    serializer_class = s.OrderDetailOutput

    @extend_schema(request=s.RefundInput,
                   responses={201: s.OrderDetailOutput, 409: OpenApiResponse(description="Not paid, or the "
                                                                             "gateway refused"), **ERROR_RESPONSES},
                   summary="Refund part or all of an order through its payment provider")
    def post(self, request, number):
        order = _order_or_404(number)
        values = validated(s.RefundInput, request.data).validated_data
        ticket = None
        if "ticket_id" in values:
            ticket = order.tickets.filter(pk=values["ticket_id"]).first()
            if ticket is None:
                raise InputError("No such ticket on this order.", field="ticket_id", code="not_found")
        with api_field_names([(r"^amount$", "amount_minor")]):
            orders.order_refund(order=order, amount=values["amount_minor"], reason=values["reason"],
                                actor=request.user, ticket=ticket)
        return Response(s.OrderDetailOutput(_order_or_404(number, with_history=True)).data,
                        status=status.HTTP_201_CREATED)


class OrderCancelApi(GenericAPIView):
    permission_classes = [IsShopManager]
    serializer_class = s.OrderDetailOutput

    @extend_schema(request=None, responses={200: s.OrderDetailOutput,
                                            409: OpenApiResponse(description="Not awaiting payment"),
                                            **ERROR_RESPONSES},
                   summary="Cancel an unpaid order (its reserved keys go back into stock)")
    def post(self, request, number):
        orders.order_cancel(order=_order_or_404(number), actor=getattr(request.user, "email", "api"))
        return Response(s.OrderDetailOutput(_order_or_404(number, with_history=True)).data)


class OrderLineDeliverApi(GenericAPIView):
    permission_classes = [IsShopManager]
    serializer_class = s.OrderDetailOutput

    @extend_schema(request=s.DeliverInput, responses={200: s.OrderDetailOutput, **ERROR_RESPONSES},
                   summary="Deliver a manual or top-up line by hand")
    def post(self, request, number, line_id):
        order = _order_or_404(number)
        line = order.lines.filter(pk=line_id).first() if _bounded_id(line_id) else None
        if line is None:
            raise not_found("line on this order")
        if line.product_type not in order_selectors.STAFF_DELIVERED_TYPES:
            raise InputError("Card-key lines are delivered from stock, not by hand.", field="line_id",
                             code="wrong_type", status_code=409)
        values = validated(s.DeliverInput, request.data).validated_data
        orders.line_mark_delivered(line=line, note=values["note"], actor=request.user)
        return Response(s.OrderDetailOutput(_order_or_404(number, with_history=True)).data)


# --- tickets -------------------------------------------------------------------------

def _ticket_or_404(pk) -> Ticket:
    ticket = order_selectors.ticket_get(ticket_id=pk) if _bounded_id(pk) else None
    if ticket is None:
        raise not_found("ticket")
    return ticket


def _ticket_detail(pk) -> dict:
    ticket = _ticket_or_404(pk)
    ticket.delivered_keys = order_selectors.order_keys_masked(ticket.order)
    return s.TicketDetailOutput(ticket).data


class TicketListApi(GenericAPIView):
    permission_classes = [IsShopManager]
    serializer_class = s.TicketOutput
    pagination_class = Pagination

    @extend_schema(summary="List after-sales tickets, open ones first",
                   parameters=[OpenApiParameter("status", str, enum=Ticket.Status.values),
                               OpenApiParameter("order", str, description="Order number")],
                   responses={200: s.TicketOutput(many=True), **ERROR_RESPONSES})
    def get(self, request):
        ticket_status = request.query_params.get("status") or None
        if ticket_status is not None and ticket_status not in Ticket.Status.values:
            raise InputError(f"status is one of {', '.join(Ticket.Status.values)}.", field="status")
        tickets = order_selectors.ticket_list(status=ticket_status, order_number=query_text(request, "order", 24))
        page = self.paginate_queryset(tickets)
        return self.get_paginated_response(s.TicketOutput(page, many=True).data)


class TicketDetailApi(GenericAPIView):
    permission_classes = [IsShopManager]
    serializer_class = s.TicketDetailOutput

    @extend_schema(responses={200: s.TicketDetailOutput, **ERROR_RESPONSES},
                   summary="A ticket with its conversation and the order's keys (masked)")
    def get(self, request, pk):
        return Response(_ticket_detail(pk))


class TicketReplyApi(GenericAPIView):
    permission_classes = [IsShopManager]
    serializer_class = s.TicketDetailOutput

    @extend_schema(request=s.TicketReplyInput, responses={201: s.TicketDetailOutput, **ERROR_RESPONSES},
                   summary="Reply to the buyer")
    def post(self, request, pk):
        ticket = _ticket_or_404(pk)
        values = validated(s.TicketReplyInput, request.data).validated_data
        orders.ticket_reply(ticket=ticket, body=values["body"], actor=request.user, from_staff=True)
        return Response(_ticket_detail(pk), status=status.HTTP_201_CREATED)


class TicketReissueApi(GenericAPIView):
    permission_classes = [IsShopManager]
    serializer_class = s.TicketDetailOutput

    @extend_schema(request=s.TicketReissueInput,
                   responses={201: s.TicketDetailOutput, 409: OpenApiResponse(description="No key in stock"),
                              **ERROR_RESPONSES},
                   summary="Void a delivered key and deliver a fresh one from stock")
    def post(self, request, pk):
        ticket = _ticket_or_404(pk)
        values = validated(s.TicketReissueInput, request.data).validated_data
        if ticket.status == Ticket.Status.CLOSED:
            raise InputError("This ticket is closed.", code="closed", status_code=409)
        with api_field_names([(r"^key$", "delivered_key_id")]):
            orders.ticket_reissue_key(ticket=ticket, delivered_key_id=values["delivered_key_id"], actor=request.user)
        return Response(_ticket_detail(pk), status=status.HTTP_201_CREATED)


class TicketCloseApi(GenericAPIView):
    permission_classes = [IsShopManager]
    serializer_class = s.TicketDetailOutput

    @extend_schema(request=None, responses={200: s.TicketDetailOutput, **ERROR_RESPONSES}, summary="Close a ticket")
    def post(self, request, pk):
        ticket = _ticket_or_404(pk)
        if ticket.status != Ticket.Status.CLOSED:
            orders.ticket_close(ticket=ticket, actor=request.user)
            audit_record(action="ticket.closed", actor=request.user, target=ticket, request=request,
                         data={"order": ticket.order.number, "via": "api"})
        return Response(_ticket_detail(pk))


# --- customers -----------------------------------------------------------------------

class CustomerListApi(GenericAPIView):
    permission_classes = [IsShopManager]
    serializer_class = s.CustomerOutput
    pagination_class = Pagination

    @extend_schema(summary="List customers with their wallet balance",
                   parameters=[OpenApiParameter("q", str, description="Part of the e-mail, phone or name")],
                   responses={200: s.CustomerOutput(many=True), **ERROR_RESPONSES})
    def get(self, request):
        customers = order_selectors.customer_list(search=query_text(request, "q"))
        page = self.paginate_queryset(customers)
        return self.get_paginated_response(s.CustomerOutput(page, many=True).data)


class CustomerDetailApi(GenericAPIView):
    permission_classes = [IsShopManager]
    serializer_class = s.CustomerDetailOutput

    @extend_schema(responses={200: s.CustomerDetailOutput, **ERROR_RESPONSES},
                   summary="A customer with the newest wallet movements")
    def get(self, request, pk):
        customer = order_selectors.customer_get(customer_id=pk) if _bounded_id(pk) else None
        if customer is None:
            raise not_found("customer")
        customer.recent_wallet_entries = order_selectors.customer_ledger(customer)
        return Response(s.CustomerDetailOutput(customer).data)
