//! The factory page: the sites with their local time and working calendar, their lines and their
//! machines. Everyone signed in reads it; administrators set the factory up here, through the
//! same API a script would use (`/sites`, `/sites/{id}/calendar`, `/lines`, `/machines`).

use std::collections::HashMap;

use axum::extract::State;
use maud::{Markup, html};
use model::{Calendar, Line, Machine, MachineKind, Site, SiteId, Weekday};
use store::{MachineFilter, PageRequest};

use super::{Ctx, Nav, OrPage, PageResult, layout};
use crate::AppState;
use crate::auth::Need;

/// The factory page's labels.
pub(crate) struct Text {
    pub(crate) title: &'static str,
    pub(crate) intro: &'static str,
    pub(crate) sites: &'static str,
    pub(crate) lines: &'static str,
    pub(crate) code: &'static str,
    pub(crate) name: &'static str,
    pub(crate) zone: &'static str,
    pub(crate) zone_hint: &'static str,
    pub(crate) working_time: &'static str,
    pub(crate) always_open: &'static str,
    /// `{n}` holidays, the next on `{date}`.
    pub(crate) holidays_ahead: &'static str,
    pub(crate) in_service: &'static str,
    pub(crate) calendar: &'static str,
    pub(crate) calendar_hint: &'static str,
    pub(crate) shift: &'static str,
    pub(crate) days: &'static str,
    pub(crate) start: &'static str,
    pub(crate) end: &'static str,
    pub(crate) holidays: &'static str,
    pub(crate) holidays_hint: &'static str,
    pub(crate) new_site: &'static str,
    pub(crate) new_line: &'static str,
    pub(crate) new_machine: &'static str,
    pub(crate) no_lines: &'static str,
    pub(crate) kind: &'static str,
    pub(crate) capabilities: &'static str,
    pub(crate) capabilities_hint: &'static str,
    pub(crate) retired: &'static str,
    pub(crate) retired_hint: &'static str,
    /// `{n}` machines retired.
    pub(crate) retired_machines: &'static str,
    pub(crate) delete_site: &'static str,
    pub(crate) delete_line: &'static str,
    pub(crate) delete_machine: &'static str,
}

pub(crate) const EN: Text = Text {
    title: "Factory",
    intro: "The sites, their lines and machines, and when each site works. The planner plans work in the sites' working time only.",
    sites: "Sites",
    lines: "Lines",
    code: "Code",
    name: "Name",
    zone: "Time zone",
    zone_hint: "A place such as Europe/Berlin (its clocks change for summer time) or a fixed offset such as +08:00.",
    working_time: "Working time",
    always_open: "Around the clock, every day",
    holidays_ahead: "{n} holidays ahead, the next on {date}",
    in_service: "Machines in service",
    calendar: "Shifts and holidays",
    calendar_hint: "A shift that ends before it starts runs past midnight. Clear a shift's name, days and times to remove it. Without shifts the site works around the clock.",
    shift: "Shift",
    days: "Days",
    start: "Start",
    end: "End",
    holidays: "Holidays",
    holidays_hint: "Dates without any shift, YYYY-MM-DD, separated by spaces or commas.",
    new_site: "New site",
    new_line: "New line",
    new_machine: "New machine",
    no_lines: "No lines: a machine may also stand in a site without one.",
    kind: "Kind",
    capabilities: "Capabilities",
    capabilities_hint: "Tags such as 5-axis or abs, separated by commas.",
    retired: "Retired",
    retired_hint: "A retired machine keeps its history but is no longer planned, watched by alarm rules or counted in OEE.",
    retired_machines: "Retired machines ({n})",
    delete_site: "Delete this site? Only a site without lines, machines or accounts bound to it can go.",
    delete_line: "Delete this line? Only a line without machines can go.",
    delete_machine: "Delete this machine? A machine with a history or with work on record is retired instead.",
};

pub(crate) const ZH: Text = Text {
    title: "工廠",
    intro: "各廠房、其生產線及機器，以及各廠房的工作時間。排程只會在廠房的工作時間內安排工作。",
    sites: "廠房",
    lines: "生產線",
    code: "代號",
    name: "名稱",
    zone: "時區",
    zone_hint: "地點（例如 Asia/Hong_Kong，按當地夏令時間調整）或固定時差（例如 +08:00）。",
    working_time: "工作時間",
    always_open: "全日無休",
    holidays_ahead: "未來 {n} 個假期，下一個為 {date}",
    in_service: "使用中的機器",
    calendar: "班次及假期",
    calendar_hint: "結束早於開始的班次跨越午夜。清除班次的名稱、日子及時間即可刪除該班次。沒有班次的廠房全日運作。",
    shift: "班次",
    days: "日子",
    start: "開始",
    end: "結束",
    holidays: "假期",
    holidays_hint: "不設任何班次的日子，格式 YYYY-MM-DD，以空格或逗號分隔。",
    new_site: "新增廠房",
    new_line: "新增生產線",
    new_machine: "新增機器",
    no_lines: "未有生產線：機器亦可不屬任何生產線。",
    kind: "類型",
    capabilities: "能力標籤",
    capabilities_hint: "例如 5-axis 或 abs，以逗號分隔。",
    retired: "已退役",
    retired_hint: "退役機器保留歷史記錄，但不再排產、不受警報規則監察，亦不計入 OEE。",
    retired_machines: "已退役機器（{n}）",
    delete_site: "刪除此廠房？只可刪除沒有生產線、機器及綁定帳戶的廠房。",
    delete_line: "刪除此生產線？只可刪除沒有機器的生產線。",
    delete_machine: "刪除此機器？有歷史記錄或生產記錄的機器只可退役。",
};

/// The most of each kind of record the page lists; a factory has far fewer.
const LIMIT: u32 = 10_000;

/// Blank shift rows the calendar form offers below the site's shifts, for new ones.
const BLANK_SHIFTS: usize = 2;

/// `GET /factory`.
pub(crate) async fn page(ctx: Ctx, State(state): State<AppState>) -> PageResult {
    let f = ctx.t.factory_page;
    let store = &state.store;
    let all = PageRequest { after: None, limit: LIMIT };
    let sites = store.sites(all).or_page(&ctx)?.items;
    let lines = store.lines(None, all).or_page(&ctx)?.items;
    let machines = store.machines(&MachineFilter::default(), all).or_page(&ctx)?.items;
    let calendars =
        sites.iter().map(|site| store.calendar(site.id)).collect::<Result<Vec<_>, _>>().or_page(&ctx)?;
    let admin = ctx.may(Need::Administer);
    let factory = Factory { sites: &sites, lines: &lines, machines: &machines, admin };
    let body = html! {
        h1 { (f.title) }
        p.muted { (f.intro) }
        @if admin {
            datalist #zones { @for name in zone_names() { option value=(name); } }
        }
        (sites_panel(&ctx, &factory, &calendars))
        (lines_panel(&ctx, &factory))
        (machines_panel(&ctx, &factory))
    };
    Ok(layout(&ctx, Nav::Factory, f.title, body))
}

/// The time zone names a site's zone field offers, read from the zone database once per process
/// (listing it walks a folder of files). A zone added to the system later is offered after a
/// restart, and taken when typed before that.
fn zone_names() -> &'static [String] {
    static NAMES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    NAMES.get_or_init(model::Zone::place_names)
}

/// What the page lists, and whether the reader may change it.
struct Factory<'a> {
    sites: &'a [Site],
    lines: &'a [Line],
    machines: &'a [Machine],
    admin: bool,
}

impl Factory<'_> {
    fn site_code(&self, id: SiteId) -> &str {
        self.sites.iter().find(|s| s.id == id).map_or("?", |s| s.code.as_str())
    }

    /// Whether records of several sites are listed, so each names its site.
    fn several_sites(&self) -> bool {
        self.sites.len() > 1
    }
}

fn sites_panel(ctx: &Ctx, factory: &Factory, calendars: &[Calendar]) -> Markup {
    let f = ctx.t.factory_page;
    let mut lines_of: HashMap<SiteId, usize> = HashMap::new();
    for line in factory.lines {
        *lines_of.entry(line.site_id).or_default() += 1;
    }
    let mut working: HashMap<SiteId, usize> = HashMap::new();
    for machine in factory.machines.iter().filter(|m| m.in_service()) {
        *working.entry(machine.site_id).or_default() += 1;
    }
    html! {
        section.panel aria-labelledby="sites-heading" {
            h2 #sites-heading { (f.sites) }
            // A card a site, not a table row: its change forms (the shifts above all) need the
            // width, and an open card takes the panel's whole width.
            div.cards data-testid="sites" {
                @for (site, calendar) in factory.sites.iter().zip(calendars) {
                    article.card data-testid="site-row" aria-labelledby={ "site-" (site.id.0) "-code" } {
                        h3 id={ "site-" (site.id.0) "-code" } { span.code { (site.code) } " " (site.name) }
                        dl.pairs {
                            dt { (f.zone) } dd { (site.time_zone.as_deref().or(site.utc_offset.as_deref()).unwrap_or("UTC")) }
                            dt { (f.working_time) } dd { (working_time(ctx, site, calendar)) }
                            dt { (f.lines) } dd { (lines_of.get(&site.id).copied().unwrap_or(0)) }
                            dt { (f.in_service) } dd { (working.get(&site.id).copied().unwrap_or(0)) }
                        }
                        @if factory.admin {
                            (super::edit_fold(ctx, &format!("site-{}-code", site.id.0), &format!("/api/v1/sites/{}", site.id.0), f.delete_site,
                                html! { (site_form(ctx, Some(site))) (calendar_form(ctx, site, calendar)) }))
                        }
                    }
                }
            }
            @if factory.admin {
                h3 { (f.new_site) }
                (site_form(ctx, None))
            }
        }
    }
}

/// A site's shifts, one a line ("Day: Mon–Fri 08:00–17:00"), and its holidays still to come.
fn working_time(ctx: &Ctx, site: &Site, calendar: &Calendar) -> Markup {
    let f = ctx.t.factory_page;
    let today = site.zone().local(ctx.now).date();
    let ahead: Vec<_> = calendar.holidays.iter().filter(|day| **day >= today).collect();
    html! {
        @if calendar.shifts.is_empty() {
            (f.always_open)
        }
        @for shift in &calendar.shifts {
            span.nw { (shift.name) (ctx.t.colon) (days_label(ctx, &shift.days)) " " (shift.start) "–" (shift.end) }
            br;
        }
        @if let Some(next) = ahead.iter().min() {
            span.muted {
                (f.holidays_ahead.replace("{n}", &ahead.len().to_string()).replace("{date}", &next.to_string()))
            }
        }
    }
}

/// Days of the week in the order of the week, runs of three or more as "Mon–Fri".
fn days_label(ctx: &Ctx, days: &[Weekday]) -> String {
    let names = ctx.t.plan_page.weekdays;
    let mut on = [false; 7];
    for day in days {
        if let Some(index) = Weekday::ALL.iter().position(|d| d == day) {
            on[index] = true;
        }
    }
    let mut parts = Vec::new();
    let mut index = 0;
    while index < 7 {
        if !on[index] {
            index += 1;
            continue;
        }
        let first = index;
        while index + 1 < 7 && on[index + 1] {
            index += 1;
        }
        match index - first {
            0 => parts.push(names[first].to_string()),
            1 => parts.extend([names[first].to_string(), names[index].to_string()]),
            _ => parts.push(format!("{}–{}", names[first], names[index])),
        }
        index += 1;
    }
    parts.join(", ")
}

/// The form of a new site (`site` absent) or of a change to one. Its zone field takes a place
/// name or a fixed offset; the script sends it as `time_zone` or `utc_offset` by what it holds.
fn site_form(ctx: &Ctx, site: Option<&Site>) -> Markup {
    let (t, f) = (ctx.t, ctx.t.factory_page);
    let action =
        site.map_or_else(|| "POST /api/v1/sites".to_string(), |s| format!("PUT /api/v1/sites/{}", s.id.0));
    let original = site.map(|s| {
        serde_json::json!({"code": s.code, "name": s.name, "time_zone": s.time_zone, "utc_offset": s.utc_offset})
            .to_string()
    });
    html! {
        form.row-form data-action=(action) data-original=[original] data-testid=(if site.is_some() { "site-form" } else { "new-site" }) {
            (super::code_and_name(ctx, site.map(|s| (s.code.as_str(), s.name.as_str()))))
            label title=(f.zone_hint) { (f.zone)
                input name="time_zone" data-type="zone" required list="zones" autocomplete="off"
                    placeholder="Asia/Hong_Kong"
                    value=[site.and_then(|s| s.time_zone.as_deref().or(s.utc_offset.as_deref()))];
            }
            button.primary type="submit" { (if site.is_some() { t.save } else { t.create }) }
        }
    }
}

/// A site's shifts, each a row of fields, with blank rows below for new ones, and its holidays.
fn calendar_form(ctx: &Ctx, site: &Site, calendar: &Calendar) -> Markup {
    let (t, f) = (ctx.t, ctx.t.factory_page);
    let names = ctx.t.plan_page.weekdays;
    let rows = (calendar.shifts.len() + BLANK_SHIFTS).min(model::MAX_SHIFTS);
    let holidays: Vec<String> = calendar.holidays.iter().map(ToString::to_string).collect();
    let original = serde_json::to_string(calendar).unwrap_or_default();
    html! {
        form.stack data-action={ "PUT /api/v1/sites/" (site.id.0) "/calendar" } data-original=(original) data-testid="calendar-form" {
            h4 { (f.calendar) }
            p.muted { (f.calendar_hint) }
            @for row in 0..rows {
                @let shift = calendar.shifts.get(row);
                fieldset.row-form data-testid="shift-row" {
                    legend.visually-hidden { (f.shift) " " (row + 1) }
                    label { (f.shift) input name={ "shifts." (row) ".name" } maxlength="200" size="10"
                        value=[shift.map(|s| s.name.as_str())]; }
                    fieldset.choices {
                        legend { (f.days) }
                        @for (day, name) in Weekday::ALL.iter().zip(names) {
                            label.inline { input type="checkbox" name={ "shifts." (row) ".days" } data-type="set"
                                value=(day.as_str()) checked[shift.is_some_and(|s| s.days.contains(day))]; (name) }
                        }
                    }
                    label { (f.start) input type="time" name={ "shifts." (row) ".start" } value=[shift.map(|s| s.start.as_str())]; }
                    label { (f.end) input type="time" name={ "shifts." (row) ".end" } value=[shift.map(|s| s.end.as_str())]; }
                }
            }
            label title=(f.holidays_hint) { (f.holidays)
                textarea name="holidays" data-type="list" rows="2" placeholder="2026-12-25 2027-01-01" { (holidays.join(" ")) }
            }
            div { button.primary type="submit" { (t.save) } }
        }
    }
}

fn lines_panel(ctx: &Ctx, factory: &Factory) -> Markup {
    let (t, f) = (ctx.t, ctx.t.factory_page);
    let mut machines_of: HashMap<model::LineId, usize> = HashMap::new();
    for machine in factory.machines.iter().filter(|m| m.in_service()) {
        if let Some(line) = machine.line_id {
            *machines_of.entry(line).or_default() += 1;
        }
    }
    html! {
        section.panel aria-labelledby="lines-heading" {
            h2 #lines-heading { (f.lines) }
            @if factory.lines.is_empty() {
                p.muted { (f.no_lines) }
            } @else {
                table data-testid="lines" {
                    thead { tr {
                        @if factory.several_sites() { th { (t.site) } }
                        th { (f.code) } th { (f.name) } th.num { (f.in_service) }
                        @if factory.admin { th { span.visually-hidden { (t.actions) } } }
                    } }
                    tbody {
                        @for line in factory.lines {
                            @let label = format!("line-{}-code", line.id.0);
                            tr data-testid="line-row" {
                                @if factory.several_sites() { td { (factory.site_code(line.site_id)) } }
                                td id=(label) { (line.code) }
                                td { (line.name) }
                                td.num { (machines_of.get(&line.id).copied().unwrap_or(0)) }
                                @if factory.admin {
                                    td {
                                        (super::edit_fold(ctx, &label, &format!("/api/v1/lines/{}", line.id.0), f.delete_line,
                                            line_form(ctx, factory, Some(line))))
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if factory.admin && !factory.sites.is_empty() {
                h3 { (f.new_line) }
                (line_form(ctx, factory, None))
            }
        }
    }
}

fn line_form(ctx: &Ctx, factory: &Factory, line: Option<&Line>) -> Markup {
    let t = ctx.t;
    let action =
        line.map_or_else(|| "POST /api/v1/lines".to_string(), |l| format!("PUT /api/v1/lines/{}", l.id.0));
    let original =
        line.map(|l| serde_json::json!({"site_id": l.site_id, "code": l.code, "name": l.name}).to_string());
    html! {
        form.row-form data-action=(action) data-original=[original] data-testid=(if line.is_some() { "line-form" } else { "new-line" }) {
            (site_select(ctx, factory, line.map(|l| l.site_id)))
            (super::code_and_name(ctx, line.map(|l| (l.code.as_str(), l.name.as_str()))))
            button.primary type="submit" { (if line.is_some() { t.save } else { t.create }) }
        }
    }
}

/// The site a line or machine is at: a choice with several sites, the only one otherwise.
fn site_select(ctx: &Ctx, factory: &Factory, chosen: Option<SiteId>) -> Markup {
    html! {
        @if factory.several_sites() {
            label { (ctx.t.site)
                select name="site_id" data-type="int" required {
                    @for site in factory.sites {
                        option value=(site.id.0) selected[chosen == Some(site.id)] { (site.code) " · " (site.name) }
                    }
                }
            }
        } @else if let Some(site) = factory.sites.first() {
            input type="hidden" name="site_id" data-type="int" value=(site.id.0);
        }
    }
}

fn machines_panel(ctx: &Ctx, factory: &Factory) -> Markup {
    let (t, f) = (ctx.t, ctx.t.factory_page);
    let (working, retired): (Vec<&Machine>, Vec<&Machine>) =
        factory.machines.iter().partition(|m| m.in_service());
    let table = |machines: &[&Machine]| {
        html! {
            table data-testid="machines" {
                thead { tr {
                    th { (f.code) } th { (f.name) } th { (f.kind) }
                    @if factory.several_sites() { th { (t.site) } }
                    th { (t.machine_page.line) } th { (f.capabilities) } th.num { (t.machine_page.rated_power) " (kW)" }
                    @if factory.admin { th { span.visually-hidden { (t.actions) } } }
                } }
                tbody {
                    @for machine in machines {
                        @let label = format!("machine-{}-code", machine.id.0);
                        tr data-testid="machine-row" {
                            td id=(label) { a href={ "/machines/" (machine.id.0) } { (machine.code) } }
                            td { (machine.name) }
                            td { (kind_label(ctx, machine.kind)) }
                            @if factory.several_sites() { td { (factory.site_code(machine.site_id)) } }
                            td { (machine.line_id.and_then(|id| factory.lines.iter().find(|l| l.id == id)).map_or("", |l| l.code.as_str())) }
                            td { @for capability in &machine.capabilities { span.tag { (capability) } " " } }
                            td.num { @if machine.rated_power_kw > 0.0 { (super::svg::value_text(machine.rated_power_kw)) } }
                            @if factory.admin {
                                td {
                                    (super::edit_fold(ctx, &label, &format!("/api/v1/machines/{}", machine.id.0), f.delete_machine,
                                        machine_form(ctx, factory, Some(machine))))
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    html! {
        section.panel aria-labelledby="machines-heading" {
            h2 #machines-heading { (t.machines) }
            (table(&working))
            @if !retired.is_empty() {
                details data-testid="retired-machines" {
                    summary { (f.retired_machines.replace("{n}", &retired.len().to_string())) }
                    p.muted { (f.retired_hint) }
                    (table(&retired))
                }
            }
            @if factory.admin && !factory.sites.is_empty() {
                h3 { (f.new_machine) }
                (machine_form(ctx, factory, None))
            }
        }
    }
}

fn kind_label(ctx: &Ctx, kind: MachineKind) -> &'static str {
    ctx.t.machine_page.kinds
        [MachineKind::ALL.iter().position(|k| *k == kind).unwrap_or(MachineKind::ALL.len() - 1)]
}

fn machine_form(ctx: &Ctx, factory: &Factory, machine: Option<&Machine>) -> Markup {
    let (t, f) = (ctx.t, ctx.t.factory_page);
    let action = machine
        .map_or_else(|| "POST /api/v1/machines".to_string(), |m| format!("PUT /api/v1/machines/{}", m.id.0));
    let original = machine.map(|m| {
        serde_json::json!({
            "site_id": m.site_id, "line_id": m.line_id, "code": m.code, "name": m.name, "kind": m.kind,
            "capabilities": m.capabilities, "rated_power_kw": m.rated_power_kw, "retired": !m.in_service(),
        })
        .to_string()
    });
    html! {
        form.row-form data-action=(action) data-original=[original] data-testid=(if machine.is_some() { "machine-form" } else { "new-machine" }) {
            (site_select(ctx, factory, machine.map(|m| m.site_id)))
            (super::code_and_name(ctx, machine.map(|m| (m.code.as_str(), m.name.as_str()))))
            label { (f.kind)
                select name="kind" {
                    @for kind in MachineKind::ALL {
                        option value=(kind.as_str()) selected[machine.is_some_and(|m| m.kind == kind)] { (kind_label(ctx, kind)) }
                    }
                }
            }
            @if !factory.lines.is_empty() {
                label { (t.machine_page.line)
                    select name="line_id" data-type="int" data-empty="null" {
                        option value="" { (t.none) }
                        @for line in factory.lines {
                            option value=(line.id.0) selected[machine.is_some_and(|m| m.line_id == Some(line.id))] {
                                @if factory.several_sites() { (factory.site_code(line.site_id)) " · " }
                                (line.code) " · " (line.name)
                            }
                        }
                    }
                }
            }
            label title=(f.capabilities_hint) { (f.capabilities)
                input name="capabilities" data-type="list" maxlength="2000"
                    value=[machine.map(|m| m.capabilities.join(", "))];
            }
            label { (t.machine_page.rated_power) " (kW)"
                input name="rated_power_kw" type="number" min="0" step="any" data-type="number"
                    value=(machine.map_or(0.0, |m| m.rated_power_kw));
            }
            @if machine.is_some() {
                label.inline title=(f.retired_hint) {
                    input name="retired" type="checkbox" checked[machine.is_some_and(|m| !m.in_service())]; (f.retired)
                }
            }
            button.primary type="submit" { (if machine.is_some() { t.save } else { t.create }) }
        }
    }
}
