"""The reference endpoint of bench_order_entry: what any order entry must at
least do on PostgreSQL, through the same DRF stack (token auth, throttles,
JSON): one locked update and one insert in one transaction."""

from django.db import connection, transaction
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

TABLE = "bench_reference_order"


def create_table() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE} (id bigserial PRIMARY KEY, instrument_id bigint, "  # noqa: S608
            "side text, price numeric(12,2), quantity integer, created_at timestamptz DEFAULT now())"
        )


class ReferenceOrderView(APIView):
    def post(self, request: Request) -> Response:
        data = request.data
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "UPDATE market_instrument SET order_sequence = order_sequence + 1 WHERE symbol = %s "
                "RETURNING id, order_sequence",
                [data["instrument"]],
            )
            instrument_id, sequence = cursor.fetchone()
            cursor.execute(
                f"INSERT INTO {TABLE} (instrument_id, side, price, quantity) VALUES (%s, %s, %s, %s) "  # noqa: S608
                "RETURNING id",
                [instrument_id, data["side"], data["price"], data["quantity"]],
            )
            (order_id,) = cursor.fetchone()
        return Response({"id": order_id, "sequence": sequence}, status=201)
