//! Handlers for sites, their calendars, lines and machines. Changing the factory's structure is
//! for admins; everyone signed in may read it.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use model::{Calendar, Line, LineId, Machine, MachineId, NewLine, NewMachine, NewSite, Site, SiteId};
use serde::Deserialize;
use store::Store;

use super::{Created, PageQuery, blocking, create, fetch, read, remove, replace, validate};
use crate::AppState;
use crate::auth::{Administrator, Need, Reader};
use crate::error::ApiResult;
use crate::extract::{Id, JsonBody, ListResponse, QueryParams, page_request};

pub(crate) async fn list_sites(
    State(state): State<AppState>,
    _: Reader,
    QueryParams(query): QueryParams<PageQuery>,
) -> ApiResult<Json<ListResponse<Site>>> {
    let request = page_request(query.limit, query.cursor.as_deref())?;
    let store = state.store;
    Ok(Json(read(|| store.sites(request))?.into()))
}

pub(crate) async fn create_site(
    State(state): State<AppState>,
    Administrator(principal): Administrator,
    JsonBody(new): JsonBody<NewSite>,
) -> ApiResult<Created<Site>> {
    create(state, principal, Need::Administer, new.canonical(), Store::create_site).await
}

pub(crate) async fn get_site(State(state): State<AppState>, _: Reader, Id(id): Id) -> ApiResult<Json<Site>> {
    fetch(state, SiteId(id), Store::site).await
}

pub(crate) async fn update_site(
    State(state): State<AppState>,
    Administrator(principal): Administrator,
    Id(id): Id,
    JsonBody(new): JsonBody<NewSite>,
) -> ApiResult<Json<Site>> {
    replace(state, principal, Need::Administer, SiteId(id), new.canonical(), Store::update_site).await
}

pub(crate) async fn delete_site(
    State(state): State<AppState>,
    Administrator(principal): Administrator,
    Id(id): Id,
) -> ApiResult<StatusCode> {
    remove(state, principal, Need::Administer, SiteId(id), Store::delete_site).await
}

pub(crate) async fn get_calendar(
    State(state): State<AppState>,
    _: Reader,
    Id(id): Id,
) -> ApiResult<Json<Calendar>> {
    fetch(state, SiteId(id), Store::calendar).await
}

pub(crate) async fn set_calendar(
    State(state): State<AppState>,
    Administrator(principal): Administrator,
    Id(id): Id,
    JsonBody(calendar): JsonBody<Calendar>,
) -> ApiResult<Json<Calendar>> {
    principal.require(Need::Administer)?;
    validate(&calendar)?;
    let store = state.store.clone();
    let calendar = blocking(move || {
        store.set_calendar(SiteId(id), &calendar)?;
        store.calendar(SiteId(id))
    })
    .await?;
    // The active plan may have work in time now closed: the replanner looks now.
    state.wake_replanner();
    Ok(Json(calendar))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LinesQuery {
    limit: Option<u32>,
    cursor: Option<String>,
    site: Option<i64>,
}

pub(crate) async fn list_lines(
    State(state): State<AppState>,
    _: Reader,
    QueryParams(query): QueryParams<LinesQuery>,
) -> ApiResult<Json<ListResponse<Line>>> {
    let request = page_request(query.limit, query.cursor.as_deref())?;
    let store = state.store;
    // A filter naming nothing that exists is wrong, not "none" (as everywhere).
    if let Some(site) = query.site {
        read(|| store.site(SiteId(site)))?;
    }
    Ok(Json(read(|| store.lines(query.site.map(SiteId), request))?.into()))
}

pub(crate) async fn create_line(
    State(state): State<AppState>,
    Administrator(principal): Administrator,
    JsonBody(new): JsonBody<NewLine>,
) -> ApiResult<Created<Line>> {
    create(state, principal, Need::Administer, new, Store::create_line).await
}

pub(crate) async fn get_line(State(state): State<AppState>, _: Reader, Id(id): Id) -> ApiResult<Json<Line>> {
    fetch(state, LineId(id), Store::line).await
}

pub(crate) async fn update_line(
    State(state): State<AppState>,
    Administrator(principal): Administrator,
    Id(id): Id,
    JsonBody(new): JsonBody<NewLine>,
) -> ApiResult<Json<Line>> {
    replace(state, principal, Need::Administer, LineId(id), new, Store::update_line).await
}

pub(crate) async fn delete_line(
    State(state): State<AppState>,
    Administrator(principal): Administrator,
    Id(id): Id,
) -> ApiResult<StatusCode> {
    remove(state, principal, Need::Administer, LineId(id), Store::delete_line).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MachinesQuery {
    limit: Option<u32>,
    cursor: Option<String>,
    site: Option<i64>,
    line: Option<i64>,
    /// `true`: only retired machines; `false`: only those in service; absent: all.
    retired: Option<bool>,
}

pub(crate) async fn list_machines(
    State(state): State<AppState>,
    _: Reader,
    QueryParams(query): QueryParams<MachinesQuery>,
) -> ApiResult<Json<ListResponse<Machine>>> {
    let request = page_request(query.limit, query.cursor.as_deref())?;
    let (site, line) = (query.site.map(SiteId), query.line.map(LineId));
    let store = state.store;
    // A filter naming nothing that exists is wrong, not "none" (as everywhere).
    if let Some(site) = site {
        read(|| store.site(site))?;
    }
    if let Some(line) = line {
        read(|| store.line(line))?;
    }
    let filter = store::MachineFilter { site, line, retired: query.retired };
    Ok(Json(read(|| store.machines(&filter, request))?.into()))
}

pub(crate) async fn create_machine(
    State(state): State<AppState>,
    Administrator(principal): Administrator,
    JsonBody(new): JsonBody<NewMachine>,
) -> ApiResult<Created<Machine>> {
    let now = state.clock.now();
    create(state, principal, Need::Administer, new, move |store, new| store.create_machine(new, now)).await
}

pub(crate) async fn get_machine(
    State(state): State<AppState>,
    _: Reader,
    Id(id): Id,
) -> ApiResult<Json<Machine>> {
    fetch(state, MachineId(id), Store::machine).await
}

pub(crate) async fn update_machine(
    State(state): State<AppState>,
    Administrator(principal): Administrator,
    Id(id): Id,
    JsonBody(new): JsonBody<NewMachine>,
) -> ApiResult<Json<Machine>> {
    let now = state.clock.now();
    let call = move |store: &Store, id, new: &NewMachine| store.update_machine(id, new, now);
    replace(state, principal, Need::Administer, MachineId(id), new, call).await
}

/// `DELETE /machines/{id}`'s query.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeleteMachineQuery {
    /// Delete a machine with a history (states, counts, readings, alarms) and that history too.
    #[serde(default)]
    with_history: bool,
}

pub(crate) async fn delete_machine(
    State(state): State<AppState>,
    Administrator(principal): Administrator,
    Id(id): Id,
    QueryParams(query): QueryParams<DeleteMachineQuery>,
) -> ApiResult<StatusCode> {
    let with_history = query.with_history;
    let call = move |store: &Store, id| store.delete_machine(id, with_history);
    remove(state, principal, Need::Administer, MachineId(id), call).await
}
