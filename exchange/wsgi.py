"""WSGI entry point: the HTTP pages and API under gunicorn's worker processes
(scripts/serve.sh). WebSockets are not served here: ``/ws/`` goes to the ASGI
server (exchange.asgi), see docs/architecture.md, "Serving and connections"."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exchange.settings")
application = get_wsgi_application()
