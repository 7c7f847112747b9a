-- The ingest password is checked against a copy of its stored record in the `serve` process
-- (photoslot/passwords.py): a change of that one settings row is announced with NOTIFY
-- photoslot_ingest_password, so the copy follows at once and a booth's shot needs no statement
-- to read it. Other settings rows announce nothing.
CREATE OR REPLACE FUNCTION photoslot_ingest_password_notify() RETURNS trigger AS $$
BEGIN
    IF (TG_OP = 'DELETE' AND OLD.key = 'ingest_password') OR (TG_OP <> 'DELETE' AND NEW.key = 'ingest_password') THEN
        PERFORM pg_notify('photoslot_ingest_password', '');
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS settings_ingest_password_notify ON settings;
CREATE TRIGGER settings_ingest_password_notify AFTER INSERT OR UPDATE OR DELETE ON settings
    FOR EACH ROW EXECUTE FUNCTION photoslot_ingest_password_notify();
