-- The operator dashboard (dunning-web): its users, their sessions, failed logins
-- (rate limiting shared by every web process) and the audit log of every action.

CREATE TABLE web_users (
    id            BIGSERIAL PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
    -- Argon2id, PHC string format ($argon2id$v=19$m=…,t=…,p=…$salt$hash).
    password_hash TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A session is known by the SHA-256 of its cookie value: a copy of this table
-- does not let anyone log in.
CREATE TABLE web_sessions (
    token_digest TEXT PRIMARY KEY,
    user_id      BIGINT NOT NULL REFERENCES web_users (id) ON DELETE CASCADE,
    -- The synchronizer token every POST of this session must carry.
    csrf_token   TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX web_sessions_user ON web_sessions (user_id);
CREATE INDEX web_sessions_last_seen ON web_sessions (last_seen_at);

CREATE TABLE web_login_failures (
    id       BIGSERIAL PRIMARY KEY,
    at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    ip       TEXT NOT NULL,
    username TEXT NOT NULL
);
CREATE INDEX web_login_failures_ip ON web_login_failures (ip, at);
CREATE INDEX web_login_failures_user ON web_login_failures (username, at);

CREATE TABLE audit_log (
    id     BIGSERIAL PRIMARY KEY,
    at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The web user's name, or `cli` for dunning-schedule web-user.
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    ip     TEXT
);
CREATE INDEX audit_log_at ON audit_log (at);

-- The dashboard's history reads deliveries by the day they ended, per channel.
CREATE INDEX notifications_failed_updated ON notifications (updated_at) WHERE status = 'failed';
