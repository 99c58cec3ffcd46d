//! The station page, for the operator's tablet: one machine, its next operations from the
//! dispatch list, start and finish with good and scrap counts, and downtime reasons. Big touch
//! targets; everything an operator does here is one API call.

use axum::extract::State;
use maud::{Markup, html};
use model::{MachineId, MachineState, Operation, OrderStatus};
use serde::Deserialize;
use store::{AlarmFilter, MachineFilter, PageRequest};

use super::{Ctx, Nav, OrPage, PageResult, alarms_brief, layout, state_class};
use crate::AppState;
use crate::api::plans::{GanttItem, dispatch_queue};
use crate::auth::Need;

/// The station page's labels.
pub(crate) struct Text {
    pub(crate) title: &'static str,
    pub(crate) choose_machine: &'static str,
    pub(crate) other_machine: &'static str,
    pub(crate) current_work: &'static str,
    pub(crate) machine_alarms: &'static str,
    /// "Waits for step 2"
    pub(crate) waits_for_step: fn(u32) -> String,
    /// Beside a lot whose material is still to come: when it is expected.
    pub(crate) material_due: fn(&str) -> String,
    pub(crate) finish_running_first: &'static str,
    /// "since 10:12", after a stop's state and reason.
    pub(crate) since: fn(&str) -> String,
    /// Maintenance of the machine under way or within a day: its start, end and reason.
    pub(crate) maintenance_due: fn(&str, &str, &str) -> String,
    /// Asked before a start on a machine reported in breakdown.
    pub(crate) start_while_down: &'static str,
    /// Asked before a finish that leaves units of the lot unreported; `{n}` is how many.
    pub(crate) finish_short: &'static str,
    pub(crate) nothing_running: &'static str,
    pub(crate) next_work: &'static str,
    pub(crate) queue_empty: &'static str,
    pub(crate) no_active_plan: &'static str,
    pub(crate) finish: &'static str,
    pub(crate) counted: &'static str,
    pub(crate) finish_hint: &'static str,
    /// Why the units counted as scrap were scrapped (optional).
    pub(crate) scrap_reason: &'static str,
    pub(crate) stop_for_now: &'static str,
    pub(crate) stop_for_now_hint: &'static str,
    /// "part 2" of a lot the plan split
    pub(crate) part: fn(u32) -> String,
    pub(crate) planned_start: &'static str,
    pub(crate) report_stop: &'static str,
    pub(crate) report_stop_hint: &'static str,
    pub(crate) resume: &'static str,
    pub(crate) read_only: &'static str,
    pub(crate) reasons: [&'static str; 6],
    /// What the page says after each action: a start, a finish, a stop for now, a stop reported
    /// (with its reason), running again.
    pub(crate) done_started: &'static str,
    pub(crate) done_finished: &'static str,
    pub(crate) done_paused: &'static str,
    pub(crate) done_stop: fn(&str) -> String,
    pub(crate) done_resumed: &'static str,
}

/// The stop reasons offered, as (state, reason stored in English so the Pareto groups them). A
/// tool change is set-up work of minutes, not a breakdown: as `down` it would make the re-planner
/// move the machine's work back by a whole expected repair.
const REASONS: [(MachineState, &str); 6] = [
    (MachineState::Down, "breakdown"),
    (MachineState::Setup, "tool change"),
    (MachineState::Idle, "waiting for material"),
    (MachineState::Idle, "no operator"),
    (MachineState::Setup, "changeover"),
    (MachineState::PlannedStop, "planned maintenance"),
];

pub(crate) const EN: Text = Text {
    title: "Station",
    choose_machine: "Choose your machine",
    other_machine: "Another machine",
    current_work: "Running now",
    machine_alarms: "Open alarms on this machine",
    waits_for_step: |step| format!("Waits for step {step}"),
    material_due: |at| format!("Material due {at}"),
    finish_running_first: "Finish the running lot first",
    since: |at| format!("since {at}"),
    maintenance_due: |start, end, reason| format!("Maintenance planned {start} – {end}: {reason}"),
    start_while_down: "This machine is reported in breakdown. Starting the lot reports it running again. Start?",
    finish_short: "Not counted: {n} of the lot. Finish anyway? They will not be made: “Stop for now” keeps them for later.",
    nothing_running: "Nothing is running on this machine.",
    next_work: "Next from the dispatch list",
    queue_empty: "The dispatch list for this machine is empty.",
    no_active_plan: "No plan is active, so there is no dispatch list yet.",
    finish: "Finish",
    counted: "Counted so far",
    finish_hint: "Finish with the units not counted yet: the rest of the lot is filled in.",
    scrap_reason: "Scrap reason",
    stop_for_now: "Stop for now",
    stop_for_now_hint: "When the rest of the lot is made later (the plan splits it into parts, or the shift ends), stop for now with the units made since the last count: what is left goes back to the dispatch list.",
    part: |part| format!("part {part}"),
    planned_start: "Planned start",
    report_stop: "Report a stop",
    report_stop_hint: "Tap the reason the machine stopped; tap “Running again” when it restarts.",
    resume: "Running again",
    read_only: "Your role may look at this page but not report from it.",
    reasons: [
        "Breakdown",
        "Tool change",
        "Waiting for material",
        "No operator",
        "Changeover",
        "Planned maintenance",
    ],
    done_started: "Lot started.",
    done_finished: "Lot finished.",
    done_paused: "Stopped for now; what is left is back on the dispatch list.",
    done_stop: |reason| format!("Stop reported: {reason}."),
    done_resumed: "Running again.",
};

pub(crate) const ZH: Text = Text {
    title: "工位",
    choose_machine: "選擇你的機器",
    other_machine: "其他機器",
    current_work: "正在生產",
    machine_alarms: "本機未完結警報",
    waits_for_step: |step| format!("等待第 {step} 步完成"),
    material_due: |at| format!("物料預計 {at} 到"),
    finish_running_first: "請先完成正在生產的批次",
    since: |at| format!("自 {at} 起"),
    maintenance_due: |start, end, reason| format!("已計劃保養 {start} – {end}：{reason}"),
    start_while_down: "此機器已報告故障。開始此批會把機器報告為恢復運行。確定開始？",
    finish_short: "此批尚有 {n} 件未計數。仍要完成？這些不會再生產；按「暫停此批」可留待稍後。",
    nothing_running: "此機器沒有正在進行的工序。",
    next_work: "派工清單上的下一項",
    queue_empty: "此機器的派工清單是空的。",
    no_active_plan: "尚未發佈排程，暫無派工清單。",
    finish: "完成",
    counted: "已計數",
    finish_hint: "完成時只填尚未計數的數量：已預填此批的餘數。",
    scrap_reason: "廢品原因",
    stop_for_now: "暫停此批",
    stop_for_now_hint: "未做完但要停下（例如換更或排程分段）：填上次計數後做好的數量，按「暫停此批」；未做的數量會回到派工清單。",
    part: |part| format!("第 {part} 段"),
    planned_start: "計劃開始",
    report_stop: "報告停機",
    report_stop_hint: "按停機原因；機器恢復運行時按「恢復運行」。",
    resume: "恢復運行",
    read_only: "你的角色可以查看此頁，但不能在此報告。",
    reasons: ["故障", "換刀", "等待物料", "沒有操作員", "換線", "計劃保養"],
    done_started: "此批已開始。",
    done_finished: "此批已完成。",
    done_paused: "已暫停此批，餘數已回到派工清單。",
    done_stop: |reason| format!("已報告停機：{reason}。"),
    done_resumed: "已恢復運行。",
};

/// The translated name of a stop reason the station offers (they are stored in English).
pub(crate) fn reason_label(t: &super::Text, reason: &str) -> Option<&'static str> {
    REASONS.iter().position(|(_, r)| *r == reason).map(|index| t.station_page.reasons[index])
}

/// How many queued operations are shown after the running ones.
const NEXT_SHOWN: usize = 6;

/// How many of a machine's open alarms the station shows, newest first.
const ALARMS_SHOWN: u32 = 5;

#[derive(Default, Deserialize)]
pub(crate) struct StationQuery {
    machine: Option<i64>,
}

/// `GET /station`: the machine picker, or one machine's station.
pub(crate) async fn page(
    ctx: Ctx,
    State(state): State<AppState>,
    super::PageQuery(query): super::PageQuery<StationQuery>,
) -> PageResult {
    let t = ctx.t;
    let store = &state.store;
    let changes = store.current_states(ctx.now).or_page(&ctx)?;
    let states: std::collections::HashMap<MachineId, MachineState> =
        changes.iter().map(|c| (c.machine, c.state)).collect();
    let Some(id) = query.machine else {
        // Someone bound to a site reports at its machines only, so the others are not offered.
        let filter = MachineFilter { site: ctx.user.site_id, ..MachineFilter::IN_SERVICE };
        let machines =
            store.machines(&filter, PageRequest { after: None, limit: 10_000 }).or_page(&ctx)?.items;
        let labels = super::machine_labels(store, &machines);
        let body = html! {
            div.station {
                h1 { (t.station_page.choose_machine) }
                div.machines data-live {
                    @for machine in &machines {
                        @let state = states.get(&machine.id).copied().unwrap_or(MachineState::Offline);
                        a.button.tile.(state_class(state)) href={ "/station?machine=" (machine.id.0) }
                            data-machine-id=(machine.id.0) {
                            span { strong { (labels[&machine.id]) } " " span.badge data-state-label { (t.state(state)) } }
                            // Operators know a machine by its name more than by its code.
                            @if machine.name != machine.code {
                                div.name title=(machine.name) { (machine.name) }
                            }
                        }
                    }
                }
            }
        };
        return Ok(layout(&ctx, Nav::Station, t.station_page.title, body));
    };
    let machine = store.machine(MachineId(id)).or_page(&ctx)?;
    let ctx = ctx.at_site(store, machine.site_id);
    if let Some(at) = machine.retired_at {
        let body = html! {
            div.station {
                h1 { span.code { (machine.code) } " " (machine.name) }
                p.notice role="note" data-testid="retired" {
                    (t.machine_page.retired.replace("{date}", &ctx.time(at)))
                }
                p { a href={ "/machines/" (machine.id.0) } { (t.machine_page.title) " " (machine.code) } }
            }
        };
        return Ok(layout(&ctx, Nav::Station, t.station_page.title, body));
    }
    let dispatch = dispatch_queue(store, machine.id).or_page(&ctx)?;
    // Maintenance under way or within a day, so nobody starts what it would cut short.
    let maintenance = store
        .maintenance(Some(machine.id), model::oee::unix_ms(ctx.now))
        .or_page(&ctx)?
        .into_iter()
        .find(|window| window.start < ctx.now + time::Duration::days(1));
    // The operator at the machine sees its hazards first.
    let filter = AlarmFilter { open: Some(true), machine: Some(machine.id), ..AlarmFilter::default() };
    let alarms = store.alarms(&filter, PageRequest { after: None, limit: ALARMS_SHOWN }).or_page(&ctx)?.items;
    let machines = std::collections::HashMap::from([(machine.id, &machine)]);
    let labels = std::collections::HashMap::from([(machine.id, machine.code.clone())]);
    let mut running: Vec<(GanttItem, Operation)> = Vec::new();
    let mut next = Vec::new();
    let scrap_reasons = store.scrap_reasons_used(machine.id, 30).or_page(&ctx)?;
    let running_now = store.running_operations().or_page(&ctx)?;
    // How many parts of each lot this machine's list holds: a lot the plan split is worked a
    // part at a time, stopping for now after each but the last.
    let mut parts: std::collections::HashMap<model::OperationId, u32> = std::collections::HashMap::new();
    for item in &dispatch.queue {
        *parts.entry(item.operation.operation_id).or_default() += 1;
    }
    let split =
        |item: &GanttItem| item.operation.part > 0 || parts.get(&item.operation.operation_id) > Some(&1);
    for item in dispatch.queue {
        let operation = store.operation(item.operation.operation_id).or_page(&ctx)?;
        if operation.status == OrderStatus::Running {
            // One panel per running operation, for its whole lot, however many parts the plan
            // split it into.
            if operation.machine_id == Some(machine.id)
                && !running.iter().any(|(shown, _)| shown.operation.operation_id == operation.id)
            {
                running.push((item, operation));
            }
        } else if next.len() < NEXT_SHOWN {
            let blocker = start_blocker(store, &operation, machine.id, &running_now).or_page(&ctx)?;
            // Material still to come is said beside the start (it may be there early).
            let material =
                store.order(operation.order_id).or_page(&ctx)?.material_ready.filter(|at| *at > ctx.now);
            next.push((item, blocker, material));
        }
    }
    // A lot running here that the active plan has on another machine (started elsewhere than
    // planned) shows here too, so it is finished or stopped where it runs.
    for operation in running_now.iter().filter(|op| op.machine_id == Some(machine.id)) {
        if !running.iter().any(|(shown, _)| shown.operation.operation_id == operation.id) {
            let item = crate::api::plans::unplanned_item(store, operation.clone(), machine.id, ctx.now)
                .or_page(&ctx)?;
            running.push((item, operation.clone()));
        }
    }
    let state = states.get(&machine.id).copied().unwrap_or(MachineState::Offline);
    // A stopped machine's state, why (as the station's buttons say it, or as it was reported) and
    // since when.
    let stopped = changes
        .iter()
        .find(|c| {
            c.machine == machine.id
                && matches!(c.state, MachineState::Down | MachineState::PlannedStop | MachineState::Setup)
        })
        .map(|c| {
            let reason =
                c.reason.as_deref().filter(|r| !r.is_empty()).map(|r| reason_label(t, r).unwrap_or(r));
            (c.state, reason, c.at)
        });
    let may_report = ctx.may_at(Need::Report, machine.site_id);
    let s = t.station_page;
    let body = html! {
        div.station {
            div.toolbar data-live {
                h1 data-machine-id=(machine.id.0) {
                    (machine.code) " · " (machine.name) " "
                    span.badge.(state_class(state)) data-state-label data-testid="station-state" { (t.state(state)) }
                }
                a.button href="/station" { (s.other_machine) }
            }
            @if !may_report { p.muted { (s.read_only) } }
            @if let Some(window) = &maintenance {
                p.notice role="note" data-testid="maintenance-due" {
                    ((s.maintenance_due)(&ctx.short_time(window.start), &ctx.short_time(window.end), &window.reason))
                }
            }
            section.panel #station-alarms aria-labelledby="station-alarms-heading" data-refresh-on="alarm" data-announce
                hidden[alarms.is_empty()] {
                h2 #station-alarms-heading { (s.machine_alarms) }
                (alarms_brief(&ctx, &alarms, &machines, &labels))
            }
            // Live: what runs and what is next change as the machine reports (a section with a
            // field being edited is left alone, so an operator's entry is not overwritten).
            // Coloured by the machine's state: a lot in progress on a stopped machine is not green.
            section.panel.(state_class(state)) #current-work aria-labelledby="current-heading" data-refresh-on="production plan machine_state"
                data-refresh-machine=(machine.id.0) {
                h2 #current-heading { (s.current_work) }
                @if let Some((state, reason, since)) = stopped {
                    p.stopped.(state_class(state)) data-testid="station-stop" {
                        strong { (t.state(state)) }
                        @if let Some(reason) = reason { (t.colon) (reason) }
                        " · " ((s.since)(&ctx.short_time(since)))
                    }
                }
                @if running.is_empty() { p.muted { (s.nothing_running) } }
                @for (item, lot) in &running { (current(&ctx, item, lot, split(item), may_report)) }
                @if may_report && !running.is_empty() {
                    datalist #scrap-reasons { @for reason in &scrap_reasons { option value=(reason); } }
                }
            }
            // Also drawn again when the machine's state changes: a start on a machine in
            // breakdown asks first.
            section.panel #next-work aria-labelledby="next-heading" data-refresh-on="plan production machine_state"
                data-refresh-machine=(machine.id.0) {
                h2 #next-heading { (s.next_work) }
                @if dispatch.plan_id.is_none() {
                    p.muted { (s.no_active_plan) }
                } @else if next.is_empty() {
                    p.muted { (s.queue_empty) }
                } @else {
                    table.queue {
                        thead { tr {
                            th { (t.order) } th { (t.operation) } th { (t.product_variant) } th.num { (t.quantity) }
                            th { (s.planned_start) } th { span.visually-hidden { (t.actions) } }
                        } }
                        tbody {
                            @for (item, blocker, material) in &next {
                                tr.late[item.late] data-testid="next-operation" {
                                    td.nw id={ "lot-" (item.operation.operation_id.0) "-" (item.operation.part) } { (item.order_number) @if item.late { " " span.badge.state-down { (t.late) } } }
                                    td {
                                        (item.operation_name)
                                        @if split(item) { " · " span.muted { ((s.part)(item.operation.part + 1)) } }
                                    }
                                    td { (item.product) }
                                    // The labels head the values where a phone stacks the row.
                                    td.num data-label=(t.quantity) { (item.operation.quantity) }
                                    td data-label=(s.planned_start) { (ctx.short_time(item.operation.start)) }
                                    td {
                                        @if let Some(material) = material {
                                            span.late-text data-testid="material-due" { ((s.material_due)(&ctx.short_time(*material))) } " "
                                        }
                                        @match blocker {
                                            Some(StartBlocker::EarlierStep(before)) => {
                                                span.muted data-testid="start-blocked" { ((s.waits_for_step)(before.seq + 1)) }
                                            }
                                            Some(StartBlocker::MachineBusy) => {
                                                span.muted data-testid="start-blocked" { (s.finish_running_first) }
                                            }
                                            None if may_report => {
                                                button.primary data-action={ "POST /api/v1/operations/" (item.operation.operation_id.0) "/start" }
                                                    data-body={ "{\"machine_id\":" (machine.id.0) "}" } data-testid="start-operation"
                                                    data-done=(s.done_started)
                                                    data-confirm=[(state == MachineState::Down).then_some(s.start_while_down)]
                                                    aria-describedby={ "lot-" (item.operation.operation_id.0) "-" (item.operation.part) } {
                                                    (t.start)
                                                }
                                            }
                                            None => {}
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if may_report {
                section.panel aria-labelledby="stop-heading" {
                    h2 #stop-heading { (s.report_stop) }
                    p.muted { (s.report_stop_hint) }
                    // "Running again" is the main action only while the machine is stopped; the
                    // live stream keeps `data-state` current.
                    div.reasons data-machine-id=(machine.id.0) data-state=(state.as_str()) {
                        button.resume data-action={ "POST /api/v1/machines/" (machine.id.0) "/states" }
                            data-body="{\"state\":\"running\"}" data-then="none" data-done=(s.done_resumed) { (s.resume) }
                        @for ((state, reason), label) in REASONS.iter().zip(s.reasons) {
                            button data-action={ "POST /api/v1/machines/" (machine.id.0) "/states" }
                                data-body=(serde_json::json!({ "state": state.as_str(), "reason": reason }).to_string())
                                data-then="none" data-done=((s.done_stop)(label)) { (label) }
                        }
                    }
                }
            }
        }
    };
    Ok(layout(&ctx, Nav::Station, s.title, body))
}

/// A running operation, its units counted so far, the finish form, which offers the rest of the
/// lot (the finish adds to what the machine has counted), and the form that stops it for now,
/// which offers what is left of the plan's first part when the plan split the lot (`split`).
fn current(ctx: &Ctx, item: &GanttItem, lot: &Operation, split: bool, may_report: bool) -> Markup {
    let t = ctx.t;
    let counted = lot.good.saturating_add(lot.scrap);
    let left = lot.quantity.saturating_sub(counted);
    // The dispatch list gives the units this part has left (`dispatch_queue`).
    let part_left = item.operation.quantity;
    let this_part = (split && part_left > 0 && part_left < left).then_some(part_left);
    html! {
        div.panel.current data-testid="running-operation" {
            p {
                strong { (item.order_number) } " · " (item.operation_name) " · " (item.product) " · "
                (t.quantity) " " (lot.quantity)
            }
            @if lot.good > 0 || lot.scrap > 0 {
                p data-testid="counted" {
                    (t.station_page.counted) (t.colon) (t.good) " " (lot.good) " · " (t.scrap) " " (lot.scrap)
                }
            }
            @if may_report {
                p.muted { (t.station_page.finish_hint) }
                // A finish with fewer units than the lot has left asks first (`data-short-of`):
                // the units not counted are then never made.
                form.row-form data-action={ "POST /api/v1/operations/" (item.operation.operation_id.0) "/finish" }
                    data-done=(t.station_page.done_finished) data-reload-on-conflict
                    data-short-of=(left) data-confirm-short=(t.station_page.finish_short) {
                    // The count the offer was made from: counted meanwhile, the finish is refused
                    // and the page drawn again, rather than the units counted twice.
                    input type="hidden" name="counted_before" data-type="int" value=(counted);
                    label { (t.good) input name="good" type="number" min="0" max="10000000" required data-type="int"
                        inputmode="numeric" value=(left); }
                    label { (t.scrap) input name="scrap" type="number" min="0" max="10000000" data-type="int"
                        inputmode="numeric" value="0"; }
                    label { (t.station_page.scrap_reason) input name="scrap_reason" maxlength="200" size="14" list="scrap-reasons"
                        autocomplete="off"; }
                    button.primary type="submit" data-testid="finish-operation" { (t.station_page.finish) }
                }
                p.muted { (t.station_page.stop_for_now_hint) }
                form.row-form data-action={ "POST /api/v1/operations/" (item.operation.operation_id.0) "/pause" }
                    data-done=(t.station_page.done_paused) data-reload-on-conflict {
                    input type="hidden" name="counted_before" data-type="int" value=(counted);
                    label { (t.good) input name="good" type="number" min="0" max="10000000" required data-type="int"
                        inputmode="numeric" value=[this_part]; }
                    label { (t.scrap) input name="scrap" type="number" min="0" max="10000000" data-type="int"
                        inputmode="numeric" value="0"; }
                    label { (t.station_page.scrap_reason) input name="scrap_reason" maxlength="200" size="14" list="scrap-reasons"
                        autocomplete="off"; }
                    button type="submit" data-testid="pause-operation" { (t.station_page.stop_for_now) }
                }
            }
        }
    }
}

/// Why an operator may not start an operation on a machine now.
enum StartBlocker {
    /// A step before it in its order is not done (nor cancelled).
    EarlierStep(Operation),
    /// The machine runs another operation.
    MachineBusy,
}

/// What stops `operation` from starting on `machine`, if anything, given the operations
/// `running` now (`Store::running_operations`): plans and tracking take an order's steps in
/// routing order and one lot at a time on a machine. This is what the station shows; the store
/// enforces the same rules when a start is written (`store::OperationEvent::checked`). (Machines'
/// own reports are taken as they come.)
fn start_blocker(
    store: &store::Store,
    operation: &Operation,
    machine: MachineId,
    running: &[Operation],
) -> Result<Option<StartBlocker>, store::StoreError> {
    let steps = store.operations(operation.order_id)?;
    if let Some(before) = steps.into_iter().find(|step| {
        step.seq < operation.seq && !matches!(step.status, OrderStatus::Done | OrderStatus::Cancelled)
    }) {
        return Ok(Some(StartBlocker::EarlierStep(before)));
    }
    Ok(running
        .iter()
        .find(|r| r.machine_id == Some(machine) && r.id != operation.id)
        .map(|_| StartBlocker::MachineBusy))
}
