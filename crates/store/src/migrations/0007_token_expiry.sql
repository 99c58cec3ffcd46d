-- Tokens that end by themselves: browser sessions expire; API tokens have no expiry (NULL).
ALTER TABLE api_tokens ADD COLUMN expires_ms INTEGER;
