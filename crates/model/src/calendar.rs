//! Shift calendars: when a site works. The planner turns them into machine availability; OEE uses
//! them as planned busy time.

use serde::{Deserialize, Serialize};
use time::Date;

use crate::validate::{FieldError, Validate};

/// A day of the week.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs, reason = "the names say it all")]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Weekday {
    /// Every day of the week, Monday first.
    pub const ALL: [Weekday; 7] =
        [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri, Weekday::Sat, Weekday::Sun];

    /// The day as the API spells it: `mon` to `sun`.
    pub fn as_str(self) -> &'static str {
        match self {
            Weekday::Mon => "mon",
            Weekday::Tue => "tue",
            Weekday::Wed => "wed",
            Weekday::Thu => "thu",
            Weekday::Fri => "fri",
            Weekday::Sat => "sat",
            Weekday::Sun => "sun",
        }
    }

    /// The weekday of the `time` crate that matches.
    pub fn from_time(day: time::Weekday) -> Weekday {
        match day {
            time::Weekday::Monday => Weekday::Mon,
            time::Weekday::Tuesday => Weekday::Tue,
            time::Weekday::Wednesday => Weekday::Wed,
            time::Weekday::Thursday => Weekday::Thu,
            time::Weekday::Friday => Weekday::Fri,
            time::Weekday::Saturday => Weekday::Sat,
            time::Weekday::Sunday => Weekday::Sun,
        }
    }
}

/// A recurring working period: on each of `days`, from `start` to `end` local time. An `end`
/// earlier than `start` means the shift runs past midnight into the next day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Shift {
    /// Short name, e.g. `day` or `night`.
    pub name: String,
    /// The days the shift starts on.
    pub days: Vec<Weekday>,
    /// Local start time, `HH:MM`.
    pub start: String,
    /// Local end time, `HH:MM`.
    pub end: String,
}

impl Shift {
    /// Start and end as minutes after local midnight; `None` when either is malformed.
    pub fn minutes(&self) -> Option<(u16, u16)> {
        Some((parse_hh_mm(&self.start)?, parse_hh_mm(&self.end)?))
    }
}

/// The most shifts a calendar may hold.
pub const MAX_SHIFTS: usize = 32;

/// The working time of a site: weekly shifts minus holidays.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Calendar {
    /// Weekly shifts.
    pub shifts: Vec<Shift>,
    /// Local dates on which no shift runs, `YYYY-MM-DD`.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub holidays: Vec<Date>,
}

impl Calendar {
    /// Whether the site works around the clock every day: no shifts entered and no holidays. A
    /// calendar with holidays and no shifts works around the clock on every other day.
    pub fn always_open(&self) -> bool {
        self.shifts.is_empty() && self.holidays.is_empty()
    }

    /// Working minutes planned on `date`, counting each shift on the day it starts.
    pub fn planned_minutes(&self, date: Date) -> u32 {
        if self.holidays.contains(&date) {
            return 0;
        }
        let day = Weekday::from_time(date.weekday());
        self.shifts
            .iter()
            .filter(|shift| shift.days.contains(&day))
            .filter_map(Shift::minutes)
            .map(
                |(start, end)| {
                    if end > start { u32::from(end - start) } else { u32::from(end + 1440 - start) }
                },
            )
            .sum()
    }
}

impl Validate for Calendar {
    fn problems(&self) -> Vec<FieldError> {
        let mut out = Vec::new();
        if self.shifts.len() > MAX_SHIFTS {
            out.push(FieldError::new("shifts", format!("must have at most {MAX_SHIFTS} entries")));
        }
        for (i, shift) in self.shifts.iter().enumerate() {
            crate::check_name(&format!("shifts[{i}].name"), &shift.name, &mut out);
            if shift.days.is_empty() {
                out.push(FieldError::new(format!("shifts[{i}].days"), "must name at least one day"));
            }
            for (field, value) in [("start", &shift.start), ("end", &shift.end)] {
                if parse_hh_mm(value).is_none() {
                    out.push(FieldError::new(format!("shifts[{i}].{field}"), "must be a time HH:MM"));
                }
            }
            if shift.start == shift.end {
                out.push(FieldError::new(format!("shifts[{i}].end"), "must differ from start"));
            }
        }
        if self.holidays.len() > 1000 {
            out.push(FieldError::new("holidays", "must have at most 1000 entries"));
        }
        for (i, holiday) in self.holidays.iter().enumerate() {
            crate::validate::check_year(&format!("holidays[{i}]"), holiday.year(), &mut out);
        }
        out
    }
}

fn parse_hh_mm(text: &str) -> Option<u16> {
    let (hours, minutes) = text.split_once(':')?;
    if hours.len() != 2 || minutes.len() != 2 {
        return None;
    }
    let hours: u16 = hours.parse().ok()?;
    let minutes: u16 = minutes.parse().ok()?;
    (hours < 24 && minutes < 60).then_some(hours * 60 + minutes)
}
