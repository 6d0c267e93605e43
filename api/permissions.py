from rest_framework.permissions import BasePermission

from platform_core.admin_sites import ROLE_CAN_SEE_BOOKS
from tenants.services import membership_for

MANAGER_ROLES = {"owner", "admin"}


class IsShopMember(BasePermission):
    """The caller is a member of the shop whose host was called (any role)."""

    message = "You are not a member of this shop."

    def has_permission(self, request, view):
        shop = getattr(request, "tenant", None)
        return bool(getattr(shop, "pk", None)) and membership_for(request.user, shop) is not None


class IsShopManager(IsShopMember):
    """Owner or admin of this shop for writes; any member may read."""

    message = "Only the shop's owner and admins can change this."

    def has_permission(self, request, view):
        shop = getattr(request, "tenant", None)
        if not getattr(shop, "pk", None):
            return False
        membership = membership_for(request.user, shop)
        if membership is None:
            return False
        return request.method in ("GET", "HEAD", "OPTIONS") or membership.role in MANAGER_ROLES


class IsShopFinance(IsShopMember):
    """Owner, admin or finance: payments' books, reading and writing."""

    message = "Only the shop's owner, admins and finance staff can see and settle the payment books."

    def has_permission(self, request, view):
        shop = getattr(request, "tenant", None)
        if not getattr(shop, "pk", None):
            return False
        membership = membership_for(request.user, shop)
        return membership is not None and membership.role in ROLE_CAN_SEE_BOOKS
