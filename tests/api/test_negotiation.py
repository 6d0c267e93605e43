"""The API's content negotiation answers as DRF's own for every Accept header: the
common ones without parsing, the rest through DRF."""
from __future__ import annotations

import pytest
from django.http import Http404
from rest_framework import exceptions
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from api.negotiation import ContentNegotiation

ACCEPTS = [None, "*/*", " */* ", "application/json", "application/json; indent=4", "text/html",
           "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "application/*", "image/png",
           "application/xml", "", "*/*;q=0.1"]


def _choice(negotiation, accept, renderers, url="/api/v1/orders/"):
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    request = Request(APIRequestFactory().get(url, **headers))
    try:
        renderer, media_type = negotiation.select_renderer(request, renderers)
    except exceptions.NotAcceptable:
        return "406"
    except Http404:  # ?format= no renderer has
        return "404"
    return type(renderer), media_type


@pytest.mark.parametrize("accept", ACCEPTS)
@pytest.mark.parametrize("renderer_classes", [(JSONRenderer, BrowsableAPIRenderer), (BrowsableAPIRenderer,
                                                                                     JSONRenderer)])
def test_same_renderer_and_media_type_as_drf(accept, renderer_classes):
    renderers = [cls() for cls in renderer_classes]
    assert _choice(ContentNegotiation(), accept, renderers) == _choice(DefaultContentNegotiation(), accept, renderers)


@pytest.mark.parametrize("url", ["/api/v1/orders/?format=api", "/api/v1/orders/?format=json",
                                 "/api/v1/orders/?format=xml"])
def test_a_format_in_the_query_is_honoured(url):
    renderers = [JSONRenderer(), BrowsableAPIRenderer()]
    assert _choice(ContentNegotiation(), "*/*", renderers, url) == \
        _choice(DefaultContentNegotiation(), "*/*", renderers, url)


def test_the_api_answers_json_to_a_client_that_accepts_anything(alpha, alice):
    from django.test import Client
    from rest_framework.authtoken.models import Token

    client = Client(HTTP_HOST="alpha.kameng.test", HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=alice).key}")
    for accept in ("*/*", "application/json"):
        response = client.get("/api/v1/orders/", HTTP_ACCEPT=accept)
        assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert client.get("/api/v1/orders/", HTTP_ACCEPT="image/png").status_code == 406
