"""The open-data registry and its API (/api/v1/open-data/): a registered
dataset is listed with its columns, units, licence and methodology version,
served as JSON and as CSV with the same rows (times in UTC and Berlin), bad
parameters answer the contract's error shape, and the open-data rate limit
counts anonymous readers on its own."""

import csv
import io
import json
import zipfile
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.urls import get_resolver
from rest_framework.settings import api_settings

from market import open_data
from market.open_data import Column, Dataset, OpenDataError, Param

pytestmark = pytest.mark.django_db


def _rows(params):  # type: ignore[no-untyped-def]
    if params.get("n", "2") not in {"1", "2"}:
        raise OpenDataError({"n": ["Choose 1 or 2."]})
    rows = [{"day": date(2026, 3, 29), "hour_start": datetime(2026, 3, 29, 1, 0, tzinfo=UTC),
             "price": Decimal("2.50"), "members": None},
            {"day": date(2026, 3, 29), "hour_start": datetime(2026, 3, 29, 0, 0, tzinfo=UTC),
             "price": Decimal("2.45"), "members": 4}]
    return rows[: int(params.get("n", "2"))]


SAMPLE = Dataset(
    slug="sample-prices", title="Sample", description="A dataset for the test.",
    columns=(Column("day", "", "Delivery day"), Column("hour_start", "", "Start of the hour"),
             Column("price", "EUR/GPUh", "Price"), Column("members", "members", "Sellers (null: suppressed)")),
    rows=_rows, methodology_url="/dashboard/methodology/index/", methodology_version="1",
    params=(Param("n", "How many rows", "2"),), time_columns=("hour_start",),
)


@pytest.fixture
def sample(monkeypatch):  # type: ignore[no-untyped-def]
    # Import every real dataset module and the URLs first: a module imported for the first time while the
    # registry is swapped would register into the sample registry (and be missing from the real one after).
    open_data.datasets()
    get_resolver().url_patterns  # noqa: B018 - imports every view module
    monkeypatch.setattr(open_data, "_REGISTRY", {})
    monkeypatch.setattr(open_data, "SOURCES", [])
    open_data.register(SAMPLE)
    return SAMPLE


def test_the_listing_names_columns_units_licence_and_methodology(client, sample):
    body = client.get("/api/v1/open-data/").json()
    assert body["licence"] == {"name": "CC BY 4.0", "url": "https://creativecommons.org/licenses/by/4.0/",
                               "attribution": "Rechenbörse"}
    (entry,) = body["datasets"]
    assert entry["slug"] == "sample-prices" and entry["methodology_version"] == "1"
    assert [(c["name"], c["unit"]) for c in entry["columns"]] == [
        ("day", ""), ("hour_start_utc", ""), ("hour_start_berlin", ""), ("price", "EUR/GPUh"), ("members", "members")]
    assert entry["csv_url"].endswith("/api/v1/open-data/sample-prices/?format=csv")
    assert entry["methodology_url"].endswith("/dashboard/methodology/index/")
    assert entry["params"] == [{"name": "n", "description": "How many rows", "default": "2"}]


def test_json_and_csv_carry_the_same_rows_with_times_in_utc_and_berlin(client, sample):
    answer = client.get("/api/v1/open-data/sample-prices/")
    assert 'rel="license"' in answer["Link"]
    rows = answer.json()["rows"]
    assert rows[0] == {"day": "2026-03-29", "hour_start_utc": "2026-03-29T01:00:00+00:00",
                       "hour_start_berlin": "2026-03-29T03:00:00+02:00", "price": "2.50", "members": None}
    assert rows[1]["hour_start_berlin"] == "2026-03-29T01:00:00+01:00"  # the hour before the clocks go forward
    download = client.get("/api/v1/open-data/sample-prices/?format=csv")
    assert download["Content-Type"].startswith("text/csv")
    assert download["Content-Disposition"] == 'attachment; filename="sample-prices.csv"'
    table = list(csv.DictReader(io.StringIO(download.content.decode())))
    assert table == [{key: "" if value is None else str(value) for key, value in row.items()} for row in rows]


def test_bad_parameters_and_unknown_datasets_answer_the_error_shape(client, sample):
    bad = client.get("/api/v1/open-data/sample-prices/?n=7&format=csv")
    assert bad.status_code == 400 and bad["Content-Type"].startswith("application/json")
    assert bad.json() == {"code": "invalid", "detail": "Die Anfrage ist ungültig.", "fields": {"n": ["Choose 1 or 2."]}}
    missing = client.get("/api/v1/open-data/nothing-here/")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"


def test_a_dataset_cannot_be_registered_twice_under_one_name(sample):
    with pytest.raises(ValueError, match="sample-prices"):
        open_data.register(Dataset(**{**SAMPLE.__dict__, "title": "Another"}))


def test_open_data_has_its_own_rate_limit_for_anonymous_readers(client, sample, monkeypatch):
    monkeypatch.setitem(api_settings.DEFAULT_THROTTLE_RATES, "open_data", "3/min")
    cache.clear()
    answers = [client.get("/api/v1/open-data/sample-prices/").status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]


# --- the daily bulk file ------------------------------------------------------------------------


@pytest.fixture
def bulk_dir(settings, tmp_path):  # type: ignore[no-untyped-def]
    settings.VAR_DIR = tmp_path
    return tmp_path / "open-data"


def test_the_bulk_file_holds_every_dataset_as_csv_and_json_with_the_listing_and_licence(client, sample, bulk_dir):
    day, now = date(2026, 12, 3), datetime(2026, 12, 3, 23, 30, tzinfo=UTC)
    path = open_data.bulk_build(day, now=now)
    assert path == bulk_dir / "rechenboerse-open-data-2026-12-03.zip"
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == ["LICENCE.txt", "datasets.json", "sample-prices.csv",
                                              "sample-prices.json"]
        listing = json.loads(archive.read("datasets.json"))
        assert listing["day"] == "2026-12-03" and listing["licence"]["name"] == "CC BY 4.0"
        assert [d["slug"] for d in listing["datasets"]] == ["sample-prices"]
        assert "2026-12-04 00:30 Europe/Berlin" in archive.read("LICENCE.txt").decode()
        # Exactly what the API answers for the dataset's default parameters.
        assert archive.read("sample-prices.csv") == client.get("/api/v1/open-data/sample-prices/?format=csv").content
        assert json.loads(archive.read("sample-prices.json"))["rows"] \
            == client.get("/api/v1/open-data/sample-prices/").json()["rows"]
    assert open_data.bulk_build(day, now=now) is None  # once per day
    assert list(bulk_dir.iterdir()) == [path]  # no partial file left


def test_bulk_files_are_listed_and_downloaded_and_a_missing_day_is_404(client, sample, bulk_dir):
    open_data.bulk_build(date(2026, 12, 2), now=datetime(2026, 12, 2, 23, 30, tzinfo=UTC))
    open_data.bulk_build(date(2026, 12, 3), now=datetime(2026, 12, 3, 23, 30, tzinfo=UTC))
    listing = client.get("/api/v1/open-data/bulk/").json()
    assert [f["date"] for f in listing["files"]] == ["2026-12-03", "2026-12-02"]
    assert listing["files"][0]["url"].endswith("/api/v1/open-data/bulk/2026-12-03/")
    download = client.get("/api/v1/open-data/bulk/2026-12-03/")
    assert download.status_code == 200 and download["Content-Type"] == "application/zip"
    assert "rechenboerse-open-data-2026-12-03.zip" in download["Content-Disposition"]
    assert zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content))).testzip() is None
    assert client.get("/api/v1/open-data/bulk/2026-12-01/").json()["code"] == "not_found"
    bad = client.get("/api/v1/open-data/bulk/yesterday/")
    assert bad.status_code == 400 and bad.json()["fields"] == {"date": ["Geben Sie ein Datum als JJJJ-MM-TT an."]}


def test_the_nightly_job_and_the_command_write_yesterdays_file_once(sample, bulk_dir, monkeypatch):
    from django.core.management import call_command
    from django.utils import timezone

    from exchange.celery import app as celery_app
    from market import tasks

    assert celery_app.conf.beat_schedule["market-open-data-bulk"]["task"] == "market.open_data_bulk"
    monkeypatch.setattr(timezone, "now", lambda: datetime(2026, 12, 3, 23, 30, tzinfo=UTC))  # 00:30 in Berlin
    assert tasks.open_data_bulk() == "rechenboerse-open-data-2026-12-03.zip"
    assert tasks.open_data_bulk() == ""
    out = io.StringIO()
    call_command("build_open_data_bulk", "--date", "2026-11-30", stdout=out)
    assert "rechenboerse-open-data-2026-11-30.zip written" in out.getvalue()


def test_every_registered_dataset_has_a_methodology_page_and_a_page_that_answer(client):
    """The real registry: each dataset's methodology URL (and its page) answers 200, so no two dashboards
    shadow each other's methodology paths under /dashboard/methodology/."""
    from tests.factories import GpuClassFactory

    GpuClassFactory(code="H100")
    listed = open_data.datasets()
    assert len(listed) >= 10
    for dataset in listed:
        methodology = client.get(dataset.methodology_url, follow=True)
        assert methodology.status_code == 200, dataset.slug
        if dataset.page_url:
            assert client.get(dataset.page_url).status_code == 200, dataset.slug
