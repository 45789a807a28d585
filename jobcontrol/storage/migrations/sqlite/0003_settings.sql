-- jobcontrol schema 3: a small key-value table for what jobcontrol itself must remember
-- across processes (the web UI's generated secret key). Values are text.

CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
