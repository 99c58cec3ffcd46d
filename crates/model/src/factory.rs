//! The physical factory: sites, their lines (areas), and machines (work centres).

use serde::{Deserialize, Serialize};

use crate::validate::{FieldError, Validate, check_range};
use crate::{LineId, MachineId, SiteId, Timestamp, Zone, check_code, check_name};

/// One factory location. Sites are the unit of a head-office view and carry the time zone the
/// shift calendar is written in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Site {
    /// Store-assigned id.
    pub id: SiteId,
    /// Short unique code, used in MQTT topics (`mf/v1/{site}/...`).
    pub code: String,
    /// Human name.
    pub name: String,
    /// Fixed UTC offset of local time, `+HH:MM` or `-HH:MM` (Hong Kong: `+08:00`); `null` when
    /// the site follows [`Site::time_zone`].
    pub utc_offset: Option<String>,
    /// IANA time zone of local time (`Europe/Berlin`), whose daylight-saving changes move its
    /// shifts; `null` when the site keeps [`Site::utc_offset`].
    pub time_zone: Option<String>,
}

impl Site {
    /// The site's local time (UTC when its zone is unknown to this machine, which the API's
    /// validation rules out).
    pub fn zone(&self) -> Zone {
        zone_of(self.utc_offset.as_deref(), self.time_zone.as_deref()).unwrap_or(Zone::UTC)
    }
}

/// A site to create, or the new contents of an existing one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSite {
    /// See [`Site::code`].
    pub code: String,
    /// See [`Site::name`].
    pub name: String,
    /// See [`Site::utc_offset`]. Give this or `time_zone`, not both.
    #[serde(default)]
    pub utc_offset: Option<String>,
    /// See [`Site::time_zone`]. Give this or `utc_offset`, not both.
    #[serde(default)]
    pub time_zone: Option<String>,
}

impl NewSite {
    /// The time zone name as the database spells it (`Europe/Berlin` for `europe/berlin`), so the
    /// stored site shows the canonical name.
    pub fn canonical(mut self) -> NewSite {
        if let Some(name) =
            self.time_zone.as_deref().and_then(Zone::named).and_then(|z| z.name().map(str::to_owned))
        {
            self.time_zone = Some(name);
        }
        self
    }
}

fn zone_of(utc_offset: Option<&str>, time_zone: Option<&str>) -> Option<Zone> {
    match (utc_offset, time_zone) {
        (Some(offset), None) => parse_utc_offset(offset).map(Zone::fixed),
        (None, Some(name)) => Zone::named(name),
        _ => None,
    }
}

impl Validate for NewSite {
    fn problems(&self) -> Vec<FieldError> {
        let mut out = Vec::new();
        check_code("code", &self.code, &mut out);
        check_name("name", &self.name, &mut out);
        match (&self.utc_offset, &self.time_zone) {
            (Some(offset), None) if parse_utc_offset(offset).is_none() => {
                out.push(FieldError::new("utc_offset", "must look like +08:00 (from -12:00 to +14:00)"));
            }
            (None, Some(name)) if Zone::named(name).is_none() => {
                out.push(FieldError::new(
                    "time_zone",
                    "must be an IANA time zone name such as Europe/Berlin",
                ));
            }
            (Some(_), Some(_)) => {
                out.push(FieldError::new("time_zone", "give either utc_offset or time_zone, not both"));
            }
            (None, None) => {
                out.push(FieldError::new(
                    "utc_offset",
                    "give utc_offset (+08:00) or time_zone (Asia/Hong_Kong)",
                ));
            }
            _ => {}
        }
        out
    }
}

/// Parses `+HH:MM` / `-HH:MM` into minutes east of UTC.
pub fn parse_utc_offset(text: &str) -> Option<i32> {
    let bytes = text.as_bytes();
    if bytes.len() != 6 || bytes[3] != b':' {
        return None;
    }
    let sign = match bytes[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let hours: i32 = text.get(1..3)?.parse().ok()?;
    let minutes: i32 = text.get(4..6)?.parse().ok()?;
    let total = sign * (hours * 60 + minutes);
    (minutes < 60 && (-12 * 60..=14 * 60).contains(&total)).then_some(total)
}

/// An area or production line: a named group of machines within a site.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Line {
    /// Store-assigned id.
    pub id: LineId,
    /// The site the line belongs to.
    pub site_id: SiteId,
    /// Short code, unique within the site.
    pub code: String,
    /// Human name.
    pub name: String,
}

/// A line to create, or the new contents of an existing one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLine {
    /// See [`Line::site_id`].
    pub site_id: SiteId,
    /// See [`Line::code`].
    pub code: String,
    /// See [`Line::name`].
    pub name: String,
}

impl Validate for NewLine {
    fn problems(&self) -> Vec<FieldError> {
        let mut out = Vec::new();
        check_code("code", &self.code, &mut out);
        check_name("name", &self.name, &mut out);
        out
    }
}

/// What kind of work centre a machine is. Drives the simulated behaviour and the icons; the
/// planner only cares about eligibility in routings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MachineKind {
    /// CNC milling or turning centre.
    CncMill,
    /// Injection moulding machine.
    InjectionMoulding,
    /// Laser cutter or engraver.
    LaserCutter,
    /// Additive manufacturing (FDM, SLA, SLS).
    Printer3d,
    /// Manual or semi-automatic assembly cell.
    Assembly,
    /// Quality control / inspection cell.
    Qc,
    /// Anything else.
    Other,
}

impl MachineKind {
    /// Every kind, in a stable order.
    pub const ALL: [MachineKind; 7] = [
        MachineKind::CncMill,
        MachineKind::InjectionMoulding,
        MachineKind::LaserCutter,
        MachineKind::Printer3d,
        MachineKind::Assembly,
        MachineKind::Qc,
        MachineKind::Other,
    ];

    /// The snake_case name used on the wire and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            MachineKind::CncMill => "cnc_mill",
            MachineKind::InjectionMoulding => "injection_moulding",
            MachineKind::LaserCutter => "laser_cutter",
            MachineKind::Printer3d => "printer3d",
            MachineKind::Assembly => "assembly",
            MachineKind::Qc => "qc",
            MachineKind::Other => "other",
        }
    }

    /// The inverse of [`MachineKind::as_str`].
    pub fn parse(text: &str) -> Option<MachineKind> {
        MachineKind::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// A machine or work centre.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Machine {
    /// Store-assigned id.
    pub id: MachineId,
    /// The site the machine stands in.
    pub site_id: SiteId,
    /// The line or area, if the site is organised in lines.
    pub line_id: Option<LineId>,
    /// Short code, unique within the site; used in MQTT topics (`mf/v1/{site}/{machine}/...`).
    pub code: String,
    /// Human name.
    pub name: String,
    /// What kind of work centre this is.
    pub kind: MachineKind,
    /// Free-form capability tags (e.g. `5-axis`, `abs`, `max-600x400`), matched by routings and people.
    pub capabilities: Vec<String>,
    /// Rated electrical power in kW, the basis of energy estimates when no meter is connected; 0
    /// when not known.
    pub rated_power_kw: f64,
    /// When the machine was retired (taken out of service for good), if it was: it keeps its
    /// history but is no longer planned, watched by alarm rules, shown among the working machines
    /// or counted in OEE from then on.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<crate::DateTime>")]
    pub retired_at: Option<Timestamp>,
}

impl Machine {
    /// Whether the machine is in service (not retired).
    pub fn in_service(&self) -> bool {
        self.retired_at.is_none()
    }
}

/// A machine to create, or the new contents of an existing one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMachine {
    /// See [`Machine::site_id`].
    pub site_id: SiteId,
    /// See [`Machine::line_id`].
    #[serde(default)]
    pub line_id: Option<LineId>,
    /// See [`Machine::code`].
    pub code: String,
    /// See [`Machine::name`].
    pub name: String,
    /// See [`Machine::kind`].
    pub kind: MachineKind,
    /// See [`Machine::capabilities`].
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// See [`Machine::rated_power_kw`]; 0 (not known) when absent, as for a hand work bench.
    #[serde(default)]
    pub rated_power_kw: f64,
    /// `true` retires the machine (see [`Machine::retired_at`]), `false` puts a retired machine
    /// back in service; absent keeps it as it is (a new machine is in service).
    #[serde(default)]
    pub retired: Option<bool>,
}

impl Validate for NewMachine {
    fn problems(&self) -> Vec<FieldError> {
        let mut out = Vec::new();
        check_code("code", &self.code, &mut out);
        check_name("name", &self.name, &mut out);
        check_range("rated_power_kw", self.rated_power_kw, 0.0, 10_000.0, &mut out);
        if self.capabilities.len() > 64 {
            out.push(FieldError::new("capabilities", "must have at most 64 entries"));
        }
        for (i, capability) in self.capabilities.iter().enumerate() {
            check_code(&format!("capabilities[{i}]"), capability, &mut out);
        }
        out
    }
}
