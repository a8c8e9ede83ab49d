DROP INDEX IF EXISTS notifications_failed_updated;
DROP TABLE audit_log;
DROP TABLE web_login_failures;
DROP TABLE web_sessions;
DROP TABLE web_users;
