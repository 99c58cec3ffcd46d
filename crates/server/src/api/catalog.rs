//! Handlers for the product catalogue: materials, products, variants and routings. Planners and
//! admins change it; everyone signed in may read it.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use model::{
    Material, MaterialId, NewMaterial, NewProduct, NewRouting, NewVariant, Product, ProductId, Routing,
    RoutingId, Variant, VariantId,
};
use serde::Deserialize;
use store::Store;

use super::{Created, PageQuery, create, fetch, read, remove, replace};
use crate::AppState;
use crate::auth::{Need, Planner, Reader};
use crate::error::ApiResult;
use crate::extract::{Id, JsonBody, ListResponse, QueryParams, page_request};

pub(crate) async fn list_materials(
    State(state): State<AppState>,
    _: Reader,
    QueryParams(query): QueryParams<PageQuery>,
) -> ApiResult<Json<ListResponse<Material>>> {
    let request = page_request(query.limit, query.cursor.as_deref())?;
    let store = state.store;
    Ok(Json(read(|| store.materials(request))?.into()))
}

pub(crate) async fn create_material(
    State(state): State<AppState>,
    Planner(principal): Planner,
    JsonBody(new): JsonBody<NewMaterial>,
) -> ApiResult<Created<Material>> {
    create(state, principal, Need::Plan, new, Store::create_material).await
}

pub(crate) async fn get_material(
    State(state): State<AppState>,
    _: Reader,
    Id(id): Id,
) -> ApiResult<Json<Material>> {
    fetch(state, MaterialId(id), Store::material).await
}

pub(crate) async fn update_material(
    State(state): State<AppState>,
    Planner(principal): Planner,
    Id(id): Id,
    JsonBody(new): JsonBody<NewMaterial>,
) -> ApiResult<Json<Material>> {
    replace(state, principal, Need::Plan, MaterialId(id), new, Store::update_material).await
}

pub(crate) async fn delete_material(
    State(state): State<AppState>,
    Planner(principal): Planner,
    Id(id): Id,
) -> ApiResult<StatusCode> {
    remove(state, principal, Need::Plan, MaterialId(id), Store::delete_material).await
}

pub(crate) async fn list_products(
    State(state): State<AppState>,
    _: Reader,
    QueryParams(query): QueryParams<PageQuery>,
) -> ApiResult<Json<ListResponse<Product>>> {
    let request = page_request(query.limit, query.cursor.as_deref())?;
    let store = state.store;
    Ok(Json(read(|| store.products(request))?.into()))
}

pub(crate) async fn create_product(
    State(state): State<AppState>,
    Planner(principal): Planner,
    JsonBody(new): JsonBody<NewProduct>,
) -> ApiResult<Created<Product>> {
    create(state, principal, Need::Plan, new, Store::create_product).await
}

pub(crate) async fn get_product(
    State(state): State<AppState>,
    _: Reader,
    Id(id): Id,
) -> ApiResult<Json<Product>> {
    fetch(state, ProductId(id), Store::product).await
}

pub(crate) async fn update_product(
    State(state): State<AppState>,
    Planner(principal): Planner,
    Id(id): Id,
    JsonBody(new): JsonBody<NewProduct>,
) -> ApiResult<Json<Product>> {
    replace(state, principal, Need::Plan, ProductId(id), new, Store::update_product).await
}

pub(crate) async fn delete_product(
    State(state): State<AppState>,
    Planner(principal): Planner,
    Id(id): Id,
) -> ApiResult<StatusCode> {
    remove(state, principal, Need::Plan, ProductId(id), Store::delete_product).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VariantsQuery {
    limit: Option<u32>,
    cursor: Option<String>,
    product: Option<i64>,
    /// The variant of this code (exact): how an integration finds the id of a code it knows.
    code: Option<String>,
}

pub(crate) async fn list_variants(
    State(state): State<AppState>,
    _: Reader,
    QueryParams(query): QueryParams<VariantsQuery>,
) -> ApiResult<Json<ListResponse<Variant>>> {
    let request = page_request(query.limit, query.cursor.as_deref())?;
    let store = state.store;
    // A filter naming nothing that exists is wrong, not "none" (as everywhere).
    if let Some(product) = query.product {
        read(|| store.product(ProductId(product)))?;
    }
    if let Some(code) = query.code {
        // One variant at most: a list of it (or none), as the other filters answer.
        let found = read(|| store.variant_by_code(&code))?;
        let items = found
            .into_iter()
            .filter(|v| query.product.is_none_or(|p| v.product_id == ProductId(p)))
            .collect();
        return Ok(Json(ListResponse { items, next_cursor: None }));
    }
    Ok(Json(read(|| store.variants(query.product.map(ProductId), request))?.into()))
}

pub(crate) async fn create_variant(
    State(state): State<AppState>,
    Planner(principal): Planner,
    JsonBody(new): JsonBody<NewVariant>,
) -> ApiResult<Created<Variant>> {
    create(state, principal, Need::Plan, new, Store::create_variant).await
}

pub(crate) async fn get_variant(
    State(state): State<AppState>,
    _: Reader,
    Id(id): Id,
) -> ApiResult<Json<Variant>> {
    fetch(state, VariantId(id), Store::variant).await
}

pub(crate) async fn update_variant(
    State(state): State<AppState>,
    Planner(principal): Planner,
    Id(id): Id,
    JsonBody(new): JsonBody<NewVariant>,
) -> ApiResult<Json<Variant>> {
    replace(state, principal, Need::Plan, VariantId(id), new, Store::update_variant).await
}

pub(crate) async fn delete_variant(
    State(state): State<AppState>,
    Planner(principal): Planner,
    Id(id): Id,
) -> ApiResult<StatusCode> {
    remove(state, principal, Need::Plan, VariantId(id), Store::delete_variant).await
}

pub(crate) async fn list_routings(
    State(state): State<AppState>,
    _: Reader,
    QueryParams(query): QueryParams<PageQuery>,
) -> ApiResult<Json<ListResponse<Routing>>> {
    let request = page_request(query.limit, query.cursor.as_deref())?;
    let store = state.store;
    Ok(Json(read(|| store.routings(request))?.into()))
}

pub(crate) async fn create_routing(
    State(state): State<AppState>,
    Planner(principal): Planner,
    JsonBody(new): JsonBody<NewRouting>,
) -> ApiResult<Created<Routing>> {
    create(state, principal, Need::Plan, new, Store::create_routing).await
}

pub(crate) async fn get_routing(
    State(state): State<AppState>,
    _: Reader,
    Id(id): Id,
) -> ApiResult<Json<Routing>> {
    fetch(state, RoutingId(id), Store::routing).await
}

pub(crate) async fn update_routing(
    State(state): State<AppState>,
    Planner(principal): Planner,
    Id(id): Id,
    JsonBody(new): JsonBody<NewRouting>,
) -> ApiResult<Json<Routing>> {
    let replanner = state.clone();
    let routing = replace(state, principal, Need::Plan, RoutingId(id), new, Store::update_routing).await?;
    // Open work may have other machines now: the replanner looks whether the plan still fits.
    replanner.wake_replanner();
    Ok(routing)
}

pub(crate) async fn delete_routing(
    State(state): State<AppState>,
    Planner(principal): Planner,
    Id(id): Id,
) -> ApiResult<StatusCode> {
    remove(state, principal, Need::Plan, RoutingId(id), Store::delete_routing).await
}
