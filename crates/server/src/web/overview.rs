//! The factory overview: machines as tiles coloured by their live state, today's OEE per machine
//! and site, the active alarms and the orders the active plan finishes late.

use std::collections::HashMap;

use maud::{Markup, html};
use model::{Kpis, Machine, MachineId, MachineState, OrderStatus};
use store::{MachineFilter, PageRequest};

use super::{Ctx, Nav, OrPage, PageResult, alarms_brief, layout, percent, state_class};
use crate::AppState;
use crate::api::plans::{Eta, etas};
use crate::api::telemetry::machine_kpis;
use crate::planning::progress;
use axum::extract::State;

/// The overview's labels.
pub(crate) struct Text {
    pub(crate) title: &'static str,
    pub(crate) oee_today: &'static str,
    pub(crate) site_oee_today: &'static str,
    pub(crate) oee_shift: &'static str,
    pub(crate) site_oee_shift: &'static str,
    pub(crate) oee_over: &'static str,
    pub(crate) today: &'static str,
    pub(crate) this_shift: &'static str,
    pub(crate) running_now: &'static str,
    pub(crate) active_alarms: &'static str,
    pub(crate) no_alarms: &'static str,
    pub(crate) alarms_hint: &'static str,
    pub(crate) at_risk: &'static str,
    /// "3 open orders are past their due time and not in the active plan:"
    pub(crate) overdue_unplanned: fn(usize) -> String,
    pub(crate) at_risk_hint: &'static str,
    pub(crate) none_at_risk: &'static str,
    pub(crate) no_active_plan: &'static str,
    pub(crate) open_plan: &'static str,
    pub(crate) all_alarms: &'static str,
    /// "The 8 most urgent of 12 open alarms."
    pub(crate) shown_of: fn(usize, u64) -> String,
    pub(crate) no_machines: &'static str,
    pub(crate) behind: &'static str,
    pub(crate) to_release: &'static str,
    pub(crate) to_release_hint: &'static str,
    pub(crate) on_time: &'static str,
    pub(crate) on_time_hint: &'static str,
}

pub(crate) const EN: Text = Text {
    title: "Factory overview",
    oee_today: "OEE today",
    site_oee_today: "Site OEE today",
    oee_shift: "OEE this shift",
    site_oee_shift: "Site OEE this shift",
    oee_over: "OEE over",
    today: "Today",
    this_shift: "This shift",
    running_now: "Running now",
    active_alarms: "Open alarms",
    no_alarms: "No open alarms.",
    alarms_hint: "Most urgent first: those still holding, then those that cleared unseen.",
    at_risk: "Orders at risk",
    at_risk_hint: "Orders the active plan finishes after their due date, latest first.",
    none_at_risk: "The active plan finishes every order on time.",
    overdue_unplanned: |n| {
        if n == 1 {
            "1 open order is past its due time and not in the active plan:".to_string()
        } else {
            format!("{n} open orders are past their due time and not in the active plan:")
        }
    },
    no_active_plan: "No plan is active yet, so no order has an ETA.",
    open_plan: "Open the plan",
    all_alarms: "All alarms",
    shown_of: |shown, open| format!("The {shown} most urgent of {open} open alarms."),
    no_machines: "No machines are set up yet: sites, lines and machines are entered on the Factory page.",
    behind: "Operations behind the plan",
    to_release: "Orders to release",
    to_release_hint: "Orders not released yet that are due within 7 days, or overdue: the plan gives machine time to released orders only.",
    on_time: "On time in full, 30 days",
    on_time_hint: "Orders finished in the last 30 days by their due time and with every unit ordered, of all finished then",
};

pub(crate) const ZH: Text = Text {
    title: "工廠總覽",
    oee_today: "今日 OEE",
    site_oee_today: "廠房今日 OEE",
    oee_shift: "本更 OEE",
    site_oee_shift: "廠房本更 OEE",
    oee_over: "OEE 時段",
    today: "今日",
    this_shift: "本更",
    running_now: "運行中機器",
    active_alarms: "未完結警報",
    no_alarms: "沒有未完結的警報。",
    alarms_hint: "最緊急者在前：先列仍持續的，再列已解除但未確認的。",
    at_risk: "可能延誤的訂單",
    at_risk_hint: "現行排程預計在交期後才完成的訂單，最遲者在前。",
    none_at_risk: "現行排程可準時完成所有訂單。",
    overdue_unplanned: |n| format!("{n} 張未完成訂單已過交期，且不在現行排程中："),
    no_active_plan: "尚未發佈排程，訂單暫無預計完成時間。",
    open_plan: "開啟排程",
    all_alarms: "所有警報",
    shown_of: |shown, open| format!("顯示 {open} 個未完結警報中最緊急的 {shown} 個。"),
    no_machines: "尚未設定機器：廠房、生產線及機器在「工廠」頁輸入。",
    behind: "落後於排程的工序",
    to_release: "待下達訂單",
    to_release_hint: "尚未下達而於七天內到期（或已逾期）的訂單：排程只為已下達的訂單安排機器時間。",
    on_time: "準時足量完成（30 日）",
    on_time_hint: "近 30 日完成的訂單中，在交期或之前並以訂購數量完成的數目",
};

/// Most late orders listed.
const AT_RISK_SHOWN: usize = 15;
/// The period of the on-time delivery figure, in days.
const DELIVERY_DAYS: i64 = 30;
/// Most alarms listed (the most urgent; the count and the alarms page have them all).
const ALARMS_SHOWN: u32 = 8;

/// What the overview shows, read from the store in one go.
/// The period of the overview's OEE, `?period=`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Period {
    /// From the site's local midnight.
    #[default]
    Today,
    /// From the start of the shift in progress by the site's calendar (between shifts, the last
    /// one that ended).
    Shift,
}

/// The overview's query string.
#[derive(Default, serde::Deserialize)]
pub(crate) struct OverviewQuery {
    period: Option<Period>,
}

pub(crate) struct Overview {
    period: Period,
    machines: Vec<Machine>,
    /// Each machine's name: its code, with its site where another site has the same code.
    labels: HashMap<MachineId, String>,
    states: HashMap<MachineId, (MachineState, model::Timestamp)>,
    kpis: HashMap<MachineId, Kpis>,
    /// Each site's name, the name of its shift (with [`Period::Shift`]) and its KPIs.
    sites: Vec<(String, Option<String>, Kpis)>,
    alarms: Vec<model::alarm::Alarm>,
    /// How many alarms are open; `alarms` holds the most urgent of them.
    open_alarms: u64,
    /// How the orders finished in the last [`DELIVERY_DAYS`] days kept their due dates.
    deliveries: store::Deliveries,
    late: Option<Vec<Eta>>,
    /// Open orders past their due time that the active plan does not hold (entered or released
    /// since it was made), most overdue first; every such order without an active plan.
    overdue: Vec<model::Order>,
    /// Lots behind the active plan (see `plan::behind`), when a plan is active.
    behind: Option<usize>,
    /// Orders not released that are due within [`super::orders::RELEASE_HORIZON`] (or overdue).
    to_release: u64,
}

/// Reads everything the overview shows. "Today" is each site's own day, from its local midnight;
/// "this shift" the shift of its own calendar.
pub(crate) fn gather(store: &store::Store, now: model::Timestamp, period: Period) -> store::Result<Overview> {
    let now_ms = model::oee::unix_ms(now);
    let machines =
        store.machines(&MachineFilter::IN_SERVICE, PageRequest { after: None, limit: 10_000 })?.items;
    let states = store.current_states(now)?.into_iter().map(|c| (c.machine, (c.state, c.at))).collect();
    let mut by_site: Vec<(model::SiteId, Vec<Machine>)> = Vec::new();
    for machine in &machines {
        match by_site.iter_mut().find(|(site, _)| *site == machine.site_id) {
            Some((_, list)) => list.push(machine.clone()),
            None => by_site.push((machine.site_id, vec![machine.clone()])),
        }
    }
    let mut sites = Vec::with_capacity(by_site.len());
    let mut kpis = HashMap::with_capacity(machines.len());
    for (site, list) in by_site {
        let site = store.site(site)?;
        let zone = site.zone();
        let (from_ms, shift) = match period {
            Period::Today => (model::oee::unix_ms(zone.day_start(now)), None),
            Period::Shift => match crate::api::telemetry::shift_of(
                store,
                site.id,
                crate::api::telemetry::ShiftChoice::Current,
                now_ms,
            )? {
                Some(((start, _), name)) => (start, Some(name)),
                // No shift in the week before: the day, unnamed.
                None => (model::oee::unix_ms(zone.day_start(now)), Some(String::new())),
            },
        };
        let rows = machine_kpis(store, list, from_ms, now_ms.max(from_ms + 1), now_ms)?;
        sites.push((site.name, shift, Kpis::combine(rows.iter().map(|row| &row.kpis))));
        kpis.extend(rows.into_iter().map(|row| (row.machine_id, row.kpis)));
    }
    let (alarms, open_alarms) = store.most_urgent_alarms(ALARMS_SHOWN)?;
    let mut planned = std::collections::HashSet::new();
    let (late, behind) = match store.active_plan()? {
        Some(plan) => {
            let operations = store.plan_operations(plan.id, None)?;
            let all = etas(store, &operations)?;
            planned.extend(all.iter().map(|e| e.order_id));
            // A plan made before an order finished or was cancelled still holds it: such an
            // order is no longer at risk, whatever that plan expected.
            let mut late: Vec<Eta> = all
                .into_iter()
                .filter(|e| e.late && !matches!(e.status, OrderStatus::Done | OrderStatus::Cancelled))
                .collect();
            late.sort_by_key(|e| std::cmp::Reverse(e.eta - e.due));
            let parts = progress::with_statuses(store, plan.id, &operations)?;
            (Some(late), Some(progress::behind_lots(&parts, now, super::plan::BEHIND_GRACE).len()))
        }
        None => (None, None),
    };
    let to_release = store.count_orders(&store::OrderFilter {
        status: Some(OrderStatus::Planned),
        due_before: Some(now + super::orders::RELEASE_HORIZON),
        ..Default::default()
    })?;
    // By open status, so the done orders of the past (all due before now) do not crowd them out.
    let mut overdue = Vec::new();
    for status in [OrderStatus::Planned, OrderStatus::Released, OrderStatus::Running] {
        let past_due =
            store::OrderFilter { status: Some(status), due_before: Some(now), ..Default::default() };
        let page = store.orders(&past_due, PageRequest { after: None, limit: 500 })?;
        overdue.extend(page.items.into_iter().filter(|o| !planned.contains(&o.id)));
    }
    overdue.sort_by_key(|o| o.due);
    let deliveries = store.deliveries(now - time::Duration::days(DELIVERY_DAYS))?;
    Ok(Overview {
        period,
        labels: super::machine_labels(store, &machines),
        machines,
        states,
        kpis,
        sites,
        alarms,
        open_alarms,
        deliveries,
        late,
        overdue,
        behind,
        to_release,
    })
}

/// `GET /`: the overview.
pub(crate) async fn page(
    ctx: Ctx,
    State(state): State<AppState>,
    super::PageQuery(query): super::PageQuery<OverviewQuery>,
) -> PageResult {
    let data = gather(&state.store, ctx.now, query.period.unwrap_or_default()).or_page(&ctx)?;
    Ok(layout(&ctx, Nav::Overview, ctx.t.overview.title, render(&ctx, &data)))
}

/// The overview's HTML.
pub(crate) fn render(ctx: &Ctx, data: &Overview) -> Markup {
    let t = ctx.t;
    let o = t.overview;
    let running = data.states.values().filter(|(state, _)| *state == MachineState::Running).count();
    let machines: HashMap<MachineId, &Machine> = data.machines.iter().map(|m| (m.id, m)).collect();
    html! {
        h1 { (o.title) }
        nav.presets aria-label=(o.oee_over) data-testid="overview-period" {
            @for (period, href, label) in [(Period::Today, "/", o.today), (Period::Shift, "/?period=shift", o.this_shift)] {
                a href=(href) aria-current=[(period == data.period).then_some("true")] {
                    (label)
                    // Which day: the reader's site's (the first site's for people of every site).
                    @if period == Period::Today {
                        @let today = ctx.zone.local(ctx.now);
                        " " span.muted data-testid="today-date" { ((t.month_day)(u8::from(today.month()), today.day())) }
                    }
                }
            }
        }
        div.kpis #overview-kpis data-refresh-on="machine_state alarm production" {
            @for (site, shift, kpis) in &data.sites {
                div.kpi {
                    span.value { (percent(t, kpis.oee)) }
                    span.label {
                        @match shift {
                            None => { (o.site_oee_today) }
                            Some(name) if name.is_empty() => { (o.site_oee_shift) }
                            Some(name) => { (o.site_oee_shift) (ctx.t.space_lparen) (name) (ctx.t.rparen) }
                        }
                        " · " (site)
                    }
                }
            }
            div.kpi { span.value { (running) " / " (data.machines.len()) } span.label { (o.running_now) } }
            div.kpi.bad[!data.alarms.is_empty()] {
                span.value { (data.open_alarms) } span.label { (o.active_alarms) }
            }
            @let at_risk = data.late.as_ref().map_or(0, Vec::len) + data.overdue.len();
            div.kpi.bad[at_risk > 0] {
                span.value { (at_risk) } span.label { (o.at_risk) }
            }
            @let deliveries = data.deliveries;
            div.kpi title=(o.on_time_hint) data-testid="on-time-kpi" {
                span.value {
                    (percent(t, (deliveries.finished > 0).then(|| deliveries.on_time as f64 / deliveries.finished as f64)))
                }
                span.label { (o.on_time) " · " (deliveries.on_time) " / " (deliveries.finished) }
            }
            @if let Some(behind) = data.behind {
                a.kpi.bad[behind > 0] href="/plan#behind-heading" data-testid="behind-kpi" {
                    span.value { (behind) } span.label { (o.behind) }
                }
            }
            a.kpi.bad[data.to_release > 0] href="/orders?show=to_release&sort=due" title=(o.to_release_hint) data-testid="to-release-kpi" {
                span.value { (data.to_release) } span.label { (o.to_release) }
            }
        }
        div.grid2 {
            section.panel aria-labelledby="machines-heading" {
                h2 #machines-heading { (t.machines) }
                @if data.machines.is_empty() { p.muted { a href="/factory" { (o.no_machines) } } }
                // States change in place; today's OEE is fetched again as units are counted.
                div.tiles #overview-tiles data-live data-refresh-on="production plan" {
                    @for machine in &data.machines {
                        (tile(ctx, machine, &data.labels, data.states.get(&machine.id).copied(), data.kpis.get(&machine.id), data.period))
                    }
                }
            }
            div {
                section.panel #overview-alarms aria-labelledby="alarms-heading" data-refresh-on="alarm" data-announce {
                    h2 #alarms-heading { (o.active_alarms) }
                    @if data.alarms.is_empty() {
                        p.muted { (o.no_alarms) }
                    } @else {
                        p.muted { (o.alarms_hint) }
                        (alarms_brief(ctx, &data.alarms, &machines, &data.labels))
                        @if (data.alarms.len() as u64) < data.open_alarms {
                            p.muted { ((o.shown_of)(data.alarms.len(), data.open_alarms)) }
                        }
                    }
                    p { a href="/alarms" { (o.all_alarms) } }
                }
                section.panel aria-labelledby="risk-heading" {
                    h2 #risk-heading { (o.at_risk) }
                    @match &data.late {
                        None => { p.muted { (o.no_active_plan) " " a href="/plan" { (o.open_plan) } } }
                        Some(late) if late.is_empty() && data.overdue.is_empty() => { p.muted { (o.none_at_risk) } }
                        Some(late) if late.is_empty() => {}
                        Some(late) => {
                            p.muted { (o.at_risk_hint) }
                            table {
                                thead { tr { th { (t.order) } th { (t.due) } th { (t.eta) } th.num { (t.lateness) } } }
                                tbody {
                                    @for eta in late.iter().take(AT_RISK_SHOWN) {
                                        tr.late {
                                            td { a href={ "/orders/" (eta.order_id.0) } { (eta.number) } }
                                            td { (ctx.short_time(eta.due)) }
                                            td { (ctx.short_time(eta.eta)) }
                                            td.num { (ctx.duration((eta.eta - eta.due).whole_seconds())) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    @if !data.overdue.is_empty() {
                        p data-testid="overdue-unplanned" {
                            span.late-text { ((o.overdue_unplanned)(data.overdue.len())) } " "
                            @for (index, order) in data.overdue.iter().take(AT_RISK_SHOWN).enumerate() {
                                @if index > 0 { ", " }
                                a href={ "/orders/" (order.id.0) } { (order.number) }
                                (ctx.t.space_lparen) (ctx.short_time(order.due)) (ctx.t.rparen)
                            }
                            @if data.overdue.len() > AT_RISK_SHOWN { ", …" }
                        }
                    }
                }
            }
        }
    }
}

fn tile(
    ctx: &Ctx,
    machine: &Machine,
    labels: &HashMap<MachineId, String>,
    state: Option<(MachineState, model::Timestamp)>,
    kpis: Option<&Kpis>,
    period: Period,
) -> Markup {
    let t = ctx.t;
    let (current, since) = match state {
        Some((state, at)) => (state, Some(at)),
        None => (MachineState::Offline, None),
    };
    html! {
        a.tile.(state_class(current)) href={ "/machines/" (machine.id.0) } data-machine-id=(machine.id.0)
            data-state=(current.as_str()) data-testid="machine-tile" {
            div.code { (labels.get(&machine.id).unwrap_or(&machine.code)) }
            div.name title=(machine.name) { (machine.name) }
            div.row {
                span.badge data-state-label { (t.state(current)) }
                span.muted data-since { (since.map(|at| ctx.short_time(at)).unwrap_or_default()) }
            }
            div.row {
                span.muted { (if period == Period::Shift { t.overview.oee_shift } else { t.overview.oee_today }) }
                strong { (percent(t, kpis.and_then(|k| k.oee))) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::api::plans::gantt_lanes;

    #[test]
    fn the_overview_counts_the_work_behind_the_active_plan() {
        let now = datetime!(2026-11-24 09:00 +08:00);
        let store = store::Store::open_in_memory().unwrap();
        crate::demo::seed(&store, now).unwrap();
        assert_eq!(
            gather(&store, now, Period::Today).unwrap().behind,
            None,
            "no active plan, nothing to be behind"
        );
        let options = crate::planning::Options::default();
        let plan = crate::planning::plan(
            &store,
            now,
            crate::planning::DEFAULT_OBJECTIVE,
            std::time::Duration::ZERO,
            &options,
        )
        .unwrap();
        let plan = store.create_plan(&plan).unwrap();
        store.publish_plan(plan.id, now).unwrap();
        assert_eq!(
            gather(&store, now, Period::Today).unwrap().behind,
            Some(0),
            "a fresh plan starts nothing in the past"
        );
        // Three hours on and nothing started: every lot the plan started by then is behind.
        let later = now + time::Duration::hours(3);
        let lanes = gantt_lanes(&store, plan.id).unwrap();
        let due: std::collections::HashSet<_> = lanes
            .iter()
            .flat_map(|lane| &lane.items)
            .filter(|item| later - item.operation.setup_start > time::Duration::minutes(15))
            .map(|item| item.operation.operation_id)
            .collect();
        assert!(!due.is_empty());
        assert_eq!(gather(&store, later, Period::Today).unwrap().behind, Some(due.len()));
    }

    #[test]
    fn orders_not_released_within_a_week_of_their_due_time_are_counted() {
        let now = datetime!(2026-11-24 09:00 +08:00);
        let store = store::Store::open_in_memory().unwrap();
        // The demo releases what is due within 9 days: nothing is left to release yet.
        crate::demo::seed(&store, now).unwrap();
        assert_eq!(gather(&store, now, Period::Today).unwrap().to_release, 0);
        let all = PageRequest { after: None, limit: 10_000 };
        let unreleased = |at: model::Timestamp| {
            let orders = store.orders(&Default::default(), all).unwrap().items;
            let due = orders
                .iter()
                .filter(|o| o.status == OrderStatus::Planned && o.due < at + time::Duration::days(7));
            due.map(|o| o.id).collect::<Vec<_>>()
        };
        // Four days on, those due within 7 days of then are to release (the demo has some).
        let later = now + time::Duration::days(4);
        let to_release = unreleased(later);
        assert!(!to_release.is_empty());
        assert_eq!(gather(&store, later, Period::Today).unwrap().to_release, to_release.len() as u64);
        // Released, an order is off the list.
        store.set_order_status(to_release[0], OrderStatus::Released).unwrap();
        assert_eq!(gather(&store, later, Period::Today).unwrap().to_release, to_release.len() as u64 - 1);
    }

    #[test]
    fn each_site_s_today_begins_at_its_own_midnight() {
        // 09:00 in Hong Kong is 20:00 the day before in New York.
        let now = datetime!(2026-11-24 09:00 +08:00);
        let store = store::Store::open_in_memory().unwrap();
        let mut machines = Vec::new();
        for (code, zone) in [("hk", "Asia/Hong_Kong"), ("ny", "America/New_York")] {
            let site = model::NewSite {
                code: code.into(),
                name: code.into(),
                utc_offset: None,
                time_zone: Some(zone.into()),
            };
            let site = store.create_site(&site).unwrap();
            let machine = model::NewMachine {
                site_id: site.id,
                line_id: None,
                code: "m".into(),
                name: "M".into(),
                kind: model::MachineKind::Other,
                capabilities: vec![],
                rated_power_kw: 0.0,
                retired: None,
            };
            let machine = store.create_machine(&machine, now).unwrap().id;
            // Running since 08:00 New York time on the 23rd, ten units at 10:00 there: today
            // in New York, yesterday in Hong Kong (22:00 on the 23rd).
            let change = model::StateChange {
                machine,
                at: datetime!(2026-11-23 08:00 -05:00),
                state: MachineState::Running,
                reason: None,
            };
            store.record_state(&change).unwrap();
            store
                .record_production(&model::ProductionRecord {
                    machine,
                    at: datetime!(2026-11-23 10:00 -05:00),
                    operation: None,
                    good: 10,
                    scrap: 0,
                    ideal_unit_seconds: 60.0,
                    scrap_reason: None,
                })
                .unwrap();
            machines.push(machine);
        }
        let overview = gather(&store, now, Period::Today).unwrap();
        assert_eq!(overview.kpis[&machines[0]].produced, 0, "Hong Kong's day began at 16:00 UTC");
        assert_eq!(overview.kpis[&machines[1]].produced, 10, "New York's at 05:00 UTC on the 23rd");
        assert_eq!(overview.kpis[&machines[1]].planned_busy_seconds, 12.0 * 3600.0);
        // This shift: Hong Kong's day shift began at 07:00; New York's calendar has no shifts, so
        // its shift is its day.
        let day = model::Shift {
            name: "day".into(),
            days: model::Weekday::ALL.to_vec(),
            start: "07:00".into(),
            end: "19:00".into(),
        };
        let hk = store.machine(machines[0]).unwrap().site_id;
        store.set_calendar(hk, &model::Calendar { shifts: vec![day], holidays: vec![] }).unwrap();
        let overview = gather(&store, now, Period::Shift).unwrap();
        assert_eq!(overview.kpis[&machines[0]].planned_busy_seconds, 2.0 * 3600.0);
        assert_eq!(overview.kpis[&machines[1]].planned_busy_seconds, 12.0 * 3600.0);
        let shifts: Vec<_> =
            overview.sites.iter().map(|(site, shift, _)| (site.as_str(), shift.as_deref())).collect();
        assert_eq!(shifts, [("hk", Some("day")), ("ny", Some(""))]);
    }
}
