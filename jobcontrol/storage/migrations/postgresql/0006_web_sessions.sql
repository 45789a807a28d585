-- jobcontrol schema 6 for PostgreSQL: what every process serving the web UI must agree on. A
-- login session lives until it expires or its user logs out; failed logins are counted to
-- throttle them.

CREATE TABLE web_sessions (
    id text PRIMARY KEY,
    user_name text NOT NULL,
    expires timestamptz NOT NULL
);

CREATE TABLE login_failures (
    key text NOT NULL,
    at timestamptz NOT NULL
);
CREATE INDEX login_failures_key_at ON login_failures (key, at);
