"""Doctor's clock rule: the system clock against the database's (a skew cannot be provoked for
real on one machine, so the rule is tested on its own)."""
import datetime as dt

import pytest

from photoslot import doctor

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize("local, database, status, needle", [
    (NOW, NOW + dt.timedelta(milliseconds=300), doctor.OK, "-300 ms from the database's clock"),
    (NOW, NOW - dt.timedelta(seconds=2), doctor.OK, "+2000 ms"),
    (NOW, NOW - dt.timedelta(seconds=2.5), doctor.FAIL, "+2.5 s off the database's"),
    (NOW, NOW + dt.timedelta(minutes=3), doctor.FAIL, "-180.0 s off"),
    (dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc), dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc),
     doctor.FAIL, "the system clock says 2000-01-01"),
])
def test_the_clock_must_agree_with_the_database_and_be_plausible(local, database, status, needle):
    check = doctor.clock_verdict(local, database)
    assert check.status == status and needle in check.detail
    assert (check.fix is None) == (status == doctor.OK)
