import re

import pytest

pytestmark = pytest.mark.django_db


def test_api_docs_page_loads_swagger_from_our_own_static_files(client):
    response = client.get("/api/docs/")

    assert response.status_code == 200
    html = response.content.decode()
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any("swagger-ui" in source for source in sources)
    assert all(source.startswith("/") for source in sources), sources  # nothing from a CDN


def test_schema_is_public_and_describes_the_contract_error_shape(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()

    assert schema["info"]["title"] == "Rechenbörse API"
    assert set(schema["components"]["schemas"]["Error"]["properties"]) == {"code", "detail", "fields"}
