"""Rechenbörse settings: one module, driven by environment variables.

With no environment set it runs on the embedded default: PostgreSQL and Redis
that ``make run`` starts itself under ``var/`` (``exchange/embedded.py``), so
that it needs no service installed by hand. ``DATABASE_URL`` and ``REDIS_URL``
name other servers (Redis serves cache, channel layer and Celery). ``PRODUCTION=1``
refuses to start without a secret key and allowed hosts, or with DEBUG on.
"""

import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from exchange.env import envbool, envdecimal, envint, envlist, envstr

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(envstr("VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

PRODUCTION = envbool("PRODUCTION")
# Django's debug pages only when asked for (DEBUG=1): `make run` shows the
# exchange's own 404 and 500 pages, in German and English, as members see them.
DEBUG = envbool("DEBUG", default=False)
# The server's public address, for links in e-mails sent outside a request
# (during a request the request's own address is used: exchange/site.py).
SITE_URL = envstr("SITE_URL", "http://127.0.0.1:8000")


def _dev_secret_key() -> str:
    # Outside production a random key is made once per checkout and kept in
    # var/, so that no secret, not even a development one, lives in the repo.
    path = VAR_DIR / "dev-secret-key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(64))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = envstr("SECRET_KEY") or ("" if PRODUCTION else _dev_secret_key())
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "" if PRODUCTION else "127.0.0.1,localhost,[::1],testserver")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS")

if PRODUCTION:
    if DEBUG:
        raise ImproperlyConfigured("PRODUCTION=1 refuses to start with DEBUG on.")
    if len(SECRET_KEY) < 50:
        raise ImproperlyConfigured("PRODUCTION=1 needs SECRET_KEY (at least 50 characters).")
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured("PRODUCTION=1 needs ALLOWED_HOSTS.")
    if not envstr("SITE_URL"):
        raise ImproperlyConfigured("PRODUCTION=1 needs SITE_URL (the public address, for links in e-mails).")
    SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    if envbool("BEHIND_TLS_PROXY"):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_REDIRECT_EXEMPT = [r"^healthz/$"]

SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

INSTALLED_APPS = [
    "daphne",  # ASGI runserver (HTTP and WebSockets in one process)
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django.forms",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from our static files, no CDN
    "channels",
    "django_htmx",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "accounts",
    "market",
    "clearing",
    "incentives",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "exchange.security.ContentSecurityPolicyMiddleware",  # a nonce per request, the policy on every response
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "exchange.middleware.GermanFirstLocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "exchange.security.PrivateNoStoreMiddleware",  # Cache-Control: no-store for logged-in users
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

# Overridable only so that bench/ can mount its reference endpoint beside the API.
ROOT_URLCONF = envstr("ROOT_URLCONF", "exchange.urls")
FORM_RENDERER = "exchange.forms.Renderer"
ASGI_APPLICATION = "exchange.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.membership",
                "market.context_processors.margin_call",
                "exchange.security.csp_nonce",
            ],
        },
    },
]

# Database ------------------------------------------------------------------
# With no DATABASE_URL / REDIS_URL: the embedded default, PostgreSQL and Redis
# that `make run` starts under VAR_DIR on Unix sockets (exchange/embedded.py,
# docs/embedded.md). One database engine everywhere: money is exact in the
# demo as in production, and the suite's PostgreSQL tests cover both.
DATABASE_URL = envstr("DATABASE_URL")
REDIS_URL = envstr("REDIS_URL")
if not (DATABASE_URL and REDIS_URL):
    # Imported only when needed: the suite and production name both URLs.
    from exchange import embedded

    DATABASE_URL = DATABASE_URL or embedded.database_url(VAR_DIR)
    REDIS_URL = REDIS_URL or embedded.redis_url(VAR_DIR)
# Every process reuses its connections (docs/architecture.md, "Serving and
# connections"). Default: psycopg's pool, which works under WSGI and ASGI
# alike; Django's persistent connections (DB_POOL=0, DB_CONN_MAX_AGE) are
# per thread, and under ASGI every request runs in a thread of its own.
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0, conn_health_checks=True)}
if envbool("DB_POOL", default=True):
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": envint("DB_POOL_MIN_SIZE", 1),
        # Enough for a Celery worker's threads and the test suite's parallel transactions.
        "max_size": envint("DB_POOL_MAX_SIZE", 16),
        "max_idle": 300,  # seconds an idle connection above min_size is kept
        "timeout": 10,  # seconds a request waits for a free connection before it fails
    }
else:
    DATABASES["default"]["CONN_MAX_AGE"] = envint("DB_CONN_MAX_AGE", 60)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Cache, channel layer, Celery ----------------------------------------------
# One Redis for all three, so that a Celery job's broadcasts reach the
# WebSocket clients of every web process.
REDIS_PREFIX = envstr("REDIS_PREFIX", "rb")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": REDIS_PREFIX,
    }
}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            # redis-py 8 reads with a 5 s socket timeout by default, the same
            # 5 s channels-redis blocks waiting for a message (BZPOPMIN): a
            # WebSocket quiet for 5 s lost the race and was closed with 1011.
            # The socket timeout must be longer than that wait.
            "hosts": [{"address": REDIS_URL, "socket_timeout": 15, "socket_connect_timeout": 5}],
            "prefix": f"{REDIS_PREFIX}:asgi",
        },
    }
}
# Celery (kombu) spells a Unix socket redis+socket://, redis-py and Django unix://.
CELERY_BROKER_URL = ("redis+socket://" + REDIS_URL.removeprefix("unix://") if REDIS_URL.startswith("unix://")
                     else REDIS_URL)
CELERY_BROKER_TRANSPORT_OPTIONS = {"global_keyprefix": f"{REDIS_PREFIX}:celery:"}

CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = "Europe/Berlin"
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_TASK_ALWAYS_EAGER = envbool("CELERY_TASK_ALWAYS_EAGER")

# Auth -----------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "home"
ACCOUNT_ADAPTER = "accounts.adapter.AccountAdapter"  # observers land on the markets
ACCOUNT_LOGOUT_REDIRECT_URL = "home"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[Rechenbörse] "
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "https" if PRODUCTION else "http"
ACCOUNT_PREVENT_ENUMERATION = True
# allauth's defaults already limit failed logins per IP and per account, and
# password resets per e-mail address; they count in the shared cache above.
ACCOUNT_RATE_LIMITS = {
    "login_failed": envstr("RATE_LOGIN_FAILED", "10/m/ip,5/5m/key"),
}
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = "Rechenbörse"

# E-mail -----------------------------------------------------------------------
EMAIL_BACKEND = envstr(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend" if PRODUCTION else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_HOST = envstr("EMAIL_HOST", "localhost")
EMAIL_PORT = envint("EMAIL_PORT", 25)
EMAIL_HOST_USER = envstr("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = envstr("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS")
DEFAULT_FROM_EMAIL = envstr("DEFAULT_FROM_EMAIL", "Rechenbörse <noreply@rechenboerse.example>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
OPERATOR_EMAILS = envlist("OPERATOR_EMAILS")

# Start-up incentives (issue 12, docs/incentives.md): an approval of more than
# this amount (EUR) needs two different operators (four eyes).
INCENTIVE_FOUR_EYES_THRESHOLD = envdecimal("INCENTIVE_FOUR_EYES_THRESHOLD", "10000.00")

# Demo mode, the issuer of invoices, the clearing house's bank ----------------------
# Demo mode (docs/demo.md): `make run` and every run that is not production.
# The demo market maker job trades, and the issuer and bank details below
# default to demo data, marked as such on invoices and payment instructions.
DEMO = envbool("DEMO", default=not PRODUCTION)
DEMO_MARKET_MAKER_SECONDS = envint("DEMO_MARKET_MAKER_SECONDS", 45)
_ISSUER_ENV = {"name": "INVOICE_ISSUER_NAME", "street": "INVOICE_ISSUER_STREET",
               "postal_code": "INVOICE_ISSUER_POSTAL_CODE", "city": "INVOICE_ISSUER_CITY",
               "vat_id": "INVOICE_ISSUER_VAT_ID", "register": "INVOICE_ISSUER_REGISTER"}
_DEMO_ISSUER = {"name": "Rechenbörse GmbH", "street": "Neuer Wall 1", "postal_code": "20354", "city": "Hamburg",
                "vat_id": "DE000000000", "register": "Amtsgericht Hamburg HRB 000000"}
_BANK_ENV = {"holder": "CLEARING_BANK_HOLDER", "iban": "CLEARING_BANK_IBAN", "bic": "CLEARING_BANK_BIC",
             "bank": "CLEARING_BANK_NAME"}
# A syntactically valid IBAN that belongs to nobody (the Bundesbank's test account).
_DEMO_BANK = {"holder": "Rechenbörse Clearing GmbH", "iban": "DE02120300000000202051", "bic": "BYLADEM1001",
              "bank": "Demo-Bank"}


def _details(names: dict[str, str], demo: dict[str, str], what: str) -> dict[str, str | bool]:
    """Details read from the environment; outside demo mode each is required,
    in demo mode a missing one falls back to the demo data and the whole
    set is marked ``demo_data``."""
    given = {key: envstr(env).strip() for key, env in names.items()}
    missing = [names[key] for key, value in given.items() if not value]
    if missing and not DEMO:
        raise ImproperlyConfigured(f"{what} needs {', '.join(missing)} (or DEMO=1 for demo data).")
    details: dict[str, str | bool] = {key: value or demo[key] for key, value in given.items()}
    details["demo_data"] = bool(missing)
    return details


# The exchange operator as it appears on every invoice.
INVOICE_ISSUER = _details(_ISSUER_ENV, _DEMO_ISSUER, "Invoicing")
# Where members pay in (their payment reference identifies them; clearing/payin.py).
CLEARING_BANK = _details(_BANK_ENV, _DEMO_BANK, "Paying in")

# I18N -------------------------------------------------------------------------
LANGUAGE_CODE = "de"
LANGUAGES = [("de", _("German")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Europe/Berlin"
USE_I18N = True
USE_TZ = True

# Static files and private uploads ------------------------------------------
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
# Outside production WhiteNoise serves the static files straight from the
# source folders (no collectstatic), with DEBUG off as well; production serves
# the collected, hashed files.
WHITENOISE_USE_FINDERS = not PRODUCTION
# KYC documents live under var/private, which no URL maps to: they are served
# only by a view that checks who is asking.
PRIVATE_STORAGE_ROOT = VAR_DIR / "private"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                "OPTIONS": {"location": PRIVATE_STORAGE_ROOT, "base_url": None}},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
KYC_MAX_UPLOAD_BYTES = 10 * 1024 * 1024
# KYC documents are readable by the application's own user only.
FILE_UPLOAD_PERMISSIONS = 0o600
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o700
DATA_UPLOAD_MAX_MEMORY_SIZE = 12 * 1024 * 1024

# API -------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # JSONParser, but a body nested too deeply is a 400, not a 500 (exchange/parsers.py).
    "DEFAULT_PARSER_CLASSES": ["exchange.parsers.SafeJSONParser"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "exchange.errors.api_exception_handler",
    "DEFAULT_THROTTLE_CLASSES": [
        # DRF's, counted in fixed windows with one Redis round trip (exchange/throttling.py).
        "exchange.throttling.AnonRateThrottle",
        "exchange.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": envstr("RATE_API_ANON", "120/min"),
        # Readers of open data (/api/v1/open-data/), counted per address, logged in or not.
        "open_data": envstr("RATE_OPEN_DATA", "600/min"),
        "user": envstr("RATE_API_USER", "1200/min"),
        "auth": envstr("RATE_API_AUTH", "10/min"),  # token logins per IP address
        "auth_account": envstr("RATE_API_AUTH_ACCOUNT", "20/hour"),  # token logins per e-mail, from any address
    },
    "COERCE_DECIMAL_TO_STRING": True,
    # Behind a proxy, throttles must count the client's address, not the proxy's.
    "NUM_PROXIES": envint("NUM_PROXIES", 0) if envbool("BEHIND_TLS_PROXY") else None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Rechenbörse API",
    "DESCRIPTION": "Public API v1 of the Rechenbörse compute exchange.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # "status" names many choice sets; one shared by two components needs its name given.
    "ENUM_NAME_OVERRIDES": {"DayAheadStatusEnum": "market.api_dayahead_public.DAY_STATUSES",
                            "BidKindEnum": "market.api_dayahead.BID_KINDS"},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
