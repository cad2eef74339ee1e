-- A hosted link that repairs an authorization (created with a repair token): the authorization it renews.
-- Never edit an applied migration: add a new file.

ALTER TABLE hosted_links ADD COLUMN repairs_authorization_id TEXT;
