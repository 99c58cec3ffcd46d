//! The domain vocabulary of microfactory, in ISA-95 terms: sites, lines and machines (work
//! centres), materials, products and variants with their bills of materials and routings, customer
//! orders and their operations, shift calendars, users and roles, and the [`Clock`] that is the
//! only source of "now".
//!
//! This crate is pure: no IO, no system clock (see [`SystemClock`], the one exception, which
//! callers inject), no knowledge of SQL or HTTP. Validation of new records lives here too, so the
//! store, the API and the CSV importer apply the same rules and name the same fields.

pub mod alarm;
mod auth;
mod calendar;
mod clock;
mod factory;
mod ids;
pub mod oee;
mod order;
mod plan;
mod product;
pub mod random;
mod telemetry;
mod validate;
mod zone;

pub use auth::{Role, User};
pub use calendar::{Calendar, MAX_SHIFTS, Shift, Weekday};
pub use clock::{
    Clock, DateTime, DateTimeOrMillis, FastClock, ManualClock, SteadyClock, SystemClock, Timestamp,
    rfc3339_or_millis,
};
pub use factory::{Line, Machine, MachineKind, NewLine, NewMachine, NewSite, Site, parse_utc_offset};
pub use ids::{
    LineId, MachineId, MaterialId, OperationId, OrderId, ProductId, RoutingId, SiteId, UserId, VariantId,
};
pub use oee::Kpis;
pub use order::{
    FieldChange, MAX_ORDER_QUANTITY, MAX_STEP_SECONDS, MaintenanceWindow, NewMaintenanceWindow, NewOrder,
    Operation, OperationStatus, Order, OrderEvent, OrderStatus, step_work_problem,
};
pub use plan::{PlanNote, PlanStatus, PlanSummary, PlanTrigger, PlannedOperation};
pub use product::{
    BomLine, MAX_ROUTING_STEPS, Material, NewMaterial, NewProduct, NewRouting, NewVariant, Product, Routing,
    RoutingStep, Variant,
};
pub use telemetry::{
    CountRule, MachineState, ProductionRecord, Reading, StateChange, StateRule, scrap_reason,
};
pub use validate::{FieldError, Validate, check_code, check_name, fold_width, is_bidi_control, is_invisible};
pub use zone::Zone;

#[cfg(test)]
mod tests;
