"""Serving and connections (issue 7, item 3): the WSGI entry point serves the
HTTP API, and every process reuses its database connections through the pool."""

import io
import json
import sys
from wsgiref.util import setup_testing_defaults

import pytest
from django.conf import settings
from django.db import connection


@pytest.mark.django_db(transaction=True)  # the handler closes (returns) the connection after the request
def test_the_wsgi_application_serves_the_api():
    from exchange.wsgi import application

    environ: dict = {}
    setup_testing_defaults(environ)
    environ.update({"PATH_INFO": "/api/v1/instruments/", "HTTP_HOST": "testserver", "wsgi.errors": sys.stderr,
                    "wsgi.input": io.BytesIO()})
    answer: dict = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: object = None) -> None:
        answer["status"], answer["headers"] = status, dict(headers)

    body = b"".join(application(environ, start_response))

    assert answer["status"] == "200 OK"
    assert answer["headers"]["Content-Type"] == "application/json"
    assert isinstance(json.loads(body), list)


def test_postgresql_connections_come_from_a_pool():
    pool = settings.DATABASES["default"]["OPTIONS"]["pool"]

    assert settings.DATABASES["default"]["CONN_MAX_AGE"] == 0  # Django refuses a pool with persistent connections
    assert (pool["min_size"], pool["max_size"]) == (1, 16)


@pytest.mark.django_db(transaction=True)
def test_a_closed_connection_goes_back_to_the_pool_and_is_reused():
    """What Django does at the end of every request (close) must not open a new
    PostgreSQL connection for the next one."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    connection.close()
    opened = connection.pool.get_stats()["connections_num"]

    pids = set()
    for _ in range(20):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pids.add(cursor.fetchone()[0])
        connection.close()  # back to the pool, as at the end of a request

    assert connection.pool.get_stats()["connections_num"] == opened
    assert len(pids) <= connection.pool.get_stats()["pool_size"]
