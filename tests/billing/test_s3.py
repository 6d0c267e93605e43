"""Invoice PDFs on a real S3-compatible server on loopback (moto in server mode):
stored under the platform prefix, downloaded through a signed link that expires.

moto does not enforce the expiry of presigned URLs, so expiry is checked where Kameng
enforces it: our signed link (410 once too old); the presigned object URL it redirects
to is checked for its own short X-Amz-Expires."""
from __future__ import annotations

import socket
from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import boto3
import pytest
import requests
import time_machine
from django.utils import timezone
from moto.server import ThreadedMotoServer

from billing import invoicing
from billing.invoicing import S3_REDIRECT_SECONDS
from tests.billing.test_invoices import _issue

BUCKET = "kameng-invoices"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def s3(settings):
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test",
                          region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "platform_core.storage.ShopS3Storage",
        "OPTIONS": {"bucket_name": BUCKET, "endpoint_url": endpoint, "access_key": "test", "secret_key": "test",
                    "region_name": "us-east-1", "default_acl": None, "querystring_auth": True,
                    "signature_version": "s3v4"}}}
    yield client
    server.stop()


def test_invoice_pdf_is_stored_on_s3_and_served_through_an_expiring_link(alpha, alice, shop_client, s3, settings):
    settings.KAMENG_BILLING_LINK_SECONDS = 300
    invoice = _issue(alpha)
    key = invoicing.invoice_store_pdf(invoice=invoice)
    assert key == f"invoices/2026/{invoice.number}.pdf"
    stored = s3.get_object(Bucket=BUCKET, Key=f"platform/{key}")["Body"].read()  # the platform's prefix
    assert stored.startswith(b"%PDF") and len(stored) > 500
    assert invoicing.invoice_store_pdf(invoice=invoice) == key  # stored once

    client = shop_client(alpha, alice)
    link = client.get(f"/manage/billing/invoices/{invoice.pk}/pdf/")
    assert link.status_code == 302 and link["Location"].startswith("/manage/billing/file/")
    redirect = client.get(link["Location"])
    assert redirect.status_code == 302
    object_url = redirect["Location"]
    query = parse_qs(urlparse(object_url).query)
    assert urlparse(object_url).path == f"/{BUCKET}/platform/{key}"
    assert query["X-Amz-Expires"] == [str(S3_REDIRECT_SECONDS)] and query["X-Amz-Signature"]
    assert requests.get(object_url, timeout=10).content == stored   # fetched from the S3 server itself
    # a stranger without a session can use a fresh link (the token is the permission) …
    assert shop_client(alpha).get(link["Location"]).status_code == 302
    # … but not once it is older than KAMENG_BILLING_LINK_SECONDS, nor a tampered one
    with time_machine.travel(timezone.now() + timedelta(seconds=301)):
        expired = shop_client(alpha).get(link["Location"])
    assert expired.status_code == 410 and b"expired" in expired.content
    assert shop_client(alpha).get(link["Location"][:-3] + "xx/").status_code == 404


def test_filesystem_storage_streams_the_pdf_through_the_signed_link(alpha, alice, shop_client, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    invoice = _issue(alpha)
    link = shop_client(alpha, alice).get(f"/manage/billing/invoices/{invoice.pk}/pdf/")["Location"]
    response = shop_client(alpha).get(link)
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert b"".join(response.streaming_content).startswith(b"%PDF")
    assert (tmp_path / "invoices" / "2026" / f"{invoice.number}.pdf").exists()
