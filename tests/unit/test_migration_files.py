"""The migrations folder: numbering rules, and the baseline frozen as studios have it."""
import pytest

from photoslot import schema

# Studios have 0001 applied (or adopted). An edit here would never reach them: put it in a new file.
BASELINE_SHA256 = "ce8ab1eca31340c73d2e19e029dc5e4578a57d11bdda6c70268239297706ca7c"


def test_the_baseline_is_never_edited():
    # The text as read (line endings normalised), which is also what schema_migrations.checksum holds.
    assert schema.available()[0].checksum == BASELINE_SHA256, (
        "0001_baseline.sql changed: studios already have it applied, so the change would never reach "
        "them. Revert it and add photoslot/migrations/0002_what_it_does.sql instead.")


def test_the_shipped_migrations_start_at_the_baseline_and_have_no_gaps():
    found = schema.available()
    assert found[0].file == "0001_baseline.sql"
    assert [m.version for m in found] == list(range(1, len(found) + 1))
    assert schema.latest_version() == found[-1].version


def test_adding_a_migration_is_dropping_the_next_number_in_the_folder(tmp_path):
    (tmp_path / "0001_baseline.sql").write_text("SELECT 1;")
    (tmp_path / "0002_add_booth_names.sql").write_text("SELECT 2;")
    (tmp_path / "README.md").write_text("other files are not migrations")
    assert [m.file for m in schema.available(tmp_path)] == ["0001_baseline.sql", "0002_add_booth_names.sql"]


@pytest.mark.parametrize("names, needle", [
    (["0001_baseline.sql", "0003_skipped_two.sql"], "found 0003_skipped_two.sql where 0002 was expected"),
    (["0001_baseline.sql", "0002_a.sql", "0002_b.sql"], "without gaps or twins"),
    (["0001_baseline.sql", "2_short_number.sql"], "misnamed"),
    (["0001_baseline.sql", "0002-Dashes.sql"], "misnamed"),
])
def test_a_gap_a_twin_or_a_misnamed_file_is_refused(tmp_path, names, needle):
    for name in names:
        (tmp_path / name).write_text("SELECT 1;")
    with pytest.raises(schema.SchemaError, match=needle):
        schema.available(tmp_path)
