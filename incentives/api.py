"""Public API of the start-up incentives (issue 12; /work/shared/api-contract.md)."""

from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from incentives.selectors import financing_summary


def financing_payload() -> dict[str, Any]:
    summary = financing_summary()
    return {
        "financed": str(summary.financed),
        "repaid": str(summary.repaid),
        "owed": str(summary.owed),
        "repayment_share": str(summary.repayment_share) if summary.repayment_share is not None else None,
        "incentive_fund_balance": str(summary.fund_balance),
        "repayments": [{"month": f"{r.month:%Y-%m}", "amount": str(r.amount)} for r in summary.repayments],
        "expected_payoff": f"{summary.expected_payoff:%Y-%m}" if summary.expected_payoff else None,
        "projectable": summary.expected_payoff is not None,
    }


class FinancingView(APIView):
    """Public (no login): the state's start financing and its repayment."""

    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []

    @extend_schema(
        operation_id="incentives_financing", summary="The state's start financing: owed, repaid, expected payoff",
        responses=inline_serializer("StartFinancing", {
            "financed": serializers.DecimalField(max_digits=18, decimal_places=2),
            "repaid": serializers.DecimalField(max_digits=18, decimal_places=2),
            "owed": serializers.DecimalField(max_digits=18, decimal_places=2),
            "repayment_share": serializers.DecimalField(max_digits=5, decimal_places=4, allow_null=True),
            "incentive_fund_balance": serializers.DecimalField(max_digits=18, decimal_places=2),
            "repayments": inline_serializer("StartFinancingRepayment", {
                "month": serializers.CharField(),
                "amount": serializers.DecimalField(max_digits=18, decimal_places=2)}, many=True),
            "expected_payoff": serializers.CharField(allow_null=True, help_text="YYYY-MM, null: not projectable"),
            "projectable": serializers.BooleanField(),
        }),
    )
    def get(self, request: Request) -> Response:
        return Response(financing_payload())
