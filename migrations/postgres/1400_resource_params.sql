-- Search index of stored resources: one row per value of a search parameter (a token's system and code, a
-- date element's range), written beside the resource when it is stored, so searches filter in SQL.
-- Never edit an applied migration: add a new file.

CREATE TABLE resource_params (
    authorization_id TEXT NOT NULL,
    resource_type    TEXT NOT NULL,
    id               TEXT NOT NULL,
    param            TEXT NOT NULL,   -- the search parameter's name (`service-date`, `type`, `_lastUpdated`, …)
    system           TEXT,            -- token: the element's system (NULL when absent)
    code             TEXT,            -- token: the code, or an Identifier's value
    lo               BIGINT,          -- date: the element's range [lo, hi) in Unix seconds
    hi               BIGINT,
    FOREIGN KEY (authorization_id, resource_type, id) REFERENCES resources (authorization_id, resource_type, id)
        ON DELETE CASCADE
);
CREATE INDEX resource_params_resource ON resource_params(authorization_id, resource_type, id, param);

-- The version of the search index rules a row's resource_params were written with (0: not written; rows
-- stored before this migration are indexed at start, see store::resource_params::reindex).
ALTER TABLE resources ADD COLUMN params_version INTEGER NOT NULL DEFAULT 0;
