//! The HTTP API under `/api/v1`: the router and the helpers every resource handler shares.
//! Handlers are thin: check the role, validate, call the store off the async runtime, shape JSON.

pub(crate) mod access;
pub(crate) mod alarms;
/// The request and response types of the access handlers, for the OpenAPI document.
pub(crate) mod access_schemas {
    pub(crate) use super::access::{
        Login, NewTokenResponse, NewUser, PasswordChange, TokenInfo, TokenRequest, UserChange,
    };
}
mod catalog;
mod factory;
pub(crate) mod orders;
pub(crate) mod plans;
pub(crate) mod telemetry;
/// Request types of the operation handlers, for the OpenAPI document.
pub(crate) mod order_schemas {
    pub(crate) use super::orders::{FinishRequest, StartRequest};
}
/// Request and response types of the plan handlers, for the OpenAPI document.
pub(crate) mod plan_schemas {
    pub(crate) use super::plans::{Dispatch, GanttLane, PlanDetail, PlanRequest};
}
/// Request and response types of the telemetry handlers, for the OpenAPI document.
pub(crate) mod telemetry_schemas {
    pub(crate) use super::telemetry::{
        CurrentState, IngestReport, MetricList, OeeReport, ProductionOut, ProductionReport, Series, Span,
        StateReport,
    };
}

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use model::Validate;
use serde::{Deserialize, Serialize};
use store::Store;

use crate::AppState;
use crate::auth::{Need, Principal};
use crate::error::{ApiError, ApiResult};

/// The routes under `/api/v1`. Every one of them needs a token; see [`crate::openapi`] for the
/// published description, which a test keeps in step with this table.
pub(crate) fn routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/auth/login", post(access::login))
        .route("/me", get(access::me))
        .route("/me/password", post(access::change_own_password))
        .route("/users", get(access::list_users).post(access::create_user))
        .route("/users/{id}", axum::routing::patch(access::update_user).delete(access::delete_user))
        .route("/tokens", get(access::list_tokens).post(access::create_token))
        .route("/tokens/{id}", axum::routing::delete(access::revoke_token))
        .route("/sites", get(factory::list_sites).post(factory::create_site))
        .route("/sites/{id}", get(factory::get_site).put(factory::update_site).delete(factory::delete_site))
        .route("/sites/{id}/calendar", get(factory::get_calendar).put(factory::set_calendar))
        .route("/lines", get(factory::list_lines).post(factory::create_line))
        .route("/lines/{id}", get(factory::get_line).put(factory::update_line).delete(factory::delete_line))
        .route("/machines", get(factory::list_machines).post(factory::create_machine))
        .route(
            "/machines/{id}",
            get(factory::get_machine).put(factory::update_machine).delete(factory::delete_machine),
        )
        .route("/machines/{id}/metrics", get(telemetry::list_metrics))
        .route("/machines/{id}/series", get(telemetry::series))
        .route("/machines/{id}/states", get(telemetry::states).post(telemetry::report_state))
        .route("/machines/{id}/production", post(telemetry::report_production))
        .route(
            "/machines/{id}/state-rule",
            get(telemetry::get_state_rule)
                .put(telemetry::set_state_rule)
                .delete(telemetry::delete_state_rule),
        )
        .route(
            "/machines/{id}/count-rule",
            get(telemetry::get_count_rule)
                .put(telemetry::set_count_rule)
                .delete(telemetry::delete_count_rule),
        )
        .route("/machine-states", get(telemetry::current_states))
        .route("/telemetry", post(telemetry::ingest_telemetry))
        .route("/oee", get(telemetry::oee_report))
        .route("/alarm-rules", get(alarms::list_rules).post(alarms::create_rule))
        .route(
            "/alarm-rules/{id}",
            get(alarms::get_rule).put(alarms::update_rule).delete(alarms::delete_rule),
        )
        .route("/alarms", get(alarms::list_alarms))
        .route("/alarms/{id}/acknowledge", post(alarms::acknowledge))
        .route("/alarms/acknowledge-cleared", post(alarms::acknowledge_cleared))
        .route("/stream", get(crate::live::stream))
        .route("/materials", get(catalog::list_materials).post(catalog::create_material))
        .route(
            "/materials/{id}",
            get(catalog::get_material).put(catalog::update_material).delete(catalog::delete_material),
        )
        .route("/products", get(catalog::list_products).post(catalog::create_product))
        .route(
            "/products/{id}",
            get(catalog::get_product).put(catalog::update_product).delete(catalog::delete_product),
        )
        .route("/variants", get(catalog::list_variants).post(catalog::create_variant))
        .route(
            "/variants/{id}",
            get(catalog::get_variant).put(catalog::update_variant).delete(catalog::delete_variant),
        )
        .route("/routings", get(catalog::list_routings).post(catalog::create_routing))
        .route(
            "/routings/{id}",
            get(catalog::get_routing).put(catalog::update_routing).delete(catalog::delete_routing),
        )
        .route("/plans", get(plans::list_plans).post(plans::create_plan))
        .route("/plans/{id}", get(plans::get_plan))
        .route("/plans/{id}/publish", post(plans::publish_plan))
        .route("/plans/{id}/gantt", get(plans::gantt))
        .route("/plans/{id}/problem", get(plans::plan_problem))
        .route("/operations/{id}/start", post(orders::start_operation))
        .route("/operations/{id}/finish", post(orders::finish_operation))
        .route("/operations/{id}/pause", post(orders::pause_operation))
        .route("/machines/{id}/dispatch", get(plans::dispatch))
        .route("/machines/{id}/maintenance", get(plans::list_maintenance).post(plans::create_maintenance))
        .route("/maintenance", get(plans::maintenance_schedule))
        .route("/maintenance/{id}", axum::routing::delete(plans::delete_maintenance))
        .route("/orders", get(orders::list_orders).post(orders::create_order))
        .route("/orders/{id}", get(orders::get_order).put(orders::update_order).delete(orders::delete_order))
        .route("/orders/{id}/release", post(orders::release_order))
        .route("/orders/{id}/cancel", post(orders::cancel_order))
        .route("/orders/{id}/history", get(orders::get_order_history))
        .route("/orders/export", get(orders::export_orders))
        .route("/orders/quote", post(orders::quote_order))
        .route("/orders/deleted", get(orders::deleted_orders))
        .route(
            "/orders/import",
            post(orders::import_orders).layer(DefaultBodyLimit::max(state.config.import_limit_bytes)),
        )
}

/// `limit` and `cursor`, the parameters of every list without filters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PageQuery {
    limit: Option<u32>,
    cursor: Option<String>,
}

/// A 201 response with a JSON body.
pub(crate) struct Created<T>(pub T);

impl<T: Serialize> IntoResponse for Created<T> {
    fn into_response(self) -> Response {
        (StatusCode::CREATED, Json(self.0)).into_response()
    }
}

/// Runs a store read on the calling async worker. Reads take well under a millisecond, and under
/// WAL they never wait for the writer, so handing them to the blocking pool would cost more (two
/// thread switches per request, measured at a quarter of all CPU time under load) than it saves.
pub(crate) fn read<T>(call: impl FnOnce() -> store::Result<T>) -> ApiResult<T> {
    Ok(call()?)
}

/// Runs a store write on the blocking pool: a write may wait for the writer lock and an fsync.
pub(crate) async fn blocking<T: Send + 'static>(
    call: impl FnOnce() -> store::Result<T> + Send + 'static,
) -> ApiResult<T> {
    Ok(tokio::task::spawn_blocking(call).await.map_err(ApiError::internal)??)
}

/// Waits up to `wait` for `turn`, one of the semaphores that keep heavy work (plans, quotes) to
/// one at a time; beyond that, 503 saying `busy`.
pub(crate) async fn take_turn(
    turn: &std::sync::Arc<tokio::sync::Semaphore>,
    wait: std::time::Duration,
    busy: &str,
) -> ApiResult<tokio::sync::OwnedSemaphorePermit> {
    tokio::time::timeout(wait, turn.clone().acquire_owned())
        .await
        .map_err(|_| ApiError::service_unavailable(busy))?
        .map_err(ApiError::internal)
}

/// Fails with 422 listing every problem of `record`.
pub(crate) fn validate(record: &impl Validate) -> ApiResult<()> {
    let problems = record.problems();
    if problems.is_empty() { Ok(()) } else { Err(ApiError::validation(problems)) }
}

/// Creates a record: role check, validation, store call, 201.
async fn create<N, T>(
    state: AppState,
    principal: Principal,
    need: Need,
    new: N,
    call: impl FnOnce(&Store, &N) -> store::Result<T> + Send + 'static,
) -> ApiResult<Created<T>>
where
    N: Validate + Send + 'static,
    T: Send + 'static,
{
    principal.require(need)?;
    validate(&new)?;
    let store = state.store;
    Ok(Created(blocking(move || call(&store, &new)).await?))
}

/// Replaces a record: role check, validation, store call, 200.
async fn replace<I, N, T>(
    state: AppState,
    principal: Principal,
    need: Need,
    id: I,
    new: N,
    call: impl FnOnce(&Store, I, &N) -> store::Result<T> + Send + 'static,
) -> ApiResult<Json<T>>
where
    I: Send + 'static,
    N: Validate + Send + 'static,
    T: Send + 'static,
{
    principal.require(need)?;
    validate(&new)?;
    let store = state.store;
    Ok(Json(blocking(move || call(&store, id, &new)).await?))
}

/// Reads one record.
async fn fetch<I, T>(state: AppState, id: I, call: fn(&Store, I) -> store::Result<T>) -> ApiResult<Json<T>>
where
    I: Send + 'static,
    T: Send + 'static,
{
    Ok(Json(read(|| call(&state.store, id))?))
}

/// Deletes one record: role check, store call, 204.
async fn remove<I>(
    state: AppState,
    principal: Principal,
    need: Need,
    id: I,
    call: impl FnOnce(&Store, I) -> store::Result<()> + Send + 'static,
) -> ApiResult<StatusCode>
where
    I: Send + 'static,
{
    principal.require(need)?;
    let store = state.store;
    blocking(move || call(&store, id)).await?;
    Ok(StatusCode::NO_CONTENT)
}
