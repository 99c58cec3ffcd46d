//! The demo factory: a realistic Hong Kong micro-factory in Kwun Tong — CNC mills, injection
//! moulding, a laser cutter, 3D printers, assembly and QC cells — with four product families,
//! their routings and setup families, and six weeks of custom orders due over the next two weeks.
//! Deterministic: the same `now` gives the same factory.

use model::*;
use store::{PageRequest, Store, StoreError};
use time::{Duration, Time, UtcOffset};

/// What the seeder created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoSummary {
    /// Machines created.
    pub machines: usize,
    /// Product variants created.
    pub variants: usize,
    /// Orders created.
    pub orders: usize,
}

/// Seeds `store` with the demo factory if it has no site yet; returns `None` when it already had
/// data (a demo data directory is seeded only once, so restarts keep what users changed).
pub fn seed_if_empty(store: &Store, now: Timestamp) -> Result<Option<DemoSummary>, StoreError> {
    if !store.sites(PageRequest { after: None, limit: 1 })?.items.is_empty() {
        return Ok(None);
    }
    seed(store, now).map(Some)
}

/// Solver time of the demo's first plan: a short search, so the first start stays quick.
const FIRST_PLAN_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// Plans the open orders with the planner's default objective and publishes the plan, so that a
/// new demo shows a Gantt, dispatch lists, ETAs and orders at risk from its first minute and its
/// simulated machines follow a plan rather than first in, first out. `seed_if_empty`'s caller
/// runs it once, on the first start; later plans are the users' (or the automatic repairs').
pub fn publish_first_plan(
    store: &Store,
    now: Timestamp,
    threads: usize,
) -> Result<PlanSummary, crate::planning::PlanError> {
    let options = crate::planning::Options { threads, ..crate::planning::Options::default() };
    let plan =
        crate::planning::plan(store, now, crate::planning::DEFAULT_OBJECTIVE, FIRST_PLAN_TIME, &options)?;
    let created = store.create_plan(&plan)?;
    Ok(store.publish_plan(created.id, now)?)
}

struct MachineSpec {
    code: &'static str,
    name: &'static str,
    kind: MachineKind,
    line: usize,
    capabilities: &'static [&'static str],
    kw: f64,
}

const LINES: [(&str, &str); 4] = [
    ("machining", "Machining bay"),
    ("moulding", "Moulding bay"),
    ("additive", "Additive & laser"),
    ("finishing", "Assembly & QC"),
];

const MACHINES: [MachineSpec; 11] = [
    MachineSpec {
        code: "cnc-01",
        name: "DMG Mori CMX 600 V",
        kind: MachineKind::CncMill,
        line: 0,
        capabilities: &["3-axis", "aluminium", "steel"],
        kw: 15.0,
    },
    MachineSpec {
        code: "cnc-02",
        name: "Haas VF-2",
        kind: MachineKind::CncMill,
        line: 0,
        capabilities: &["3-axis", "aluminium"],
        kw: 11.2,
    },
    MachineSpec {
        code: "cnc-03",
        name: "Brother Speedio U500Xd1",
        kind: MachineKind::CncMill,
        line: 0,
        capabilities: &["5-axis", "aluminium", "steel"],
        kw: 10.5,
    },
    MachineSpec {
        code: "imm-01",
        name: "Haitian MA900 III",
        kind: MachineKind::InjectionMoulding,
        line: 1,
        capabilities: &["90t", "pc-abs"],
        kw: 18.0,
    },
    MachineSpec {
        code: "imm-02",
        name: "Engel e-mac 100",
        kind: MachineKind::InjectionMoulding,
        line: 1,
        capabilities: &["100t", "pc-abs", "pp"],
        kw: 14.5,
    },
    MachineSpec {
        code: "laser-01",
        name: "Trotec SP1500 CO2 laser",
        kind: MachineKind::LaserCutter,
        line: 2,
        capabilities: &["acrylic", "engrave", "1250x1250"],
        kw: 6.0,
    },
    MachineSpec {
        code: "p3d-01",
        name: "EOS Formiga P110 (PA12)",
        kind: MachineKind::Printer3d,
        line: 2,
        capabilities: &["sls", "pa12"],
        kw: 2.4,
    },
    MachineSpec {
        code: "p3d-02",
        name: "Bambu Lab X1E farm (8 units)",
        kind: MachineKind::Printer3d,
        line: 2,
        capabilities: &["fdm", "pla", "petg"],
        kw: 1.6,
    },
    MachineSpec {
        code: "asm-01",
        name: "Assembly cell A",
        kind: MachineKind::Assembly,
        line: 3,
        capabilities: &["screwdriving", "pcb-fit"],
        kw: 1.2,
    },
    MachineSpec {
        code: "asm-02",
        name: "Assembly cell B",
        kind: MachineKind::Assembly,
        line: 3,
        capabilities: &["screwdriving", "packing"],
        kw: 1.0,
    },
    MachineSpec {
        code: "qc-01",
        name: "CMM and vision QC",
        kind: MachineKind::Qc,
        line: 3,
        capabilities: &["cmm", "vision"],
        kw: 2.0,
    },
];

const MATERIALS: [(&str, &str); 7] = [
    ("al-6061", "Aluminium 6061-T6 bar"),
    ("pc-abs", "PC/ABS resin pellets"),
    ("pa12", "PA12 powder"),
    ("pla", "PLA filament"),
    ("acrylic-3mm", "Cast acrylic sheet 3 mm"),
    ("ss-304", "Stainless steel 304 fasteners"),
    ("carton", "Recycled carton packaging"),
];

/// A variant: code suffix, name suffix, and bill of materials (material code, kg per unit).
type VariantSpec = (&'static str, &'static str, &'static [(&'static str, f64)]);

/// A routing step: name, eligible machine codes, setup minutes, seconds per unit, setup family.
type Step = (&'static str, &'static [&'static str], u32, f64, &'static str);

struct ProductSpec {
    code: &'static str,
    name: &'static str,
    family: &'static str,
    routing: &'static [Step],
    variants: &'static [VariantSpec],
    /// Typical order quantities, smallest to largest.
    quantities: (u32, u32),
}

const PRODUCTS: [ProductSpec; 4] = [
    ProductSpec {
        code: "phone-stand",
        name: "Aluminium phone stand",
        family: "desk-accessories",
        routing: &[
            ("mill body", &["cnc-01", "cnc-02", "cnc-03"], 45, 240.0, "alu-stand"),
            ("laser engrave logo", &["laser-01"], 10, 35.0, "engrave"),
            ("fit pads and pack", &["asm-01", "asm-02"], 5, 40.0, "pack-small"),
            ("inspect", &["qc-01"], 5, 15.0, "visual"),
        ],
        variants: &[
            ("black", "black anodised", &[("al-6061", 0.32), ("carton", 0.05)]),
            ("silver", "silver anodised", &[("al-6061", 0.32), ("carton", 0.05)]),
            ("gold", "champagne gold", &[("al-6061", 0.32), ("carton", 0.05)]),
        ],
        quantities: (10, 120),
    },
    ProductSpec {
        code: "iot-enclosure",
        name: "IoT sensor enclosure",
        family: "enclosures",
        routing: &[
            ("mould shells", &["imm-01", "imm-02"], 90, 28.0, "mould-enclosure"),
            ("machine ports", &["cnc-02", "cnc-03"], 30, 60.0, "ports"),
            ("fit gasket and PCB", &["asm-01"], 10, 90.0, "pcb-fit"),
            ("inspect seal", &["qc-01"], 10, 30.0, "seal-test"),
        ],
        variants: &[
            ("s-grey", "small, grey", &[("pc-abs", 0.08), ("ss-304", 0.01), ("carton", 0.03)]),
            ("l-black", "large, black", &[("pc-abs", 0.15), ("ss-304", 0.02), ("carton", 0.04)]),
        ],
        quantities: (100, 600),
    },
    ProductSpec {
        code: "drone-frame",
        name: "Racing drone frame kit",
        family: "prototypes",
        routing: &[
            ("print frame", &["p3d-01"], 60, 420.0, "pa12"),
            ("print accessories", &["p3d-02"], 15, 300.0, "pla"),
            ("mill motor mounts", &["cnc-03"], 40, 180.0, "alu-mount"),
            ("assemble kit", &["asm-01", "asm-02"], 10, 300.0, "kit"),
            ("inspect", &["qc-01"], 10, 60.0, "visual"),
        ],
        variants: &[
            ("5in", "5 inch", &[("pa12", 0.09), ("pla", 0.03), ("al-6061", 0.04), ("carton", 0.06)]),
            ("7in", "7 inch", &[("pa12", 0.14), ("pla", 0.04), ("al-6061", 0.05), ("carton", 0.08)]),
        ],
        quantities: (5, 30),
    },
    ProductSpec {
        code: "watch-display",
        name: "Retail watch display riser",
        family: "retail-fixtures",
        routing: &[
            ("cut acrylic", &["laser-01"], 15, 120.0, "acrylic-3mm"),
            ("bond and polish", &["asm-02"], 10, 240.0, "bonding"),
            ("inspect", &["qc-01"], 5, 20.0, "visual"),
        ],
        variants: &[
            ("clear", "clear", &[("acrylic-3mm", 0.45), ("carton", 0.1)]),
            ("frosted", "frosted", &[("acrylic-3mm", 0.45), ("carton", 0.1)]),
        ],
        quantities: (10, 80),
    },
];

const CUSTOMERS: [&str; 8] = [
    "Kowloon Gadgets Ltd",
    "Harbour Audio Co",
    "Lantau Outdoor Gear",
    "Tsuen Wan Robotics",
    "Victoria Retail Group",
    "Sai Kung Design Studio",
    "Pearl Delta Electronics",
    "Mong Kok Mobile Accessories",
];

/// How many orders the demo starts with.
pub const DEMO_ORDERS: usize = 48;

/// Seeds unconditionally; see [`seed_if_empty`].
pub fn seed(store: &Store, now: Timestamp) -> Result<DemoSummary, StoreError> {
    let site = store.create_site(&NewSite {
        code: "hk-kt".into(),
        name: "Kwun Tong micro-factory".into(),
        utc_offset: None,
        time_zone: Some("Asia/Hong_Kong".into()),
    })?;
    store.set_calendar(site.id, &calendar())?;
    let mut lines = Vec::new();
    for (code, name) in LINES {
        lines
            .push(store.create_line(&NewLine { site_id: site.id, code: code.into(), name: name.into() })?.id);
    }
    let mut machines = Vec::new();
    for spec in &MACHINES {
        let machine = store.create_machine(
            &NewMachine {
                site_id: site.id,
                line_id: Some(lines[spec.line]),
                code: spec.code.into(),
                name: spec.name.into(),
                kind: spec.kind,
                capabilities: spec.capabilities.iter().map(|c| c.to_string()).collect(),
                rated_power_kw: spec.kw,
                retired: None,
            },
            now,
        )?;
        machines.push((spec.code, machine.id));
    }
    let machine_id = |code: &str| machines.iter().find(|(c, _)| *c == code).map(|(_, id)| *id);
    let mut materials = Vec::new();
    for (code, name) in MATERIALS {
        materials
            .push((code, store.create_material(&NewMaterial { code: code.into(), name: name.into() })?.id));
    }
    let material_id = |code: &str| materials.iter().find(|(c, _)| *c == code).map(|(_, id)| *id);

    let mut variants = Vec::new();
    for spec in &PRODUCTS {
        let product = store.create_product(&NewProduct {
            code: spec.code.into(),
            name: spec.name.into(),
            family: spec.family.into(),
        })?;
        let routing = store.create_routing(&NewRouting {
            code: format!("{}-r1", spec.code),
            name: format!("{} routing", spec.name),
            steps: spec
                .routing
                .iter()
                .map(|(name, eligible, setup_minutes, unit_seconds, family)| RoutingStep {
                    name: (*name).into(),
                    eligible_machines: eligible.iter().filter_map(|code| machine_id(code)).collect(),
                    setup_seconds: setup_minutes * 60,
                    unit_seconds: *unit_seconds,
                    setup_family: (*family).into(),
                })
                .collect(),
        })?;
        for (suffix, name, bom) in spec.variants {
            let variant = store.create_variant(&NewVariant {
                product_id: product.id,
                code: format!("{}-{suffix}", spec.code),
                name: format!("{}, {name}", spec.name),
                routing_id: Some(routing.id),
                bom: bom
                    .iter()
                    .filter_map(|(code, kg)| {
                        material_id(code).map(|id| BomLine { material_id: id, kg_per_unit: *kg })
                    })
                    .collect(),
            })?;
            variants.push((variant.id, spec.quantities));
        }
    }

    for rule in demo_alarm_rules() {
        store.create_alarm_rule(&rule)?;
    }
    let orders = demo_orders(&variants, now);
    let created = store.create_orders(&orders, now)?;
    // Most of the near-term work is already released to the floor; later orders wait.
    for (order, new) in created.iter().zip(&orders) {
        if new.due - now < Duration::days(9) {
            store.set_order_status_by(order.id, OrderStatus::Released, now, None)?;
        }
    }
    Ok(DemoSummary { machines: machines.len(), variants: variants.len(), orders: created.len() })
}

/// The hazards a micro-factory watches: gas near the moulding bay, overheating spindles and
/// heaters, machines stuck for long, and sensors gone quiet.
fn demo_alarm_rules() -> Vec<alarm::NewAlarmRule> {
    use model::alarm::{Condition, NewAlarmRule, Severity};
    let rule =
        |name: &str, metric: Option<&str>, condition, (for_seconds, deadband), severity| NewAlarmRule {
            name: name.into(),
            machine_id: None,
            site_id: None,
            metric: metric.map(str::to_string),
            condition,
            for_seconds,
            deadband,
            severity,
            enabled: true,
        };
    vec![
        rule("Gas leak", Some("gas_ppm"), Condition::Above { threshold: 50.0 }, (5, 5.0), Severity::Critical),
        rule(
            "Over-temperature",
            Some("temperature_c"),
            Condition::Above { threshold: 85.0 },
            (30, 2.0),
            Severity::Warning,
        ),
        // Worn bearings: running vibration grows as a bearing wears and passes 4 mm/s (between
        // ISO 10816's "restricted" and "damage" zones for small machines) in its last hours.
        rule(
            "Vibration high",
            Some("vibration_mm_s"),
            Condition::Above { threshold: 4.0 },
            (300, 0.3),
            Severity::Warning,
        ),
        rule("Stopped for long", None, Condition::StoppedLonger { minutes: 30 }, (0, 0.0), Severity::Warning),
        rule(
            "Sensor silent",
            Some("temperature_c"),
            // Ten minutes: at the demo's 60× a stall of a few real seconds (a busy mini-PC) is no
            // silent sensor.
            Condition::Stale { seconds: 600 },
            (0, 0.0),
            Severity::Info,
        ),
    ]
}

fn calendar() -> Calendar {
    // A lights-out micro-factory: three shifts every day (the simulated factory runs around the
    // clock too, so its OEE is meaningful at any hour), public holidays off.
    let every_day = Weekday::ALL.to_vec();
    Calendar {
        shifts: vec![
            Shift {
                name: "early".into(),
                days: every_day.clone(),
                start: "06:00".into(),
                end: "14:00".into(),
            },
            Shift {
                name: "late".into(),
                days: every_day.clone(),
                start: "14:00".into(),
                end: "22:00".into(),
            },
            Shift { name: "night".into(), days: every_day, start: "22:00".into(), end: "06:00".into() },
        ],
        holidays: [(2026, 12, 25), (2026, 12, 26), (2027, 1, 1), (2027, 2, 6), (2027, 2, 8), (2027, 2, 9)]
            .into_iter()
            .filter_map(|(y, m, d)| {
                time::Month::try_from(m).ok().and_then(|m| time::Date::from_calendar_date(y, m, d).ok())
            })
            .collect(),
    }
}

/// Orders due over the next fourteen days at 18:00 Hong Kong time, with quantities and priorities
/// drawn from a fixed-seed generator.
fn demo_orders(variants: &[Orderable], now: Timestamp) -> Vec<NewOrder> {
    let mut random = random::SplitMix::new(0x6d66_2026);
    (0..DEMO_ORDERS).map(|i| customer_order(&mut random, variants, now, i + 1, false)).collect()
}

/// One customer order: a random variant in a tidy batch size, due at 18:00 Hong Kong time one to
/// fourteen days on with priority 1, 3 or 5; a rush order is due the next day with priority 9.
fn customer_order(
    random: &mut random::SplitMix,
    variants: &[Orderable],
    now: Timestamp,
    serial: usize,
    rush: bool,
) -> NewOrder {
    let hong_kong = UtcOffset::from_hms(8, 0, 0).unwrap_or(UtcOffset::UTC);
    let today = now.to_offset(hong_kong).date();
    let (variant, (low, high)) = variants[random.below(variants.len() as u64) as usize];
    let quantity = low + random.below(u64::from(high - low + 1)) as u32;
    // Round to a tidy batch size, as customers order; a rush order is a small one.
    let quantity = if rush {
        low
    } else if quantity >= 100 {
        quantity / 50 * 50
    } else if quantity >= 20 {
        quantity / 5 * 5
    } else {
        quantity
    };
    let days = if rush { 1 } else { 1 + random.below(14) as i64 };
    let due = (today + Duration::days(days))
        .with_time(Time::from_hms(18, 0, 0).unwrap_or(Time::MIDNIGHT))
        .assume_offset(hong_kong);
    let priority = match (rush, random.below(10)) {
        (true, _) => 9,
        (false, 0) => 5,
        (false, 1 | 2) => 3,
        (false, _) => 1,
    };
    NewOrder {
        number: order_number(now, serial),
        customer: CUSTOMERS[random.below(CUSTOMERS.len() as u64) as usize].into(),
        variant_id: variant,
        quantity: quantity.max(1),
        due,
        priority,
        material_ready: None,
    }
}

/// A variant customers order, with its typical order quantities (smallest, largest).
type Orderable = (VariantId, (u32, u32));

/// The demo's order number `serial` of the month (Hong Kong time) of `now`: `SO-2612-049`.
fn order_number(now: Timestamp, serial: usize) -> String {
    let today = now.to_offset(UtcOffset::from_hms(8, 0, 0).unwrap_or(UtcOffset::UTC)).date();
    format!("SO-{}-{serial:03}", today.year() % 100 * 100 + today.month() as i32)
}

/// The demo's variants in the store, with their typical order quantities.
fn stored_variants(store: &Store) -> Result<Vec<Orderable>, StoreError> {
    let stored = store.variants(None, PageRequest { after: None, limit: 1000 })?.items;
    let mut out = Vec::new();
    for spec in &PRODUCTS {
        for (suffix, _, _) in spec.variants {
            let code = format!("{}-{suffix}", spec.code);
            if let Some(variant) = stored.iter().find(|v| v.code == code) {
                out.push((variant.id, spec.quantities));
            }
        }
    }
    Ok(out)
}

/// Creates and releases one newly arrived customer order (a rush order when `rush`), numbered
/// after the orders already there; `None` when the store has none of the demo's variants.
pub fn arrive(
    store: &Store,
    now: Timestamp,
    random: &mut random::SplitMix,
    rush: bool,
) -> Result<Option<Order>, StoreError> {
    let variants = stored_variants(store)?;
    if variants.is_empty() {
        return Ok(None);
    }
    let count = store.order_stats()?.by_status.iter().map(|(_, n)| *n as usize).sum::<usize>();
    let mut order = customer_order(random, &variants, now, count + 1, rush);
    // Numbers users gave their own orders may be taken: the next free one.
    for serial in count + 1..count + 1000 {
        order.number = order_number(now, serial);
        match store.create_order(&order, now) {
            Ok(created) => {
                return store.set_order_status_by(created.id, OrderStatus::Released, now, None).map(Some);
            }
            Err(StoreError::Conflict { .. }) => continue,
            Err(error) => return Err(error),
        }
    }
    Ok(None)
}

/// New customer orders keep arriving while the demo runs, `orders_per_day` per simulated day at
/// random intervals around the mean, one in six a rush order; each is released at once, and the
/// replanner is woken so a rush order is slotted in. Runs until `stop`.
pub(crate) async fn order_arrivals(
    state: crate::AppState,
    settings: crate::simulation::SimSettings,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    if settings.orders_per_day <= 0.0 || settings.speed <= 0.0 {
        return;
    }
    let mean_seconds = 86_400.0 / settings.orders_per_day / settings.speed;
    let mut random = random::SplitMix::new(settings.seed ^ 0x6f72_6465_7273);
    loop {
        let wait = std::time::Duration::from_secs_f64(mean_seconds * random.between(0.5, 1.5));
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        let rush = random.chance(1.0 / 6.0);
        let (store, now, mut draw) =
            (state.store.clone(), state.clock.now(), random::SplitMix::new(random.next_u64()));
        match tokio::task::spawn_blocking(move || arrive(&store, now, &mut draw, rush)).await {
            Ok(Ok(Some(order))) => {
                tracing::info!(order = %order.number, priority = order.priority, "demo: a new customer order arrived");
                state.wake_replanner();
            }
            Ok(Ok(None)) => return,
            Ok(Err(error)) => tracing::warn!(%error, "demo: a new order could not be stored"),
            Err(_) => return,
        }
    }
}

/// A generated high-mix factory for benchmarks and tests: `machines` machines in five kinds, eight
/// product families with routings of four to six steps (one to three eligible machines each, setup
/// families per step), a two-shift calendar (Monday to Saturday, 06:00–14:00 and 14:00–22:00), and
/// `orders` released orders with quantities of 5 to 100 due over the next three weeks (about 80%
/// of the shift capacity for 500 orders on 15 machines). The same
/// seed gives the same factory.
pub fn seed_generated(
    store: &Store,
    orders: usize,
    machines: usize,
    seed: u64,
    now: Timestamp,
) -> Result<(), StoreError> {
    let mut random = random::SplitMix::new(seed);
    let site = store.create_site(&NewSite {
        code: "gen".into(),
        name: "Generated factory".into(),
        utc_offset: Some("+08:00".into()),
        time_zone: None,
    })?;
    let days = vec![Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri, Weekday::Sat];
    store.set_calendar(
        site.id,
        &Calendar {
            shifts: vec![
                Shift {
                    name: "early".into(),
                    days: days.clone(),
                    start: "06:00".into(),
                    end: "14:00".into(),
                },
                Shift { name: "late".into(), days, start: "14:00".into(), end: "22:00".into() },
            ],
            holidays: Vec::new(),
        },
    )?;
    let kinds = [
        MachineKind::CncMill,
        MachineKind::InjectionMoulding,
        MachineKind::LaserCutter,
        MachineKind::Assembly,
        MachineKind::Qc,
    ];
    let mut by_kind: Vec<Vec<MachineId>> = vec![Vec::new(); kinds.len()];
    for i in 0..machines.max(1) {
        let kind = i % kinds.len();
        let machine = store.create_machine(
            &NewMachine {
                site_id: site.id,
                line_id: None,
                code: format!("m{i:02}"),
                name: format!("{} {}", kinds[kind].as_str(), i / kinds.len() + 1),
                kind: kinds[kind],
                capabilities: Vec::new(),
                rated_power_kw: 5.0,
                retired: None,
            },
            now,
        )?;
        by_kind[kind].push(machine.id);
    }
    let mut variants = Vec::new();
    for family in 0..8 {
        let steps = 4 + random.below(3) as usize;
        let routing = store.create_routing(&NewRouting {
            code: format!("gen-r{family}"),
            name: format!("Generated routing {family}"),
            steps: (0..steps)
                .map(|step| {
                    let kind = if step + 1 == steps {
                        kinds.len() - 1
                    } else {
                        random.below(kinds.len() as u64 - 1) as usize
                    };
                    // With fewer machines than kinds, a kind may have none: any machine will do.
                    let all: Vec<MachineId> = by_kind.iter().flatten().copied().collect();
                    let pool = if by_kind[kind].is_empty() { &all } else { &by_kind[kind] };
                    let count = (1 + random.below(3) as usize).min(pool.len());
                    let first = random.below(pool.len() as u64) as usize;
                    let eligible = (0..count).map(|k| pool[(first + k) % pool.len()]).collect::<Vec<_>>();
                    RoutingStep {
                        name: format!("step {step}"),
                        eligible_machines: eligible,
                        setup_seconds: 300 + random.below(3000) as u32,
                        unit_seconds: random.between(20.0, 180.0).round(),
                        setup_family: format!("f{}", random.below(6)),
                    }
                })
                .collect(),
        })?;
        let product = store.create_product(&NewProduct {
            code: format!("gen-p{family}"),
            name: format!("Generated product {family}"),
            family: "generated".into(),
        })?;
        let variant = store.create_variant(&NewVariant {
            product_id: product.id,
            code: format!("gen-v{family}"),
            name: format!("Generated variant {family}"),
            routing_id: Some(routing.id),
            bom: Vec::new(),
        })?;
        variants.push(variant.id);
    }
    let new_orders: Vec<NewOrder> = (0..orders)
        .map(|i| NewOrder {
            number: format!("GEN-{i:05}"),
            customer: format!("Customer {}", random.below(40)),
            variant_id: variants[random.below(variants.len() as u64) as usize],
            quantity: 5 + random.below(96) as u32,
            due: now + Duration::hours(24 + random.below(20 * 24) as i64),
            priority: 1 + random.below(5) as u8,
            // One order in five waits for material arriving within five days.
            material_ready: random.chance(0.2).then(|| now + Duration::hours(random.below(5 * 24) as i64)),
        })
        .collect();
    for order in store.create_orders(&new_orders, now)? {
        store.set_order_status_by(order.id, OrderStatus::Released, now, None)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use model::alarm::{AlarmRule, Engine, Transition};
    use sim::{Factory, Job, MachineSpec, Output, SimConfig};
    use time::macros::datetime;

    use super::*;

    /// The demo's vibration rule on the simulator's readings, on the demo's clock: it comes up
    /// before every worn-out bearing fails, on that machine, and never on a healthy one.
    #[test]
    fn the_vibration_rule_warns_before_a_bearing_fails() {
        let rules: Vec<AlarmRule> = demo_alarm_rules()
            .into_iter()
            .filter(|rule| rule.metric.as_deref() == Some("vibration_mm_s"))
            .map(|rule| AlarmRule { id: 1, rule })
            .collect();
        assert_eq!(rules.len(), 1);
        let mut engine = Engine::new(rules, &[]);
        let start = datetime!(2026-11-24 06:00 UTC);
        let specs: Vec<MachineSpec> = (0..4)
            .map(|i| MachineSpec {
                id: MachineId(i + 1),
                site: "hk".into(),
                code: format!("cnc-{i}"),
                kind: MachineKind::CncMill,
                rated_power_kw: 10.0,
                sparkplug: false,
            })
            .collect();
        // As `demo` runs it: 60 times real time, on a clock as fast, a sample every 20 s of it.
        let config = SimConfig {
            speed: 60.0,
            clock_speed: 60.0,
            sample_seconds: 1.0 / 3.0,
            breakdowns_per_hour: 0.0,
            incidents_per_hour: 0.0,
            ..SimConfig::default()
        };
        let mut factory = Factory::new(specs, config, start);
        for machine in 0..4 {
            for lot in 0..200 {
                let job = Job {
                    operation: OperationId(machine as i64 * 1000 + lot),
                    quantity: 60,
                    unit_seconds: 40.0,
                    setup_seconds: 900.0,
                    family: format!("f{}", lot % 3),
                };
                factory.enqueue(machine, job);
            }
        }
        let mut raised: Vec<(MachineId, Timestamp)> = Vec::new();
        let mut failures: Vec<(MachineId, Timestamp)> = Vec::new();
        let mut transitions = Vec::new();
        for minute in 1..=150 * 60 {
            for output in factory.advance_to(start + Duration::minutes(minute)) {
                match output {
                    Output::Reading { machine, metric, value, at } => {
                        let reading = Reading {
                            machine: MachineId(machine as i64 + 1),
                            metric: metric.into(),
                            at,
                            value,
                        };
                        engine.on_reading(&reading, &mut transitions);
                    }
                    Output::State { machine, state: MachineState::Down, reason: Some(reason), at }
                        if reason == "bearing failure" =>
                    {
                        failures.push((MachineId(machine as i64 + 1), at));
                    }
                    _ => {}
                }
            }
            for transition in transitions.drain(..) {
                if let Transition::Raise { machine, fired, .. } = transition {
                    raised.push((machine, fired));
                }
            }
        }
        assert!(failures.len() >= 3, "150 hours of running wear out some bearings: {failures:?}");
        // Each failure had a warning in the hours before it.
        for (machine, failed) in &failures {
            let lead = raised
                .iter()
                .filter(|(m, at)| m == machine && at < failed)
                .map(|(_, at)| *failed - *at)
                .min();
            assert!(
                lead.is_some_and(|lead| lead <= Duration::hours(8)),
                "no warning in the 8 hours before machine {machine:?} failed at {failed}: {lead:?}"
            );
        }
        // Each warning came from a bearing that failed within hours.
        for (machine, at) in &raised {
            let failed_within = failures
                .iter()
                .any(|(m, failed)| m == machine && failed > at && *failed - *at <= Duration::hours(8));
            assert!(failed_within, "machine {machine:?} warned at {at} without failing soon after");
        }
    }
}
