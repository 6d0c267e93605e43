from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView


def schema_patterns(urlconf: str, title: str):
    """OpenAPI schema + Swagger UI describing the API of this kind of host."""
    return [
        path("schema/", SpectacularAPIView.as_view(urlconf=urlconf, custom_settings={"TITLE": title}),
             name="api-schema"),
        path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    ]
