-- Integrator API: the PKCE code_challenge of a redirect-flow (`GET /link/auth`) session, kept until the
-- flow mints the authorization code; and an index for "tokens of this app" lookups.
-- Owner: [Integrator API]. Never edit an applied migration: add a new file.
ALTER TABLE link_sessions ADD COLUMN code_challenge TEXT;
CREATE INDEX tokens_app ON tokens(app_id, kind);
-- FHIR reads scan (authorization, type) and order by id; the primary key already covers that prefix.
