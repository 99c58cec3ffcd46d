-- A token a person chose (the bootstrap token from the environment) was listed with its first
-- 10 characters in clear: most of a 16-character token. Such tokens now show 3.
UPDATE api_tokens SET prefix = substr(prefix, 1, 3) WHERE substr(prefix, 1, 3) <> 'mf_';
