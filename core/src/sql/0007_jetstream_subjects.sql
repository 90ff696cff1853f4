-- tidings schema, version 7: an endpoint whose URL is nats:// or tls:// publishes to NATS
-- JetStream; `subject` is its subject template (NULL: the default, tidings.{type}). Webhook
-- endpoints leave it NULL.
ALTER TABLE tidings_endpoints ADD COLUMN subject TEXT;
