-- jobcontrol schema 3 for PostgreSQL: a small key-value table for what jobcontrol itself must
-- remember across processes and machines (the web UI's generated secret key).

CREATE TABLE settings (
    key text PRIMARY KEY,
    value text NOT NULL
);
