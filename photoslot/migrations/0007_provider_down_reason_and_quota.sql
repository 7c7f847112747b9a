-- Why a provider is down, in words, when one answer said no call can work until someone acts (a
-- key with no quota for the model, a spent tariff, a region Google does not serve):
-- the provider is taken down at once with that reason (photoslot/health_rule.py `failed`), and
-- `providers status`, GET /api/providers/health, /readyz, the alert and the refused shots say it.
-- And what the provider last said is left on the account (Turbotext's `limits.foto_limit`), for
-- the photoslot_provider_quota_remaining gauge and the provider_quota_low alert.
ALTER TABLE provider_health ADD COLUMN IF NOT EXISTS down_reason text;
ALTER TABLE provider_health ADD COLUMN IF NOT EXISTS quota_remaining integer;
ALTER TABLE provider_health ADD COLUMN IF NOT EXISTS quota_remaining_at timestamptz;
