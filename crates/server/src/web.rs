//! The dashboard: server-rendered HTML pages (maud templates compiled into the binary), charts
//! and the Gantt drawn as SVG here, one small hand-written script for live updates and buttons,
//! and one style sheet. Nothing is fetched from elsewhere, so it works on an offline factory
//! network.
//!
//! Pages authenticate with a session cookie holding an ordinary API token (created at sign-in,
//! revoked at sign-out). The buttons call the JSON API with that cookie and the CSRF header (see
//! [`crate::auth::CSRF_HEADER`]); every button carries its request in `data-action`, and a page
//! offers only the actions the user's role may take, so the API's 403 is a second line, not the
//! first.

mod alarms;
mod factory;
pub(crate) mod i18n;
mod machine;
mod orders;
mod overview;
mod plan;
pub(crate) mod problems;
mod products;
mod settings;
mod station;
mod svg;

use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use model::{Timestamp, User};
use serde::Deserialize;

use crate::AppState;
use crate::auth::{Principal, SESSION_COOKIE, session_cookie};
use crate::error::ApiError;
pub(crate) use i18n::{Lang, Text};

/// The cookie holding the chosen language.
const LANG_COOKIE: &str = "mf_lang";
/// How long a browser session lasts, in seconds (12 hours: a shift and then some).
pub(crate) const SESSION_SECONDS: u32 = 12 * 3600;

/// The dashboard's routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(overview::page))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/lang", get(switch_language))
        .route("/assets/app.css", get(|| asset("text/css; charset=utf-8", include_str!("web/app.css"))))
        .route("/assets/app.js", get(|| asset("text/javascript; charset=utf-8", include_str!("web/app.js"))))
        .route("/machines/{id}", get(machine::page))
        .route("/orders", get(orders::list))
        .route("/orders/{id}", get(orders::detail))
        .route("/plan", get(plan::page))
        .route("/station", get(station::page))
        .route("/alarms", get(alarms::page))
        .route("/factory", get(factory::page))
        .route("/products", get(products::page))
        .route("/settings", get(settings::page))
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "public, max-age=300")], body)
        .into_response()
}

/// Who is looking, in which language, and where: what every page handler takes. Extracting it
/// sends a browser without a valid session to the sign-in page, and a device account away.
pub(crate) struct Ctx {
    pub(crate) user: User,
    pub(crate) t: &'static Text,
    /// Now, on the server's clock.
    pub(crate) now: Timestamp,
    /// The speed of the demo's own factory clock (seconds per real second); `None` on real time.
    pub(crate) clock_speed: Option<f64>,
    /// The local time in which times are shown: the site of a user bound to one, else the
    /// first site's.
    pub(crate) zone: model::Zone,
    /// The path and query of this page, to come back to after a language switch.
    pub(crate) here: String,
    /// The code of the site the user is bound to, shown beside their name.
    pub(crate) user_site: Option<String>,
}

impl Ctx {
    /// Whether the user may take actions that need `need`.
    pub(crate) fn may(&self, need: crate::auth::Need) -> bool {
        need.allows(self.user.role)
    }

    /// Whether the user may take actions that need `need` on a machine of `site`: someone bound
    /// to a site acts on its machines only.
    pub(crate) fn may_at(&self, need: crate::auth::Need, site: model::SiteId) -> bool {
        self.may(need) && self.user.acts_at(site)
    }

    /// The site a list of several sites' records opens on: the user's own, for someone bound to
    /// a site who opened the page bare (from the header). A list asked for with any filter,
    /// "every site" included, shows what was asked.
    pub(crate) fn home_site(&self) -> Option<model::SiteId> {
        self.user.site_id.filter(|_| !self.here.contains('?'))
    }

    /// The same context with times in the local time of `site`: a page about one machine shows
    /// its site's clock, not the first site's.
    pub(crate) fn at_site(mut self, store: &store::Store, site: model::SiteId) -> Ctx {
        if let Ok(site) = store.site(site) {
            self.zone = site.zone();
        }
        self
    }

    /// `at` as local date and time, `2026-11-24 14:05`.
    pub(crate) fn time(&self, at: Timestamp) -> String {
        format_local(at, &self.zone, false)
    }

    /// The time zone the page's times are in, as a field's label names it: the zone's name
    /// (`Asia/Hong_Kong`), or its offset (`UTC+08:00`) for a site with a fixed one.
    pub(crate) fn zone_label(&self) -> String {
        match self.zone.name() {
            Some(name) => name.to_string(),
            None => {
                let minutes = self.zone.offset_minutes_at(model::oee::unix_ms(self.now));
                let sign = if minutes < 0 { '-' } else { '+' };
                format!("UTC{sign}{:02}:{:02}", minutes.abs() / 60, minutes.abs() % 60)
            }
        }
    }

    /// `at` as local time of day, `14:05`, with the day and month when it is not today
    /// (`6 Dec 14:05`), and the year too when it is not this year.
    pub(crate) fn short_time(&self, at: Timestamp) -> String {
        let local = |ts: Timestamp| self.zone.local(ts).date();
        let (date, today) = (local(at), local(self.now));
        if date == today || date.year() != today.year() {
            return format_local(at, &self.zone, date == today);
        }
        let local = self.zone.local(at);
        format!(
            "{} {:02}:{:02}",
            (self.t.month_day)(u8::from(local.month()), local.day()),
            local.hour(),
            local.minute()
        )
    }

    /// A length of time such as `2 h 05 min` or `3 d 4 h`.
    pub(crate) fn duration(&self, seconds: i64) -> String {
        let t = self.t;
        let sign = if seconds < 0 { "−" } else { "" };
        let seconds = seconds.unsigned_abs();
        let (days, hours, minutes) = (seconds / 86_400, seconds % 86_400 / 3600, seconds % 3600 / 60);
        if days > 0 {
            format!("{sign}{days} {} {hours} {}", t.days, t.hours)
        } else if hours > 0 {
            // "2 h 05 min" in English; Chinese writes "2 小時 5 分鐘", and a whole hour as "2 小時".
            match t.lang {
                Lang::En => format!("{sign}{hours} {} {minutes:02} {}", t.hours, t.minutes),
                Lang::ZhHk if minutes == 0 => format!("{sign}{hours} {}", t.hours),
                Lang::ZhHk => format!("{sign}{hours} {} {minutes} {}", t.hours, t.minutes),
            }
        } else if minutes > 0 || seconds == 0 {
            format!("{sign}{minutes} {}", t.minutes)
        } else {
            // Under a minute: "0 min" beside a full bar (a short stop at the start of a shift)
            // reads as nothing at all.
            format!("{sign}{seconds} {}", t.seconds)
        }
    }
}

fn format_local(at: Timestamp, zone: &model::Zone, time_only: bool) -> String {
    let local = zone.local(at);
    let format = if time_only {
        time::macros::format_description!("[hour]:[minute]")
    } else {
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]")
    };
    local.format(&format).unwrap_or_default()
}

/// A ratio as a percentage with one decimal, or the "none" mark.
pub(crate) fn percent(t: &Text, ratio: Option<f64>) -> String {
    match ratio {
        // Chinese writes no space before the sign.
        Some(ratio) if ratio.is_finite() => format!("{:.1}{}", ratio * 100.0, t.percent),
        _ => t.none.to_string(),
    }
}

/// What an input of a code (an order number, a user name) takes, as `model::check_code` does:
/// the browser says so before the form is sent.
pub(crate) const CODE_PATTERN: &str = "[A-Za-z0-9._\\-]{1,64}";

/// The language asked for: the cookie, else the browser's preference, else English.
pub(crate) fn lang_of(headers: &HeaderMap) -> Lang {
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == LANG_COOKIE)
        .and_then(|(_, value)| Lang::parse(value));
    cookie
        .or_else(|| {
            // The most preferred language the dashboard has, by the weights (`q`) the browser
            // gives; of equal weights the first.
            let accept = headers.get(header::ACCEPT_LANGUAGE)?.to_str().ok()?;
            let mut offered: Vec<(f32, Lang)> = accept
                .split(',')
                .filter_map(|part| {
                    let mut pieces = part.split(';');
                    let lang = Lang::parse(pieces.next().unwrap_or(""))?;
                    let weight = pieces
                        .find_map(|p| p.trim().strip_prefix("q="))
                        .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok())?;
                    (weight > 0.0).then_some((weight, lang))
                })
                .collect();
            offered.sort_by(|a, b| b.0.total_cmp(&a.0));
            offered.first().map(|(_, lang)| *lang)
        })
        .unwrap_or(Lang::En)
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Ctx, Response> {
        let lang = lang_of(&parts.headers);
        let t = lang.text();
        let here = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
        let to_login = || Redirect::to(&format!("/login?next={}", encode(&here))).into_response();
        let Some(token) = session_cookie(&parts.headers) else { return Err(to_login()) };
        let principal = match Principal::from_token(token, state).await {
            Ok(principal) => principal,
            Err(error) if error.status() == StatusCode::UNAUTHORIZED => return Err(to_login()),
            Err(error) => return Err(error.into_response()),
        };
        if !principal.user.role.may_read() {
            return Err(message_page(t, StatusCode::FORBIDDEN, t.forbidden_page));
        }
        let (now, clock_speed) = (state.clock.now(), state.own_clock_speed());
        let user_site =
            principal.user.site_id.and_then(|site| state.store.site(site).ok()).map(|site| site.code);
        let zone = crate::site_zone(&state.store);
        let ctx = Ctx { user: principal.user, t, now, clock_speed, zone, here, user_site };
        Ok(match ctx.user.site_id {
            Some(site) => ctx.at_site(&state.store, site),
            None => ctx,
        })
    }
}

/// When an alarm came up, and, when its condition had begun a minute or more before (a delay, a
/// long stop), since when: "07:27" over "since 06:57"; for an alarm that came back, how often and
/// when it first came: "3× · first 06:12".
pub(crate) fn alarm_raised(ctx: &Ctx, alarm: &model::alarm::Alarm) -> Markup {
    let fired = alarm.fired_at.unwrap_or(alarm.raised_at);
    html! {
        (ctx.short_time(fired))
        @if fired - alarm.raised_at >= time::Duration::MINUTE {
            br; span.muted.nw { (ctx.t.since.to_lowercase()) " " (ctx.short_time(alarm.raised_at)) }
        }
        @if let Some(first) = alarm.first_raised_at.filter(|_| alarm.occurrences > 1) {
            br; span.muted.nw { (alarm.occurrences) "× · " (ctx.t.first_time) " " (ctx.short_time(first)) }
        }
    }
}

/// An alarm's message in the page's language: from its cause when the alarm kept one, else the
/// English message it was raised with.
pub(crate) fn alarm_message(t: &Text, alarm: &model::alarm::Alarm) -> String {
    match &alarm.cause {
        Some(cause) => {
            cause.message_naming(alarm.value, t.alarm_words, &|metric| machine::metric_said(t, metric))
        }
        None => alarm.message.clone(),
    }
}

/// A page's query string, read leniently: one that does not parse (`?machine=abc`) counts as
/// absent, and the page shows what it shows without it, rather than a bare 400 in a browser.
pub(crate) struct PageQuery<T>(pub(crate) T);

impl<T: serde::de::DeserializeOwned + Default, S: Send + Sync> FromRequestParts<S> for PageQuery<T> {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(PageQuery(serde_urlencoded::from_str(parts.uri.query().unwrap_or("")).unwrap_or_default()))
    }
}

/// Percent-encodes a query value.
pub(crate) fn encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// Where a page belongs in the navigation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    Overview,
    Orders,
    Plan,
    Station,
    Alarms,
    Factory,
    Products,
    Settings,
}

/// The frame of every signed-in page: header, navigation, language switch, the page, and the
/// status line the scripts write to.
pub(crate) fn layout(ctx: &Ctx, active: Nav, title: &str, body: Markup) -> Response {
    let t = ctx.t;
    let mut links = vec![(Nav::Overview, "/", t.nav_overview), (Nav::Orders, "/orders", t.nav_orders)];
    links.push((Nav::Plan, "/plan", t.nav_plan));
    if ctx.user.role.may_report_production() {
        links.push((Nav::Station, "/station", t.nav_station));
    }
    links.push((Nav::Alarms, "/alarms", t.nav_alarms));
    // Six pages fit a phone's header in one row, so the shop floor's people (operators,
    // maintenance), often on a phone, have their station there and not the factory's set-up and
    // catalogue; the pages are open to them all the same.
    if !matches!(ctx.user.role, model::Role::Operator | model::Role::Maintenance) {
        links.push((Nav::Products, "/products", t.nav_products));
        links.push((Nav::Factory, "/factory", t.nav_factory));
    }
    links.push((Nav::Settings, "/settings", t.nav_settings));
    let other = t.lang.other();
    let page = html! {
        (DOCTYPE)
        html lang=(t.lang.code()) {
            (head(t, title, true))
            body data-lang=(t.lang.code()) data-offset-minutes=(ctx.zone.offset_minutes_at(model::oee::unix_ms(ctx.now))) data-time-zone=[ctx.zone.name()] {
                a.skip href="#main" { (t.skip_to_content) }
                header.top {
                    a.brand href="/" { (t.product) }
                    nav aria-label=(t.nav_label) {
                        ul {
                            @for (nav, href, label) in &links {
                                li {
                                    a href=(href) aria-current=[(*nav == active).then_some("page")] { (label) }
                                }
                            }
                        }
                    }
                    div.who {
                        @if let Some(speed) = ctx.clock_speed {
                            // The demo's factory clock; the script keeps it running.
                            span.sim-clock data-testid="sim-clock" title=(t.sim_clock_title)
                                data-now=(crate::rfc3339(ctx.now)) data-speed=(speed) {
                                (t.sim_clock) " " strong data-sim-clock-time { (ctx.time(ctx.now)) }
                                " · " (format!("{speed}×"))
                            }
                        }
                        span.live-dot title=(t.live) aria-hidden="true" {}
                        a.lang href={ "/lang?to=" (other.code()) "&back=" (encode(&ctx.here)) }
                            hreflang=(other.code()) lang=(other.code()) title=(t.switch_language) data-testid="switch-language" {
                            (other.text().own_name)
                        }
                        span { span.signed-in-as { (t.signed_in_as) " " } strong { (ctx.user.username) } (ctx.t.space_lparen) (t.role(ctx.user.role)) @if let Some(site) = &ctx.user_site { " · " span data-testid="user-site" { (site) } } (ctx.t.rparen) }
                        form method="post" action="/logout" {
                            button.link type="submit" { (t.sign_out) }
                        }
                    }
                }
                div #flash role="status" aria-live="polite" {}
                // New alarms in a live section, said once (the section itself is replaced).
                div #announce.visually-hidden aria-live="assertive" {}
                main #main tabindex="-1" { (body) }
                (i18n_data(t))
            }
        }
    };
    html_response(StatusCode::OK, page)
}

/// The `<head>` of every page: `title` and the product's name, the style sheet, and the script
/// when the page has actions or live parts.
fn head(t: &Text, title: &str, script: bool) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title {
                @if title != t.product { (title) " · " }
                (t.product)
            }
            link rel="icon" href="data:,";
            link rel="stylesheet" href="/assets/app.css";
            @if script { script src="/assets/app.js" defer {} }
        }
    }
}

/// Labels the script needs, as JSON the browser does not execute.
fn i18n_data(t: &Text) -> Markup {
    let mut states = serde_json::Map::new();
    for (state, name) in t.state_names() {
        states.insert(state.as_str().to_string(), name.into());
    }
    let data = serde_json::json!({
        "states": states,
        "done": t.done_message,
        "failed": t.failed_message,
        "changed_since": t.changed_since,
        "unchanged": t.unchanged,
        "unsent": t.unsent,
        "confirm": t.confirm,
        "lost": t.connection_lost,
        "close": t.close,
        "token_once": t.settings_page.token_once,
    });
    html! { script #i18n type="application/json" { (PreEscaped(json_for_script(&data))) } }
}

/// JSON safe inside a `<script>` element: `<` never appears raw, so `</script>` cannot end it.
fn json_for_script(value: &serde_json::Value) -> String {
    value.to_string().replace('<', "\\u003c")
}

/// An HTML response with the headers every page sends.
pub(crate) fn html_response(status: StatusCode, page: Markup) -> Response {
    let mut response = (status, Html(page.into_string())).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
             frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A page with one message, for errors outside the frame.
pub(crate) fn message_page(t: &Text, status: StatusCode, message: &str) -> Response {
    let page = html! {
        (DOCTYPE)
        html lang=(t.lang.code()) {
            (head(t, t.product, false))
            body.plain {
                main.narrow {
                    h1 { (t.product) }
                    p { (message) }
                    p { a href="/" { (t.back_to_overview) } }
                }
            }
        }
    };
    html_response(status, page)
}

/// What no route answers: a page in the reader's language for a browser (it asks for HTML), the
/// JSON problem document for everything else.
pub(crate) async fn not_found(headers: HeaderMap) -> Response {
    match wants_html(&headers) {
        Some(t) => message_page(t, StatusCode::NOT_FOUND, t.not_found_page),
        None => ApiError::not_found("nothing here").into_response(),
    }
}

/// A page address asked for with a method it does not take, such as a typed `/logout`: a page
/// for a browser, the JSON problem document for everything else.
pub(crate) async fn wrong_method(headers: HeaderMap) -> Response {
    match wants_html(&headers) {
        Some(t) => message_page(t, StatusCode::METHOD_NOT_ALLOWED, t.wrong_method_page),
        None => ApiError::method_not_allowed().into_response(),
    }
}

/// The reader's texts when the request asks for HTML, as a browser does.
fn wants_html(headers: &HeaderMap) -> Option<&'static Text> {
    let accept = headers.get(header::ACCEPT)?.to_str().ok()?;
    accept.split(',').any(|kind| kind.trim().starts_with("text/html")).then(|| lang_of(headers).text())
}

/// Turns an error while building a page into a page: 404 and 403 in words, anything else as 500
/// with the cause in the log.
pub(crate) fn error_page(t: &Text, error: ApiError) -> Response {
    match error.status() {
        StatusCode::NOT_FOUND => message_page(t, StatusCode::NOT_FOUND, t.not_found_page),
        StatusCode::FORBIDDEN => message_page(t, StatusCode::FORBIDDEN, t.forbidden_page),
        status if status.is_client_error() => error.into_response(),
        _ => message_page(t, StatusCode::INTERNAL_SERVER_ERROR, t.error_page),
    }
}

/// What a page handler returns.
pub(crate) type PageResult = Result<Response, PageError>;

/// An error page, boxed because a response is large and errors are rare.
pub(crate) struct PageError(Box<Response>);

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        *self.0
    }
}

/// Extension to turn store and API errors into error pages with `?`.
pub(crate) trait OrPage<T> {
    fn or_page(self, ctx: &Ctx) -> Result<T, PageError>;
}

impl<T, E: Into<ApiError>> OrPage<T> for Result<T, E> {
    fn or_page(self, ctx: &Ctx) -> Result<T, PageError> {
        self.map_err(|error| {
            let error = error.into();
            if error.status().is_server_error() {
                tracing::error!(?error, "page failed");
            }
            PageError(Box::new(error_page(ctx.t, error)))
        })
    }
}

#[derive(Default, Deserialize)]
struct LoginQuery {
    next: Option<String>,
}

/// Only a path on this site is a place to go back to (no `//host` or `https:`).
fn local_path(next: Option<&str>) -> &str {
    match next {
        // Control characters cannot go into a Location header.
        Some(next)
            if next.starts_with('/')
                && !next.starts_with("//")
                && !next.contains('\\')
                && !next.chars().any(char::is_control) =>
        {
            next
        }
        _ => "/",
    }
}

async fn login_page(headers: HeaderMap, PageQuery(query): PageQuery<LoginQuery>) -> Response {
    let t = lang_of(&headers).text();
    login_form(t, local_path(query.next.as_deref()), None, StatusCode::OK)
}

fn login_form(t: &Text, next: &str, error: Option<&str>, status: StatusCode) -> Response {
    sign_in_page(t, next, "", error, status)
}

/// The sign-in page; after a refused sign-in it keeps the user name, so only the password is
/// typed again (the focus is there, and the field is marked as what was wrong).
fn sign_in_page(t: &Text, next: &str, username: &str, error: Option<&str>, status: StatusCode) -> Response {
    let other = t.lang.other();
    let again = !username.is_empty();
    let page = html! {
        (DOCTYPE)
        html lang=(t.lang.code()) {
            (head(t, t.sign_in, false))
            body.plain {
                main.narrow.login {
                    h1 { (t.sign_in_title) }
                    form method="post" action="/login" {
                        input type="hidden" name="next" value=(next);
                        label { (t.username) input name="username" autocomplete="username" value=(username) required autofocus[!again]; }
                        label { (t.password)
                            input name="password" type="password" autocomplete="current-password" required autofocus[again]
                                aria-invalid=[again.then_some("true")] aria-describedby=[error.map(|_| "login-error")];
                        }
                        @if let Some(error) = error { p.error #login-error role="alert" { (error) } }
                        button.primary type="submit" { (t.sign_in) }
                    }
                    p {
                        a href={ "/lang?to=" (other.code()) "&back=" (encode(&format!("/login?next={}", encode(next)))) }
                            lang=(other.code()) data-testid="switch-language" { (other.text().own_name) }
                    }
                }
            }
        }
    };
    html_response(status, page)
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
    next: Option<String>,
}

async fn login(
    State(state): State<AppState>,
    crate::http::ClientAddress(peer): crate::http::ClientAddress,
    headers: HeaderMap,
    request: axum::extract::Request,
) -> Response {
    let t = lang_of(&headers).text();
    let body = match crate::extract::read_body(request, &state).await {
        Ok(body) => body,
        Err(error) => return login_form(t, "/", Some(t.sign_in_title), error.status()),
    };
    // Another site's form must not sign a visitor in (to an account of that site's choosing):
    // browsers say where a form post comes from.
    if headers.get("sec-fetch-site").is_some_and(|site| site.as_bytes() == b"cross-site") {
        return login_form(t, "/", Some(t.sign_in_here), StatusCode::FORBIDDEN);
    }
    let Ok(form) = serde_urlencoded::from_bytes::<LoginForm>(&body) else {
        return login_form(t, "/", Some(t.sign_in_title), StatusCode::BAD_REQUEST);
    };
    let next = local_path(form.next.as_deref()).to_string();
    let username = form.username.clone();
    let user = match crate::api::access::check_credentials(&state, form.username, form.password, peer).await {
        Ok(user) => user,
        Err(error) if error.status() == StatusCode::UNAUTHORIZED => {
            let wrong = Some(t.settings_page.wrong_credentials);
            return sign_in_page(t, &next, &username, wrong, StatusCode::UNAUTHORIZED);
        }
        Err(error) if error.status() == StatusCode::TOO_MANY_REQUESTS => {
            let seconds = error.retry_after().unwrap_or(1);
            let said = t.too_many_sign_ins.replace("{seconds}", &seconds.to_string());
            let mut page = sign_in_page(t, &next, &username, Some(&said), StatusCode::TOO_MANY_REQUESTS);
            page.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            return page;
        }
        Err(error) => return login_form(t, &next, Some(t.sign_in_failed), error.status()),
    };
    if !user.role.may_read() {
        return login_form(t, &next, Some(t.forbidden_page), StatusCode::FORBIDDEN);
    }
    let issued = match crate::api::access::issue_token(
        &state,
        user,
        "browser session",
        Some(time::Duration::seconds(i64::from(SESSION_SECONDS))),
    )
    .await
    {
        Ok(issued) => issued.0,
        Err(error) => return login_form(t, &next, Some(t.sign_in_failed), error.status()),
    };
    let cookie = format!(
        "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_SECONDS}{}",
        issued.token,
        secure_attribute(&headers),
    );
    let mut response = Redirect::to(&next).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// Signs out: revokes the session's token and forgets the cookie.
async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = session_cookie(&headers)
        && let Ok(principal) = Principal::from_token(token, &state).await
    {
        let (store, now, owner) = (state.store.clone(), state.wall_clock.now(), principal.user.id);
        let revoked =
            tokio::task::spawn_blocking(move || store.revoke_token(principal.token_id, Some(owner), now));
        if !matches!(revoked.await, Ok(Ok(()))) {
            tracing::warn!("could not revoke a session token at sign-out");
        }
        state.tokens.clear();
    }
    let mut response = Redirect::to("/login").into_response();
    let cookie = format!(
        "{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        secure_attribute(&headers)
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// `"; Secure"` when the browser reached the server over HTTPS through a TLS-terminating proxy
/// (`X-Forwarded-Proto: https`, or `proto=https` in `Forwarded`; with a chain of proxies the first
/// entry, the one nearest the browser), so the session cookie never travels over plain HTTP there;
/// empty otherwise, because the server itself speaks plain HTTP on the factory network and a
/// `Secure` cookie would not come back. Trusting the header costs nothing: a forged one only keeps
/// the sender's own cookie off plain HTTP.
fn secure_attribute(headers: &HeaderMap) -> &'static str {
    let first = |name| {
        let value = headers.get(name).and_then(|value| value.to_str().ok()).unwrap_or("");
        value.split(',').next().unwrap_or("").trim()
    };
    let forwarded_proto = first("x-forwarded-proto").eq_ignore_ascii_case("https");
    let forwarded =
        first("forwarded").split(';').filter_map(|pair| pair.split_once('=')).any(|(name, value)| {
            name.trim().eq_ignore_ascii_case("proto")
                && value.trim().trim_matches('"').eq_ignore_ascii_case("https")
        });
    if forwarded_proto || forwarded { "; Secure" } else { "" }
}

#[derive(Default, Deserialize)]
struct LangQuery {
    to: String,
    back: Option<String>,
}

/// Sets the language cookie and goes back to the page the switch was on.
async fn switch_language(PageQuery(query): PageQuery<LangQuery>) -> Response {
    let lang = Lang::parse(&query.to).unwrap_or(Lang::En);
    let mut response = Redirect::to(local_path(query.back.as_deref())).into_response();
    let cookie = format!("{LANG_COOKIE}={}; Path=/; SameSite=Lax; Max-Age=31536000", lang.code());
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// Each machine's name where machines of several sites are listed together: its code, or
/// `code · site` when a machine of another site in `machines` has the same code (codes are
/// unique within a site only).
pub(crate) fn machine_labels(
    store: &store::Store,
    machines: &[model::Machine],
) -> std::collections::HashMap<model::MachineId, String> {
    let mut sites_of: std::collections::HashMap<&str, Vec<model::SiteId>> = std::collections::HashMap::new();
    for machine in machines {
        let sites = sites_of.entry(machine.code.as_str()).or_default();
        if !sites.contains(&machine.site_id) {
            sites.push(machine.site_id);
        }
    }
    let mut site_codes = std::collections::HashMap::new();
    machines
        .iter()
        .map(|machine| {
            let label = if sites_of[machine.code.as_str()].len() > 1 {
                let site = site_codes.entry(machine.site_id).or_insert_with(|| {
                    store.site(machine.site_id).map_or_else(|_| "?".to_string(), |site| site.code)
                });
                format!("{} · {site}", machine.code)
            } else {
                machine.code.clone()
            };
            (machine.id, label)
        })
        .collect()
}

/// The code and name fields of a form for a record (a site, a machine, a product …), filled with
/// the record's when it changes one.
pub(crate) fn code_and_name(ctx: &Ctx, record: Option<(&str, &str)>) -> Markup {
    let f = ctx.t.factory_page;
    html! {
        label { (f.code) input name="code" required maxlength="64" pattern=(CODE_PATTERN) title=(ctx.t.code_hint)
            value=[record.map(|(code, _)| code)]; }
        label { (f.name) input name="name" required maxlength="200" value=[record.map(|(_, name)| name)]; }
    }
}

/// A record's change forms and its delete button, folded away under "Edit". `label` is the id of
/// the element that names the record (both buttons are described by it), `path` the API address
/// the button deletes, and `confirm` what it asks first.
pub(crate) fn edit_fold(ctx: &Ctx, label: &str, path: &str, confirm: &str, forms: Markup) -> Markup {
    html! {
        details {
            summary aria-describedby=(label) { (ctx.t.edit) }
            div.stack {
                (forms)
                div {
                    button.danger data-action={ "DELETE " (path) } data-confirm=(confirm) aria-describedby=(label) { (ctx.t.delete) }
                }
            }
        }
    }
}

/// An alarm's status as shown: a cleared alarm nobody acknowledged says so.
pub(crate) fn alarm_status(t: &Text, alarm: &model::alarm::Alarm) -> Markup {
    html! {
        (t.alarm_status(alarm.status))
        @if alarm.cleared_unseen() {
            " · " strong.late-text { (t.not_acknowledged) }
        }
    }
}

/// The most urgent alarms in three columns, so a narrow panel needs no scrolling: who and how
/// urgent, what (and whether it cleared), when (and the acknowledgement, for those who may).
pub(crate) fn alarms_brief(
    ctx: &Ctx,
    alarms: &[model::alarm::Alarm],
    machines: &std::collections::HashMap<model::MachineId, &model::Machine>,
    labels: &std::collections::HashMap<model::MachineId, String>,
) -> Markup {
    let t = ctx.t;
    html! {
        table.alarms-brief {
            thead { tr { th { (t.machine) } th { (t.message) } th { (t.raised_at) } } }
            tbody {
                @for alarm in alarms {
                    tr data-alarm=(alarm.id) {
                        td {
                            span.badge.{"sev-" (alarm.severity.as_str())} { (t.severity(alarm.severity)) }
                            br;
                            a href={ "/machines/" (alarm.machine_id.0) } { (labels.get(&alarm.machine_id).map_or("?", String::as_str)) }
                        }
                        td id={ "alarm-" (alarm.id) "-message" } {
                            (alarm_message(t, alarm))
                            @if alarm.status == model::alarm::AlarmStatus::Cleared {
                                br; span.muted { (alarm_status(t, alarm)) }
                            }
                        }
                        td.nw {
                            (alarm_raised(ctx, alarm))
                            br;
                            @if alarm.needs_acknowledgement() && machines.get(&alarm.machine_id).is_some_and(|m| ctx.may_at(crate::auth::Need::Report, m.site_id)) {
                                button data-action={ "POST /api/v1/alarms/" (alarm.id) "/acknowledge" } data-then="none"
                                    aria-describedby={ "alarm-" (alarm.id) "-message" } {
                                    (t.acknowledge)
                                }
                            } @else if alarm.status == model::alarm::AlarmStatus::Acknowledged {
                                span.muted title=[alarm.acknowledged_by.as_deref()] { (t.alarm_status(alarm.status)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The CSS class of a machine state, `state-running` and so on.
pub(crate) fn state_class(state: model::MachineState) -> String {
    format!("state-{}", state.as_str().replace('_', "-"))
}
