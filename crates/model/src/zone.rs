//! A site's local time: a fixed UTC offset, or an IANA time zone with its daylight-saving rules.
//!
//! Shift calendars, the dashboard's clocks and the replanner's times of day are all written in
//! local time. With a fixed offset local time is UTC moved by a constant; with a named zone
//! (`Europe/Berlin`) the offset changes at the zone's transitions, so a night shift across the
//! spring change lasts an hour less. Names are looked up in the system's time zone database
//! (`/usr/share/zoneinfo`), with a copy built into the binary where the system has none.

use crate::Timestamp;

/// Where a site's clocks stand relative to UTC. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Zone(Inner);

#[derive(Clone, Debug)]
enum Inner {
    /// Minutes east of UTC.
    Fixed(i32),
    Named(jiff::tz::TimeZone),
}

impl Zone {
    /// UTC itself.
    pub const UTC: Zone = Zone(Inner::Fixed(0));

    /// A constant offset, `minutes` east of UTC.
    pub const fn fixed(minutes: i32) -> Zone {
        Zone(Inner::Fixed(minutes))
    }

    /// The IANA time zone `name` (case does not matter), or `None` when the database does not
    /// know it.
    pub fn named(name: &str) -> Option<Zone> {
        // Files of a system's zone folder that are not places: the "Factory" placeholder, the
        // POSIX default rules, the host's own setting, and the variant trees.
        let lower = name.to_ascii_lowercase();
        if ["factory", "posixrules", "localtime"].contains(&lower.as_str())
            || ["posix/", "right/"].iter().any(|tree| lower.starts_with(tree))
        {
            return None;
        }
        let zone = jiff::tz::db().get(name).ok()?;
        // `Etc/Unknown` is the database's "no idea", not a place.
        zone.iana_name().filter(|found| !found.eq_ignore_ascii_case("Etc/Unknown"))?;
        Some(Zone(Inner::Named(zone)))
    }

    /// The names of the places the time zone database knows (`Europe/Berlin`), sorted: what a
    /// form offers for a site's zone. Links and legacy names (`US/Eastern`, `Etc/GMT+8`) are
    /// left out; [`Zone::named`] still takes them.
    pub fn place_names() -> Vec<String> {
        const REGIONS: [&str; 9] = [
            "Africa/",
            "America/",
            "Antarctica/",
            "Asia/",
            "Atlantic/",
            "Australia/",
            "Europe/",
            "Indian/",
            "Pacific/",
        ];
        let mut names: Vec<String> = jiff::tz::db()
            .available()
            .map(|name| name.as_str().to_string())
            .filter(|name| REGIONS.iter().any(|region| name.starts_with(region)))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// The zone's canonical IANA name (`Europe/Berlin` for `europe/berlin`); `None` for a fixed
    /// offset.
    pub fn name(&self) -> Option<&str> {
        match &self.0 {
            Inner::Fixed(_) => None,
            Inner::Named(zone) => zone.iana_name(),
        }
    }

    /// Minutes east of UTC that local clocks show at the instant `at_ms` (milliseconds since the
    /// Unix epoch).
    pub fn offset_minutes_at(&self, at_ms: i64) -> i32 {
        match &self.0 {
            Inner::Fixed(minutes) => *minutes,
            Inner::Named(zone) => {
                let at = jiff::Timestamp::from_millisecond(at_ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
                zone.to_offset(at).seconds().div_euclid(60)
            }
        }
    }

    /// The instant (milliseconds since the Unix epoch) at which local clocks show `local_ms`,
    /// a wall-clock time counted in milliseconds from local 1970-01-01 00:00. A time the clocks
    /// skip (spring forward) is read with the offset from before the change, so it falls after
    /// the change (02:30 becomes 03:30 when clocks jump from 02:00 to 03:00); a time that occurs
    /// twice (autumn) is its first occurrence.
    pub fn instant_of_local(&self, local_ms: i64) -> i64 {
        match &self.0 {
            Inner::Fixed(minutes) => local_ms - i64::from(*minutes) * 60_000,
            Inner::Named(zone) => {
                // Local wall time read as UTC gives the civil date-time to look up.
                let civil = jiff::Timestamp::from_millisecond(local_ms)
                    .map(|t| jiff::tz::Offset::UTC.to_datetime(t))
                    .ok()
                    .and_then(|civil| zone.to_ambiguous_timestamp(civil).compatible().ok());
                match civil {
                    Some(at) => at.as_millisecond(),
                    // Outside what jiff can represent: fall back to the offset at that time.
                    None => local_ms - i64::from(self.offset_minutes_at(local_ms)) * 60_000,
                }
            }
        }
    }

    /// `at` as the local clocks show it, with the offset of that instant.
    pub fn local(&self, at: Timestamp) -> Timestamp {
        let at_ms = (at.unix_timestamp_nanos() / 1_000_000) as i64;
        let offset = time::UtcOffset::from_whole_seconds(self.offset_minutes_at(at_ms) * 60)
            .unwrap_or(time::UtcOffset::UTC);
        at.to_offset(offset)
    }

    /// The local midnight that began the day `at` falls in.
    pub fn day_start(&self, at: Timestamp) -> Timestamp {
        self.at_local(self.local(at).date(), 0)
    }

    /// The instant at which local clocks show `date` at `minutes` after midnight (see
    /// [`Zone::instant_of_local`] for times skipped or repeated).
    pub fn at_local(&self, date: time::Date, minutes: u32) -> Timestamp {
        let local_ms =
            (i64::from(date.to_julian_day()) - 2_440_588) * 86_400_000 + i64::from(minutes) * 60_000;
        let at = self.instant_of_local(local_ms);
        Timestamp::from_unix_timestamp_nanos(i128::from(at) * 1_000_000).unwrap_or(Timestamp::UNIX_EPOCH)
    }
}

impl PartialEq for Zone {
    fn eq(&self, other: &Zone) -> bool {
        match (&self.0, &other.0) {
            (Inner::Fixed(a), Inner::Fixed(b)) => a == b,
            (Inner::Named(_), Inner::Named(_)) => self.name() == other.name(),
            _ => false,
        }
    }
}
