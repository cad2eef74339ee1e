-- A second index of the search index rows, for searches: by parameter first, then resource id, carrying the values
-- (`system`, `code`, `lo`, `hi`). A search's `EXISTS` on resource_params (store::resource_params::criterion_sql)
-- then reads only the rows of its parameter, in resource id order (the order of a page: a merge with
-- `resources_pkey` that stops at the page's end), and never the table. With 10,000 members the index by resource
-- read every parameter's rows of every claim and the heap rows behind them, which `upsert` wrote interleaved with
-- other members' (issue #16, examples/scale_bench). `resource_params_resource` stays for the deletes by resource
-- (`replace`, the foreign key's cascade). PostgreSQL only: SQLite has no INCLUDE, and its per-row probes were not
-- its cost.
-- Never edit an applied migration: add a new file.

CREATE INDEX resource_params_search ON resource_params(authorization_id, resource_type, param, id)
    INCLUDE (system, code, lo, hi);
