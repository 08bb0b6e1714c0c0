"""Public API of the start-up incentives (issue 12; /work/shared/api-contract.md)."""

from typing import Any

from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Organisation
from accounts.selectors import membership_for
from exchange.errors import ExchangeError
from exchange.schema import ErrorSerializer
from incentives.models import Application, Programme
from incentives.selectors import (
    credits_summary,
    financing_summary,
    incentives_summary,
    open_programmes,
    programme_eligibility,
    programme_remaining,
    reason_texts,
)
from incentives.services import application_submit


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
        **aggregate_payload(),
    }


def aggregate_payload() -> dict[str, Any]:
    """The programmes' anonymous aggregate (added fields; no member named)."""
    aggregate = incentives_summary()
    return {
        "startups_supported": aggregate.startups_supported,
        "credits_granted": str(aggregate.credits_granted),
        "credits_used": str(aggregate.credits_used),
        "credits_expired": str(aggregate.credits_expired),
        "programme_budgets_open": str(aggregate.programme_budgets_open),
        "fund_balance": str(aggregate.fund_balance),
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
            "startups_supported": serializers.IntegerField(help_text="Organisations granted credits."),
            "credits_granted": serializers.DecimalField(max_digits=18, decimal_places=2),
            "credits_used": serializers.DecimalField(max_digits=18, decimal_places=2),
            "credits_expired": serializers.DecimalField(max_digits=18, decimal_places=2,
                                                        help_text="Expired and returned to the fund."),
            "programme_budgets_open": serializers.DecimalField(max_digits=18, decimal_places=2),
            "fund_balance": serializers.DecimalField(max_digits=18, decimal_places=2),
        }),
    )
    def get(self, request: Request) -> Response:
        return Response(financing_payload())


# --- programmes, eligibility, applications, credits (issue 12) ------------------------------


def _money(help_text: str = "EUR") -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=18, decimal_places=2, coerce_to_string=True, help_text=help_text)


class ProgrammeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    starts_on = serializers.DateField(help_text="Applications from this day (Europe/Berlin).")
    ends_on = serializers.DateField(help_text="Applications until this day.")
    budget = _money("The programme's budget, EUR.")
    remaining_budget = _money("The budget less the credits granted, EUR.")
    max_grant = _money("At most this much per organisation, EUR.")
    matching_ratio = serializers.DecimalField(max_digits=6, decimal_places=2, allow_null=True,
                                              help_text="Credit per 1 EUR of own purchases; null: no matching rule.")
    credit_validity_months = serializers.IntegerField()
    rules = inline_serializer("ProgrammeRules", {
        "max_age_years": serializers.IntegerField(allow_null=True),
        "sme_only": serializers.BooleanField(),
        "states": serializers.ListField(child=serializers.CharField()),
        "first_time_buyers_only": serializers.BooleanField(),
    })


def programme_payload(programme: Programme) -> dict[str, Any]:
    return {"id": programme.pk, "name": programme.name, "description": programme.description,
            "starts_on": programme.starts_on, "ends_on": programme.ends_on, "budget": programme.budget,
            "remaining_budget": getattr(programme, "remaining", None)
            if hasattr(programme, "remaining") else programme_remaining(programme),
            "max_grant": programme.max_grant, "matching_ratio": programme.matching_ratio,
            "credit_validity_months": programme.credit_validity_months,
            "rules": {"max_age_years": programme.max_age_years, "sme_only": programme.sme_only,
                      "states": list(programme.states or []),
                      "first_time_buyers_only": programme.first_time_buyers_only}}


class ProgrammeListView(APIView):
    """Public (no login): the open programmes, their rules and budget left."""

    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []

    @extend_schema(operation_id="incentives_programmes_list", summary="Open incentive programmes",
                   responses=ProgrammeSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(ProgrammeSerializer([programme_payload(p) for p in open_programmes()], many=True).data)


def _member_organisation(request: Request) -> Organisation:
    membership = membership_for(request.user)
    if membership is None or membership.organisation.is_observer:
        raise ExchangeError("not_permitted", _("Only members of an organisation take part in incentive "
                                               "programmes."))
    return membership.organisation


class EligibilityView(APIView):
    @extend_schema(operation_id="incentives_programme_eligibility",
                   summary="Whether my organisation may apply to this programme, and why not",
                   responses={200: inline_serializer("Eligibility", {
                       "programme": serializers.IntegerField(), "eligible": serializers.BooleanField(),
                       "reasons": serializers.ListField(child=serializers.CharField(), help_text="Reason codes."),
                       "reason_texts": serializers.ListField(child=serializers.CharField()),
                   }), 403: OpenApiResponse(ErrorSerializer), 404: OpenApiResponse(ErrorSerializer)})
    def get(self, request: Request, pk: int) -> Response:
        organisation = _member_organisation(request)
        programme = Programme.objects.filter(pk=pk, status=Programme.Status.OPEN).first()
        if programme is None:
            raise ExchangeError("not_found", _("No such open programme."))
        reasons = programme_eligibility(programme, organisation)
        return Response({"programme": programme.pk, "eligible": not reasons, "reasons": reasons,
                         "reason_texts": reason_texts(reasons)})


class ApplicationSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    programme = serializers.IntegerField(source="programme_id")
    plan = serializers.CharField()
    requested_amount = _money()
    status = serializers.ChoiceField(choices=Application.Status.values)
    awaits_second_approval = serializers.BooleanField()
    decided_amount = serializers.DecimalField(max_digits=18, decimal_places=2, allow_null=True)
    reason = serializers.CharField()
    submitted_at = serializers.DateTimeField()
    decided_at = serializers.DateTimeField(allow_null=True)


class ApplicationInputSerializer(serializers.Serializer):
    programme = serializers.IntegerField()
    plan = serializers.CharField(allow_blank=True, trim_whitespace=False)
    amount = serializers.DecimalField(max_digits=18, decimal_places=2, required=False,
                                      help_text="EUR; default: the programme's maximum grant.")


class ApplicationListView(APIView):
    @extend_schema(operation_id="incentives_applications_list", summary="My organisation's applications",
                   responses={200: ApplicationSerializer(many=True), 403: OpenApiResponse(ErrorSerializer)})
    def get(self, request: Request) -> Response:
        organisation = _member_organisation(request)
        rows = Application.objects.filter(organisation=organisation).order_by("-submitted_at", "-id")
        return Response(ApplicationSerializer(rows, many=True).data)

    @extend_schema(operation_id="incentives_applications_create", summary="Apply to a programme",
                   request=ApplicationInputSerializer,
                   responses={201: ApplicationSerializer, 400: OpenApiResponse(ErrorSerializer),
                              403: OpenApiResponse(ErrorSerializer, description="`not_permitted`, `not_eligible` "
                                                   "(the reasons in `fields.programme`)."),
                              409: OpenApiResponse(ErrorSerializer, description="`conflict`: not open, or an "
                                                   "application is open already.")})
    def post(self, request: Request) -> Response:
        _member_organisation(request)
        data = ApplicationInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        programme = Programme.objects.filter(pk=data.validated_data["programme"]).first()
        if programme is None:
            raise ExchangeError("invalid", _("No such programme."), fields={"programme": [_("No such programme.")]})
        application = application_submit(user=request.user, programme=programme,  # type: ignore[arg-type]
                                         plan=data.validated_data["plan"], amount=data.validated_data.get("amount"))
        return Response(ApplicationSerializer(application).data, status=status.HTTP_201_CREATED)


class CreditsView(APIView):
    @extend_schema(operation_id="incentives_credits", summary="My organisation's credits and grants",
                   responses={200: inline_serializer("Credits", {
                       "credits_available": _money(), "credits_reserved": _money(),
                       "grants": inline_serializer("CreditGrant", {
                           "id": serializers.IntegerField(), "programme": serializers.IntegerField(),
                           "amount": _money(), "used": _money(), "expired": _money(), "left": _money(),
                           "granted_at": serializers.DateTimeField(), "expires_at": serializers.DateTimeField(),
                       }, many=True)}), 403: OpenApiResponse(ErrorSerializer)})
    def get(self, request: Request) -> Response:
        summary = credits_summary(_member_organisation(request))
        money = serializers.DecimalField(max_digits=18, decimal_places=2, coerce_to_string=True)
        return Response({
            "credits_available": money.to_representation(summary.available),
            "credits_reserved": money.to_representation(summary.reserved),
            "grants": [{"id": row.grant.pk, "programme": row.grant.programme_id,
                        "amount": money.to_representation(row.grant.amount),
                        "used": money.to_representation(row.used), "expired": money.to_representation(row.expired),
                        "left": money.to_representation(row.left),
                        "granted_at": serializers.DateTimeField().to_representation(row.grant.granted_at),
                        "expires_at": serializers.DateTimeField().to_representation(row.grant.expires_at)}
                       for row in summary.grants]})
