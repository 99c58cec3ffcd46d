//! The alarms page: the list (open or all, by machine) with acknowledgement, and the rule editor.

use std::collections::HashMap;

use axum::extract::State;
use maud::{Markup, html};
use model::MachineId;
use model::alarm::{AlarmRule, Condition, Severity};
use serde::Deserialize;
use store::{AlarmFilter, AlarmSort, MachineFilter, PageRequest};

use super::{Ctx, Nav, OrPage, PageResult, alarm_status, encode, layout};
use crate::AppState;
use crate::auth::Need;
use crate::extract::page_request;

/// The alarms page's labels.
pub(crate) struct Text {
    pub(crate) title: &'static str,
    pub(crate) show: &'static str,
    pub(crate) open_only: &'static str,
    pub(crate) acknowledge_cleared: &'static str,
    pub(crate) acknowledge_cleared_hint: &'static str,
    /// The label of the note an acknowledgement may carry.
    pub(crate) note: &'static str,
    pub(crate) all: &'static str,
    pub(crate) all_machines: &'static str,
    pub(crate) machines_at: &'static str,
    pub(crate) all_severities: &'static str,
    pub(crate) all_sites: &'static str,
    pub(crate) period: &'static str,
    /// Any time, then the last 8 hours, 24 hours and 7 days (see [`WITHIN`]).
    pub(crate) periods: [&'static str; 4],
    pub(crate) none_found: &'static str,
    pub(crate) value: &'static str,
    pub(crate) cleared_at: &'static str,
    pub(crate) rules: &'static str,
    pub(crate) no_rules: &'static str,
    pub(crate) rule_name: &'static str,
    pub(crate) metric: &'static str,
    pub(crate) condition: &'static str,
    pub(crate) limit: &'static str,
    pub(crate) for_seconds: &'static str,
    pub(crate) deadband: &'static str,
    pub(crate) deadband_hint: &'static str,
    pub(crate) unknown_metric: &'static str,
    pub(crate) enabled: &'static str,
    pub(crate) new_rule: &'static str,
    pub(crate) delete_rule: &'static str,
    pub(crate) yes: &'static str,
    pub(crate) no: &'static str,
    /// Above, below, rate above, stale, stopped longer.
    pub(crate) conditions: [&'static str; 5],
    /// The unit of each condition's limit.
    pub(crate) condition_units: [&'static str; 5],
}

pub(crate) const EN: Text = Text {
    title: "Alarms",
    show: "Show",
    open_only: "Open (not cleared, or not acknowledged)",
    acknowledge_cleared: "Acknowledge every cleared alarm",
    acknowledge_cleared_hint: "of the machine chosen, or of all; alarms still active are acknowledged one by one.",
    note: "Note (optional): what was found and done",
    all: "All, newest first",
    all_machines: "All machines",
    machines_at: "All machines at {site}",
    all_severities: "Every severity",
    all_sites: "All sites",
    period: "Up within",
    periods: ["Any time", "Last 8 h", "Last 24 h", "Last 7 d"],
    none_found: "No alarms match.",
    value: "Value",
    cleared_at: "Cleared",
    rules: "Alarm rules",
    no_rules: "No rules yet.",
    rule_name: "Name",
    metric: "Metric",
    condition: "Condition",
    limit: "Limit",
    for_seconds: "Holds for (s)",
    deadband: "Deadband",
    unknown_metric: "No machine reports this metric",
    deadband_hint: "A raised alarm clears only once the value is back past the limit by more than this.",
    enabled: "Enabled",
    new_rule: "New rule",
    delete_rule: "Delete this rule?",
    yes: "Yes",
    no: "No",
    conditions: ["Above", "Below", "Changes faster than", "No reading for", "Stopped longer than"],
    condition_units: ["", "", "per minute", "s", "min"],
};

pub(crate) const ZH: Text = Text {
    title: "警報",
    show: "顯示",
    open_only: "未完結（未解除或未確認）",
    acknowledge_cleared: "確認所有已解除的警報",
    acknowledge_cleared_hint: "限所選機器，未選則為全部；仍持續的警報須逐一確認。",
    note: "備註（選填）：發現及處理",
    all: "全部，最新在前",
    all_sites: "所有廠房",
    period: "時段",
    periods: ["任何時間", "最近 8 小時", "最近 24 小時", "最近 7 日"],
    all_machines: "所有機器",
    machines_at: "{site} 所有機器",
    all_severities: "所有嚴重程度",
    none_found: "沒有符合的警報。",
    value: "數值",
    cleared_at: "解除時間",
    rules: "警報規則",
    no_rules: "尚未設定規則。",
    rule_name: "名稱",
    metric: "數據項目",
    condition: "條件",
    limit: "限值",
    for_seconds: "持續（秒）",
    deadband: "死區",
    unknown_metric: "沒有機器報告此數據項目",
    deadband_hint: "警報發出後，數值須回到限值另一側並超出此幅度才解除。",
    enabled: "啟用",
    new_rule: "新增規則",
    delete_rule: "刪除此規則？",
    yes: "是",
    no: "否",
    conditions: ["高於", "低於", "變化速度超過", "無讀數超過", "停機超過"],
    condition_units: ["", "", "／分鐘", "秒", "分鐘"],
};

const KINDS: [&str; 5] = ["above", "below", "rate_above", "stale", "stopped_longer"];

/// Each limit field of a condition, the kinds that use it, and the index of its unit label.
const LIMITS: [(&str, &[&str], usize); 4] = [
    ("threshold", &["above", "below"], 0),
    ("per_minute", &["rate_above"], 2),
    ("seconds", &["stale"], 3),
    ("minutes", &["stopped_longer"], 4),
];

fn condition_parts(condition: &Condition) -> (usize, f64) {
    match condition {
        Condition::Above { threshold } => (0, *threshold),
        Condition::Below { threshold } => (1, *threshold),
        Condition::RateAbove { per_minute } => (2, *per_minute),
        Condition::Stale { seconds } => (3, f64::from(*seconds)),
        Condition::StoppedLonger { minutes } => (4, f64::from(*minutes)),
    }
}

/// The periods offered: the code in `?within=` and its hours (after any time, `""`).
const WITHIN: [(&str, i64); 3] = [("8h", 8), ("24h", 24), ("7d", 168)];

#[derive(Default, Deserialize)]
pub(crate) struct AlarmsQuery {
    show: Option<String>,
    machine: Option<i64>,
    severity: Option<String>,
    within: Option<String>,
    site: Option<i64>,
    cursor: Option<String>,
}

/// `GET /alarms`.
pub(crate) async fn page(
    ctx: Ctx,
    State(state): State<AppState>,
    super::PageQuery(query): super::PageQuery<AlarmsQuery>,
) -> PageResult {
    let t = ctx.t;
    let a = t.alarms_page;
    let store = &state.store;
    let all = query.show.as_deref() == Some("all");
    // A period the form does not offer (an old link) is any time.
    let within = WITHIN.iter().position(|(code, _)| query.within.as_deref() == Some(*code));
    // Latest occurrence first: an alarm that came back is news again. A cursor of another
    // list (an old link) starts from the top.
    let (cursor, cursor_raised_ms) =
        crate::api::alarms::split_alarm_cursor(AlarmSort::Latest, query.cursor.as_deref())
            .unwrap_or((None, None));
    let filter = AlarmFilter {
        open: (!all).then_some(true),
        machine: query.machine.map(MachineId),
        site: query.site.map(model::SiteId).or(ctx.home_site()),
        // A severity the form does not offer (an old link) shows them all.
        severity: query.severity.as_deref().and_then(Severity::parse),
        from: within.map(|index| ctx.now - time::Duration::hours(WITHIN[index].1)),
        sort: AlarmSort::Latest,
        cursor_raised_ms,
        ..AlarmFilter::default()
    };
    let request = page_request(Some(50), cursor).or_page(&ctx)?;
    let page = store.alarms(&filter, request).or_page(&ctx)?;
    let next_cursor = crate::api::alarms::alarm_cursor(AlarmSort::Latest, &page);
    let machines = store
        .machines(&MachineFilter::default(), PageRequest { after: None, limit: 10_000 })
        .or_page(&ctx)?
        .items;
    let labels = super::machine_labels(store, &machines);
    let names: HashMap<MachineId, &str> = labels.iter().map(|(id, label)| (*id, label.as_str())).collect();
    let rules = store.alarm_rules().or_page(&ctx)?;
    // The machines a new rule may watch: someone bound to a site gives one of its own.
    let own_machines: Vec<model::Machine> =
        machines.iter().filter(|m| ctx.user.acts_at(m.site_id)).cloned().collect();
    let sites = store.sites(PageRequest { after: None, limit: 1000 }).or_page(&ctx)?.items;
    let metrics = store.metric_names().or_page(&ctx)?;
    let site_of: HashMap<MachineId, model::SiteId> = machines.iter().map(|m| (m.id, m.site_id)).collect();
    // Someone bound to a site acknowledges its machines' alarms only.
    let may_ack =
        |machine: MachineId| site_of.get(&machine).is_some_and(|site| ctx.may_at(Need::Report, *site));
    let keep = |cursor: Option<&str>| {
        let mut query = format!("/alarms?show={}", if all { "all" } else { "open" });
        if let Some(machine) = filter.machine {
            query.push_str(&format!("&machine={}", machine.0));
        }
        if let Some(severity) = filter.severity {
            query.push_str(&format!("&severity={}", severity.as_str()));
        }
        if let Some(index) = within {
            query.push_str(&format!("&within={}", WITHIN[index].0));
        }
        if let Some(site) = filter.site {
            query.push_str(&format!("&site={}", site.0));
        }
        if let Some(cursor) = cursor {
            query.push_str(&format!("&cursor={}", encode(cursor)));
        }
        query
    };
    let body = html! {
        h1 { (a.title) }
        form.filters method="get" action="/alarms" {
            label { (a.show)
                select name="show" {
                    option value="open" selected[!all] { (a.open_only) }
                    option value="all" selected[all] { (a.all) }
                }
            }
            label { (t.machine)
                select name="machine" {
                    option value="" { (a.all_machines) }
                    @for machine in &machines {
                        option value=(machine.id.0) selected[filter.machine == Some(machine.id)] { (names.get(&machine.id).copied().unwrap_or("?")) }
                    }
                }
            }
            label { (t.severity)
                select name="severity" {
                    option value="" { (a.all_severities) }
                    @for severity in Severity::ALL.iter().rev() {
                        option value=(severity.as_str()) selected[filter.severity == Some(*severity)] { (t.severity(*severity)) }
                    }
                }
            }
            // Several sites: each one's alarms apart.
            @if sites.len() > 1 {
                label { (t.site)
                    select name="site" data-testid="alarm-site" {
                        option value="" { (a.all_sites) }
                        @for site in &sites {
                            option value=(site.id.0) selected[filter.site == Some(site.id)] { (site.name) }
                        }
                    }
                }
            }
            label { (a.period)
                select name="within" data-testid="alarm-within" {
                    option value="" { (a.periods[0]) }
                    @for (index, (code, _)) in WITHIN.iter().enumerate() {
                        option value=(code) selected[within == Some(index)] { (a.periods[index + 1]) }
                    }
                }
            }
            button type="submit" { (t.filter) }
        }
        section.panel #alarm-list data-live data-refresh-on="alarm" {
            @if page.items.iter().any(|alarm| alarm.cleared_unseen() && may_ack(alarm.machine_id)) {
                p {
                    button data-action="POST /api/v1/alarms/acknowledge-cleared"
                        data-body=(serde_json::json!({ "machine_id": filter.machine.map(|m| m.0) }).to_string())
                        data-testid="acknowledge-cleared" { (a.acknowledge_cleared) }
                    " " span.muted { (a.acknowledge_cleared_hint) }
                }
            }
            @if page.items.is_empty() {
                p.muted { (a.none_found) }
            } @else {
                table {
                    thead { tr {
                        th { (t.severity) } th { (t.machine) } th { (t.message) } th.num.wide-only { (a.value) } th { (t.status) }
                        th { (t.raised_at) } th.wide-only { (t.acknowledged_by) } th.wide-only { (a.cleared_at) } th { span.visually-hidden { (t.actions) } }
                    } }
                    tbody {
                        @for alarm in &page.items {
                            tr data-testid="alarm-row" data-alarm-id=(alarm.id) {
                                td { span.badge.{"sev-" (alarm.severity.as_str())} { (t.severity(alarm.severity)) } }
                                td.nw { a href={ "/machines/" (alarm.machine_id.0) } { (names.get(&alarm.machine_id).copied().unwrap_or("?")) } }
                                td id={ "alarm-" (alarm.id) "-message" } { (super::alarm_message(t, alarm)) }
                                td.num.wide-only { @if let Some(value) = alarm.value { (format!("{value:.2}")) } }
                                td.status { (alarm_status(t, alarm)) }
                                td.nw { (super::alarm_raised(&ctx, alarm)) }
                                td.wide-only {
                                    @if let (Some(by), Some(at)) = (&alarm.acknowledged_by, alarm.acknowledged_at) {
                                        (by) " · " (ctx.short_time(at))
                                    }
                                    @if let Some(note) = &alarm.note {
                                        br; span.note data-testid="alarm-note" { (note) }
                                    }
                                }
                                td.wide-only { @if let Some(at) = alarm.cleared_at { (ctx.short_time(at)) } }
                                td {
                                    @if alarm.needs_acknowledgement() && may_ack(alarm.machine_id) {
                                        form.ack data-action={ "POST /api/v1/alarms/" (alarm.id) "/acknowledge" } {
                                            label.visually-hidden for={ "alarm-" (alarm.id) "-note" } { (a.note) }
                                            input #{ "alarm-" (alarm.id) "-note" } name="note" maxlength="1000"
                                                placeholder=(a.note) title=(a.note);
                                            button.primary type="submit" aria-describedby={ "alarm-" (alarm.id) "-message" }
                                                data-testid="acknowledge" { (t.acknowledge) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            div.pager {
                @if query.cursor.is_some() { a href=(keep(None)) { (t.first_page) } }
                @if let Some(cursor) = &next_cursor { a href=(keep(Some(cursor))) { (t.next_page) } }
            }
        }
        section.panel #rules aria-labelledby="rules-heading" {
            h2 #rules-heading { (a.rules) }
            // The metrics machines report, offered in the rule forms against typos.
            datalist #known-metrics { @for metric in &metrics { option value=(metric) {} } }
            (rule_table(&ctx, &rules, &names, &site_of, &sites, &metrics))
            @if ctx.may(Need::Maintain) {
                h2 { (a.new_rule) }
                (rule_form(&ctx, None, (&own_machines, &names), &sites))
            }
        }
    };
    Ok(layout(&ctx, Nav::Alarms, a.title, body))
}

fn rule_table(
    ctx: &Ctx,
    rules: &[AlarmRule],
    names: &HashMap<MachineId, &str>,
    site_of: &HashMap<MachineId, model::SiteId>,
    sites: &[model::Site],
    metrics: &[String],
) -> Markup {
    let t = ctx.t;
    let a = t.alarms_page;
    // Someone bound to a site edits the rules of its machines only (one of them, or all of the
    // site's), not those of every site's machines.
    let may_edit = |rule: &AlarmRule| match (ctx.user.site_id, rule.rule.machine_id, rule.rule.site_id) {
        (None, ..) => ctx.may(Need::Maintain),
        (Some(_), Some(machine), _) => {
            site_of.get(&machine).is_some_and(|site| ctx.may_at(Need::Maintain, *site))
        }
        (Some(_), None, Some(site)) => ctx.may_at(Need::Maintain, site),
        (Some(_), None, None) => false,
    };
    let watched = |rule: &AlarmRule| match (rule.rule.machine_id, rule.rule.site_id) {
        (Some(machine), _) => names.get(&machine).copied().unwrap_or("?").to_string(),
        (None, Some(site)) => {
            let site = sites.iter().find(|s| s.id == site).map_or("?", |s| s.name.as_str());
            a.machines_at.replace("{site}", site)
        }
        (None, None) => a.all_machines.to_string(),
    };
    html! {
        @if rules.is_empty() {
            p.muted { (a.no_rules) }
        } @else {
            table {
                thead { tr {
                    th { (a.rule_name) } th { (t.machine) } th { (a.metric) } th { (a.condition) }
                    th.num { (a.for_seconds) } th { (t.severity) } th { (a.enabled) } th { span.visually-hidden { (t.actions) } }
                } }
                tbody {
                    @for rule in rules {
                        @let (kind, limit) = condition_parts(&rule.rule.condition);
                        tr data-testid="rule-row" {
                            td { (rule.rule.name) }
                            td { (watched(rule)) }
                            td {
                                (rule.rule.metric.as_deref().unwrap_or(t.none))
                                @if let Some(metric) = &rule.rule.metric && !metrics.contains(metric) {
                                    br; span.late-text data-testid="unknown-metric" { (a.unknown_metric) }
                                }
                            }
                            td {
                                (a.conditions[kind]) " " (limit) " " (a.condition_units[kind])
                                @if rule.rule.deadband > 0.0 { " · " (a.deadband) " " (rule.rule.deadband) }
                            }
                            td.num { (rule.rule.for_seconds) }
                            td { span.badge.{"sev-" (rule.rule.severity.as_str())} { (t.severity(rule.rule.severity)) } }
                            td { (if rule.rule.enabled { a.yes } else { a.no }) }
                            td {
                                @if may_edit(rule) {
                                    details {
                                        summary { (t.edit) }
                                        (rule_form(ctx, Some(rule), (&[], names), &[]))
                                        button.danger data-action={ "DELETE /api/v1/alarm-rules/" (rule.id) }
                                            data-confirm=(a.delete_rule) { (t.delete) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The form to create a rule (`rule` absent) or change one. The limit input is named after the
/// condition kind's field; the script keeps only the input of the chosen kind enabled.
/// The form of a new rule (`rule` absent: its machine, or every machine of a site or of all
/// sites, among `machines` and `sites`) or of an existing one (which keeps what it watches).
fn rule_form(
    ctx: &Ctx,
    rule: Option<&AlarmRule>,
    (machines, names): (&[model::Machine], &HashMap<MachineId, &str>),
    sites: &[model::Site],
) -> Markup {
    let t = ctx.t;
    let a = t.alarms_page;
    let (action, kind, limit) = match rule {
        Some(rule) => {
            let (kind, limit) = condition_parts(&rule.rule.condition);
            (format!("PUT /api/v1/alarm-rules/{}", rule.id), kind, Some(limit))
        }
        None => ("POST /api/v1/alarm-rules".to_string(), 0, None),
    };
    html! {
        form.row-form data-action=(action) data-testid="rule-form" {
            label { (a.rule_name) input name="name" required maxlength="200" value=[rule.map(|r| r.rule.name.as_str())]; }
            @if let Some(rule) = rule {
                @if let Some(machine) = rule.rule.machine_id {
                    input type="hidden" name="machine_id" data-type="int" value=(machine.0);
                }
                @if let Some(site) = rule.rule.site_id {
                    input type="hidden" name="site_id" data-type="int" value=(site.0);
                }
            } @else {
                @let own = ctx.user.site_id;
                label { (t.machine)
                    select name="machine_id" data-type="int" data-switch {
                        option value="" { (a.all_machines) }
                        @for machine in machines { option value=(machine.id.0) { (names.get(&machine.id).copied().unwrap_or("?")) } }
                    }
                }
                // Without a machine: every machine of one site, or of all (someone bound to a
                // site gives theirs).
                @if sites.len() > 1 || own.is_some() {
                    label data-show-when="machine_id=" { (t.site)
                        select name="site_id" data-type="int" {
                            @if own.is_none() { option value="" { (a.all_sites) } }
                            @for site in sites.iter().filter(|s| own.is_none_or(|own| own == s.id)) {
                                option value=(site.id.0) { (site.name) }
                            }
                        }
                    }
                }
            }
            label data-show-when="condition.kind=above,below,rate_above,stale" { (a.metric) input name="metric" required maxlength="200" list="known-metrics" value=[rule.and_then(|r| r.rule.metric.as_deref())]; }
            label { (a.condition)
                select name="condition.kind" data-switch {
                    @for (index, name) in KINDS.iter().enumerate() {
                        option value=(name) selected[index == kind] { (a.conditions[index]) }
                    }
                }
            }
            @for (field, kinds, unit) in LIMITS {
                label data-show-when={ "condition.kind=" (kinds.join(",")) } {
                    (a.limit) @if unit < a.condition_units.len() && !a.condition_units[unit].is_empty() { (ctx.t.space_lparen) (a.condition_units[unit]) (ctx.t.rparen) }
                    @let whole = matches!(field, "seconds" | "minutes");
                    input name={ "condition." (field) } type="number" step=(if whole { "1" } else { "any" })
                        data-type=(if whole { "int" } else { "number" }) required
                        value=[limit.filter(|_| kinds.contains(&KINDS[kind]))];
                }
            }
            label { (a.for_seconds) input name="for_seconds" type="number" min="0" step="1" data-type="int"
                value=(rule.map_or(0, |r| r.rule.for_seconds)); }
            label data-show-when="condition.kind=above,below,rate_above" title=(a.deadband_hint) {
                (a.deadband) input name="deadband" type="number" min="0" step="any" data-type="number"
                    value=(rule.map_or(0.0, |r| r.rule.deadband));
            }
            label { (t.severity)
                select name="severity" {
                    @for severity in [Severity::Info, Severity::Warning, Severity::Critical] {
                        option value=(severity.as_str())
                            selected[rule.map_or(severity == Severity::Warning, |r| r.rule.severity == severity)] {
                            (t.severity(severity))
                        }
                    }
                }
            }
            label.inline { input name="enabled" type="checkbox" checked[rule.is_none_or(|r| r.rule.enabled)]; (a.enabled) }
            button.primary type="submit" { (if rule.is_some() { t.save } else { t.create }) }
        }
    }
}
