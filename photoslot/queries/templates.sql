-- Template media and their bindings (slots.settings_json.templates {role: template_id}).
-- Time is always a parameter (%(now)s from the injected clock), never SQL's now().

-- name: template_insert
INSERT INTO template_media (id, file_path, mime, size_bytes, sha256, label, uploaded_by, created_at)
VALUES (%(id)s, %(file_path)s, %(mime)s, %(size_bytes)s, %(sha256)s, %(label)s, %(uploaded_by)s, %(now)s)
RETURNING *;

-- name: template_get
SELECT * FROM template_media WHERE id = %(template_id)s;

-- name: template_get_many
-- ids: a JSON array of id strings (list parameters travel as JSON).
SELECT * FROM template_media WHERE id::text IN (SELECT jsonb_array_elements_text(%(ids)s::jsonb));

-- name: template_list
SELECT t.*,
       coalesce((SELECT array_agg(DISTINCT s.id ORDER BY s.id)
                 FROM slots s, jsonb_each_text(
                     CASE WHEN jsonb_typeof(s.settings_json -> 'templates') = 'object'
                          THEN s.settings_json -> 'templates' ELSE '{}'::jsonb END) b
                 WHERE b.value = t.id::text), '{}') AS used_by
FROM template_media t
ORDER BY t.created_at, t.id;

-- name: template_users
-- Every (slot, role) binding of one template.
SELECT s.id AS slot_id, b.key AS role, s.provider_id, s.operation_id, s.enabled
FROM slots s, jsonb_each_text(
    CASE WHEN jsonb_typeof(s.settings_json -> 'templates') = 'object'
         THEN s.settings_json -> 'templates' ELSE '{}'::jsonb END) b
WHERE b.value = %(template_id)s::text
ORDER BY s.id, b.key;

-- name: template_unbind
-- Removes one binding. When the slot's operation needs that role the caller passes disable=true:
-- a slot never stays enabled with settings the catalogue rejects.
UPDATE slots
SET settings_json = settings_json #- ARRAY['templates', %(role)s],
    enabled = enabled AND NOT %(disable)s, version = version + 1, updated_at = %(now)s
WHERE id = %(slot_id)s AND settings_json -> 'templates' ->> %(role)s = %(template_id)s::text
RETURNING id, version, enabled;

-- name: template_delete
DELETE FROM template_media WHERE id = %(template_id)s RETURNING file_path;

-- name: template_rename
UPDATE template_media SET label = %(label)s WHERE id = %(template_id)s RETURNING *;
