from __future__ import annotations

import pytest


@pytest.fixture
def plans(db):
    from billing.models import Plan

    return {plan.code: plan for plan in Plan.objects.all()}
