from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from plugins.services import PluginError
from tenants.services import ShopCreationError


def exception_handler(exc, context):
    """Service errors become clear 4xx answers with the field at fault."""
    if isinstance(exc, ShopCreationError):
        code = status.HTTP_409_CONFLICT if exc.code == "taken" else status.HTTP_400_BAD_REQUEST
        return Response({"detail": exc.message, "field": exc.field, "code": exc.code}, status=code)
    if isinstance(exc, PluginError):
        return Response({"detail": exc.message, "errors": exc.errors}, status=status.HTTP_400_BAD_REQUEST)
    return drf_exception_handler(exc, context)
