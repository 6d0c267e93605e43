import pytest
from django_tenants.utils import tenant_context


@pytest.fixture
def shop(alpha):
    """Inside the alpha shop's schema."""
    with tenant_context(alpha):
        yield alpha
