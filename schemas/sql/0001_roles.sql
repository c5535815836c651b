-- 0001_roles.sql - the application role and the public schema's privileges.
-- The gateway connects as ehrgate_app; each later migration grants it exactly
-- what it needs. Roles are cluster-wide and several databases may be
-- migrated at once (tests), so creation tolerates a concurrent creator.
DO $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'ehrgate_app') THEN
		BEGIN
			CREATE ROLE ehrgate_app LOGIN;
		EXCEPTION WHEN duplicate_object OR unique_violation THEN
			NULL;
		END;
	END IF;
END
$$;

REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO ehrgate_app;
