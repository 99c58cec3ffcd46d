//! Handlers for alarm rules (planners and admins edit them) and alarms (everyone reads them;
//! operators and up acknowledge them).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use model::alarm::{Alarm, AlarmRule, AlarmStatus, NewAlarmRule};
use serde::{Deserialize, Serialize};
use store::{AlarmFilter, AlarmSort};

use super::{Created, blocking, read, validate};
use crate::AppState;
use crate::alarm_worker::AlarmInput;
use crate::auth::{Maintainer, Need, Principal, Reader, Reporter};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Id, JsonBody, JsonOrDefault, ListResponse, QueryParams, page_request, timestamp_param};
use crate::live::LiveEvent;

pub(crate) async fn list_rules(State(state): State<AppState>, _: Reader) -> ApiResult<Json<Vec<AlarmRule>>> {
    let store = state.store;
    Ok(Json(read(|| store.alarm_rules())?))
}

pub(crate) async fn get_rule(
    State(state): State<AppState>,
    _: Reader,
    Id(id): Id,
) -> ApiResult<Json<AlarmRule>> {
    Ok(Json(read(|| state.store.alarm_rule(id))?))
}

/// Someone bound to a site changes the rules of its machines only (one machine, or the site's
/// every machine): a rule for every site's machines watches the other sites' too.
fn require_rule_site(state: &AppState, principal: &Principal, rule: &NewAlarmRule) -> ApiResult<()> {
    if principal.user.site_id.is_none() {
        return Ok(());
    }
    match (rule.machine_id, rule.site_id) {
        (Some(machine), _) => principal.require_machine_site(&state.store, machine),
        (None, Some(site)) => principal.require_site(&state.store, site, "the rule"),
        (None, None) => Err(ApiError::forbidden(
            "a rule without a machine or a site watches every site's machines; your account acts at one site, so give the rule its site_id or one of its machines",
        )),
    }
}

pub(crate) async fn create_rule(
    State(state): State<AppState>,
    Maintainer(principal): Maintainer,
    JsonBody(new): JsonBody<NewAlarmRule>,
) -> ApiResult<Created<AlarmRule>> {
    principal.require(Need::Maintain)?;
    validate(&new)?;
    require_rule_site(&state, &principal, &new)?;
    let store = state.store.clone();
    let rule = blocking(move || store.create_alarm_rule(&new)).await?;
    state.alarm_input(AlarmInput::RulesChanged);
    Ok(Created(rule))
}

pub(crate) async fn update_rule(
    State(state): State<AppState>,
    Maintainer(principal): Maintainer,
    Id(id): Id,
    JsonBody(new): JsonBody<NewAlarmRule>,
) -> ApiResult<Json<AlarmRule>> {
    principal.require(Need::Maintain)?;
    validate(&new)?;
    require_rule_site(&state, &principal, &state.store.alarm_rule(id)?.rule)?;
    require_rule_site(&state, &principal, &new)?;
    let (store, now) = (state.store.clone(), state.clock.now());
    let (rule, cleared) = blocking(move || store.update_alarm_rule(id, &new, now)).await?;
    state.alarm_input(AlarmInput::RulesChanged);
    publish(&state, cleared);
    Ok(Json(rule))
}

pub(crate) async fn delete_rule(
    State(state): State<AppState>,
    Maintainer(principal): Maintainer,
    Id(id): Id,
) -> ApiResult<StatusCode> {
    require_rule_site(&state, &principal, &state.store.alarm_rule(id)?.rule)?;
    let (store, now) = (state.store.clone(), state.clock.now());
    let cleared = blocking(move || store.delete_alarm_rule(id, now)).await?;
    state.alarm_input(AlarmInput::RulesChanged);
    publish(&state, cleared);
    Ok(StatusCode::NO_CONTENT)
}

/// Sends each changed alarm to the live stream at once, and through the alarm worker to MQTT and
/// the webhooks.
fn publish(state: &AppState, alarms: Vec<Alarm>) {
    for alarm in &alarms {
        state.publish(LiveEvent::Alarm { alarm: alarm.clone() });
    }
    state.alarms_changed(alarms);
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AlarmsQuery {
    limit: Option<u32>,
    cursor: Option<String>,
    status: Option<AlarmStatus>,
    /// `true`: only open alarms, not cleared, or cleared before anyone acknowledged them;
    /// `false`: only the others.
    open: Option<bool>,
    machine: Option<i64>,
    severity: Option<model::alarm::Severity>,
    from: Option<String>,
    to: Option<String>,
    sort: Option<String>,
    site: Option<i64>,
}

pub(crate) async fn list_alarms(
    State(state): State<AppState>,
    _: Reader,
    QueryParams(query): QueryParams<AlarmsQuery>,
) -> ApiResult<Json<ListResponse<Alarm>>> {
    let sort = match query.sort.as_deref() {
        None | Some("created") => AlarmSort::Created,
        Some("latest") => AlarmSort::Latest,
        Some(_) => return Err(ApiError::bad_request("sort", "must be created or latest")),
    };
    let (cursor, cursor_raised_ms) = split_alarm_cursor(sort, query.cursor.as_deref())
        .map_err(|()| ApiError::bad_request("cursor", "not a cursor returned by this API for this order"))?;
    // Newest first: the cursor is an upper bound on the id (see `Store::alarms`).
    let request = page_request(query.limit, cursor)?;
    let (from, to) =
        (timestamp_param("from", query.from.as_deref())?, timestamp_param("to", query.to.as_deref())?);
    if let (Some(from), Some(to)) = (from, to)
        && from >= to
    {
        return Err(ApiError::bad_request("from", "must be before to"));
    }
    let filter = AlarmFilter {
        status: query.status,
        open: query.open,
        machine: query.machine.map(model::MachineId),
        site: query.site.map(model::SiteId),
        severity: query.severity,
        from,
        to,
        sort,
        cursor_raised_ms,
    };
    let store = state.store;
    // A filter naming nothing that exists is wrong, not "none" (as everywhere).
    if let Some(machine) = filter.machine {
        read(|| store.machine(machine))?;
    }
    if let Some(site) = filter.site {
        read(|| store.site(site))?;
    }
    let page = read(|| store.alarms(&filter, request))?;
    let next_cursor = alarm_cursor(sort, &page);
    Ok(Json(ListResponse { items: page.items, next_cursor }))
}

/// The cursor of the next page of a list of alarms in `sort`'s order.
pub(crate) fn alarm_cursor(sort: AlarmSort, page: &store::Page<Alarm>) -> Option<String> {
    let id = page.next_cursor?;
    match sort {
        AlarmSort::Created => Some(id.to_string()),
        AlarmSort::Latest => page
            .items
            .last()
            .map(|alarm| crate::extract::keyed_cursor(model::oee::unix_ms(alarm.raised_at), id)),
    }
}

/// Splits a cursor of [`alarm_cursor`] for `sort` into its id and raised time; `Err` when it is
/// not a cursor of such a list.
pub(crate) fn split_alarm_cursor(
    sort: AlarmSort,
    cursor: Option<&str>,
) -> Result<(Option<&str>, Option<i64>), ()> {
    match (sort, cursor) {
        (_, None | Some("")) => Ok((None, None)),
        (AlarmSort::Created, Some(cursor)) => Ok((Some(cursor), None)),
        (AlarmSort::Latest, Some(cursor)) => {
            let (id, raised) = crate::extract::split_keyed_cursor(cursor)?;
            Ok((Some(id), Some(raised)))
        }
    }
}

/// What `POST /alarms/{id}/acknowledge` may carry; no body is no note.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Acknowledge {
    /// What was found and done, kept with the alarm (at most 1,000 characters; line breaks allowed).
    #[serde(default)]
    pub(crate) note: Option<String>,
}

/// The longest acknowledgement note, in characters.
const NOTE_CHARS: usize = 1_000;

impl model::Validate for Acknowledge {
    fn problems(&self) -> Vec<model::FieldError> {
        let Some(note) = &self.note else { return Vec::new() };
        let problem = if note.chars().count() > NOTE_CHARS {
            format!("must be at most {NOTE_CHARS} characters")
        } else if note.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r')) {
            "must not contain control characters other than line breaks and tabs".to_string()
        } else {
            return Vec::new();
        };
        vec![model::FieldError::new("note", problem)]
    }
}

/// What `POST /alarms/acknowledge-cleared` acknowledges.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AcknowledgeCleared {
    /// Only this machine's alarms; every machine's when absent.
    #[serde(default)]
    pub(crate) machine_id: Option<i64>,
}

/// How many alarms `POST /alarms/acknowledge-cleared` acknowledged.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct Acknowledged {
    /// Alarms acknowledged.
    pub(crate) acknowledged: usize,
}

/// Acknowledges every alarm that cleared before anyone acknowledged it (of one machine, or all):
/// after a storm of brief alarms, one by one would be a chore. Alarms still active are left to be
/// acknowledged one at a time.
pub(crate) async fn acknowledge_cleared(
    State(state): State<AppState>,
    Reporter(principal): Reporter,
    JsonBody(request): JsonBody<AcknowledgeCleared>,
) -> ApiResult<Json<Acknowledged>> {
    principal.require(Need::Report)?;
    let machine = request.machine_id.map(model::MachineId);
    if let Some(machine) = machine {
        state.store.machine(machine)?;
        principal.require_machine_site(&state.store, machine)?;
    }
    // Someone bound to a site acknowledges that site's alarms only.
    let site = principal.user.site_id;
    let (store, now, by) = (state.store.clone(), state.clock.now(), principal.user.username.clone());
    let alarms = blocking(move || store.acknowledge_cleared_alarms(machine, site, &by, now)).await?;
    let acknowledged = alarms.len();
    publish(&state, alarms);
    Ok(Json(Acknowledged { acknowledged }))
}

pub(crate) async fn acknowledge(
    State(state): State<AppState>,
    Reporter(principal): Reporter,
    Id(id): Id,
    JsonOrDefault(request): JsonOrDefault<Acknowledge>,
) -> ApiResult<Json<Alarm>> {
    validate(&request)?;
    if principal.user.site_id.is_some() {
        let machine = state.store.alarm(id)?.machine_id;
        principal.require_machine_site(&state.store, machine)?;
    }
    let note = request.note.as_deref().map(str::trim).filter(|note| !note.is_empty()).map(str::to_owned);
    let (store, now, by) = (state.store.clone(), state.clock.now(), principal.user.username.clone());
    let alarm = blocking(move || store.acknowledge_alarm(id, &by, now, note.as_deref())).await?;
    publish(&state, vec![alarm.clone()]);
    Ok(Json(alarm))
}
