"""Kameng settings, configured from environment variables.

``KAMENG_ENV`` is ``development`` (default), ``test`` or ``production``. In
development and tests, missing secrets are generated once into ``.kameng/`` and a
missing ``DATABASE_URL`` / ``REDIS_URL`` starts the embedded services
(:mod:`platform_core.devstack`). Production refuses to start without real values.
"""
from __future__ import annotations

import os
import secrets
from base64 import urlsafe_b64encode
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from platform_core.plugin_discovery import discover_plugin_apps

BASE_DIR = Path(__file__).resolve().parent.parent
KAMENG_ENV = os.environ.get("KAMENG_ENV", "development")
if KAMENG_ENV not in {"development", "test", "production"}:
    raise ImproperlyConfigured(f"KAMENG_ENV must be development, test or production, not {KAMENG_ENV!r}")
PRODUCTION = KAMENG_ENV == "production"
STATE_DIR = Path(os.environ.get("KAMENG_STATE_DIR", BASE_DIR / ".kameng"))


def _dev_secret(name: str, make) -> str:
    """A development secret generated once into .kameng/ and reused afterwards."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    path = STATE_DIR / f"{name.lower()}.secret"
    if not path.exists():
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


def _required(name: str, make=None) -> str:
    value = os.environ.get(name, "").strip()
    if value:
        return value
    if PRODUCTION or make is None:
        raise ImproperlyConfigured(
            f"{name} is not set. Production needs it in the environment (see docs/deploy.md)."
        )
    return _dev_secret(name, make)


SECRET_KEY = _required("SECRET_KEY", lambda: secrets.token_urlsafe(64))
# previous secret keys keep existing sessions and signed links valid while SECRET_KEY rotates
SECRET_KEY_FALLBACKS = [k for k in os.environ.get("SECRET_KEY_FALLBACKS", "").split(",") if k.strip()]
KAMENG_MASTER_KEY = _required("KAMENG_MASTER_KEY", lambda: urlsafe_b64encode(os.urandom(32)).decode())
# Older master keys still able to unwrap data keys until `kameng rotate-keys` re-wraps them.
KAMENG_OLD_MASTER_KEYS = [k for k in os.environ.get("KAMENG_OLD_MASTER_KEYS", "").split(",") if k.strip()]
if PRODUCTION:  # a mistyped key should stop the deploy, not the first checkout
    from platform_core.crypto_keys import parse_master_key

    for _key in [KAMENG_MASTER_KEY, *KAMENG_OLD_MASTER_KEYS]:
        parse_master_key(_key)

DEBUG = os.environ.get("DEBUG", "1" if KAMENG_ENV == "development" else "0") == "1"
PLATFORM_DOMAIN = os.environ.get("PLATFORM_DOMAIN", "localhost").lower()
PORT = int(os.environ.get("PORT", "8000"))
PLATFORM_SCHEME = os.environ.get("PLATFORM_SCHEME", "https" if PRODUCTION else "http")

# --- embedded services ---------------------------------------------------------------
if PRODUCTION:
    DATABASE_URL = _required("DATABASE_URL")
    REDIS_URL = _required("REDIS_URL")
else:
    DATABASE_URL = os.environ.get("DATABASE_URL", "")
    REDIS_URL = os.environ.get("REDIS_URL", "")
    if not DATABASE_URL or not REDIS_URL:
        from platform_core import devstack

        _services = devstack.start(
            Path(os.environ.get("KAMENG_DEVSTACK_DIR", STATE_DIR)),
            pg_port=int(os.environ.get("KAMENG_PG_PORT", devstack.DEFAULT_PG_PORT)),
            redis_port=int(os.environ.get("KAMENG_REDIS_PORT", devstack.DEFAULT_REDIS_PORT)),
            fast_unsafe=KAMENG_ENV == "test",
        )
        DATABASE_URL = DATABASE_URL or _services.database_url
        REDIS_URL = REDIS_URL or _services.redis_url
        # child processes (gunicorn, celery) reuse these instead of starting their own
        os.environ.setdefault("DATABASE_URL", DATABASE_URL)
        os.environ.setdefault("REDIS_URL", REDIS_URL)

DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=int(os.environ.get("CONN_MAX_AGE", "60")))}
DATABASES["default"]["ENGINE"] = "platform_core.db"  # django-tenants backend, faster table listing
# Server-side binding lets psycopg prepare a statement after it ran 5 times on a
# connection: PostgreSQL then skips parsing and planning (a paid order's database CPU
# fell from ~17 to ~10 ms). Safe with one connection serving many shop schemas:
# PostgreSQL re-parses a prepared statement when search_path changed. Switch it off
# behind a pooler that cannot carry prepared statements (PgBouncer in transaction mode
# before 1.21). See docs/decisions/0038-prepared-statements.md.
if os.environ.get("KAMENG_DB_PREPARED_STATEMENTS", "1") == "1":
    DATABASES["default"]["OPTIONS"] = {"server_side_binding": True, "prepare_threshold": 5}
DATABASE_ROUTERS = ("django_tenants.routers.TenantSyncRouter",)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- apps ----------------------------------------------------------------------------
KAMENG_BUILTIN_PLUGINS = [
    "plugins.marketing.store_notice",
    "plugins.payments.sandbox",
    "plugins.payments.wallet",
    "plugins.payments.alipay",
    "plugins.payments.wechatpay",
    "plugins.payments.epay",
    "plugins.payments.stripe",
    "plugins.payments.paypal",
]
# the bundled sandbox payment gateway (docs/payments-sandbox.md); off in production: its Pay button moves no money
KAMENG_SANDBOX_URL = os.environ.get("KAMENG_SANDBOX_URL", f"http://127.0.0.1:{os.environ.get('SANDBOX_PORT', '8001')}")
# real gateways' API hosts; set only to route through an egress proxy (tests point them at local fakes)
KAMENG_STRIPE_API_BASE = os.environ.get("KAMENG_STRIPE_API_BASE", "")
KAMENG_PAYPAL_API_BASE = os.environ.get("KAMENG_PAYPAL_API_BASE", "")
KAMENG_ALIPAY_API_BASE = os.environ.get("KAMENG_ALIPAY_API_BASE", "")
KAMENG_WECHATPAY_API_BASE = os.environ.get("KAMENG_WECHATPAY_API_BASE", "")
KAMENG_SANDBOX_ENABLED = os.environ.get("KAMENG_SANDBOX_ENABLED", "0" if PRODUCTION else "1") == "1"
KAMENG_PLUGINS_EXCLUDE = [p for p in os.environ.get("KAMENG_PLUGINS_EXCLUDE", "").split(",") if p]
KAMENG_PLUGIN_APPS = discover_plugin_apps(KAMENG_BUILTIN_PLUGINS, exclude=KAMENG_PLUGINS_EXCLUDE)

SHARED_APPS = [
    "django_tenants",
    "tenants",
    "platform_core.audit",
    "unfold",
    "unfold.contrib.forms",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.admin",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "platform_core",
    "plugins",
    "shop_templates",
    "billing",
    "api",
]
TENANT_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.admin",
    "platform_core.audit",
    "platform_core.catalog",
    "platform_core.inventory",
    "platform_core.customers",
    "platform_core.orders",
    "platform_core.payments",
    "platform_core.notices",
    "plugins",
    *KAMENG_PLUGIN_APPS,
]
INSTALLED_APPS = list(SHARED_APPS) + [app for app in TENANT_APPS if app not in SHARED_APPS]

TENANT_MODEL = "tenants.Shop"
TENANT_DOMAIN_MODEL = "tenants.Domain"
TENANT_LIMIT_SET_CALLS = True
PUBLIC_SCHEMA_URLCONF = "platform_core.urls_public"
ROOT_URLCONF = "platform_core.urls_shop"
TENANT_MULTIPROCESSING_MAX_PROCESSES = int(os.environ.get("KAMENG_MIGRATE_PROCESSES", "2"))
# spare, fully migrated schemas kept ready for instant signup (see docs/decisions/0002)
KAMENG_SPARE_SHOPS = int(os.environ.get("KAMENG_SPARE_SHOPS", "3" if KAMENG_ENV == "test" else "5"))

AUTH_USER_MODEL = "tenants.Merchant"
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
if KAMENG_ENV == "test":  # Argon2 at 100 MiB per hash would dominate the suite
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", *PASSWORD_HASHERS]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"

MIDDLEWARE = [
    "platform_core.cache.RequestScopeMiddleware",
    "tenants.middleware.ShopRoutingMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "tenants.middleware.HostBoundSessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "tenants.middleware.ShopStatusMiddleware",
]
# gateways' webhooks and token-authenticated API calls (platform_core/wsgi.py): no
# static files, session, CSRF cookie, session user, messages or htmx to look at
_NOT_WITHOUT_SESSION = {
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "tenants.middleware.HostBoundSessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
}
SESSIONLESS_MIDDLEWARE = [m for m in MIDDLEWARE if m not in _NOT_WITHOUT_SESSION]
# gateways' webhooks (/hooks/) need no language of the request (nothing they get is
# translated: the platform's default is set), no slash redirect (their URLs are fixed) and
# no frame options (nobody frames them)
_FOR_GATEWAYS = {
    "django.middleware.locale.LocaleMiddleware": "platform_core.handlers.DefaultLanguageMiddleware",
    "django.middleware.common.CommonMiddleware": None,
    "django.middleware.clickjacking.XFrameOptionsMiddleware": None,
}
GATEWAY_MIDDLEWARE = [_FOR_GATEWAYS.get(m, m) for m in SESSIONLESS_MIDDLEWARE if _FOR_GATEWAYS.get(m, m)]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # theme templates are addressed as "<theme>/templates/<name>" (shop_templates/loader.py)
        "DIRS": [BASE_DIR / "platform_core" / "templates", BASE_DIR / "shop_templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
                "platform_core.context_processors.platform",
            ],
        },
    }
]
WSGI_APPLICATION = "platform_core.wsgi.application"

# --- cache, sessions, celery ---------------------------------------------------------
# the cache lives in its own Redis database so clearing it never touches Celery's queues
REDIS_CACHE_URL = os.environ.get("REDIS_CACHE_URL") or (REDIS_URL.rsplit("/", 1)[0] + "/1"
                                                         if REDIS_URL.rsplit("/", 1)[-1].isdigit() else REDIS_URL)
CACHES = {
    "default": {
        "BACKEND": "platform_core.cache.KamengRedisCache",
        "LOCATION": REDIS_CACHE_URL,
        # never let one shop read another shop's cache entry
        "KEY_FUNCTION": "django_tenants.cache.make_key",
        "REVERSE_KEY_FUNCTION": "django_tenants.cache.reverse_key",
        "KEY_PREFIX": "kameng",
    }
}
# a web process answers the keys every shop request reads first (its route, enabled
# plugins, plan) from its own memory for this long; a write through the same process
# forgets them at once, another process's is seen within it (decision 0048). 0: off
KAMENG_CACHE_PROCESS_SECONDS = float(os.environ.get("KAMENG_CACHE_PROCESS_SECONDS", "1"))
# a web process that woke the delivery mailer (or saw it woken) skips waking it again for
# this long; the drain it woke sends a follow-up drain as long after (decision 0050). 0: off
KAMENG_MAILER_WAKE_SECONDS = float(os.environ.get("KAMENG_MAILER_WAKE_SECONDS", "1"))
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
SESSION_COOKIE_NAME = "kameng_session"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = 60 * 60 * 12
# no SESSION_COOKIE_DOMAIN: a session cookie belongs to exactly one host
CSRF_COOKIE_HTTPONLY = True

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TASK_ALWAYS_EAGER = os.environ.get("CELERY_TASK_ALWAYS_EAGER", "0") == "1"
CELERY_TASK_TENANT_CACHE_SECONDS = 30
CELERY_BEAT_SCHEDULER = "platform_core.beat.ShopAwareScheduler"
CELERY_BEAT_SCHEDULE_FILENAME = str(STATE_DIR / "celerybeat-schedule")
KAMENG_WORKER_HEARTBEAT_SECONDS = 15

# --- platform billing (docs/billing.md) -----------------------------------------------
# the plan a new shop's trial runs on, and the plan a cancelled subscription falls back to
KAMENG_BILLING_TRIAL_PLAN = os.environ.get("KAMENG_BILLING_TRIAL_PLAN", "pro")
KAMENG_BILLING_FALLBACK_PLAN = os.environ.get("KAMENG_BILLING_FALLBACK_PLAN", "free")
KAMENG_BILLING_TAX_BP = int(os.environ.get("KAMENG_BILLING_TAX_BP", "0"))  # tax on invoices, basis points
# dunning: retries this many days after an invoice is due, suspension after the grace period
KAMENG_BILLING_RETRY_DAYS = [int(d) for d in os.environ.get("KAMENG_BILLING_RETRY_DAYS", "1,3,7").split(",")]
KAMENG_BILLING_GRACE_DAYS = int(os.environ.get("KAMENG_BILLING_GRACE_DAYS", "10"))
KAMENG_BILLING_LINK_SECONDS = int(os.environ.get("KAMENG_BILLING_LINK_SECONDS", "300"))  # invoice download links
# where invoice PDFs live: the default storage (filesystem in development, S3 when S3_BUCKET is set)
KAMENG_BILLING_STORAGE = "default"
# CJK font for Chinese text on invoice PDFs: "auto" finds an installed one (billing/pdf.py), "off", or a path
KAMENG_BILLING_PDF_CJK_FONT = os.environ.get("KAMENG_BILLING_PDF_CJK_FONT", "auto")
# the platform's own payment provider for collecting invoices (same interface as shop payment plugins)
KAMENG_BILLING_PROVIDER = os.environ.get("KAMENG_BILLING_PROVIDER", "billing.gateway.SandboxBillingGateway")
# the platform's own Stripe account (billing.gateway.StripeBillingGateway): never a shop's keys
KAMENG_BILLING_STRIPE_SECRET_KEY = os.environ.get("KAMENG_BILLING_STRIPE_SECRET_KEY", "")
KAMENG_BILLING_STRIPE_WEBHOOK_SECRET = os.environ.get("KAMENG_BILLING_STRIPE_WEBHOOK_SECRET", "")
KAMENG_BILLING_SANDBOX_KEY = os.environ.get("KAMENG_BILLING_SANDBOX_KEY", "") or (
    "" if PRODUCTION else "sk_sandbox_" + _dev_secret("BILLING_SANDBOX_KEY", lambda: secrets.token_hex(16)))

# --- i18n, static, media -------------------------------------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "platform_core" / "locale"]
TIME_ZONE = os.environ.get("TIME_ZONE", "Asia/Shanghai")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [p for p in sorted((BASE_DIR / "shop_templates").glob("*/static")) if p.is_dir()]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles" if PRODUCTION else STATE_DIR / "static"))
if not PRODUCTION:
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", STATE_DIR / "media"))
AWS_STORAGE_BUCKET_NAME = os.environ.get("S3_BUCKET", "")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
if AWS_STORAGE_BUCKET_NAME:
    STORAGES["default"] = {"BACKEND": "platform_core.storage.ShopS3Storage"}
    AWS_S3_ENDPOINT_URL = os.environ.get("S3_ENDPOINT_URL") or None
    AWS_ACCESS_KEY_ID = os.environ.get("S3_ACCESS_KEY_ID", "")
    AWS_SECRET_ACCESS_KEY = os.environ.get("S3_SECRET_ACCESS_KEY", "")
    AWS_S3_REGION_NAME = os.environ.get("S3_REGION", "us-east-1")
    AWS_DEFAULT_ACL = None
    AWS_QUERYSTRING_AUTH = True
    AWS_S3_SIGNATURE_VERSION = "s3v4"  # presigned links carry X-Amz-Expires (SigV2 is deprecated)
WHITENOISE_USE_FINDERS = not PRODUCTION

# --- e-mail --------------------------------------------------------------------------
EMAIL_URL = os.environ.get("EMAIL_URL", "")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", f"Kameng <no-reply@{PLATFORM_DOMAIN}>")
if EMAIL_URL.startswith("smtp"):
    from urllib.parse import unquote, urlparse

    _email = urlparse(EMAIL_URL)
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_HOST, EMAIL_PORT = _email.hostname, _email.port or 587
    EMAIL_HOST_USER, EMAIL_HOST_PASSWORD = unquote(_email.username or ""), unquote(_email.password or "")
    EMAIL_USE_TLS = _email.scheme == "smtp+tls"
    EMAIL_USE_SSL = _email.scheme == "smtps"
    # a mail server that hangs must not hold a worker (and the e-mail queue's row locks)
    EMAIL_TIMEOUT = int(os.environ.get("EMAIL_TIMEOUT", "20"))
elif KAMENG_ENV == "test":
    EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
else:
    # development: every mail lands as a file in .kameng/mail/ to read
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = STATE_DIR / "mail"

# --- hosts and security ---------------------------------------------------------------
# Shops bring custom domains, so the host check happens in ShopRoutingMiddleware
# (unknown host -> 404) instead of a static list.
ALLOWED_HOSTS = ["*"]
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = os.environ.get("SECURE_SSL_REDIRECT", "1") == "1"
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", str(60 * 60 * 24 * 365)))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

# --- REST API ------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "api.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_RATES": {"signup": "20/hour", "login": "10/minute"},
    "EXCEPTION_HANDLER": "api.exceptions.exception_handler",
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "api.negotiation.ContentNegotiation",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Kameng API",
    "DESCRIPTION": "Platform and shop API of Kameng, the white-label card-shop platform.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI is served from our own static files (no external CDN)
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "OrderStatusEnum": "platform_core.orders.models.Order.Status",
        "TicketStatusEnum": "platform_core.orders.models.Ticket.Status",
    },
}

def _nav(title, icon, link, permission=None):
    item = {"title": title, "icon": icon, "link": link}
    if permission:
        item["permission"] = permission
    return item


UNFOLD = {
    "SITE_TITLE": "Kameng platform",
    "SITE_HEADER": "Kameng platform",
    "SITE_SYMBOL": "hub",
    "SHOW_HISTORY": True,
    "SIDEBAR": {
        "show_search": False,
        "show_all_applications": False,
        "navigation": [
            {"title": "Platform", "items": [
                _nav("Dashboard", "dashboard", "/console/"),
                _nav("Shops", "storefront", "/console/tenants/shop/"),
                _nav("Domains", "language", "/console/tenants/domain/"),
                _nav("Merchants", "group", "/console/tenants/merchant/"),
                _nav("Memberships", "badge", "/console/tenants/shopmembership/"),
                _nav("Revenue", "monitoring", "/console/revenue/"),
                _nav("Plans", "sell", "/console/billing/plan/"),
                _nav("Subscriptions", "autorenew", "/console/billing/subscription/"),
                _nav("Invoices", "receipt", "/console/billing/invoice/"),
                _nav("Audit log", "history", "/console/audit/auditevent/"),
            ]},
        ],
    },
}
UNFOLD_SHOP = {
    "SITE_TITLE": "Shop console",
    "SITE_HEADER": "Shop console",
    "SITE_SYMBOL": "storefront",
    "SITE_URL": "/",
    "SHOW_HISTORY": False,
    "SITE_DROPDOWN": "platform_core.admin_sites.my_shops_dropdown",
    "SIDEBAR": {
        "show_search": False,
        "show_all_applications": False,
        "navigation": [
            {"title": "Shop", "items": [
                _nav("Dashboard", "dashboard", "/manage/"),
                _nav("Plugins", "extension", "/manage/plugins/"),
                _nav("Shop settings", "palette", "/manage/settings/", "platform_core.admin_sites.can_manage"),
                _nav("Domains", "language", "/manage/domains/"),
                _nav("Team", "group", "/manage/team/"),
                _nav("Billing", "payments", "/manage/billing/"),
                _nav("API token", "key", "/manage/api-token/"),
                _nav("Audit log", "history", "/manage/audit/auditevent/"),
            ]},
            {"title": "Catalog", "items": [
                _nav("Products", "sell", "/manage/catalog/product/"),
                _nav("Categories", "category", "/manage/catalog/category/"),
                _nav("Stock", "inventory", "/manage/stock/"),
            ]},
            {"title": "Sales", "items": [
                _nav("Orders", "receipt_long", "/manage/orders/order/"),
                _nav("Tickets", "support_agent", "/manage/orders/ticket/"),
                _nav("Customers", "person", "/manage/customers/customer/"),
                _nav("Checkout rules", "tune", "/manage/orders/ordersettings/"),
                _nav("Reconciliation", "balance", "/manage/reconciliation/", "platform_core.admin_sites.can_see_books"),
            ]},
        ],
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"shop": {"()": "django_tenants.log.TenantContextFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s [%(schema_name)s] %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["shop"], "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # fontTools (invoice PDFs) logs every font subset at INFO; urllib3 logs each request line
    # with its query string at DEBUG, and some gateways put keys there
    "loggers": {"django.db.backends": {"level": "WARNING"}, "fontTools": {"level": "WARNING"},
                "urllib3": {"level": "WARNING"}},
}

KAMENG_SHOP_SEEDERS = [
    "tenants.seeding.seed_welcome_notice",
    "tenants.seeding.seed_payment_methods",
    "platform_core.catalog.seeding.seed_sample_catalog",
]
GET_EXECUTOR_FUNCTION = "platform_core.migrating.get_smart_executor"
