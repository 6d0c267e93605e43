"""Scratch: in-process CPU profile of N paid orders (not a benchmark)."""
import cProfile, os, pstats, subprocess, sys, time, io
from tests.bench._harness import child_env, devstack, migrate_everything, setup_django
from tests.bench._shop import HOST_DOMAIN, add_plain_keys, create_shop, payment_succeeded_event, signed_webhook

N = int(os.environ.get("N", "200"))
with devstack():
    setup_django(); migrate_everything()
    from django_tenants.utils import tenant_context
    from platform_core import devstack as ds
    from platform_core.catalog.models import SKU, Product
    shop, token = create_shop("flash")
    with tenant_context(shop):
        product = Product.objects.create(name="Flash", max_quantity=10)
        sku = SKU.objects.create(product=product, name="x", price=100)
        add_plain_keys(sku.pk, 2 * N + 50, "P")
    gw = subprocess.Popen([sys.executable, "-m", "sandbox_gateway", "--port", str(port := ds.free_port()), "--db", os.path.join(os.environ["KAMENG_STATE_DIR"], "g.sqlite3")], env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with tenant_context(shop):
            from plugins.services import plugin_configure
            from tests.bench._shop import API_KEY
            plugin_configure(shop=shop, slug="sandbox", data={"api_key": API_KEY, "gateway_url": f"http://127.0.0.1:{port}"})
        time.sleep(1)
        from django.db import connection, reset_queries
        from django.test import Client
        from django.conf import settings
        host = f"flash.{HOST_DOMAIN}"
        c = Client(HTTP_HOST=host, HTTP_AUTHORIZATION=f"Token {token}")
        queries = []
        from django.db import connections
        def one(n, count):
            r = c.post("/api/v1/orders/", data={"lines": [{"sku_id": sku.pk, "quantity": 1}], "contact": f"b{n}@example.com", "query_password": "1234", "payment": {"provider": "sandbox"}}, content_type="application/json")
            assert r.status_code == 201, r.content
            info = r.json()["payment"]
            body, h = signed_webhook(payment_succeeded_event(info["payment_id"], info["amount"], info["currency"], 0, info["external_id"]))
            extra = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in h.items() if k.lower() != "content-type"}
            r2 = c.post("/hooks/payments/sandbox/", data=body, content_type="application/json", **extra)
            assert r2.status_code == 200, r2.content
        for n in range(20): one(n, False)
        # statements per order
        from django.test.utils import CaptureQueriesContext
        for alias in connections:
            pass
        with CaptureQueriesContext(connection) as ctx:
            one(9999, True)
        print("statements per order:", len(ctx.captured_queries))
        if os.environ.get("SHOWSQL"):
            for q in ctx.captured_queries: print("  ", q["sql"][:200])
        t0 = time.process_time()
        for n in range(50000, 50000 + N): one(n, False)
        print(f"CPU per order without profiler: {1000*(time.process_time()-t0)/N:.1f} ms")
        prof = cProfile.Profile()
        t0 = time.process_time(); w0 = time.perf_counter()
        prof.enable()
        for n in range(100, 100 + N): one(n, False)
        prof.disable()
        print(f"CPU per order: {1000*(time.process_time()-t0)/N:.1f} ms, wall {1000*(time.perf_counter()-w0)/N:.1f} ms")
        s = io.StringIO(); st = pstats.Stats(prof, stream=s); st.sort_stats(os.environ.get("SORT", "cumulative")).print_stats(int(os.environ.get("TOP", "70"))); print(s.getvalue()[:20000])
    finally:
        gw.terminate()
