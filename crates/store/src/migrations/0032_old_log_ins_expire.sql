-- API log-ins (`POST /auth/login`, token name `login`) made before they expired after 12 hours
-- were lasting tokens: they never ended, not even at a password change, and counted against a
-- user's lasting tokens. Each now ends 12 hours after it was made, as a log-in made today does
-- (tokens meant to last are made with `POST /tokens`).
UPDATE api_tokens SET expires_ms = created_ms + 43200000
 WHERE name = 'login' AND expires_ms IS NULL AND revoked_ms IS NULL;
