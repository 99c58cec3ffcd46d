//! Users and the roles that decide what they may do. Credentials (password hashes, token hashes)
//! are the store's business and never appear in these types.

use serde::{Deserialize, Serialize};

use crate::{SiteId, Timestamp, UserId};

/// What a user may do. Least privilege: each role gets what its job needs and no more.
///
/// | action | admin | planner | sales | operator | viewer |
/// |---|---|---|---|---|---|
/// | read everything but users and tokens | yes | yes | yes | yes | yes |
/// | report production (start/finish operations) | yes | yes | no | yes | no |
/// | orders (enter, change, release, cancel, quote) | yes | yes | yes | no | no |
/// | plans, products, variants, routings, materials | yes | yes | no | no | no |
/// | sites, lines, machines, calendars | yes | no | no | no | no |
/// | users and other people's tokens | yes | no | no | no | no |
///
/// `maintenance` reports as an operator does and plans maintenance windows and alarm rules.
///
/// A fifth role, `device`, is for machines and gateways: it may report for its own site's
/// machines (telemetry over MQTT or HTTP, and states and produced units over HTTP) and nothing
/// else, not even read or make itself tokens.
///
/// An `operator` or `maintenance` account may be bound to one site (see
/// [`Role::may_be_bound_to_site`]): it then acts on that site's machines only (reports, alarm
/// acknowledgements, maintenance windows, alarm rules) and still reads every site.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including users and the factory structure.
    Admin,
    /// Orders and the product catalogue; plans.
    Planner,
    /// The sales desk: orders (enter, change, release, cancel, quote deliveries); reads the rest.
    Sales,
    /// Maintenance: reports as an operator does, and plans maintenance windows and edits alarm
    /// rules; no orders, plans or catalogue.
    Maintenance,
    /// Reports production at a station.
    Operator,
    /// Reads.
    Viewer,
    /// A machine or gateway: publishes telemetry for its own site only.
    Device,
}

impl Role {
    /// Every role, most powerful first.
    pub const ALL: [Role; 7] = [
        Role::Admin,
        Role::Planner,
        Role::Sales,
        Role::Maintenance,
        Role::Operator,
        Role::Viewer,
        Role::Device,
    ];

    /// The snake_case name used on the wire and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Planner => "planner",
            Role::Sales => "sales",
            Role::Maintenance => "maintenance",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
            Role::Device => "device",
        }
    }

    /// The inverse of [`Role::as_str`].
    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == text)
    }

    /// May read factory data (everyone but devices).
    pub fn may_read(self) -> bool {
        self != Role::Device
    }

    /// May publish telemetry (for a device, only for its own site).
    pub fn may_ingest(self) -> bool {
        matches!(self, Role::Admin | Role::Device)
    }

    /// May report production: start and finish operations, report downtime.
    pub fn may_report_production(self) -> bool {
        matches!(self, Role::Admin | Role::Planner | Role::Maintenance | Role::Operator)
    }

    /// May plan maintenance windows and change alarm rules.
    pub fn may_maintain(self) -> bool {
        matches!(self, Role::Admin | Role::Planner | Role::Maintenance)
    }

    /// May change orders: enter, change, release, cancel, delete and import them, and quote
    /// deliveries.
    pub fn may_order(self) -> bool {
        matches!(self, Role::Admin | Role::Planner | Role::Sales)
    }

    /// May make and publish plans and change the product catalogue.
    pub fn may_plan(self) -> bool {
        matches!(self, Role::Admin | Role::Planner)
    }

    /// May change sites, lines, machines, calendars, users and tokens.
    pub fn may_administer(self) -> bool {
        self == Role::Admin
    }

    /// May be bound to one site, and then act on its machines only. A device must be; an
    /// operator or maintenance account may be. Orders and plans are not split by site, so the
    /// roles that manage them, and admins, cover every site.
    pub fn may_be_bound_to_site(self) -> bool {
        matches!(self, Role::Device | Role::Operator | Role::Maintenance)
    }

    /// Why an account of this role cannot be bound to a site, if it cannot.
    pub fn site_refusal(self) -> Option<String> {
        (!self.may_be_bound_to_site()).then(|| {
            format!(
                "only device, operator and maintenance accounts are bound to a site, not {}",
                self.as_str()
            )
        })
    }
}

impl User {
    /// Whether the user acts on machines of `site`: one bound to a site (a device, or a person
    /// whose role [may be bound](Role::may_be_bound_to_site)) there only, anyone else anywhere.
    pub fn acts_at(&self, site: SiteId) -> bool {
        self.site_id.is_none_or(|own| own == site)
    }
}

/// A person or an automation account.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct User {
    /// Store-assigned id.
    pub id: UserId,
    /// Unique log-in name.
    pub username: String,
    /// What the user may do.
    pub role: Role,
    /// The site a `device` account publishes for, or the one an operator or maintenance account
    /// acts at; `None` for people who act at every site.
    pub site_id: Option<SiteId>,
    /// When the account was created.
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "crate::DateTime")]
    pub created_at: Timestamp,
}
