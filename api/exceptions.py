from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from platform_core.catalog.services import CatalogError
from platform_core.customers.services import CustomerError
from platform_core.orders.services import OrderError
from plugins.payment import PaymentError
from plugins.registry import UnknownPlugin
from plugins.services import PluginError
from tenants.services import ShopCreationError


class InputError(APIException):
    """A request refused with the field at fault: ``{"detail", "field", "code"}``
    (plus ``errors`` with every problem when the input had several)."""

    status_code = status.HTTP_400_BAD_REQUEST

    def __init__(self, detail: str, *, field: str = "", code: str = "invalid", status_code: int = 400,
                 errors: dict | None = None):
        super().__init__(detail, code)
        self.message, self.field, self.error_code, self.errors = detail, field, code, errors
        self.status_code = status_code


def _body(detail: str, field: str = "", code: str = "invalid", **extra) -> dict:
    return {"detail": detail, "field": field or "", "code": code, **extra}


def _inventory_errors():
    """Inventory error classes, imported late: that app's services import a lot."""
    try:
        from platform_core.inventory.parsers import ImportFileError
        from platform_core.inventory.services import StockError
    except ImportError:  # pragma: no cover - the inventory app is always installed
        return ()
    return ImportFileError, StockError


def exception_handler(exc, context):
    """Service errors become clear 4xx answers with the field at fault."""
    if isinstance(exc, ShopCreationError):
        code = status.HTTP_409_CONFLICT if exc.code == "taken" else status.HTTP_400_BAD_REQUEST
        return Response({"detail": exc.message, "field": exc.field, "code": exc.code}, status=code)
    if isinstance(exc, PluginError):
        return Response({"detail": exc.message, "errors": exc.errors}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, InputError):
        extra = {"errors": exc.errors} if exc.errors else {}
        return Response(_body(exc.message, exc.field, exc.error_code, **extra), status=exc.status_code)
    if isinstance(exc, (OrderError, CatalogError)):
        return Response(_body(exc.message, exc.field, exc.code), status=exc.status)
    if isinstance(exc, CustomerError):
        return Response(_body(exc.message, exc.field, exc.code), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, PaymentError):
        # the gateway refused or failed; nothing was recorded (the service rolled back)
        return Response(_body(exc.message, "", "payment_failed", retryable=exc.retryable),
                        status=status.HTTP_409_CONFLICT)
    if isinstance(exc, UnknownPlugin):
        # e.g. refunding a payment whose provider plugin was uninstalled since
        return Response(_body(f"A plugin this needs is not installed ({exc}).", "", "plugin_missing"),
                        status=status.HTTP_409_CONFLICT)
    inventory = _inventory_errors()
    if inventory and isinstance(exc, inventory[0]):
        return Response(_body(f"{exc} Nothing was imported.", "file", "unreadable_file"),
                        status=status.HTTP_400_BAD_REQUEST)
    if inventory and isinstance(exc, inventory[1]):
        code = status.HTTP_409_CONFLICT if exc.code == "wrong_type" else status.HTTP_400_BAD_REQUEST
        return Response(_body(exc.message, "", exc.code), status=code)
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict) and set(response.data) == {"detail"}:
        # DRF's own refusals (authentication, permissions, malformed JSON) in the same shape
        codes = exc.get_codes() if isinstance(exc, APIException) else "error"
        response.data = _body(str(response.data["detail"]), "", codes if isinstance(codes, str) else "error")
    return response
