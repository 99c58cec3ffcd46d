//! The settings page: users (administrators only), API tokens (everyone their own, administrators
//! all), the way to the alarm rules, and the automatic re-planning settings (from the config file).

use std::collections::HashMap;

use axum::extract::State;
use maud::html;
use model::{Role, UserId};
use store::PageRequest;

use super::{Ctx, Nav, OrPage, PageResult, layout};
use crate::AppState;
use crate::auth::Need;

/// The settings page's labels.
pub(crate) struct Text {
    pub(crate) title: &'static str,
    pub(crate) token_once: &'static str,
    pub(crate) wrong_credentials: &'static str,
    pub(crate) users: &'static str,
    pub(crate) role: &'static str,
    pub(crate) created: &'static str,
    pub(crate) new_user: &'static str,
    pub(crate) new_password: &'static str,
    pub(crate) password_hint: &'static str,
    pub(crate) device_site: &'static str,
    pub(crate) bound_site: &'static str,
    pub(crate) bound_site_hint: &'static str,
    pub(crate) every_site: &'static str,
    pub(crate) change_site: &'static str,
    pub(crate) change_role: &'static str,
    pub(crate) set_password: &'static str,
    pub(crate) delete_user: &'static str,
    pub(crate) you: &'static str,
    pub(crate) tokens: &'static str,
    pub(crate) own_password: &'static str,
    pub(crate) current_password: &'static str,
    pub(crate) changed_password: &'static str,
    pub(crate) tokens_hint: &'static str,
    pub(crate) token_name: &'static str,
    pub(crate) token_for: &'static str,
    /// The names the platform gives the tokens it issues itself (a sign-in in the browser, a
    /// `POST /api/v1/login`), said in the page's language.
    pub(crate) issued_token_names: [(&'static str, &'static str); 2],
    pub(crate) owner: &'static str,
    pub(crate) prefix: &'static str,
    pub(crate) revoked: &'static str,
    pub(crate) expired: &'static str,
    pub(crate) expires: &'static str,
    pub(crate) never: &'static str,
    pub(crate) revoke: &'static str,
    pub(crate) revoke_confirm: &'static str,
    pub(crate) new_token: &'static str,
    pub(crate) this_session: &'static str,
    /// After a number of seconds.
    pub(crate) seconds_unit: &'static str,
    /// In the demo, whose factory clock runs fast: which clock the token times keep.
    pub(crate) tokens_real_time: &'static str,
    pub(crate) show_revoked: &'static str,
    pub(crate) alarm_rules: &'static str,
    pub(crate) alarm_rules_hint: &'static str,
    pub(crate) planning: &'static str,
    pub(crate) planning_hint: &'static str,
    pub(crate) auto_replan: &'static str,
    pub(crate) on: &'static str,
    pub(crate) off: &'static str,
    pub(crate) down_for: &'static str,
    pub(crate) rush_priority: &'static str,
    pub(crate) new_orders: &'static str,
    pub(crate) deviation: &'static str,
    pub(crate) repair_interval: &'static str,
    pub(crate) freeze: &'static str,
    pub(crate) repair_time: &'static str,
    pub(crate) repair_search: &'static str,
    pub(crate) reoptimise_at: &'static str,
    pub(crate) reoptimise_time: &'static str,
    pub(crate) reoptimise_gain: &'static str,
    pub(crate) reoptimised_last: &'static str,
    pub(crate) reoptimised_none: &'static str,
    /// `{plan}` is replaced by the plan's number.
    pub(crate) reoptimised_published: &'static str,
    pub(crate) reoptimised_kept: &'static str,
}

pub(crate) const EN: Text = Text {
    title: "Settings",
    token_once: "Copy this token now: it is shown only once.",
    wrong_credentials: "Wrong user name or password.",
    users: "Users",
    role: "Role",
    created: "Created",
    new_user: "New user",
    new_password: "Password",
    password_hint: "At least 12 characters.",
    device_site: "Site it publishes for",
    bound_site: "Site",
    bound_site_hint: "An operator or maintenance account bound to a site reports, acknowledges alarms and plans maintenance for that site's machines only; it still sees every site.",
    every_site: "Every site",
    change_site: "Change site",
    change_role: "Change role",
    set_password: "Set password",
    delete_user: "Delete this user and revoke their tokens?",
    you: "you",
    tokens: "API tokens",
    own_password: "Your password",
    current_password: "Current password",
    changed_password: "New password",
    tokens_hint: "Tokens let machines, scripts and other systems call the API; a machine gateway's device account publishes over MQTT with one as its password. Sign-ins in a browser also hold one.",
    token_name: "What it is for",
    token_for: "For",
    issued_token_names: [("browser session", "browser session"), ("login", "sign-in over the API")],
    owner: "Owner",
    prefix: "Starts with",
    revoked: "Revoked",
    expired: "Expired",
    expires: "Expires",
    never: "When revoked",
    revoke: "Revoke",
    revoke_confirm: "Revoke this token? Whatever uses it stops working.",
    new_token: "New token",
    this_session: "this browser session",
    seconds_unit: "s",
    tokens_real_time: "Sign-ins and tokens keep real time, not the factory time at the top of the page.",
    show_revoked: "Revoked and expired tokens",
    alarm_rules: "Alarm rules",
    alarm_rules_hint: "Alarm rules are edited on the alarms page.",
    planning: "Automatic re-planning",
    planning_hint: "Set in the [planning] section of the configuration file; see the README.",
    auto_replan: "Repair and publish the active plan by itself",
    on: "On",
    off: "Off",
    down_for: "A broken-down machine is planned as down for",
    rush_priority: "Rush orders are slotted in at once from priority",
    new_orders: "Other released orders are slotted in at most after",
    deviation: "Work off the plan by more than this leads to a repair",
    repair_interval: "Such a repair waits after the last published plan",
    freeze: "Work starting within this keeps its place in a repair",
    repair_time: "Solver time of a repair when keeping the order breaks a rule or costs too much",
    repair_search: "A repair searches when keeping the order makes the plan worse by more than",
    reoptimise_at: "Scheduled re-optimisation at (the first site's time)",
    reoptimise_time: "Solver time of a re-optimisation",
    reoptimise_gain: "A re-optimised plan is published when better by at least",
    reoptimised_last: "Last scheduled re-optimisation",
    reoptimised_none: "None since the server started",
    reoptimised_published: "published plan #{plan}",
    reoptimised_kept: "nothing better enough; the active plan stayed",
};

pub(crate) const ZH: Text = Text {
    title: "設定",
    token_once: "請立即複製此權杖：它只會顯示一次。",
    wrong_credentials: "用戶名稱或密碼錯誤。",
    users: "用戶",
    role: "角色",
    created: "建立時間",
    new_user: "新增用戶",
    new_password: "密碼",
    password_hint: "最少 12 個字元。",
    device_site: "設備所屬廠房",
    bound_site: "廠房",
    bound_site_hint: "綁定廠房的操作員或維修帳戶只可為該廠房的機器報工、確認警報及安排保養；仍可查看所有廠房。",
    every_site: "所有廠房",
    change_site: "更改廠房",
    change_role: "更改角色",
    set_password: "設定密碼",
    delete_user: "刪除此用戶並撤銷其權杖？",
    you: "你",
    tokens: "API 存取權杖（Token）",
    own_password: "你的密碼",
    current_password: "現時密碼",
    changed_password: "新密碼",
    tokens_hint: "權杖讓機器、程式及其他系統呼叫 API；機器網關的設備帳戶以權杖作為 MQTT 密碼。瀏覽器登入亦會持有一個權杖。",
    token_name: "用途",
    token_for: "用戶",
    issued_token_names: [("browser session", "瀏覽器登入"), ("login", "經 API 登入")],
    owner: "擁有人",
    prefix: "開頭",
    revoked: "已撤銷",
    expired: "已過期",
    expires: "到期",
    never: "直至撤銷",
    revoke: "撤銷",
    revoke_confirm: "撤銷此權杖？使用它的程式將無法再連線。",
    new_token: "新增權杖",
    this_session: "本機",
    seconds_unit: "秒",
    tokens_real_time: "登入及權杖按真實時間，而非頁首的工廠時間。",
    show_revoked: "已撤銷及已過期的權杖",
    alarm_rules: "警報規則",
    alarm_rules_hint: "警報規則在警報頁編輯。",
    planning: "自動重新排程",
    planning_hint: "在設定檔的 [planning] 部分設定；詳見 README。",
    auto_replan: "自動修補並發佈現行排程",
    on: "開",
    off: "關",
    down_for: "機器故障後預計停機",
    rush_priority: "急單門檻（優先級達此數值即即時插入）",
    new_orders: "其他已下達訂單最遲於此時間內插入",
    deviation: "生產偏離排程超過此時間即修補",
    repair_interval: "此類修補與上次發佈排程最少相隔",
    freeze: "在此時間內開始的工作於修補時保持不變",
    repair_time: "修補排程的求解時間上限",
    repair_search: "保持機台次序令排程變差超過此幅度時，修補改為搜尋",
    reoptimise_at: "預定重新優化時間（首個廠房的時間）",
    reoptimise_time: "重新優化求解時間",
    reoptimise_gain: "重新優化結果須至少改善",
    reoptimised_last: "上次預定重新優化",
    reoptimised_none: "伺服器啟動後尚未進行",
    reoptimised_published: "已發佈排程 #{plan}",
    reoptimised_kept: "未有足夠改善，現行排程不變",
};

/// The automatic re-planning settings, read-only: they come from the config file.
fn planning_panel(
    ctx: &Ctx,
    planning: &crate::PlanningConfig,
    last: Option<crate::replanner::LastReoptimisation>,
) -> maud::Markup {
    let s = ctx.t.settings_page;
    let minutes = |m: u32| ctx.duration(i64::from(m) * 60);
    let or_off = |value: u32, shown: String| if value == 0 { s.off.to_string() } else { shown };
    let rows = [
        (s.auto_replan, if planning.auto_replan { s.on.to_string() } else { s.off.to_string() }),
        (s.down_for, minutes(planning.expected_repair_minutes)),
        (s.rush_priority, or_off(u32::from(planning.rush_priority), planning.rush_priority.to_string())),
        (s.new_orders, or_off(planning.new_order_minutes, minutes(planning.new_order_minutes))),
        (s.deviation, or_off(planning.deviation_minutes, minutes(planning.deviation_minutes))),
        (s.repair_interval, minutes(planning.repair_interval_minutes)),
        (s.freeze, minutes(planning.freeze_minutes)),
        (s.repair_time, format!("{} {}", planning.repair_time_limit_seconds, s.seconds_unit)),
        (
            s.repair_search,
            if planning.repair_search_loss_percent <= 0.0 {
                s.off.to_string()
            } else {
                format!("{}{}", planning.repair_search_loss_percent, ctx.t.percent)
            },
        ),
        (
            s.reoptimise_at,
            if planning.reoptimise_at.is_empty() {
                s.off.to_string()
            } else {
                // In the first site's time, whatever site the reader is at: named.
                format!("{} ({})", planning.reoptimise_at.join(", "), ctx.zone_label())
            },
        ),
        (s.reoptimise_time, format!("{} {}", planning.reoptimise_time_limit_seconds, s.seconds_unit)),
        (s.reoptimise_gain, format!("{}{}", planning.reoptimise_min_gain_percent, ctx.t.percent)),
    ];
    let last = match last {
        None => html! { (s.reoptimised_none) },
        Some(crate::replanner::LastReoptimisation { at, published: Some(plan) }) => html! {
            (ctx.short_time(at)) (ctx.t.colon) a href={ "/plan?id=" (plan) } { (s.reoptimised_published.replace("{plan}", &plan.to_string())) }
        },
        Some(crate::replanner::LastReoptimisation { at, published: None }) => html! {
            (ctx.short_time(at)) (ctx.t.colon) (s.reoptimised_kept)
        },
    };
    html! {
        section.panel aria-labelledby="planning-heading" data-testid="planning-settings" {
            h2 #planning-heading { (s.planning) }
            table.settings-list {
                tbody {
                    @for (label, value) in rows { tr { th scope="row" { (label) } td { (value) } } }
                    tr { th scope="row" { (s.reoptimised_last) } td data-testid="last-reoptimisation" { (last) } }
                }
            }
            p.muted { (s.planning_hint) }
        }
    }
}

const ROLES: [Role; 7] = Role::ALL;

/// `GET /settings`.
pub(crate) async fn page(
    ctx: Ctx,
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> PageResult {
    let t = ctx.t;
    let s = t.settings_page;
    let store = &state.store;
    let admin = ctx.may(Need::Administer);
    let users = if admin { store.users().or_page(&ctx)? } else { vec![ctx.user.clone()] };
    let names: HashMap<UserId, &str> = users.iter().map(|u| (u.id, u.username.as_str())).collect();
    let tokens = store.tokens(if admin { None } else { Some(ctx.user.id) }).or_page(&ctx)?;
    // Tokens age on the real-time clock, which runs slower than the demo's factory clock.
    let wall_now = state.wall_clock.now();
    let (live, revoked): (Vec<_>, Vec<_>) = tokens
        .iter()
        .partition(|token| token.revoked_at.is_none() && token.expires_at.is_none_or(|at| at > wall_now));
    let session = crate::auth::session_cookie(&headers).map(crate::auth::shown_prefix);
    let sites = if admin {
        store.sites(PageRequest { after: None, limit: 1000 }).or_page(&ctx)?.items
    } else {
        Vec::new()
    };
    let token_row = |token: &store::ApiToken| {
        html! {
            tr data-testid="token-row" {
                td id={ "token-" (token.id) "-name" } { (s.issued_token_names.iter().find(|(name, _)| *name == token.name).map_or(token.name.as_str(), |(_, said)| *said)) @if session.as_deref() == Some(token.prefix.as_str()) && token.revoked_at.is_none() { " " span.muted { (ctx.t.lparen) (s.this_session) (ctx.t.rparen) } } }
                td { (names.get(&token.user_id).copied().unwrap_or("?")) }
                td { code { (token.prefix) "…" } }
                td { (ctx.time(token.created_at)) }
                td { @if let Some(at) = token.expires_at { (ctx.time(at)) } @else { (s.never) } }
                td {
                    @if let Some(at) = token.revoked_at {
                        (s.revoked) " " (ctx.short_time(at))
                    } @else if let Some(at) = token.expires_at.filter(|at| *at <= wall_now) {
                        (s.expired) " " (ctx.short_time(at))
                    } @else {
                        button.danger data-action={ "DELETE /api/v1/tokens/" (token.id) } data-confirm=(s.revoke_confirm)
                            aria-describedby={ "token-" (token.id) "-name" } { (s.revoke) }
                    }
                }
            }
        }
    };
    let body = html! {
        h1 { (s.title) }
        @if admin {
            section.panel aria-labelledby="users-heading" {
                h2 #users-heading { (s.users) }
                table {
                    thead { tr { th { (t.username) } th { (s.role) } th { (t.site) } th { (s.created) } th { span.visually-hidden { (t.actions) } } } }
                    tbody {
                        @for user in &users {
                            @let me = user.id == ctx.user.id;
                            tr data-testid="user-row" {
                                td { (user.username) @if me { " " span.muted { (ctx.t.lparen) (s.you) (ctx.t.rparen) } } }
                                td { (t.role(user.role)) }
                                td { @if let Some(site) = user.site_id { (sites.iter().find(|x| x.id == site).map_or("?", |x| x.code.as_str())) } }
                                td { (ctx.time(user.created_at)) }
                                td {
                                    @if !me {
                                        details {
                                            summary { (t.edit) }
                                            div.stack {
                                                form.row-form data-action={ "PATCH /api/v1/users/" (user.id.0) } {
                                                    label { (s.role)
                                                        select name="role" {
                                                            @for role in ROLES.iter().filter(|r| **r != Role::Device || user.role == Role::Device) {
                                                                option value=(role.as_str()) selected[*role == user.role] { (t.role(*role)) }
                                                            }
                                                        }
                                                    }
                                                    button type="submit" { (s.change_role) }
                                                }
                                                @if user.role.may_be_bound_to_site() && user.role != Role::Device && sites.len() > 1 {
                                                    form.row-form data-action={ "PATCH /api/v1/users/" (user.id.0) } {
                                                        label title=(s.bound_site_hint) { (s.bound_site)
                                                            select name="site_id" data-type="int" data-empty="null" {
                                                                option value="" selected[user.site_id.is_none()] { (s.every_site) }
                                                                @for site in &sites { option value=(site.id.0) selected[user.site_id == Some(site.id)] { (site.code) " · " (site.name) } }
                                                            }
                                                        }
                                                        button type="submit" { (s.change_site) }
                                                    }
                                                }
                                                // Devices sign in with tokens only.
                                                @if user.role != Role::Device {
                                                    form.row-form data-action={ "PATCH /api/v1/users/" (user.id.0) } {
                                                        label { (s.new_password) input name="password" type="password" minlength="12" required autocomplete="new-password"; }
                                                        button type="submit" { (s.set_password) }
                                                    }
                                                }
                                                button.danger data-action={ "DELETE /api/v1/users/" (user.id.0) } data-confirm=(s.delete_user) { (t.delete) }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                h2 { (s.new_user) }
                form.row-form data-action="POST /api/v1/users" data-testid="new-user" {
                    label { (t.username) input name="username" required maxlength="64" autocomplete="off"
                        pattern=(super::CODE_PATTERN) title=(t.code_hint); }
                    label { (s.role)
                        select name="role" data-switch {
                            @for role in ROLES { option value=(role.as_str()) selected[role == Role::Operator] { (t.role(role)) } }
                        }
                    }
                    // Device accounts sign in with tokens only, so they are given no password.
                    label data-show-when=(people_roles()) { (s.new_password) input name="password" type="password" minlength="12" required autocomplete="new-password"
                        title=(s.password_hint); }
                    label data-show-when="role=device" { (s.device_site)
                        select name="site_id" data-type="int" {
                            @for site in &sites { option value=(site.id.0) { (site.code) " · " (site.name) } }
                        }
                    }
                    @if sites.len() > 1 {
                        label data-show-when=(bindable_people()) title=(s.bound_site_hint) { (s.bound_site)
                            select name="site_id" data-type="int" {
                                option value="" { (s.every_site) }
                                @for site in &sites { option value=(site.id.0) { (site.code) " · " (site.name) } }
                            }
                        }
                    }
                    button.primary type="submit" { (t.create) }
                }
            }
        }
        @if ctx.user.role != Role::Device {
            section.panel aria-labelledby="password-heading" {
                h2 #password-heading { (s.own_password) }
                form.row-form data-action="POST /api/v1/me/password" data-then="none" data-testid="own-password" {
                    label { (s.current_password)
                        input name="current_password" type="password" required autocomplete="current-password"; }
                    label { (s.changed_password)
                        input name="new_password" type="password" required minlength=(crate::auth::MIN_PASSWORD_LEN)
                            maxlength="1024" autocomplete="new-password"; }
                    button.primary type="submit" { (t.save) }
                }
            }
        }
        section.panel aria-labelledby="tokens-heading" {
            h2 #tokens-heading { (s.tokens) }
            p.muted { (s.tokens_hint) }
            @if ctx.clock_speed.is_some() { p.muted data-testid="tokens-real-time" { (s.tokens_real_time) } }
            table {
                thead { tr { th { (s.token_name) } th { (s.owner) } th { (s.prefix) } th { (s.created) } th { (s.expires) } th { span.visually-hidden { (t.actions) } } } }
                tbody { @for token in &live { (token_row(token)) } }
            }
            @if !revoked.is_empty() {
                details {
                    summary { (s.show_revoked) (ctx.t.space_lparen) (revoked.len()) (ctx.t.rparen) }
                    table { tbody { @for token in &revoked { (token_row(token)) } } }
                }
            }
            h2 { (s.new_token) }
            form.row-form data-action="POST /api/v1/tokens" data-then="token" data-testid="new-token" {
                label { (s.token_name) input name="name" required maxlength="200"; }
                // An administrator also issues them for others: a machine's gateway (a device
                // account) gets its MQTT password here.
                @if admin && users.len() > 1 {
                    label { (s.token_for)
                        select name="user_id" data-type="int" {
                            option value="" { (ctx.user.username) (ctx.t.space_lparen) (s.you) (ctx.t.rparen) }
                            @for user in users.iter().filter(|u| u.id != ctx.user.id) {
                                option value=(user.id.0) { (user.username) (ctx.t.space_lparen) (t.role(user.role)) (ctx.t.rparen) }
                            }
                        }
                    }
                }
                button.primary type="submit" { (t.create) }
            }
        }
        section.panel {
            h2 { (s.alarm_rules) }
            p { (s.alarm_rules_hint) " " a href="/alarms#rules" { (t.nav_alarms) } }
        }
        (planning_panel(&ctx, &state.planning, state.last_reoptimisation()))
    };
    Ok(layout(&ctx, Nav::Settings, s.title, body))
}

/// `role=…` for `data-show-when`: the people's roles that may be bound to a site.
fn bindable_people() -> String {
    let roles: Vec<&str> = ROLES
        .iter()
        .filter(|r| r.may_be_bound_to_site() && **r != Role::Device)
        .map(|r| r.as_str())
        .collect();
    format!("role={}", roles.join(","))
}

/// `role=…` for `data-show-when`: every role but `device`.
fn people_roles() -> String {
    let roles: Vec<&str> = ROLES.iter().filter(|r| **r != Role::Device).map(|r| r.as_str()).collect();
    format!("role={}", roles.join(","))
}
