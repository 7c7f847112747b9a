"""The studio's time zone: what "today" means on the pages, and the zone every time is shown in.

A live setting (`time_zone`, an IANA name such as `Europe/Moscow`, or a fixed offset such as
`UTC+03:00`), stored like the other live settings; until an admin sets one it is the zone of the
PC photoslot runs on (read once per process: `TZ`, then /etc/timezone, then /etc/localtime's
link, else the PC's current UTC offset — on Windows that is all Python can name without a
mapping table, so a studio there sets its zone by name once if its country changes clocks).

Statistics are counted per UTC hour (rollups.py), so a local day is a whole number of those hours:
the hours that *start* on that local date. In a zone whose offset is a whole number of hours
that is exactly midnight to midnight. Where it is not (India +05:30, Nepal +05:45, parts of
Australia +09:30), the day starts at the first whole UTC hour after local midnight — 00:30 in
India, 00:15 in Nepal — so shots of the first 30 (15) minutes after midnight count on the day
before. A studio's event rarely runs across midnight; the pages name the zone they count in.
"""
from __future__ import annotations

import datetime as dt
import os
import re
import time
import zoneinfo
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from photoslot.errors import ValidationError

KEY = "time_zone"  # the live setting (settings table); absent = the PC's zone
UTC = dt.timezone.utc
_OFFSET = re.compile(r"^(?:UTC|GMT)?\s*([+-])(\d{1,2})(?::?(\d{2}))?$", re.IGNORECASE)
MAX_NAME = 64


@dataclass(frozen=True)
class Zone:
    name: str                 # as shown and stored: "Europe/Moscow", "UTC", "UTC+03:00"
    tzinfo: dt.tzinfo
    sql: str                  # the same zone for PostgreSQL's AT TIME ZONE
    source: str = "setting"   # "setting" (an admin chose it) or "pc" (the PC's own)

    def local(self, t: dt.datetime | None) -> dt.datetime | None:
        return None if t is None else t.astimezone(self.tzinfo)

    def abbreviation(self, at: dt.datetime) -> str:
        """What the zone is called at that moment: "MSK", "+0530", "UTC+03:00"."""
        short = at.astimezone(self.tzinfo).tzname() or self.name
        return short if short[:1].isalpha() else self.name


def _fixed(sign: str, hours: int, minutes: int) -> Zone:
    if hours > 14 or minutes >= 60 or (hours == 14 and minutes):
        raise ValueError("offset out of range")
    total = (hours * 60 + minutes) * (1 if sign == "+" else -1)
    if total == 0:
        return Zone("UTC", UTC, "UTC")
    name = f"UTC{sign}{hours:02d}:{minutes:02d}"
    # PostgreSQL reads a POSIX zone: the sign is the other way round, `<name>` names it
    posix = f"<{sign}{hours:02d}{minutes:02d}>{'-' if sign == '+' else '+'}{hours:02d}:{minutes:02d}"
    return Zone(name, dt.timezone(dt.timedelta(minutes=total), name), posix)


def parse(text) -> Zone:
    """A zone an admin typed; ValidationError naming the field `time_zone` otherwise."""
    name = str(text or "").strip()
    if not name or len(name) > MAX_NAME:
        raise ValidationError({KEY: "must be a time zone such as Europe/Moscow or UTC+03:00"})
    if name.upper() in ("UTC", "GMT", "Z", "ETC/UTC"):
        return Zone("UTC", UTC, "UTC")
    match = _OFFSET.match(name)
    if match:
        try:
            return _fixed(match.group(1), int(match.group(2)), int(match.group(3) or 0))
        except ValueError:
            raise ValidationError({KEY: "must be an offset between UTC-14:00 and UTC+14:00"}) from None
    if ".." in name or name.startswith(("/", "\\")) or not re.fullmatch(r"[A-Za-z0-9_+\-/]+", name):
        raise ValidationError({KEY: "must be a time zone such as Europe/Moscow or UTC+03:00"})
    try:
        info = zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ValidationError({KEY: f"unknown time zone {name!r}; use a name such as Europe/Moscow "
                                    "or an offset such as UTC+03:00"}) from None
    return Zone(name, info, name)


def _iana_of_this_pc() -> str | None:
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    with_timezone = Path("/etc/timezone")
    if with_timezone.is_file():
        try:
            candidates.append(with_timezone.read_text(encoding="utf-8").strip())
        except OSError:
            pass
    localtime = Path("/etc/localtime")
    if localtime.is_symlink():
        target = str(localtime.resolve())
        if "zoneinfo/" in target:
            candidates.append(target.split("zoneinfo/", 1)[1])
    for name in candidates:
        if name:
            try:
                return parse(name).name
            except ValidationError:
                continue
    return None


@lru_cache(maxsize=1)
def pc_zone() -> Zone:
    """The zone of the PC this process runs on (named when the system names it)."""
    name = _iana_of_this_pc()
    if name is None:
        offset = -time.altzone if time.daylight and time.localtime().tm_isdst > 0 else -time.timezone
        sign = "+" if offset >= 0 else "-"
        minutes = abs(offset) // 60
        zone = _fixed(sign, minutes // 60, minutes % 60) if offset else Zone("UTC", UTC, "UTC")
    else:
        zone = parse(name)
    return Zone(zone.name, zone.tzinfo, zone.sql, source="pc")


def from_setting(stored) -> Zone:
    """The studio's zone from the stored setting (None: the PC's). A stored name this PC cannot
    read (a zone database without it) falls back to the PC's zone rather than break every page."""
    if not stored:
        return pc_zone()
    try:
        return parse(stored)
    except ValidationError:
        return pc_zone()


async def load(db) -> Zone:
    row = await db.fetchone("setting_get", key=KEY)
    return from_setting(row["value"] if row else None)


def day_start(now: dt.datetime, zone: Zone) -> dt.datetime:
    """The start of the studio's "today" as the statistics count it: the first whole UTC hour at or
    after local midnight (see the module's note on half-hour zones)."""
    local_midnight = now.astimezone(zone.tzinfo).replace(hour=0, minute=0, second=0, microsecond=0)
    utc = local_midnight.astimezone(UTC)
    floor = utc.replace(minute=0, second=0, microsecond=0)
    return floor if floor == utc else floor + dt.timedelta(hours=1)


def common_zones() -> list[str]:
    """Names offered on the Settings page (any other IANA name or offset can be typed)."""
    wanted = ["UTC", "Europe/Kaliningrad", "Europe/Moscow", "Europe/Samara", "Asia/Yekaterinburg", "Asia/Omsk",
              "Asia/Novosibirsk", "Asia/Krasnoyarsk", "Asia/Irkutsk", "Asia/Yakutsk", "Asia/Vladivostok",
              "Asia/Magadan", "Asia/Kamchatka", "Europe/Minsk", "Europe/Kyiv", "Asia/Almaty", "Asia/Tashkent",
              "Asia/Tbilisi", "Asia/Yerevan", "Asia/Baku", "Europe/Istanbul", "Europe/Berlin", "Europe/London",
              "Asia/Dubai", "Asia/Kolkata", "America/New_York"]
    out = []
    for name in wanted:
        try:
            out.append(parse(name).name)
        except ValidationError:  # a zone database without it (Windows without tzdata)
            continue
    return out
