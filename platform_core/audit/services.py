from __future__ import annotations

from django.db import connection

from platform_core.audit.models import AuditEvent


def client_ip(request) -> str | None:
    return request.META.get("REMOTE_ADDR") if request is not None else None


def audit_record(*, action: str, actor=None, target=None, reason: str = "", data: dict | None = None,
                 request=None) -> AuditEvent:
    """Append one event to the audit log of the schema currently active
    (public for platform actions, the shop's own schema for shop actions)."""
    if actor is None and request is not None and getattr(request, "user", None) is not None:
        actor = request.user if request.user.is_authenticated else None
    tenant = getattr(connection, "tenant", None)
    return AuditEvent.objects.create(
        action=action,
        actor_id=getattr(actor, "pk", None),
        actor_email=getattr(actor, "email", "") or "",
        target_type=type(target).__name__ if target is not None else "",
        target_id=str(getattr(target, "pk", "") or "") if target is not None else "",
        shop_slug=(getattr(tenant, "slug", "") or "") if connection.schema_name != "public" else "",
        reason=reason,
        data=data or {},
        ip=client_ip(request),
    )
