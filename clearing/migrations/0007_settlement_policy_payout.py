# Issue 7 items 9 and 10: the not_provided ticket status and operator holds, the
# ccp_claim account kind, payout accounts under four eyes.

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0003_auditlog_append_only'),
        ('clearing', '0006_seed_fee_schedule'),
        ('market', '0003_capacity_orders_trades'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='PayoutAccount',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('iban', models.CharField(max_length=34, verbose_name='IBAN')),
                ('holder_name', models.CharField(max_length=70, verbose_name='account holder')),
                ('verified_at', models.DateTimeField(verbose_name='verified at')),
            ],
            options={
                'verbose_name': 'payout account',
                'verbose_name_plural': 'payout accounts',
                'ordering': ('organisation_id',),
            },
        ),
        migrations.CreateModel(
            name='PayoutAccountChange',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('iban', models.CharField(max_length=34, verbose_name='IBAN')),
                ('holder_name', models.CharField(max_length=70, verbose_name='account holder')),
                ('requested_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now, verbose_name='requested at')),
                ('status', models.CharField(choices=[('requested', 'requested, awaiting a first operator'), ('first_approved', 'awaiting a second operator'), ('approved', 'approved (in force)'), ('rejected', 'rejected'), ('cancelled', 'cancelled')], default='requested', max_length=16, verbose_name='status')),
                ('first_approved_at', models.DateTimeField(blank=True, null=True, verbose_name='first approved at')),
                ('decided_at', models.DateTimeField(blank=True, null=True, verbose_name='decided at')),
                ('reason', models.CharField(blank=True, max_length=255, verbose_name='reason')),
            ],
            options={
                'verbose_name': 'payout account change',
                'verbose_name_plural': 'payout account changes',
                'ordering': ('-requested_at', '-id'),
            },
        ),
        migrations.RemoveConstraint(
            model_name='account',
            name='clearing_account_kind_matches_owner',
        ),
        migrations.AddField(
            model_name='deliveryticket',
            name='held_at',
            field=models.DateTimeField(blank=True, null=True, verbose_name='held at'),
        ),
        migrations.AddField(
            model_name='deliveryticket',
            name='held_by',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL, verbose_name='held by'),
        ),
        migrations.AddField(
            model_name='deliveryticket',
            name='hold_reason',
            field=models.TextField(blank=True, verbose_name='hold reason'),
        ),
        migrations.AddField(
            model_name='deliveryticket',
            name='not_provided_at',
            field=models.DateTimeField(blank=True, null=True, verbose_name='access not provided at'),
        ),
        migrations.AddField(
            model_name='withdrawalrequest',
            name='holder_name',
            field=models.CharField(blank=True, max_length=70, verbose_name='account holder'),
        ),
        migrations.AlterField(
            model_name='account',
            name='kind',
            field=models.CharField(choices=[('cash_available', 'cash available'), ('cash_reserved', 'cash reserved'), ('settlement_pending', 'settlement pending'), ('margin', 'margin'), ('withdrawal_pending', 'withdrawal pending'), ('ccp_claim', 'claim of the clearing house'), ('bank', 'bank'), ('ccp', 'central counterparty'), ('fee_revenue', 'fee revenue'), ('incentive_fund', 'start-up incentive fund'), ('rnd_fund', 'R&D fund')], max_length=32, verbose_name='kind'),
        ),
        migrations.AlterField(
            model_name='deliveryticket',
            name='status',
            field=models.CharField(choices=[('awaiting_access', 'awaiting access details'), ('access_posted', 'access details posted'), ('not_provided', 'access details not provided'), ('confirmed', 'confirmed'), ('disputed', 'disputed'), ('resolved', 'dispute resolved'), ('settled', 'settled')], default='awaiting_access', max_length=16, verbose_name='status'),
        ),
        migrations.AlterField(
            model_name='journalentry',
            name='kind',
            field=models.CharField(choices=[('deposit', 'deposit'), ('withdrawal', 'withdrawal'), ('reserve', 'reservation'), ('release', 'release'), ('trade', 'trade'), ('fee', 'fee'), ('settlement', 'settlement'), ('refund', 'refund'), ('margin', 'margin'), ('variation_margin', 'variation margin'), ('incentive', 'incentive'), ('correction', 'correction'), ('claim', 'claim repayment')], max_length=32, verbose_name='kind'),
        ),
        migrations.AddConstraint(
            model_name='account',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('kind__in', ('cash_available', 'cash_reserved', 'settlement_pending', 'margin', 'withdrawal_pending', 'ccp_claim')), ('organisation__isnull', False)), models.Q(('kind__in', ('bank', 'ccp', 'fee_revenue', 'incentive_fund', 'rnd_fund')), ('organisation__isnull', True)), _connector='OR'), name='clearing_account_kind_matches_owner'),
        ),
        migrations.AddConstraint(
            model_name='deliveryticket',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('status', 'not_provided'), _negated=True), ('not_provided_at__isnull', False), _connector='OR'), name='clearing_ticket_not_provided_has_time'),
        ),
        migrations.AddConstraint(
            model_name='deliveryticket',
            constraint=models.CheckConstraint(condition=models.Q(('held_at__isnull', True), ('not_provided_at__isnull', False), _connector='OR'), name='clearing_ticket_hold_only_not_provided'),
        ),
        migrations.AddField(
            model_name='payoutaccount',
            name='organisation',
            field=models.OneToOneField(on_delete=django.db.models.deletion.PROTECT, related_name='payout_account', to='accounts.organisation', verbose_name='organisation'),
        ),
        migrations.AddField(
            model_name='payoutaccountchange',
            name='decided_by',
            field=models.ForeignKey(blank=True, help_text='The second operator (approved), or who rejected or cancelled it.', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL, verbose_name='decided by'),
        ),
        migrations.AddField(
            model_name='payoutaccountchange',
            name='first_approved_by',
            field=models.ForeignKey(blank=True, help_text='The operator who entered or first approved the change.', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL, verbose_name='first operator'),
        ),
        migrations.AddField(
            model_name='payoutaccountchange',
            name='organisation',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='payout_account_changes', to='accounts.organisation', verbose_name='organisation'),
        ),
        migrations.AddField(
            model_name='payoutaccountchange',
            name='requested_by',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL, verbose_name='requested by'),
        ),
        migrations.AddField(
            model_name='payoutaccount',
            name='change',
            field=models.OneToOneField(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='clearing.payoutaccountchange', verbose_name='approved change'),
        ),
        migrations.AddConstraint(
            model_name='payoutaccountchange',
            constraint=models.UniqueConstraint(condition=models.Q(('status__in', ('requested', 'first_approved'))), fields=('organisation',), name='clearing_payoutchange_one_open_per_org'),
        ),
        migrations.AddConstraint(
            model_name='payoutaccountchange',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('first_approved_by__isnull', True), ('status', 'requested')), models.Q(models.Q(('status', 'requested'), _negated=True), models.Q(('status', 'first_approved'), _negated=True)), models.Q(('first_approved_by__isnull', False), ('status', 'first_approved')), _connector='OR'), name='clearing_payoutchange_first_operator'),
        ),
        migrations.AddConstraint(
            model_name='payoutaccountchange',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('status', 'approved'), _negated=True), models.Q(('first_approved_by__isnull', False), ('decided_by__isnull', False), models.Q(('decided_by', models.F('first_approved_by')), _negated=True)), _connector='OR'), name='clearing_payoutchange_two_operators'),
        ),
    ]
