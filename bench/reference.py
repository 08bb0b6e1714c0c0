"""The floor of the order-entry benchmark: what any order entry must at least
do on PostgreSQL, through the same DRF stack as the API (token
authentication, throttles, JSON): in one transaction, one ``SELECT … FOR
UPDATE`` of the instrument's row, one ``UPDATE`` of it and one ``INSERT`` of
the order, which references it by foreign key.

The tables are the bench's own (created in the bench database only), so the
floor does not change when the exchange's schema does."""

from django.db import connection, transaction
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

BOOKS = "bench_reference_book"
ORDERS = "bench_reference_order"


def create_tables(symbols: list[str]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {BOOKS} (id bigserial PRIMARY KEY, symbol text UNIQUE NOT NULL, "
                       "sequence bigint NOT NULL DEFAULT 0)")
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {ORDERS} (id bigserial PRIMARY KEY, "
                       f"book_id bigint NOT NULL REFERENCES {BOOKS} (id), side text, price numeric(12,2), "
                       "quantity integer, created_at timestamptz DEFAULT now())")
        for symbol in symbols:
            cursor.execute(f"INSERT INTO {BOOKS} (symbol) VALUES (%s) ON CONFLICT DO NOTHING", [symbol])  # noqa: S608


class ReferenceOrderView(APIView):
    def post(self, request: Request) -> Response:
        data = request.data
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"SELECT id, sequence FROM {BOOKS} WHERE symbol = %s FOR UPDATE",  # noqa: S608
                           [data["instrument"]])
            row = cursor.fetchone()
            if row is None:
                return Response({"code": "not_found", "detail": "", "fields": {}}, status=404)
            book_id, sequence = row
            cursor.execute(f"UPDATE {BOOKS} SET sequence = %s WHERE id = %s", [sequence + 1, book_id])  # noqa: S608
            cursor.execute(
                f"INSERT INTO {ORDERS} (book_id, side, price, quantity) VALUES (%s, %s, %s, %s) "  # noqa: S608
                "RETURNING id",
                [book_id, data["side"], data["price"], data["quantity"]],
            )
            (order_id,) = cursor.fetchone()
        return Response({"id": order_id, "sequence": sequence + 1}, status=201)
