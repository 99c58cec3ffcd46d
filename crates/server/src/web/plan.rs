//! The plan page: the Gantt chart per machine, re-plan and publish with the KPI comparison, and
//! the diff after a repair.
//!
//! The Gantt is one inline SVG written by hand (not through the template engine) so that a plan
//! of thousands of operations stays small and quick: per operation one link with a tooltip, one
//! bar, a hatched setup part when there is one, a label and, for late orders, an end marker.
//! Every element the zoom moves carries `data-x0`/`data-x1` in minutes from the chart's origin
//! and is placed exactly as `zoomGantt` in `app.js` would place it at zoom 1.

use std::collections::HashMap;
use std::fmt::{self, Write as _};

use axum::extract::State;
use maud::{Markup, PreEscaped, html};
use model::oee::unix_ms;
use model::{MachineId, OrderId, OrderStatus, PlanStatus, PlanSummary, PlanTrigger, Timestamp, Zone};
use serde::Deserialize;
use store::PageRequest;

use super::{Ctx, Nav, OrPage, PageResult, format_local, layout, percent};
use crate::AppState;
use crate::api::plans::{GanttItem, GanttLane, PlanDetail, Utilisation, detail, gantt_lanes};
use crate::auth::Need;
use crate::error::ApiError;
use crate::planning::progress;

/// The plan page's labels.
pub(crate) struct Text {
    pub(crate) title: &'static str,
    pub(crate) plan: &'static str,
    pub(crate) no_plan: &'static str,
    pub(crate) no_plan_reader: &'static str,
    /// Draft, active, superseded.
    pub(crate) statuses: [&'static str; 3],
    pub(crate) computed: &'static str,
    pub(crate) objective: &'static str,
    /// Tardiness then makespan, weighted tardiness, makespan (the order of [`OBJECTIVES`]).
    pub(crate) objectives: [&'static str; 3],
    pub(crate) late_orders: &'static str,
    pub(crate) weighted_tardiness: &'static str,
    pub(crate) weighted_hint: &'static str,
    pub(crate) plan_end: &'static str,
    pub(crate) setup_time: &'static str,
    pub(crate) solve_time: &'static str,
    pub(crate) milliseconds: &'static str,
    pub(crate) seconds: &'static str,
    pub(crate) is_active: &'static str,
    pub(crate) compare_title: &'static str,
    pub(crate) computed_apart: &'static str,
    pub(crate) this_plan: &'static str,
    pub(crate) active_plan: &'static str,
    pub(crate) measure: &'static str,
    pub(crate) verdict: &'static str,
    pub(crate) better: &'static str,
    pub(crate) worse: &'static str,
    pub(crate) same: &'static str,
    pub(crate) no_active: &'static str,
    pub(crate) publish: &'static str,
    pub(crate) publish_confirm: &'static str,
    pub(crate) publish_hint: &'static str,
    pub(crate) superseded_note: &'static str,
    pub(crate) open_active: &'static str,
    pub(crate) newer_published: &'static str,
    /// The heading of the plan's notes.
    pub(crate) notes_title: &'static str,
    /// `{order}`, `{step}`, `{needs}` and `{longest}` are replaced.
    pub(crate) note_longer_than_shifts: &'static str,
    pub(crate) maintenance: &'static str,
    pub(crate) off_shift: &'static str,
    pub(crate) draft_stale: &'static str,
    pub(crate) replan: &'static str,
    pub(crate) replan_hint: &'static str,
    pub(crate) time_limit: &'static str,
    pub(crate) repair: &'static str,
    pub(crate) freeze: &'static str,
    pub(crate) compute: &'static str,
    pub(crate) diff_title: &'static str,
    pub(crate) diff_against: &'static str,
    pub(crate) diff_none: &'static str,
    pub(crate) compared_ops: &'static str,
    pub(crate) moved_ops: &'static str,
    pub(crate) moved_hint: &'static str,
    pub(crate) eta_changes: &'static str,
    pub(crate) no_eta_changes: &'static str,
    pub(crate) new_eta: &'static str,
    pub(crate) shift: &'static str,
    pub(crate) shift_hint: &'static str,
    pub(crate) more: &'static str,
    pub(crate) late_list: &'static str,
    pub(crate) behind: &'static str,
    pub(crate) behind_hint: &'static str,
    pub(crate) none_behind: &'static str,
    pub(crate) not_started: &'static str,
    pub(crate) overrunning: &'static str,
    pub(crate) behind_by: &'static str,
    pub(crate) none_late: &'static str,
    pub(crate) gantt: &'static str,
    pub(crate) gantt_hint: &'static str,
    pub(crate) no_operations: &'static str,
    pub(crate) zoom_in: &'static str,
    pub(crate) zoom_out: &'static str,
    pub(crate) fit: &'static str,
    pub(crate) setup: &'static str,
    pub(crate) order_late: &'static str,
    pub(crate) now: &'static str,
    pub(crate) utilisation: &'static str,
    pub(crate) part: &'static str,
    pub(crate) recent: &'static str,
    /// `{why}` is replaced by the trigger's text.
    pub(crate) automatic: &'static str,
    pub(crate) automatic_short: &'static str,
    /// `{machine}` is replaced by the machine's code.
    pub(crate) trigger_breakdown: &'static str,
    pub(crate) trigger_maintenance: &'static str,
    pub(crate) trigger_recovered: &'static str,
    pub(crate) trigger_elsewhere: &'static str,
    pub(crate) trigger_calendar: &'static str,
    pub(crate) trigger_material: &'static str,
    pub(crate) trigger_routing: &'static str,
    pub(crate) trigger_due_earlier: &'static str,
    pub(crate) trigger_reoptimised: &'static str,
    pub(crate) trigger_maintenance_removed: &'static str,
    /// `{orders}` is replaced by the order numbers.
    pub(crate) trigger_rush: &'static str,
    pub(crate) trigger_new: &'static str,
    /// `{late}`, `{early}` and `{cancelled}` are replaced by the numbers of lots.
    pub(crate) trigger_deviation: &'static str,
    /// A whole sentence: `{late_before}`, `{late}` (late orders), `{twt_before}`, `{twt}`
    /// (weighted lateness), `{end_before}` and `{end}` (when the last work ends) are replaced.
    pub(crate) reoptimised: &'static str,
    /// Monday first.
    pub(crate) weekdays: [&'static str; 7],
    /// A day's heading on the Gantt axis from its month, day and weekday: "12-08 Tue".
    pub(crate) day_heading: fn(u8, u8, &str) -> String,
}

pub(crate) const EN: Text = Text {
    title: "Plan",
    plan: "Plan",
    no_plan: "No plan has been computed yet. Compute one from the open orders with the form below.",
    no_plan_reader: "No plan has been computed yet; a planner can compute one.",
    statuses: ["Draft", "Active", "Superseded"],
    computed: "Computed",
    objective: "Objective",
    objectives: [
        "Fewest late orders, then earliest finish",
        "Least weighted lateness",
        "Earliest finish of all work",
    ],
    late_orders: "Late orders",
    weighted_tardiness: "Lateness × priority",
    weighted_hint: "Sum over orders of priority × time late",
    plan_end: "Plan ends",
    setup_time: "Setup time",
    solve_time: "Solve time",
    milliseconds: "ms",
    seconds: "s",
    is_active: "This is the active plan: the dispatch lists on the shop floor follow it.",
    compare_title: "Compared with the active plan",
    computed_apart: "The two plans were computed {gap} apart, so work finished or added in between also changes these figures.",
    this_plan: "This plan",
    active_plan: "Active plan",
    measure: "Measure",
    verdict: "This plan is",
    better: "Better",
    worse: "Worse",
    same: "Same",
    no_active: "No plan is active yet; publishing this one puts it on the shop floor.",
    publish: "Publish this plan",
    publish_confirm: "Publish this plan? The shop floor will follow it and the active plan will be superseded.",
    publish_hint: "Publishing makes this the plan the dispatch lists follow.",
    superseded_note: "This plan was replaced by a newer one and cannot be published again; compute a new plan instead.",
    open_active: "Open the active plan",
    newer_published: "A newer plan has been published; the shop floor follows it now.",
    notes_title: "Work the shifts cannot hold",
    note_longer_than_shifts: "Order {order}, step “{step}”: one unit with its setup takes {needs}, but its machines never work longer than {longest} without a break. Work does not run through breaks, so it is planned where the shift calendar ends. Lengthen a shift, or shorten the step's unit or setup time.",
    maintenance: "Maintenance",
    off_shift: "Outside the shifts",
    draft_stale: "A plan was published after this draft was computed (the shop floor moved on), so it can no longer be published: compute a new plan below.",
    replan: "Re-plan",
    replan_hint: "Computes a new draft from the open orders. Nothing changes on the shop floor until it is published.",
    time_limit: "Solver time (s)",
    repair: "Repair the active plan (keep the near term)",
    freeze: "Freeze (min)",
    compute: "Compute plan",
    diff_title: "Changes against the previous plan",
    diff_against: "Compared with",
    diff_none: "There was no earlier published plan to compare with.",
    compared_ops: "Operations in both plans",
    moved_ops: "Operations moved",
    moved_hint: "Moved: planned on another machine, or starting more than a minute earlier or later.",
    eta_changes: "ETA changes",
    no_eta_changes: "No order's ETA moved by more than a minute.",
    new_eta: "New ETA",
    shift: "Shift",
    shift_hint: "+ later, − earlier",
    more: "Not shown",
    late_list: "Orders this plan finishes late",
    none_late: "This plan finishes every order on time.",
    behind: "Behind the plan",
    behind_hint: "Work that should have started, or ended, more than 15 minutes ago. Re-plan to move the rest around it.",
    none_behind: "The shop floor keeps to the plan.",
    not_started: "Not started",
    overrunning: "Still running",
    behind_by: "Behind by",
    gantt: "Gantt chart",
    gantt_hint: "One row per machine. Point at a bar for details; select it to open the order. Ctrl + wheel zooms.",
    no_operations: "This plan has no operations: there were no open orders to plan.",
    zoom_in: "Zoom in",
    zoom_out: "Zoom out",
    fit: "Fit",
    setup: "Setup",
    order_late: "Order finishes late",
    now: "Now",
    utilisation: "Utilisation",
    part: "part",
    recent: "Recent plans",
    automatic: "Repaired and published automatically: {why}.",
    automatic_short: "auto",
    trigger_breakdown: "machine {machine} broke down",
    trigger_maintenance: "work was planned during maintenance of {machine}",
    trigger_recovered: "machine {machine} runs again",
    trigger_elsewhere: "work of orders {orders} started on {machine}, not where the plan had it",
    trigger_calendar: "the shifts or holidays of site {site} changed, and work was planned in closed time",
    trigger_material: "material of orders {orders} now arrives after their planned start",
    trigger_routing: "work of orders {orders} was planned on a machine its routing no longer lists",
    trigger_due_earlier: "orders {orders} are now due earlier than the plan finished them",
    trigger_reoptimised: "the scheduled re-optimisation",
    trigger_maintenance_removed: "a maintenance window of {machine} was removed, so its work may come earlier",
    trigger_rush: "rush orders {orders} arrived",
    trigger_new: "released orders {orders} were not in the plan",
    trigger_deviation: "work ran off the plan ({late} lots behind, {early} ahead, {cancelled} cancelled)",
    reoptimised: "Re-optimised at a scheduled time and published automatically, as it is better than the plan before: late orders {late_before} → {late}, weighted lateness {twt_before} → {twt}, last work ends {end_before} → {end}.",
    weekdays: ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
    day_heading: |month, day, weekday| format!("{month:02}-{day:02} {weekday}"),
};

pub(crate) const ZH: Text = Text {
    title: "排程",
    plan: "排程",
    no_plan: "尚未計算任何排程。請在下方根據未完成的訂單計算排程。",
    no_plan_reader: "尚未計算任何排程；計劃員可以計算排程。",
    statuses: ["草稿", "生效中", "已被取代"],
    computed: "計算時間",
    objective: "目標",
    objectives: ["延誤訂單最少，其次最早完工", "加權延誤最少", "最早完成全部工作"],
    late_orders: "延誤訂單",
    weighted_tardiness: "加權延誤（延誤 × 優先級）",
    weighted_hint: "各訂單優先級 × 延誤時間的總和",
    plan_end: "排程完成於",
    setup_time: "調機時間",
    solve_time: "求解時間",
    milliseconds: "毫秒",
    seconds: "秒",
    is_active: "這是現行排程：車間的派工清單依照此排程。",
    compare_title: "與現行排程比較",
    computed_apart: "兩個排程相隔{gap}計算，期間完成或新增的工作亦會改變這些數字。",
    this_plan: "此排程",
    active_plan: "現行排程",
    measure: "項目",
    verdict: "比較結果",
    better: "較佳",
    worse: "較差",
    same: "相同",
    no_active: "目前沒有現行排程；發佈此排程後車間便會依照執行。",
    publish: "發佈此排程",
    publish_confirm: "發佈此排程？車間將依照此排程生產，現行排程會被取代。",
    publish_hint: "發佈後，派工清單會依照此排程。",
    superseded_note: "此排程已被較新的排程取代，不能再次發佈；請重新計算排程。",
    open_active: "開啟現行排程",
    newer_published: "已發佈較新的排程，車間現按新排程生產。",
    notes_title: "班次容納不了的工作",
    note_longer_than_shifts: "訂單 {order} 的工序「{step}」：一件連換線需時 {needs}，但其機器最長只連續開工 {longest}。工作不會跨越休息時間，所以它被排到班次日曆的盡頭。請延長班次，或縮短此工序的單件或換線時間。",
    maintenance: "保養",
    off_shift: "非當班時間",
    draft_stale: "此草稿計算後已有另一排程發佈（車間已有變化），因此不能再發佈：請在下方重新計算排程。",
    replan: "重新排程",
    replan_hint: "根據未完成的訂單計算新的草稿排程。發佈之前，車間安排不會改變。",
    time_limit: "求解時間（秒）",
    repair: "修補現行排程（保持近期安排不變）",
    freeze: "凍結時段（分鐘）",
    compute: "計算排程",
    diff_title: "與上一個排程比較的變動",
    diff_against: "比較對象",
    diff_none: "沒有較早發佈的排程可供比較。",
    compared_ops: "兩個排程共有的工序",
    moved_ops: "已移動的工序",
    moved_hint: "移動：改在另一部機器上，或開始時間提早或延後超過一分鐘。",
    eta_changes: "預計完成時間變動",
    no_eta_changes: "沒有訂單的預計完成時間變動超過一分鐘。",
    new_eta: "新預計完成時間",
    shift: "變動",
    shift_hint: "+ 延後，− 提早",
    more: "另有未顯示",
    late_list: "此排程會延誤的訂單",
    none_late: "此排程可準時完成所有訂單。",
    behind: "落後於排程",
    behind_hint: "應在 15 分鐘前開始或完成的工作。重新排程可讓其餘工作配合調整。",
    none_behind: "生產現場按排程進行。",
    not_started: "未開始",
    overrunning: "仍在生產",
    behind_by: "落後",
    gantt: "甘特圖",
    gantt_hint: "每部機器一行。將滑鼠游標移到橫條上可查看詳情，按一下可開啟訂單。按住 Ctrl 並轉動滾輪可縮放。",
    no_operations: "此排程沒有工序：計算時沒有未完成的訂單。",
    zoom_in: "放大",
    zoom_out: "縮小",
    fit: "顯示全部",
    setup: "調機",
    order_late: "訂單將延誤",
    now: "現在",
    utilisation: "使用率",
    part: "分批",
    recent: "最近的排程",
    automatic: "系統自動修補並發佈：{why}。",
    automatic_short: "自動",
    trigger_breakdown: "機器 {machine} 故障",
    trigger_maintenance: "機器 {machine} 保養期間排有工作",
    trigger_recovered: "機器 {machine} 已恢復運行",
    trigger_elsewhere: "訂單 {orders} 的工序改在機器 {machine} 上開工，而非排程所定的機器",
    trigger_calendar: "廠房 {site} 的班次或假期已更改，原排程有工作落在非工作時間",
    trigger_material: "訂單 {orders} 的物料現時會在計劃開工之後才到",
    trigger_routing: "訂單 {orders} 的工序排在其工藝路線已不再列出的機器上",
    trigger_due_earlier: "訂單 {orders} 的交期已提前至排程完成時間之前",
    trigger_reoptimised: "定時重新優化",
    trigger_maintenance_removed: "機器 {machine} 的保養時段已取消，其工作可提前",
    trigger_rush: "收到急單 {orders}",
    trigger_new: "已下達的訂單 {orders} 不在排程內",
    trigger_deviation: "生產偏離排程（{late} 批落後，{early} 批提前，{cancelled} 批已取消）",
    reoptimised: "系統按預定時間重新優化，結果優於原排程，已自動發佈：延誤訂單 {late_before} → {late}，加權延誤 {twt_before} → {twt}，最後工序完成 {end_before} → {end}。",
    weekdays: ["一", "二", "三", "四", "五", "六", "日"],
    // Day before month would be read the other way round in Hong Kong: say which is which.
    day_heading: |month, day, weekday| format!("{month}月{day}日（{weekday}）"),
};

/// The objectives the re-plan form offers, as the API names them.
const OBJECTIVES: [&str; 3] = ["tardiness_then_makespan", "weighted_tardiness", "makespan"];
/// Plans listed under "recent plans".
const RECENT_SHOWN: u32 = 10;
/// Rows of the ETA-change and late-order tables.
const ROWS_SHOWN: usize = 20;

#[derive(Default, Deserialize)]
pub(crate) struct PlanQuery {
    id: Option<String>,
}

/// What the plan page shows, read from the store in one go.
pub(crate) struct PlanView {
    pub(crate) detail: PlanDetail,
    pub(crate) active: Option<PlanSummary>,
    pub(crate) lanes: Vec<GanttLane>,
    pub(crate) recent: Vec<PlanSummary>,
}

/// Reads the plan `id`, else the active plan, else the newest; `None` when there is no plan.
pub(crate) fn gather(store: &store::Store, id: Option<i64>) -> store::Result<Option<PlanView>> {
    let active = store.active_plan()?;
    let recent = store.plans(PageRequest { after: None, limit: RECENT_SHOWN })?.items;
    let summary = match id {
        Some(id) => store.plan(id)?,
        None => match active.clone().or_else(|| recent.first().cloned()) {
            Some(summary) => summary,
            None => return Ok(None),
        },
    };
    let mut lanes = gantt_lanes(store, summary.id)?;
    // A code another site uses too is shown with its site, as on the other pages.
    let machines =
        store.machines(&store::MachineFilter::default(), PageRequest { after: None, limit: 10_000 })?.items;
    let labels = super::machine_labels(store, &machines);
    for lane in &mut lanes {
        if let Some(label) = labels.get(&lane.machine_id) {
            lane.code.clone_from(label);
        }
    }
    let mut detail = detail(store, summary)?;
    // The page shows both plans against the orders' due dates and priorities now, as its list
    // of late orders does: an order's due date may have changed since either was computed.
    detail.summary.late_orders = detail.late_orders_now;
    detail.summary.weighted_tardiness = detail.weighted_tardiness_now;
    let active = match active {
        Some(mut active) if active.id != detail.summary.id => {
            let etas = crate::api::plans::etas(store, &store.plan_operations(active.id, None)?)?;
            (active.late_orders, active.weighted_tardiness) = crate::api::plans::figures_now(&etas);
            Some(active)
        }
        Some(_) => Some(detail.summary.clone()),
        None => None,
    };
    Ok(Some(PlanView { detail, active, lanes, recent }))
}

/// `GET /plan?id=N`.
pub(crate) async fn page(
    ctx: Ctx,
    State(state): State<AppState>,
    super::PageQuery(query): super::PageQuery<PlanQuery>,
) -> PageResult {
    let id = match query.id.as_deref().map(str::trim).filter(|id| !id.is_empty()) {
        None => None,
        Some(text) => Some(
            text.parse::<i64>()
                .ok()
                .filter(|id| *id > 0)
                .ok_or_else(|| ApiError::not_found("no such plan"))
                .or_page(&ctx)?,
        ),
    };
    let view = gather(&state.store, id).or_page(&ctx)?;
    let p = ctx.t.plan_page;
    let title = match &view {
        Some(view) => format!("{} #{}", p.plan, view.detail.summary.id),
        None => p.title.to_string(),
    };
    Ok(layout(&ctx, Nav::Plan, &title, render(&ctx, view.as_ref())))
}

/// A plan status's name.
fn status_name(p: &Text, status: PlanStatus) -> &'static str {
    p.statuses[match status {
        PlanStatus::Draft => 0,
        PlanStatus::Active => 1,
        PlanStatus::Superseded => 2,
    }]
}

fn status_badge(p: &Text, status: PlanStatus) -> Markup {
    html! { span.badge.{"plan-" (status.as_str())} { (status_name(p, status)) } }
}

/// Why the platform made and published a plan by itself, as a sentence.
fn automatic_text(ctx: &Ctx, p: &Text, plan: &PlanSummary, trigger: &PlanTrigger) -> String {
    if let PlanTrigger::Reoptimised { late_orders_before, weighted_tardiness_before, makespan_end_before } =
        trigger
    {
        return p
            .reoptimised
            .replace("{late_before}", &late_orders_before.to_string())
            .replace("{late}", &plan.late_orders.to_string())
            .replace("{twt_before}", &ctx.duration(*weighted_tardiness_before))
            .replace("{twt}", &ctx.duration(plan.weighted_tardiness))
            .replace("{end_before}", &ctx.short_time(*makespan_end_before))
            .replace("{end}", &ctx.short_time(plan.makespan_end));
    }
    p.automatic.replace("{why}", &trigger_why(p, trigger))
}

/// What made the platform make a plan by itself, as a clause ("machine cnc-02 broke down").
pub(crate) fn trigger_why(p: &Text, trigger: &PlanTrigger) -> String {
    match trigger {
        PlanTrigger::Breakdown { machine } => p.trigger_breakdown.replace("{machine}", machine),
        PlanTrigger::Maintenance { machine } => p.trigger_maintenance.replace("{machine}", machine),
        PlanTrigger::Recovered { machine } => p.trigger_recovered.replace("{machine}", machine),
        PlanTrigger::Calendar { site } => p.trigger_calendar.replace("{site}", site),
        PlanTrigger::MaterialLater { orders } => p.trigger_material.replace("{orders}", &listed(orders)),
        PlanTrigger::Routing { orders } => p.trigger_routing.replace("{orders}", &listed(orders)),
        PlanTrigger::DueEarlier { orders } => p.trigger_due_earlier.replace("{orders}", &listed(orders)),
        PlanTrigger::MaintenanceRemoved { machine } => {
            p.trigger_maintenance_removed.replace("{machine}", machine)
        }
        PlanTrigger::Elsewhere { machine, orders } => {
            p.trigger_elsewhere.replace("{machine}", machine).replace("{orders}", &listed(orders))
        }
        PlanTrigger::RushOrders { orders } => p.trigger_rush.replace("{orders}", &listed(orders)),
        PlanTrigger::NewOrders { orders } => p.trigger_new.replace("{orders}", &listed(orders)),
        PlanTrigger::Deviation { late, early, cancelled } => p
            .trigger_deviation
            .replace("{late}", &late.to_string())
            .replace("{early}", &early.to_string())
            .replace("{cancelled}", &cancelled.to_string()),
        PlanTrigger::Reoptimised { .. } => p.trigger_reoptimised.to_string(),
    }
}

/// A plan's note as a sentence for the planner.
fn note_text(ctx: &Ctx, p: &Text, note: &model::PlanNote) -> String {
    match note {
        model::PlanNote::LongerThanShifts {
            order_number, step, needs_seconds, longest_open_seconds, ..
        } => p
            .note_longer_than_shifts
            .replace("{order}", order_number)
            .replace("{step}", step)
            .replace("{needs}", &ctx.duration(*needs_seconds))
            .replace("{longest}", &ctx.duration(*longest_open_seconds)),
    }
}

/// Order numbers for a sentence: the first ten, then how many more (an import may bring hundreds).
fn listed(orders: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut text = orders.iter().take(SHOWN).map(String::as_str).collect::<Vec<_>>().join(", ");
    if orders.len() > SHOWN {
        text.push_str(&format!(" (+{})", orders.len() - SHOWN));
    }
    text
}

/// An objective's name, or the API's name when it is not one the form offers.
fn objective_name<'a>(p: &Text, objective: &'a str) -> &'a str {
    match OBJECTIVES.iter().position(|o| *o == objective) {
        Some(index) => p.objectives[index],
        None => objective,
    }
}

/// How long the solver ran: milliseconds under a second, else seconds to a tenth ("2 s", "2.3 s").
fn solve_time(p: &Text, ms: i64) -> String {
    if ms < 1 {
        // A right shift or a dispatching rule alone can take less than a millisecond.
        format!("< 1 {}", p.milliseconds)
    } else if ms < 1000 {
        format!("{ms} {}", p.milliseconds)
    } else {
        let seconds = format!("{:.1}", ms as f64 / 1000.0);
        format!("{} {}", seconds.strip_suffix(".0").unwrap_or(&seconds), p.seconds)
    }
}

/// The page's HTML; `None` when no plan exists yet.
pub(crate) fn render(ctx: &Ctx, view: Option<&PlanView>) -> Markup {
    let t = ctx.t;
    let p = t.plan_page;
    let may_plan = ctx.may(Need::Plan);
    let Some(view) = view else {
        return html! {
            h1 { (p.title) }
            section.panel { p { (if may_plan { p.no_plan } else { p.no_plan_reader }) } }
            @if may_plan { (replan_form(ctx, false)) }
        };
    };
    let summary = &view.detail.summary;
    let active = view.active.as_ref().filter(|a| a.id != summary.id);
    html! {
        div.plan-head {
            div {
                h1 { (p.plan) " #" (summary.id) " " (status_badge(p, summary.status)) }
                p.muted {
                    (p.computed) " " (ctx.time(summary.created_at)) " · " (p.objective) (ctx.t.colon) (objective_name(p, &summary.objective))
                    @if let Some(trigger) = &summary.trigger {
                        br; span data-testid="plan-trigger" { (automatic_text(ctx, p, summary, trigger)) }
                    }
                    @if summary.status == PlanStatus::Active { br; (p.is_active) }
                }
            }
            @if may_plan { a.button href="#replan-heading" { (p.replan) } }
        }
        // Shown by the live stream when another plan is published while this page is open.
        p.notice data-live data-plan-news=(summary.id) hidden data-testid="plan-news" {
            (p.newer_published) " " a href="/plan" { (p.open_active) }
        }
        @if !summary.notes.is_empty() {
            section.panel.caution aria-labelledby="notes-heading" data-testid="plan-notes" {
                h2 #notes-heading { (p.notes_title) }
                ul {
                    @for note in &summary.notes { li { (note_text(ctx, p, note)) } }
                }
            }
        }
        (kpis(ctx, summary))
        @if summary.status != PlanStatus::Active {
            section.panel aria-labelledby="standing-heading" data-testid="plan-standing" {
                h2 #standing-heading { (p.compare_title) }
                @match active {
                    Some(active) => { (comparison(ctx, summary, active)) }
                    None => { p { (p.no_active) } }
                }
                @let stale = active.and_then(|a| a.published_at).is_some_and(|at| at > summary.created_at);
                @if summary.status == PlanStatus::Draft && stale {
                    // Publishing would be refused: say so before the click, not after.
                    p.late-text data-testid="draft-stale" { (p.draft_stale) }
                } @else if summary.status == PlanStatus::Draft {
                    @if may_plan {
                        div.toolbar.publish {
                            button.primary data-action={ "POST /api/v1/plans/" (summary.id) "/publish" }
                                data-confirm=(p.publish_confirm) data-testid="publish-plan" { (p.publish) }
                            span.muted { (p.publish_hint) }
                        }
                    }
                } @else {
                    p.muted { (p.superseded_note) }
                }
                @if let Some(active) = active {
                    p { a href={ "/plan?id=" (active.id) } { (p.open_active) " (#" (active.id) ")" } }
                }
            }
        }
        section.panel #gantt-panel aria-labelledby="gantt-heading" {
            h2 #gantt-heading { (p.gantt) }
            @if view.lanes.iter().all(|lane| lane.items.is_empty()) {
                p.muted { (p.no_operations) }
            } @else {
                div.toolbar {
                    button.zoom type="button" data-zoom="out" data-target="gantt" title=(p.zoom_out) aria-label=(p.zoom_out) { "−" }
                    button.zoom type="button" data-zoom="in" data-target="gantt" title=(p.zoom_in) aria-label=(p.zoom_in) { "+" }
                    button type="button" data-zoom="fit" data-target="gantt" { (p.fit) }
                    span.gantt-legend {
                        span { span.gl.setup {} (p.setup) }
                        span { span.gl.late {} (p.order_late) }
                        span { span.gl.running {} (t.order_status(OrderStatus::Running)) }
                        span { span.gl.done {} (t.order_status(OrderStatus::Done)) }
                        span { span.gl.now {} (p.now) }
                        span { span.gl.maint {} (p.maintenance) }
                        span { span.gl.off {} (p.off_shift) }
                    }
                }
                p.muted.hint { (p.gantt_hint) }
                // Every bar is a link: a keyboard need not walk through all of them.
                a.skip-inline href="#after-gantt" { (t.skip_chart) }
                div.gantt-wrap {
                    (gantt(t, &ctx.zone, ctx.now, &view.lanes, &view.detail.utilisation))
                }
                div #after-gantt tabindex="-1" {}
            }
        }
        @if summary.status == PlanStatus::Active { (behind_panel(ctx, &view.lanes)) }
        div.grid2 {
            div {
                (diff_panel(ctx, &view.detail))
                (late_panel(ctx, &view.detail))
            }
            div {
                @if may_plan { (replan_form(ctx, view.active.is_some())) }
                (recent_panel(ctx, view, summary.id))
            }
        }
    }
}

fn kpis(ctx: &Ctx, summary: &PlanSummary) -> Markup {
    let t = ctx.t;
    let p = t.plan_page;
    html! {
        div.kpis data-testid="plan-kpis" {
            div.kpi.bad[summary.late_orders > 0] {
                span.value { (summary.late_orders) } span.label { (p.late_orders) }
            }
            div.kpi title=(p.weighted_hint) {
                span.value { (ctx.duration(summary.weighted_tardiness)) } span.label { (p.weighted_tardiness) }
            }
            div.kpi { span.value { (ctx.short_time(summary.makespan_end)) } span.label { (p.plan_end) } }
            div.kpi { span.value { (ctx.duration(summary.setup_seconds)) } span.label { (p.setup_time) } }
            div.kpi { span.value { (solve_time(p, summary.solve_ms)) } span.label { (p.solve_time) } }
            div.kpi { span.value { (status_badge(p, summary.status)) } span.label { (t.status) } }
        }
    }
}

/// How a measure of this plan compares with the active plan's, lower being better.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Better,
    Worse,
    Same,
}

/// Compares two values of a measure where lower is better.
pub(crate) fn verdict(this: i64, active: i64) -> Verdict {
    match this.cmp(&active) {
        std::cmp::Ordering::Less => Verdict::Better,
        std::cmp::Ordering::Greater => Verdict::Worse,
        std::cmp::Ordering::Equal => Verdict::Same,
    }
}

/// How far apart two plans' computations are before their comparison says it is rough.
const COMPARED_APART_SECONDS: i64 = 3600;

fn comparison(ctx: &Ctx, this: &PlanSummary, active: &PlanSummary) -> Markup {
    let t = ctx.t;
    let p = t.plan_page;
    let seconds = |a: Timestamp, b: Timestamp| (a - b).whole_seconds();
    // (measure, this, active, difference, this value as an integer, active value as an integer)
    let rows: [(&str, String, String, String, i64, i64); 4] = [
        (
            p.late_orders,
            this.late_orders.to_string(),
            active.late_orders.to_string(),
            (i64::from(this.late_orders) - i64::from(active.late_orders)).unsigned_abs().to_string(),
            i64::from(this.late_orders),
            i64::from(active.late_orders),
        ),
        (
            p.weighted_tardiness,
            ctx.duration(this.weighted_tardiness),
            ctx.duration(active.weighted_tardiness),
            ctx.duration((this.weighted_tardiness - active.weighted_tardiness).abs()),
            this.weighted_tardiness,
            active.weighted_tardiness,
        ),
        (
            p.plan_end,
            ctx.short_time(this.makespan_end),
            ctx.short_time(active.makespan_end),
            ctx.duration(seconds(this.makespan_end, active.makespan_end).abs()),
            // Within a minute counts as the same end.
            seconds(this.makespan_end, active.makespan_end) / 60,
            0,
        ),
        (
            p.setup_time,
            ctx.duration(this.setup_seconds),
            ctx.duration(active.setup_seconds),
            ctx.duration((this.setup_seconds - active.setup_seconds).abs()),
            this.setup_seconds,
            active.setup_seconds,
        ),
    ];
    // Plans of other moments plan other work: say so when they are far apart.
    let apart = seconds(this.created_at, active.created_at).abs();
    html! {
        @if apart >= COMPARED_APART_SECONDS {
            p.muted data-testid="computed-apart" { (p.computed_apart.replace("{gap}", &ctx.duration(apart))) }
        }
        table.compare data-testid="plan-comparison" {
            thead { tr {
                th { (p.measure) }
                th.num { (p.this_plan) " #" (this.id) }
                th.num { (p.active_plan) " #" (active.id) }
                th { (p.verdict) }
            } }
            tbody {
                @for (measure, ours, theirs, difference, a, b) in &rows {
                    tr {
                        th scope="row" { (measure) }
                        td.num { (ours) }
                        td.num { (theirs) }
                        @match verdict(*a, *b) {
                            Verdict::Better => { td.better { "▲ " (p.better) (ctx.t.space_lparen) (difference) (ctx.t.rparen) } }
                            Verdict::Worse => { td.worse { "▼ " (p.worse) (ctx.t.space_lparen) (difference) (ctx.t.rparen) } }
                            Verdict::Same => { td.muted { "= " (p.same) } }
                        }
                    }
                }
            }
        }
    }
}

fn replan_form(ctx: &Ctx, has_active: bool) -> Markup {
    let p = ctx.t.plan_page;
    html! {
        section.panel aria-labelledby="replan-heading" {
            h2 #replan-heading { (p.replan) }
            p.muted { (p.replan_hint) }
            form.row-form data-action="POST /api/v1/plans" data-then="goto:/plan?id={id}" data-testid="replan" {
                label { (p.time_limit)
                    input name="time_limit_seconds" type="number" min="0" max="60" step="any" value="3"
                        data-type="number" required;
                }
                label { (p.objective)
                    select name="objective" {
                        @for (value, name) in OBJECTIVES.iter().zip(p.objectives) {
                            option value=(value) { (name) }
                        }
                    }
                }
                @if has_active {
                    label.inline { input type="checkbox" name="repair" data-type="bool"; (p.repair) }
                    label { (p.freeze)
                        input name="freeze_minutes" type="number" min="0" max="1440" step="1" value="60" data-type="int";
                    }
                }
                button.primary type="submit" { (p.compute) }
            }
        }
    }
}

/// A signed length of time: `+2 h 05 min`, `−15 min`.
fn signed(ctx: &Ctx, seconds: i64) -> String {
    if seconds > 0 { format!("+{}", ctx.duration(seconds)) } else { ctx.duration(seconds) }
}

fn diff_panel(ctx: &Ctx, detail: &PlanDetail) -> Markup {
    let t = ctx.t;
    let p = t.plan_page;
    let diff = &detail.diff;
    let numbers: HashMap<OrderId, (&str, Timestamp)> =
        detail.etas.iter().map(|e| (e.order_id, (e.number.as_str(), e.eta))).collect();
    let mut changes: Vec<&(OrderId, i64)> = diff.eta_changes.iter().collect();
    changes.sort_by_key(|(order, shift)| (std::cmp::Reverse(shift.abs()), *order));
    html! {
        section.panel aria-labelledby="diff-heading" data-testid="plan-diff" {
            h2 #diff-heading { (p.diff_title) }
            @match diff.against {
                None => { p.muted { (p.diff_none) } }
                Some(against) => {
                    dl.pairs {
                        dt { (p.diff_against) } dd { a href={ "/plan?id=" (against) } { (p.plan) " #" (against) } }
                        dt { (p.compared_ops) } dd { (diff.compared_operations) }
                        dt { (p.moved_ops) } dd.bad[diff.moved_operations > 0] { (diff.moved_operations) }
                    }
                    p.muted { (p.moved_hint) }
                    h3 { (p.eta_changes) }
                    @if changes.is_empty() {
                        p.muted { (p.no_eta_changes) }
                    } @else {
                        table {
                            thead { tr { th { (t.order) } th { (p.new_eta) } th.num title=(p.shift_hint) { (p.shift) (ctx.t.space_lparen) (p.shift_hint) (ctx.t.rparen) } } }
                            tbody {
                                @for (order, shift) in changes.iter().take(ROWS_SHOWN) {
                                    @let (number, eta) = numbers.get(order).copied().unwrap_or(("?", detail.summary.created_at));
                                    tr {
                                        td { a href={ "/orders/" (order.0) } { (number) } }
                                        td { (ctx.short_time(eta)) }
                                        td.num.worse[*shift > 0].better[*shift < 0] { (signed(ctx, *shift)) }
                                    }
                                }
                            }
                        }
                        @if changes.len() > ROWS_SHOWN { p.muted { (p.more) (ctx.t.colon) (changes.len() - ROWS_SHOWN) } }
                    }
                }
            }
        }
    }
}

fn late_panel(ctx: &Ctx, detail: &PlanDetail) -> Markup {
    let t = ctx.t;
    let p = t.plan_page;
    // As the figures above count them: against due dates now, by finish times once done.
    let mut late: Vec<_> =
        detail.etas.iter().filter_map(|e| e.late_now().map(|seconds| (e, seconds))).collect();
    late.sort_by_key(|(_, seconds)| std::cmp::Reverse(*seconds));
    html! {
        section.panel aria-labelledby="late-heading" {
            h2 #late-heading { (p.late_list) }
            @if late.is_empty() {
                p.muted { (p.none_late) }
            } @else {
                table {
                    thead { tr { th { (t.order) } th { (t.due) } th { (t.eta) } th.num { (t.lateness) } } }
                    tbody {
                        @for (eta, seconds) in late.iter().take(ROWS_SHOWN) {
                            tr.late {
                                td { a href={ "/orders/" (eta.order_id.0) } { (eta.number) } }
                                td { (ctx.short_time(eta.due)) }
                                td { (ctx.short_time(eta.finished.unwrap_or(eta.eta))) }
                                td.num { (ctx.duration(*seconds)) }
                            }
                        }
                    }
                }
                @if late.len() > ROWS_SHOWN { p.muted { (p.more) (ctx.t.colon) (late.len() - ROWS_SHOWN) } }
            }
        }
    }
}

/// How long work may be behind its planned start or end before the plan page lists it.
pub(crate) const BEHIND_GRACE: time::Duration = time::Duration::minutes(15);

/// [`progress::behind_lots`] of a Gantt chart's lanes: each lot's first part and its machine's code.
pub(crate) fn behind(lanes: &[GanttLane], now: Timestamp) -> Vec<(&GanttItem, &str, time::Duration)> {
    let items: Vec<(&GanttItem, &str)> =
        lanes.iter().flat_map(|lane| lane.items.iter().map(move |item| (item, lane.code.as_str()))).collect();
    let parts: Vec<_> = items.iter().map(|(item, _)| (&item.operation, item.status)).collect();
    progress::behind_lots(&parts, now, BEHIND_GRACE)
        .into_iter()
        .map(|(index, by)| (items[index].0, items[index].1, by))
        .collect()
}

fn behind_panel(ctx: &Ctx, lanes: &[GanttLane]) -> Markup {
    let t = ctx.t;
    let p = t.plan_page;
    let behind = behind(lanes, ctx.now);
    html! {
        section.panel aria-labelledby="behind-heading" data-testid="behind-plan" {
            h2 #behind-heading { (p.behind) @if !behind.is_empty() { (ctx.t.space_lparen) (behind.len()) (ctx.t.rparen) } }
            @if behind.is_empty() {
                p.muted { (p.none_behind) }
            } @else {
                p.muted { (p.behind_hint) }
                table {
                    thead { tr { th { (t.order) } th { (t.operation) } th { (t.machine) } th { (t.start) } th { (t.end) } th { (t.status) } th.num { (p.behind_by) } } }
                    tbody {
                        @for (item, code, by) in behind.iter().take(ROWS_SHOWN) {
                            tr {
                                td { a href={ "/orders/" (item.operation.order_id.0) } { (item.order_number) } }
                                td { (item.operation_name) }
                                td { a href={ "/machines/" (item.operation.machine_id.0) } { (code) } }
                                td { (ctx.short_time(item.operation.setup_start)) }
                                td { (ctx.short_time(item.operation.end)) }
                                td { (if item.status == OrderStatus::Running { p.overrunning } else { p.not_started }) }
                                td.num { (ctx.duration(by.whole_seconds())) }
                            }
                        }
                    }
                }
                @if behind.len() > ROWS_SHOWN { p.muted { (p.more) (ctx.t.colon) (behind.len() - ROWS_SHOWN) } }
            }
        }
    }
}

fn recent_panel(ctx: &Ctx, view: &PlanView, shown: i64) -> Markup {
    let t = ctx.t;
    let p = t.plan_page;
    html! {
        section.panel aria-labelledby="recent-heading" {
            h2 #recent-heading { (p.recent) }
            table.recent data-testid="recent-plans" {
                thead { tr { th { (p.plan) } th { (p.computed) } th { (t.status) } th.num { (p.late_orders) } } }
                tbody {
                    @for plan in &view.recent {
                        tr.current[plan.id == shown] {
                            td {
                                a href={ "/plan?id=" (plan.id) } aria-current=[(plan.id == shown).then_some("page")] { "#" (plan.id) }
                            }
                            td { (ctx.short_time(plan.created_at)) }
                            td {
                                (status_badge(p, plan.status))
                                @if let Some(trigger) = &plan.trigger {
                                    " " span.muted title=(automatic_text(ctx, p, plan, trigger)) { (p.automatic_short) }
                                }
                            }
                            td.num { (plan.late_orders) }
                        }
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The Gantt chart.

/// Width of the chart at zoom 1 ("fit"), label column included, in pixels.
const FIT_WIDTH: f64 = 1180.0;
/// Width of the lane labels (`data-left`).
const LEFT: f64 = 150.0;
/// Room `zoomGantt` leaves right of the time span (`data-right`).
const RIGHT: f64 = 20.0;
/// Height of the time axis above the lanes.
const HEADER: f64 = 38.0;
/// Height of one machine's lane.
const LANE: f64 = 30.0;
/// Room under the lanes for the now label.
const FOOTER: f64 = 20.0;
/// Pixels per character `zoomGantt` assumes when it decides whether a label fits its bar.
const CHAR_PX: f64 = 7.0;

/// Where times go on the chart at zoom 1.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scale {
    /// The chart's origin, a whole local hour, in Unix milliseconds.
    origin_ms: i64,
    /// Minutes from the origin to the chart's end.
    span: f64,
    /// Pixels per minute.
    px: f64,
}

impl Scale {
    /// A scale from `first` to `last` widened to whole hours of the local clock, fitting
    /// [`FIT_WIDTH`].
    pub(crate) fn new(first: Timestamp, last: Timestamp, zone: &Zone) -> Scale {
        const HOUR: i64 = 3_600_000;
        let (first, last) = (unix_ms(first), unix_ms(last));
        let (start, end) = (zone.offset_minutes_at(first), zone.offset_minutes_at(last));
        let (start, end) = (i64::from(start) * 60_000, i64::from(end) * 60_000);
        let origin_ms = (first + start).div_euclid(HOUR) * HOUR - start;
        let end_ms = (last + end + HOUR - 1).div_euclid(HOUR) * HOUR - end;
        let span = ((end_ms - origin_ms) as f64 / 60_000.0).max(60.0);
        Scale { origin_ms, span, px: (FIT_WIDTH - LEFT - RIGHT) / span }
    }

    /// Minutes from the origin to `at`.
    pub(crate) fn minutes(&self, at: Timestamp) -> f64 {
        (unix_ms(at) - self.origin_ms) as f64 / 60_000.0
    }

    /// The x position of `minutes` from the origin, as `zoomGantt` computes it at zoom 1.
    pub(crate) fn x(&self, minutes: f64) -> f64 {
        LEFT + minutes * self.px
    }

    /// The width of the chart's SVG, as `zoomGantt` computes it at zoom 1.
    fn width(&self) -> f64 {
        (LEFT + self.span * self.px + RIGHT).ceil()
    }
}

/// A number with at most one decimal, for SVG attributes.
struct N(f64);

impl fmt::Display for N {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Adding zero turns −0 into 0.
        let tenths = (self.0 * 10.0).round() + 0.0;
        if tenths % 10.0 == 0.0 { write!(f, "{}", tenths / 10.0) } else { write!(f, "{:.1}", tenths / 10.0) }
    }
}

/// Appends `text` escaped for HTML text and attribute values.
fn escape(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
}

/// The colour of an order's bars and whether its label is white (else near-black): a stable hue
/// from the order id, spread by the golden angle, in one of three lightnesses.
pub(crate) fn order_colour(order: OrderId) -> ([u8; 3], bool) {
    let k = order.0.unsigned_abs();
    let hue = (k as f64 * 137.507_764) % 360.0;
    let lightness = [0.42, 0.60, 0.76][(k % 3) as usize];
    let rgb = hsl(hue, 0.62, lightness);
    (rgb, white_label(rgb))
}

/// Whether white text is more legible on `rgb` than black text, by WCAG contrast (the better of
/// the two always reaches 4.5:1).
pub(crate) fn white_label(rgb: [u8; 3]) -> bool {
    let background = luminance(rgb);
    contrast(luminance([255, 255, 255]), background) > contrast(0.0, background)
}

/// WCAG relative luminance.
pub(crate) fn luminance(rgb: [u8; 3]) -> f64 {
    let channel = |c: u8| {
        let c = f64::from(c) / 255.0;
        if c <= 0.040_45 { c / 12.92 } else { ((c + 0.055) / 1.055).powf(2.4) }
    };
    0.2126 * channel(rgb[0]) + 0.7152 * channel(rgb[1]) + 0.0722 * channel(rgb[2])
}

/// WCAG contrast ratio of two luminances.
pub(crate) fn contrast(a: f64, b: f64) -> f64 {
    (a.max(b) + 0.05) / (a.min(b) + 0.05)
}

fn hsl(hue: f64, saturation: f64, lightness: f64) -> [u8; 3] {
    let chroma = (1.0 - (2.0 * lightness - 1.0).abs()) * saturation;
    let h = hue / 60.0;
    let x = chroma * (1.0 - (h % 2.0 - 1.0).abs());
    let (r, g, b) = match h as u32 {
        0 => (chroma, x, 0.0),
        1 => (x, chroma, 0.0),
        2 => (0.0, chroma, x),
        3 => (0.0, x, chroma),
        4 => (x, 0.0, chroma),
        _ => (chroma, 0.0, x),
    };
    let m = lightness - chroma / 2.0;
    let byte = |v: f64| ((v + m) * 255.0).round().clamp(0.0, 255.0) as u8;
    [byte(r), byte(g), byte(b)]
}

/// A mark on the time axis.
#[derive(Debug, PartialEq)]
pub(crate) struct Tick {
    /// Minutes from the origin.
    pub(crate) at: f64,
    /// The label's `data-x1`: it shows while the room up to there holds it. Marks come in
    /// levels (every hour, 3 hours, 6, 12; every day, Monday), and a label's room is its level's
    /// step, so the labels that show at any zoom are evenly spaced and never overlap.
    pub(crate) until: f64,
    pub(crate) label: String,
    /// A day boundary (else an hour mark).
    pub(crate) day: bool,
}

/// Most hour marks drawn; longer plans mark every 3, 6 or 12 hours only.
const MAX_HOUR_MARKS: i64 = 1500;

/// The axis marks at local midnights and whole local hours, with the first day's label at the
/// origin. All levels are drawn: the zoom script hides labels without room, and hour grid lines
/// are faint enough not to crowd a zoomed-out chart. Marks are counted in minutes of the local
/// clock and placed at the instants those show, so across a daylight-saving change a day is 23
/// or 25 hours wide.
pub(crate) fn ticks(scale: &Scale, zone: &Zone, p: &Text) -> Vec<Tick> {
    let origin = scale.origin_ms.div_euclid(60_000) + i64::from(zone.offset_minutes_at(scale.origin_ms));
    let span_end = scale.origin_ms + (scale.span.round() as i64) * 60_000;
    let end = span_end.div_euclid(60_000) + i64::from(zone.offset_minutes_at(span_end));
    // The wall-clock minute `minute` as a date and time (read as UTC), and where it falls.
    let local = |minute: i64| {
        time::OffsetDateTime::from_unix_timestamp(minute * 60).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
    };
    let x = |minute: i64| (zone.instant_of_local(minute * 60_000) - scale.origin_ms) as f64 / 60_000.0;
    let day_label = |minute: i64| {
        let at = local(minute);
        let weekday = p.weekdays[at.weekday().number_days_from_monday() as usize];
        (p.day_heading)(u8::from(at.month()), at.day(), weekday)
    };
    let mut out = Vec::new();
    let first_midnight = (origin.div_euclid(1440) + 1) * 1440;
    if origin.rem_euclid(1440) != 0 {
        out.push(Tick { at: 0.0, until: x(first_midnight), label: day_label(origin), day: true });
    }
    let mut midnight = if origin.rem_euclid(1440) == 0 { origin } else { first_midnight };
    while midnight < end {
        // Days since the epoch, a Thursday: Mondays are 4 apart from it modulo 7.
        let monday = (midnight.div_euclid(1440) + 3).rem_euclid(7) == 0;
        let level = if monday { 7 * 1440 } else { 1440 };
        out.push(Tick { at: x(midnight), until: x(midnight + level), label: day_label(midnight), day: true });
        midnight += 1440;
    }
    let hours = (end - origin) / 60;
    let finest = [1, 3, 6, 12].into_iter().find(|step| hours / step <= MAX_HOUR_MARKS).unwrap_or(12);
    let mut hour = (origin + 59).div_euclid(60) * 60;
    while hour < end {
        let of_day = hour.rem_euclid(1440) / 60;
        let level = [12, 6, 3, 1].into_iter().find(|step| of_day % step == 0).unwrap_or(1);
        // A skipped hour (spring forward) falls on the next one's place, which keeps its label.
        if out.last().is_some_and(|last| !last.day && last.at >= x(hour)) {
            out.pop();
        }
        if of_day != 0 && level >= finest {
            out.push(Tick {
                at: x(hour),
                until: x(hour + level * 60),
                label: format!("{of_day:02}:00"),
                day: false,
            });
        }
        hour += 60;
    }
    out
}

/// Local time for a tooltip: the time of day, with the date unless it is `now`'s day.
fn clock(at: Timestamp, zone: &Zone, now: Timestamp) -> String {
    let local = |ts: Timestamp| zone.local(ts).date();
    format_local(at, zone, local(at) == local(now))
}

/// The Gantt chart of `lanes` as one SVG (see the module documentation).
pub(crate) fn gantt(
    t: &super::Text,
    zone: &Zone,
    now: Timestamp,
    lanes: &[GanttLane],
    utilisation: &[Utilisation],
) -> Markup {
    let p = t.plan_page;
    let items = lanes.iter().flat_map(|lane| &lane.items);
    let first = items.clone().map(|item| item.operation.setup_start).min().unwrap_or(now);
    let last = items.clone().map(|item| item.operation.end).max().unwrap_or(now);
    let scale = Scale::new(first, last, zone);
    let busy: HashMap<MachineId, f64> = utilisation.iter().map(|u| (u.machine_id, u.utilisation)).collect();
    let body = HEADER + LANE * lanes.len() as f64;
    let height = body + FOOTER;
    let count = lanes.iter().map(|lane| lane.items.len()).sum::<usize>();
    let mut out = String::with_capacity(4096 + count * 420);
    let _ = write!(
        out,
        r#"<svg id="gantt" class="gantt" data-gantt data-px="{px}" data-left="{LEFT}" data-right="{RIGHT}" data-span="{span}" width="{width}" height="{height}" role="group" aria-labelledby="gantt-heading">"#,
        px = scale.px,
        span = scale.span,
        width = scale.width(),
    );
    out.push_str(
        r##"<defs><pattern id="gantt-setup" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#fff" fill-opacity=".55"/><rect width="3" height="6" fill="#1f2933" fill-opacity=".55"/></pattern></defs>"##,
    );
    // Lane backgrounds (every other lane) and the label column.
    for index in (1..lanes.len()).step_by(2) {
        let _ = write!(
            out,
            r#"<rect class="lane" data-x0="0" data-x1="{span}" x="{LEFT}" y="{y}" width="{w}" height="{LANE}"/>"#,
            span = N(scale.span),
            y = N(HEADER + LANE * index as f64),
            w = N(scale.span * scale.px),
        );
    }
    let _ = write!(out, r#"<rect class="lc" x="0" y="0" width="{LEFT}" height="{height}"/>"#);
    // The time axis and its grid lines.
    for tick in ticks(&scale, zone, p) {
        let x = scale.x(tick.at);
        let (class, top, y) = if tick.day { ("d", 0.0, 14.0) } else { ("h", 20.0, 32.0) };
        if tick.at > 0.0 {
            let _ = write!(
                out,
                r#"<line class="g{class}" data-x0="{at}" x1="{x}" x2="{x}" y1="{top}" y2="{body}"/>"#,
                at = N(tick.at),
                x = N(x),
            );
        }
        let hidden = (tick.until - tick.at) * scale.px <= CHAR_PX * tick.label.chars().count() as f64;
        let _ = write!(
            out,
            r#"<text class="a{class}" data-x0="{at}" data-x1="{until}" x="{x}" y="{y}"{style}>"#,
            at = N(tick.at),
            until = N(tick.until),
            x = N(x + 3.0),
            style = if hidden { r#" style="display:none""# } else { "" },
        );
        escape(&mut out, &tick.label);
        out.push_str("</text>");
    }
    let _ = write!(out, r#"<line class="axis" x1="0" x2="100%" y1="{HEADER}" y2="{HEADER}"/>"#);
    // The lanes.
    for (index, lane) in lanes.iter().enumerate() {
        let _ = write!(out, r#"<g transform="translate(0,{})">"#, N(HEADER + LANE * index as f64));
        let _ = write!(out, r#"<a href="/machines/{}"><title>"#, lane.machine_id.0);
        escape(&mut out, &lane.name);
        out.push_str(r#"</title><text class="code" x="8" y="16">"#);
        escape(&mut out, &lane.code);
        out.push_str("</text></a>");
        if let Some(share) = busy.get(&lane.machine_id) {
            let share = share.clamp(0.0, 1.0);
            let _ = write!(
                out,
                r#"<text class="ut" x="{x}" y="16" text-anchor="end"><title>{label}</title>{value}</text><rect class="ub0" x="8" y="21" width="{track}" height="3"/><rect class="ub" x="8" y="21" width="{bar}" height="3"/>"#,
                x = N(LEFT - 8.0),
                label = p.utilisation,
                value = percent(t, Some(share)),
                track = N(LEFT - 16.0),
                bar = N((LEFT - 16.0) * share),
            );
        }
        // Closed time first, under the bars: outside the shifts, and maintenance.
        for closed in &lane.closed {
            let (x0, x1) = (scale.minutes(closed.from).max(0.0), scale.minutes(closed.to).min(scale.span));
            if x1 <= x0 {
                continue;
            }
            let class = if closed.maintenance.is_some() { "maint" } else { "off" };
            let _ = write!(
                out,
                r#"<rect class="{class}" data-x0="{a}" data-x1="{b}" x="{x}" y="2" width="{w}" height="{h}"><title>"#,
                a = N(x0),
                b = N(x1),
                x = N(scale.x(x0)),
                w = N((x1 - x0) * scale.px),
                h = N(LANE - 4.0),
            );
            match &closed.maintenance {
                Some(reason) => {
                    escape(&mut out, p.maintenance);
                    out.push_str(": ");
                    escape(&mut out, reason);
                }
                None => escape(&mut out, p.off_shift),
            }
            let _ = write!(
                out,
                " · {} – {}</title></rect>",
                clock(closed.from, zone, now),
                clock(closed.to, zone, now)
            );
        }
        for item in &lane.items {
            bar(&mut out, t, &scale, zone, now, lane, item);
        }
        out.push_str("</g>");
    }
    // Now.
    let now_at = scale.minutes(now);
    if (0.0..=scale.span).contains(&now_at) {
        let x = N(scale.x(now_at));
        let at = N(now_at);
        let _ = write!(
            out,
            r#"<line class="now" data-x0="{at}" x1="{x}" x2="{x}" y1="{top}" y2="{bottom}"/><text class="now" data-x0="{at}" x="{tx}" y="{ty}">"#,
            top = N(HEADER - 18.0),
            bottom = N(body + 4.0),
            tx = N(scale.x(now_at) + 3.0),
            ty = N(height - 5.0),
        );
        escape(&mut out, p.now);
        let _ = write!(out, " {}</text>", clock(now, zone, now));
    }
    out.push_str("</svg>");
    PreEscaped(out)
}

/// One operation: a link to its order holding the tooltip, the bar, the hatched setup part, the
/// label and the late marker.
fn bar(
    out: &mut String,
    t: &super::Text,
    scale: &Scale,
    zone: &Zone,
    now: Timestamp,
    lane: &GanttLane,
    item: &GanttItem,
) {
    let p = t.plan_page;
    let op = &item.operation;
    let x0 = scale.minutes(op.setup_start);
    let xs = scale.minutes(op.start);
    let x1 = scale.minutes(op.end);
    let ([r, g, b], white) = order_colour(op.order_id);
    let progress = match item.status {
        OrderStatus::Running => Some("running"),
        OrderStatus::Done => Some("done"),
        _ => None,
    };
    let classes: Vec<&str> = [item.late.then_some("late"), progress].into_iter().flatten().collect();
    let _ = write!(out, r#"<a href="/orders/{}""#, op.order_id.0);
    if !classes.is_empty() {
        let _ = write!(out, r#" class="{}""#, classes.join(" "));
    }
    out.push_str("><title>");
    escape(out, &item.order_number);
    out.push_str(" · ");
    escape(out, &item.product);
    out.push('\n');
    escape(out, &item.operation_name);
    if op.part > 0 {
        let _ = write!(out, " ({} {})", p.part, op.part + 1);
    }
    out.push_str(" · ");
    escape(out, &lane.code);
    let _ = writeln!(out, " · {} {}", t.quantity, op.quantity);
    let time = |at| clock(at, zone, now);
    if op.setup_start < op.start {
        let _ = write!(out, "{} {} · ", p.setup, time(op.setup_start));
    }
    let _ = write!(out, "{} {} · {} {}", t.start, time(op.start), t.end, time(op.end));
    if item.late {
        let _ = write!(out, "\n⚠ {}", p.order_late);
    }
    if progress.is_some() {
        let mark = if item.status == OrderStatus::Done { '✓' } else { '▶' };
        let _ = write!(out, "\n{mark} {}", t.order_status(item.status));
        if item.good > 0 || item.scrap > 0 {
            let _ = write!(out, " · {} {} · {} {}", t.good, item.good, t.scrap, item.scrap);
        }
    }
    let _ = write!(
        out,
        r##"</title><rect data-x0="{a}" data-x1="{c}" x="{x}" y="5" width="{w}" height="20" fill="#{r:02x}{g:02x}{b:02x}"/>"##,
        a = N(x0),
        c = N(x1),
        x = N(scale.x(x0)),
        w = N(((x1 - x0) * scale.px).max(1.0)),
    );
    if xs > x0 {
        let _ = write!(
            out,
            r#"<rect data-x0="{a}" data-x1="{s}" x="{x}" y="5" width="{w}" height="20" fill="url(#gantt-setup)"/>"#,
            a = N(x0),
            s = N(xs),
            x = N(scale.x(x0)),
            w = N(((xs - x0) * scale.px).max(1.0)),
        );
    }
    let shown = (x1 - xs) * scale.px > CHAR_PX * item.order_number.chars().count() as f64;
    let _ = write!(
        out,
        r#"<text data-x0="{s}" data-x1="{c}" x="{x}" y="19"{class}{style}>"#,
        s = N(xs),
        c = N(x1),
        x = N(scale.x(xs) + 3.0),
        class = if white { r#" class="w""# } else { "" },
        style = if shown { "" } else { r#" style="display:none""# },
    );
    escape(out, &item.order_number);
    out.push_str("</text>");
    if item.status == OrderStatus::Running {
        // A dark stripe under the bar: the work is under way.
        let _ = write!(
            out,
            r#"<rect class="run" data-x0="{a}" data-x1="{c}" x="{x}" y="25" width="{w}" height="3"/>"#,
            a = N(x0),
            c = N(x1),
            x = N(scale.x(x0)),
            w = N(((x1 - x0) * scale.px).max(1.0)),
        );
    }
    if item.late {
        let _ = write!(
            out,
            r#"<line data-x0="{c}" x1="{x}" x2="{x}" y1="1" y2="29"/>"#,
            c = N(x1),
            x = N(scale.x(x1))
        );
    }
    out.push_str("</a>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::plans::GanttItem;
    use model::{OperationId, PlannedOperation};
    use time::macros::datetime;

    const NOW: Timestamp = datetime!(2026-11-24 09:20 UTC);

    fn item(order: i64, setup_start: Timestamp, start: Timestamp, end: Timestamp, late: bool) -> GanttItem {
        GanttItem {
            operation: PlannedOperation {
                operation_id: OperationId(order * 10),
                order_id: OrderId(order),
                part: 0,
                quantity: 40,
                machine_id: MachineId(1),
                setup_start,
                start,
                end,
            },
            order_number: format!("SO-{order:04}"),
            product: "Bracket <A>".into(),
            operation_name: "Milling".into(),
            late,
            status: OrderStatus::Released,
            good: 0,
            scrap: 0,
        }
    }

    fn lanes() -> Vec<GanttLane> {
        vec![
            GanttLane {
                machine_id: MachineId(1),
                code: "M01".into(),
                name: "Mill".into(),
                closed: Vec::new(),
                items: vec![
                    // Setup 09:00–09:30, run to 13:00, on time.
                    item(
                        1,
                        datetime!(2026-11-24 09:00 UTC),
                        datetime!(2026-11-24 09:30 UTC),
                        datetime!(2026-11-24 13:00 UTC),
                        false,
                    ),
                    // No setup, late, ends 19:00.
                    item(
                        2,
                        datetime!(2026-11-24 13:00 UTC),
                        datetime!(2026-11-24 13:00 UTC),
                        datetime!(2026-11-24 19:00 UTC),
                        true,
                    ),
                ],
            },
            GanttLane {
                machine_id: MachineId(2),
                code: "L02".into(),
                name: "Lathe".into(),
                closed: Vec::new(),
                items: Vec::new(),
            },
        ]
    }

    fn attr<'a>(tag: &'a str, name: &str) -> &'a str {
        let start =
            tag.find(&format!(" {name}=\"")).unwrap_or_else(|| panic!("no {name} in {tag}")) + name.len() + 3;
        &tag[start..start + tag[start..].find('"').unwrap()]
    }

    fn svg() -> String {
        let utilisation = vec![Utilisation {
            machine_id: MachineId(1),
            busy_seconds: 36_000,
            open_seconds: 72_000,
            utilisation: 0.5,
        }];
        gantt(super::super::Lang::En.text(), &Zone::UTC, NOW, &lanes(), &utilisation).into_string()
    }

    #[test]
    fn bars_sit_where_the_zoom_script_would_put_them() {
        let svg = svg();
        // The chart runs 09:00 to 19:00: 600 minutes over 1180 − 150 − 20 pixels.
        let px: f64 = attr(&svg, "data-px").parse().unwrap();
        assert!((px - 1010.0 / 600.0).abs() < 1e-9, "{px}");
        assert_eq!(attr(&svg, "data-span"), "600");
        assert_eq!(attr(&svg, "data-left"), "150");
        assert_eq!(attr(&svg, "data-right"), "20");
        assert_eq!(attr(&svg, "width"), "1180");
        let bars: Vec<&str> = svg.split("<rect data-x0=").skip(1).collect();
        assert_eq!(bars.len(), 3, "two bars and one setup part");
        // First bar: 0 to 240 minutes, x = 150, width = 240 px-minutes.
        let first = format!(" data-x0={}", bars[0]);
        assert_eq!(attr(&first, "data-x0"), "0");
        assert_eq!(attr(&first, "data-x1"), "240");
        assert_eq!(attr(&first, "x"), "150");
        assert_eq!(attr(&first, "width"), N(240.0 * px).to_string());
        // Its setup part: 0 to 30 minutes, hatched.
        let setup = format!(" data-x0={}", bars[1]);
        assert_eq!(attr(&setup, "data-x1"), "30");
        assert_eq!(attr(&setup, "fill"), "url(#gantt-setup)");
        assert_eq!(attr(&setup, "width"), N(30.0 * px).to_string());
        // Second bar: 240 to 600 minutes.
        let second = format!(" data-x0={}", bars[2]);
        assert_eq!(attr(&second, "data-x0"), "240");
        assert_eq!(attr(&second, "x"), N(150.0 + 240.0 * px).to_string());
        assert_eq!(svg.matches("<pattern").count(), 1, "one pattern for every setup");
        assert_eq!(svg.matches("url(#gantt-setup)").count(), 1, "only operations with a setup are hatched");
        // Labels start after the setup, 3 px in, like zoomGantt.
        assert!(
            svg.contains(&format!(
                r#"<text data-x0="30" data-x1="240" x="{}" y="19""#,
                N(150.0 + 30.0 * px + 3.0)
            )),
            "{svg}"
        );
    }

    #[test]
    fn solve_time_never_says_zero() {
        assert_eq!(solve_time(&EN, 0), "< 1 ms", "a right shift can take under a millisecond");
        assert_eq!(solve_time(&EN, 42), "42 ms");
        assert_eq!(solve_time(&EN, 12_345), "12.3 s");
        assert_eq!(solve_time(&ZH, 0), "< 1 毫秒");
        assert_eq!(solve_time(&ZH, 1000), "1 秒", "not 1000 ms");
        assert_eq!(solve_time(&EN, 2_340), "2.3 s");
    }

    #[test]
    fn late_operations_are_outlined_and_marked_and_say_so() {
        let svg = svg();
        assert_eq!(svg.matches(r#"<a href="/orders/2" class="late">"#).count(), 1, "{svg}");
        assert_eq!(svg.matches(r#"<a href="/orders/1">"#).count(), 1, "on-time bars carry no late class");
        // The marker: a line at the late bar's end (600 minutes).
        let marker =
            svg.split(r#"<a href="/orders/2" class="late">"#).nth(1).unwrap().split("</a>").next().unwrap();
        assert!(marker.contains(r#"<line data-x0="600" x1="1160" x2="1160""#), "{marker}");
        assert!(marker.contains("Order finishes late"), "the tooltip tells it in words");
        // Tooltips are escaped and complete.
        assert!(svg.contains("SO-0001 · Bracket &lt;A&gt;\nMilling · M01 · Quantity 40\nSetup 09:00 · Start 09:30 · End 13:00"), "{svg}");
    }

    #[test]
    fn running_and_done_operations_show_their_progress_against_the_plan() {
        let mut lanes = lanes();
        lanes[0].items[0].status = OrderStatus::Done;
        lanes[0].items[0].good = 40;
        lanes[0].items[1].status = OrderStatus::Running;
        (lanes[0].items[1].good, lanes[0].items[1].scrap) = (12, 1);
        let svg = gantt(super::super::Lang::En.text(), &Zone::UTC, NOW, &lanes, &[]).into_string();
        let bar = |head: &str| svg.split(head).nth(1).unwrap().split("</a>").next().unwrap().to_string();
        let done = bar(r#"<a href="/orders/1" class="done">"#);
        assert!(done.contains("✓ Done · Good 40 · Scrap 0") && !done.contains(r#"class="run""#), "{done}");
        let running = bar(r#"<a href="/orders/2" class="late running">"#);
        assert!(running.contains("▶ Running · Good 12 · Scrap 1"), "{running}");
        // The stripe spans the bar (13:00–19:00: minutes 240 to 600 from the first setup).
        assert!(running.contains(r#"<rect class="run" data-x0="240" data-x1="600""#), "{running}");
        let zh = gantt(super::super::Lang::ZhHk.text(), &Zone::UTC, NOW, &lanes, &[]).into_string();
        assert!(zh.contains("▶ 生產中") && zh.contains("✓ 已完成"), "{zh}");
    }

    #[test]
    fn work_behind_the_plan_is_found_once_per_lot_furthest_behind_first() {
        let mut lanes = lanes();
        // Lot 1 (setup from 09:00) is not started; lot 2 (13:00–19:00) runs.
        lanes[0].items[1].status = OrderStatus::Running;
        let at = |hour, minute| NOW.replace_time(time::Time::from_hms(hour, minute, 0).unwrap());
        assert!(behind(&lanes, at(9, 15)).is_empty(), "fifteen minutes are within the grace");
        let found = behind(&lanes, at(9, 20));
        assert_eq!(found.len(), 1);
        assert_eq!(
            (found[0].0.order_number.as_str(), found[0].1, found[0].2),
            ("SO-0001", "M01", time::Duration::minutes(20))
        );
        // Lot 2 goes on past 19:00; lot 1 is still waiting, and now furthest behind.
        let found = behind(&lanes, at(20, 0));
        let orders: Vec<&str> = found.iter().map(|(item, _, _)| item.order_number.as_str()).collect();
        assert_eq!(orders, ["SO-0001", "SO-0002"]);
        assert_eq!(found[1].2, time::Duration::hours(1));
        // A second part of lot 2 on the other machine, ending at 21:00: the lot is not late yet.
        let mut part = item(2, at(15, 0), at(15, 0), at(21, 0), false);
        part.operation.part = 1;
        part.status = OrderStatus::Running;
        lanes[1].items.push(part);
        let found = behind(&lanes, at(20, 0));
        assert_eq!(found.len(), 1, "one lot, judged by its last part's end");
        lanes[0].items[0].status = OrderStatus::Done;
        assert!(behind(&lanes, at(20, 0)).is_empty());
    }

    /// A viewer's page context in `lang` at `now`, on UTC.
    fn viewer_ctx(lang: super::super::Lang, now: Timestamp) -> Ctx {
        let user = model::User {
            id: model::UserId(1),
            username: "ada".into(),
            role: model::Role::Viewer,
            site_id: None,
            created_at: NOW,
        };
        Ctx {
            user,
            t: lang.text(),
            now,
            clock_speed: None,
            zone: Zone::UTC,
            here: "/plan".into(),
            user_site: None,
        }
    }

    #[test]
    fn the_behind_panel_lists_the_lots_in_words() {
        let mut lanes = lanes();
        lanes[0].items[1].status = OrderStatus::Running;
        let ctx = viewer_ctx;
        let html = behind_panel(&ctx(super::super::Lang::En, NOW), &lanes).into_string();
        assert!(html.contains("Behind the plan (1)") && html.contains("Not started"), "{html}");
        assert!(
            html.contains(r#"<a href="/orders/1">SO-0001</a>"#)
                && html.contains(r#"<a href="/machines/1">M01</a>"#)
        );
        assert!(html.contains("20 min"), "{html}");
        let evening = datetime!(2026-11-24 20:00 UTC);
        let zh = behind_panel(&ctx(super::super::Lang::ZhHk, evening), &lanes).into_string();
        assert!(zh.contains("落後於排程（2）") && zh.contains("仍在生產") && zh.contains("未開始"), "{zh}");
        let calm =
            behind_panel(&ctx(super::super::Lang::En, datetime!(2026-11-24 09:00 UTC)), &lanes).into_string();
        assert!(calm.contains("keeps to the plan") && !calm.contains("<table"));
    }

    #[test]
    fn plans_computed_far_apart_are_compared_with_a_caution() {
        let ctx = viewer_ctx(super::super::Lang::En, NOW);
        let plan = |id, created_at| PlanSummary {
            id,
            created_at,
            status: PlanStatus::Draft,
            objective: "makespan".into(),
            makespan_end: NOW + time::Duration::hours(30),
            weighted_tardiness: 0,
            late_orders: 0,
            setup_seconds: 600,
            solve_ms: 3000,
            published_at: None,
            trigger: None,
            notes: Vec::new(),
        };
        let active = plan(1, NOW - time::Duration::hours(16));
        let html = comparison(&ctx, &plan(2, NOW), &active).into_string();
        assert!(html.contains("computed 16 h 00 min apart"), "{html}");
        let close =
            comparison(&ctx, &plan(2, NOW), &plan(1, NOW - time::Duration::minutes(20))).into_string();
        assert!(!close.contains("computed-apart") && close.contains("plan-comparison"), "{close}");
    }

    #[test]
    fn the_now_line_and_the_axis() {
        let svg = svg();
        // Now is 09:20, 20 minutes after the origin.
        let px = 1010.0 / 600.0;
        let x = N(150.0 + 20.0 * px).to_string();
        assert!(svg.contains(&format!(r#"<line class="now" data-x0="20" x1="{x}" x2="{x}""#)), "{svg}");
        assert!(svg.contains(">Now 09:20</text>"));
        // Hour marks every hour from the origin, and the day's label at the origin.
        let scale = Scale::new(datetime!(2026-11-24 09:00 UTC), datetime!(2026-11-24 19:00 UTC), &Zone::UTC);
        let marks = ticks(&scale, &Zone::UTC, &EN);
        assert_eq!(marks[0], Tick { at: 0.0, until: 900.0, label: "11-24 Tue".into(), day: true });
        let hours: Vec<&str> = marks.iter().filter(|t| !t.day).map(|t| t.label.as_str()).collect();
        assert_eq!(
            hours,
            ["09:00", "10:00", "11:00", "12:00", "13:00", "14:00", "15:00", "16:00", "17:00", "18:00"]
        );
        // Each label's room is its level's step: 12:00 has 12 hours, 15:00 three, 11:00 one.
        let room = |label: &str| marks.iter().find(|t| t.label == label).map(|t| t.until - t.at).unwrap();
        assert_eq!((room("12:00"), room("15:00"), room("18:00"), room("11:00")), (720.0, 180.0, 360.0, 60.0));
        // At fit zoom (101 px per hour) every hour label shows.
        assert!(
            svg.contains(r#"<text class="ah" data-x0="60" data-x1="120" x="254" y="32">10:00</text>"#),
            "{svg}"
        );
        // Utilisation next to the machine code, and every machine has a lane.
        assert!(svg.contains(">50.0 %</text>"), "{svg}");
        assert!(svg.contains(">L02</text>"));
    }

    #[test]
    fn the_axis_follows_the_local_clock_and_thins_out_over_weeks() {
        // Hong Kong, UTC+8: 01:30 UTC is 09:30 local, so the origin is 09:00 local.
        let scale =
            Scale::new(datetime!(2026-11-24 01:30 UTC), datetime!(2026-11-25 02:10 UTC), &Zone::fixed(480));
        assert_eq!(scale.minutes(datetime!(2026-11-24 01:00 UTC)), 0.0);
        let marks = ticks(&scale, &Zone::fixed(480), &EN);
        let days: Vec<(f64, &str)> =
            marks.iter().filter(|t| t.day).map(|t| (t.at, t.label.as_str())).collect();
        // The first label at the origin, then local midnight 15 hours later.
        assert_eq!(days, [(0.0, "11-24 Tue"), (900.0, "11-25 Wed")]);
        let hours: Vec<&Tick> = marks.iter().filter(|t| !t.day).collect();
        assert_eq!(hours.len(), 26 - 1, "every local hour but midnight");
        assert!(hours.iter().all(|t| t.label.ends_with(":00") && (t.at % 60.0) == 0.0));
        // Over five weeks: Mondays are the weekly level, and hour marks still come every hour.
        let scale = Scale::new(datetime!(2026-11-02 00:00 UTC), datetime!(2026-12-07 00:00 UTC), &Zone::UTC);
        let marks = ticks(&scale, &Zone::UTC, &ZH);
        let mondays: Vec<&str> = marks
            .iter()
            .filter(|t| t.day && t.until - t.at == 7.0 * 1440.0)
            .map(|t| t.label.as_str())
            .collect();
        assert_eq!(
            mondays,
            ["11月2日（一）", "11月9日（一）", "11月16日（一）", "11月23日（一）", "11月30日（一）"]
        );
        assert_eq!(marks.iter().filter(|t| t.day).count(), 35);
        assert_eq!(marks.iter().filter(|t| !t.day).count(), 35 * 23);
        // Over a year, only every 6 hours.
        let scale = Scale::new(datetime!(2026-01-01 00:00 UTC), datetime!(2027-01-01 00:00 UTC), &Zone::UTC);
        let marks = ticks(&scale, &Zone::UTC, &EN);
        assert!(marks.iter().filter(|t| !t.day).all(|t| t.at % 360.0 == 0.0));
        assert!(marks.iter().all(|t| t.until > t.at));
    }

    #[test]
    fn the_axis_keeps_to_local_hours_across_summer_time() {
        let berlin = Zone::named("Europe/Berlin").unwrap();
        // Sunday 2026-03-29 has 23 hours: 02:00 does not exist, 03:00 comes an hour after 01:00.
        let scale = Scale::new(datetime!(2026-03-28 22:00 UTC), datetime!(2026-03-30 00:00 UTC), &berlin);
        let marks = ticks(&scale, &berlin, &EN);
        let days: Vec<(f64, f64, &str)> =
            marks.iter().filter(|t| t.day).map(|t| (t.at, t.until, t.label.as_str())).collect();
        assert_eq!(days[1], (60.0, 60.0 + 23.0 * 60.0, "03-29 Sun"), "{days:?}");
        let at = |label: &str| {
            marks.iter().filter(|t| !t.day && t.label == label).map(|t| t.at).collect::<Vec<_>>()
        };
        // (Monday's 01:00 is the last mark; 02:00 on Monday is where the chart ends.)
        assert_eq!((at("01:00"), at("02:00"), at("03:00")), (vec![120.0, 1500.0], vec![], vec![180.0]));
        // Sunday 2026-10-25 has 25 hours; 02:00 is marked once, at its first occurrence.
        let scale = Scale::new(datetime!(2026-10-24 21:00 UTC), datetime!(2026-10-26 00:00 UTC), &berlin);
        let marks = ticks(&scale, &berlin, &EN);
        let sunday = marks.iter().find(|t| t.day && t.label == "10-25 Sun").unwrap();
        assert_eq!((sunday.at, sunday.until - sunday.at), (60.0, 25.0 * 60.0));
        let at = |label: &str| {
            marks.iter().filter(|t| !t.day && t.label == label).map(|t| t.at).collect::<Vec<_>>()
        };
        assert_eq!((at("02:00"), at("03:00")), (vec![180.0], vec![300.0]));
    }

    #[test]
    fn labels_too_wide_for_their_bar_start_hidden() {
        // A two-minute bar cannot hold its order number at fit zoom.
        let mut lanes = lanes();
        lanes[0].items.push(item(
            3,
            datetime!(2026-11-24 19:00 UTC),
            datetime!(2026-11-24 19:00 UTC),
            datetime!(2026-11-24 19:02 UTC),
            false,
        ));
        let svg = gantt(super::super::Lang::En.text(), &Zone::UTC, NOW, &lanes, &[]).into_string();
        let third = svg.split(r#"<a href="/orders/3">"#).nth(1).unwrap();
        assert!(third.split("</a>").next().unwrap().contains(r#"style="display:none">SO-0003<"#), "{third}");
        let first = svg.split(r#"<a href="/orders/1">"#).nth(1).unwrap();
        assert!(!first.split("</a>").next().unwrap().contains("display:none"));
    }

    #[test]
    fn order_colours_are_stable_and_their_labels_readable() {
        assert_eq!(order_colour(OrderId(42)), order_colour(OrderId(42)));
        assert_ne!(order_colour(OrderId(1)).0, order_colour(OrderId(2)).0);
        for id in 1..2000 {
            let (rgb, white) = order_colour(OrderId(id));
            let text = if white { 1.0 } else { 0.0 };
            let ratio = contrast(text, luminance(rgb));
            assert!(ratio >= 4.5, "order {id}: {rgb:?} with white={white} has contrast {ratio:.2}");
        }
        assert!(white_label([0x0b, 0x5c, 0xad]), "white on dark blue");
        assert!(!white_label([0xff, 0xeb, 0x3b]), "black on yellow");
    }

    #[test]
    fn verdicts_prefer_lower_values() {
        assert_eq!(verdict(1, 3), Verdict::Better);
        assert_eq!(verdict(3, 1), Verdict::Worse);
        assert_eq!(verdict(2, 2), Verdict::Same);
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(N(12.0).to_string(), "12");
        assert_eq!(N(12.04).to_string(), "12");
        assert_eq!(N(12.06).to_string(), "12.1");
        assert_eq!(N(-0.5).to_string(), "-0.5");
    }
}
