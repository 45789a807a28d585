-- jobcontrol schema 6: what every process serving the web UI must agree on. A login session
-- lives until it expires or its user logs out; failed logins are counted to throttle them.
-- Times are ISO 8601 UTC text, as everywhere.

CREATE TABLE web_sessions (
    id TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    expires TEXT NOT NULL
);

CREATE TABLE login_failures (
    key TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX login_failures_key_at ON login_failures (key, at);
