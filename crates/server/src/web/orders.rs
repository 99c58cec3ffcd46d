//! The orders pages: a filterable list with ETAs and lateness, and one order with its operations.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use maud::{Markup, html};
use model::{MachineId, Operation, Order, OrderId, OrderStatus, PlannedOperation, Timestamp, VariantId};
use serde::Deserialize;
use store::{MachineFilter, OrderFilter, OrderSort, PageRequest};

use super::{Ctx, Nav, OrPage, PageResult, encode, layout};
use crate::AppState;
use crate::auth::Need;
use crate::error::ApiError;
use crate::extract::page_request;
use crate::planning::progress::{Planned, planned_by_operation};

/// The orders pages' labels.
pub(crate) struct Text {
    pub(crate) title: &'static str,
    pub(crate) all_statuses: &'static str,
    pub(crate) due_from: &'static str,
    pub(crate) due_until: &'static str,
    pub(crate) customer_hint: &'static str,
    pub(crate) search: &'static str,
    pub(crate) search_hint: &'static str,
    pub(crate) bad_search: &'static str,
    pub(crate) sort: &'static str,
    pub(crate) sort_created: &'static str,
    pub(crate) sort_due: &'static str,
    pub(crate) sort_newest: &'static str,
    pub(crate) open_statuses: &'static str,
    pub(crate) bad_sort: &'static str,
    pub(crate) show: &'static str,
    pub(crate) show_late: &'static str,
    pub(crate) show_to_release: &'static str,
    pub(crate) bad_show: &'static str,
    pub(crate) bad_release_status: &'static str,
    pub(crate) all_sites: &'static str,
    pub(crate) bad_site: &'static str,
    pub(crate) product: &'static str,
    pub(crate) all_products: &'static str,
    pub(crate) bad_product: &'static str,
    /// "48 orders"
    pub(crate) total: fn(u64) -> String,
    pub(crate) export_csv: &'static str,
    pub(crate) clear: &'static str,
    pub(crate) bad_filters: &'static str,
    pub(crate) bad_status: &'static str,
    pub(crate) bad_date: &'static str,
    pub(crate) bad_range: &'static str,
    pub(crate) bad_customer: &'static str,
    pub(crate) bad_cursor: &'static str,
    pub(crate) none_found: &'static str,
    pub(crate) carbon: &'static str,
    pub(crate) carbon_pending: &'static str,
    pub(crate) no_active_plan: &'static str,
    pub(crate) not_in_plan: &'static str,
    pub(crate) late_by: &'static str,
    pub(crate) overdue_by: &'static str,
    pub(crate) priority: &'static str,
    pub(crate) priority_hint: &'static str,
    pub(crate) material_ready: &'static str,
    pub(crate) material_on_hand: &'static str,
    pub(crate) entered: &'static str,
    pub(crate) operations: &'static str,
    pub(crate) step: &'static str,
    pub(crate) name: &'static str,
    pub(crate) planned: &'static str,
    pub(crate) actual: &'static str,
    pub(crate) finished: &'static str,
    pub(crate) output: &'static str,
    /// "329 of 350 expected, 21 short"
    pub(crate) output_short: fn(u32, u32) -> String,
    /// What a done order's list row adds when it delivered fewer than ordered (units short).
    pub(crate) short: fn(u32) -> String,
    pub(crate) setup_from: &'static str,
    pub(crate) planned_start: &'static str,
    pub(crate) planned_end: &'static str,
    pub(crate) parts: &'static str,
    pub(crate) release: &'static str,
    pub(crate) release_hint: &'static str,
    pub(crate) change_order: &'static str,
    pub(crate) change_hint: &'static str,
    pub(crate) cancel_order: &'static str,
    pub(crate) cancel_confirm: &'static str,
    pub(crate) all_orders: &'static str,
    pub(crate) in_plan: &'static str,
    pub(crate) new_order: &'static str,
    pub(crate) number: &'static str,
    pub(crate) new_order_hint: &'static str,
    /// The link to the order that has a number already in use.
    pub(crate) open_existing: &'static str,
    /// The question before an order is entered or changed with a due time already past.
    pub(crate) confirm_past: &'static str,
    /// The question before an order is entered or changed with its material after its due time.
    pub(crate) confirm_material: &'static str,
    /// When a released order the active plan lacks joins it by itself: "by about 10:15".
    pub(crate) slot_in: fn(&str) -> String,
    pub(crate) history: &'static str,
    pub(crate) no_history: &'static str,
    pub(crate) when: &'static str,
    pub(crate) who: &'static str,
    pub(crate) what: &'static str,
    pub(crate) by_platform: &'static str,
    /// "The latest 50 of 73 (GET /api/v1/orders/{id}/history has all)."
    pub(crate) history_shown: fn(usize, usize) -> String,
    pub(crate) event_created: &'static str,
    pub(crate) event_released: &'static str,
    pub(crate) event_cancelled: &'static str,
    pub(crate) quote: &'static str,
    pub(crate) quote_hint: &'static str,
    /// With `{eta}`.
    pub(crate) quote_on_time: &'static str,
    /// With `{eta}` and `{hours}`.
    pub(crate) quote_late: &'static str,
    /// With `{n}`.
    pub(crate) quote_others: &'static str,
    /// `{priority}` is replaced by `planning.rush_priority`.
    pub(crate) rush_hint: &'static str,
}

pub(crate) const EN: Text = Text {
    title: "Orders",
    all_statuses: "All statuses",
    due_from: "Due on or after",
    due_until: "Due on or before",
    customer_hint: "Exact name",
    search: "Search",
    search_hint: "Order number or customer",
    bad_search: "Search: at most 200 characters.",
    sort: "Sort",
    sort_created: "As entered",
    sort_due: "Due first",
    sort_newest: "Newest first",
    open_statuses: "Open (not done or cancelled)",
    bad_sort: "Sort: not a known order.",
    show: "Show",
    show_late: "Late only",
    show_to_release: "To release (planned, due within 7 days)",
    bad_show: "Show: not a known choice.",
    bad_release_status: "Orders to release are planned orders: choose “All statuses” or “Planned”.",
    all_sites: "All sites",
    bad_site: "Site: not a known site.",
    product: "Product",
    all_products: "All products",
    bad_product: "Product: not a known product.",
    total: |n| if n == 1 { "1 order".into() } else { format!("{n} orders") },
    export_csv: "Export as CSV",
    clear: "Clear filters",
    bad_filters: "Some filters are not valid, so no orders are listed:",
    bad_status: "not a known status.",
    bad_date: "not a date; use the form YYYY-MM-DD.",
    bad_range: "“Due on or after” is later than “Due on or before”.",
    bad_customer: "Customer: at most 200 characters.",
    bad_cursor: "The page link is not valid; start again from the first page.",
    none_found: "No orders match.",
    carbon: "CO₂e per unit",
    carbon_pending: "Carbon figures are not available yet.",
    no_active_plan: "No plan is active, so no order has an ETA yet.",
    not_in_plan: "Not in the active plan",
    late_by: "Late by",
    overdue_by: "Overdue by",
    priority: "Priority",
    priority_hint: "1 normal to 10 most urgent",
    material_ready: "Material ready",
    material_on_hand: "On hand",
    entered: "Entered",
    operations: "Operations",
    step: "Step",
    name: "Name",
    planned: "planned",
    actual: "actual",
    finished: "Finished",
    output: "Good output",
    output_short: |output, quantity| format!("{output} of {quantity} expected, {} short", quantity - output),
    short: |n| format!("{n} short"),
    setup_from: "Setup from",
    planned_start: "Planned start",
    planned_end: "End (planned or actual)",
    parts: "parts",
    release: "Release to production",
    release_hint: "Releasing lets operators start the order's operations.",
    change_order: "Change the order",
    change_hint: "A due time moved earlier than the plan finishes the order re-plans at once (work within the freeze stays); a rush priority is slotted in ahead of other work at once. Once released, the quantity is fixed.",
    cancel_order: "Cancel order",
    cancel_confirm: "Cancel this order? Its unfinished operations are cancelled too. This cannot be undone.",
    all_orders: "All orders",
    in_plan: "ETAs and planned times are from the active plan ({plan}).",
    new_order: "New order",
    number: "Order number",
    new_order_hint: "The order is entered as planned; release it on its page to send it to the shop floor.",
    open_existing: "Open the order with this number",
    confirm_past: "The due time has passed already, so the order is late from the start. Save it anyway?",
    confirm_material: "The material arrives after the due time, so the order will be late. Save it anyway?",
    slot_in: |at| {
        format!(
            "The automatic re-plan slots it in by about {at}; re-plan on the Plan page to see its ETA at once."
        )
    },
    history: "History",
    no_history: "Nothing recorded yet (orders entered before the history was kept have none).",
    when: "When",
    who: "Who",
    what: "What",
    by_platform: "the platform",
    history_shown: |shown, all| format!("The latest {shown} of {all}; the API's order history has all."),
    event_created: "Entered",
    event_released: "Released to production",
    event_cancelled: "Cancelled",
    quote: "Check delivery",
    quote_hint: "When it would be done if entered and released now, as the automatic re-plan would slot it in. Nothing is entered.",
    quote_on_time: "Entered and released now, it would be done by {eta}: on time.",
    quote_late: "Entered and released now, it would be done by {eta}: {hours} h late.",
    quote_others: "It would make {n} more orders late.",
    rush_hint: "Priority {priority} or more is a rush order: once released, the active plan is repaired at once to fit it in ahead of other work.",
};

pub(crate) const ZH: Text = Text {
    title: "訂單",
    all_statuses: "所有狀態",
    due_from: "交期由",
    due_until: "交期至",
    customer_hint: "完整名稱",
    search: "搜尋",
    search_hint: "訂單編號或客戶",
    bad_search: "搜尋：最多 200 個字元。",
    sort: "排序",
    sort_created: "按輸入次序",
    sort_due: "交期最早先",
    sort_newest: "最新輸入先",
    open_statuses: "進行中（未完成亦未取消）",
    bad_sort: "排序：不是有效的次序。",
    show: "顯示",
    show_late: "只顯示延誤",
    show_to_release: "待下達（已計劃，七天內到期）",
    bad_show: "顯示：不是有效的選項。",
    bad_release_status: "待下達的訂單均為「已計劃」：請選擇「所有狀態」或「已計劃」。",
    all_sites: "所有廠房",
    bad_site: "廠房：不是有效的廠房。",
    product: "產品",
    all_products: "所有產品",
    bad_product: "產品：不是有效的產品。",
    total: |n| format!("共 {n} 張訂單"),
    export_csv: "匯出 CSV",
    clear: "清除篩選",
    bad_filters: "部分篩選條件無效，因此未列出訂單：",
    bad_status: "不是有效的狀態。",
    bad_date: "不是有效日期；請使用 YYYY-MM-DD 格式。",
    bad_range: "「交期由」遲於「交期至」。",
    bad_customer: "客戶：最多 200 個字元。",
    bad_cursor: "頁面連結無效；請由第一頁重新開始。",
    none_found: "沒有符合的訂單。",
    carbon: "每件碳排放（CO₂e）",
    carbon_pending: "暫未提供碳排放數據。",
    no_active_plan: "尚未發佈排程，訂單暫無預計完成時間。",
    not_in_plan: "不在現行排程內",
    late_by: "延誤",
    overdue_by: "已逾期",
    priority: "優先級",
    priority_hint: "1 為一般，10 為最緊急",
    material_ready: "物料到貨時間（可選）",
    material_on_hand: "已有物料",
    entered: "建立時間",
    operations: "工序",
    step: "步驟",
    name: "名稱",
    planned: "計劃",
    actual: "實際",
    finished: "完成時間",
    output: "良品產出",
    output_short: |output, quantity| format!("{output}／{quantity}（短缺 {}）", quantity - output),
    short: |n| format!("短缺 {n}"),
    setup_from: "調機開始",
    planned_start: "計劃開始",
    planned_end: "完成（計劃或實際）",
    parts: "批",
    release: "下達生產",
    release_hint: "下達後，操作員便可開始此訂單的工序。",
    change_order: "修改訂單",
    change_hint: "交期提前至排程完成時間之前會即時重新排程（凍結期內的工作不變）；急單優先級會即時插入其他工作之前。下達後數量不能更改。",
    cancel_order: "取消訂單",
    cancel_confirm: "取消此訂單？其未完成的工序亦會一併取消，且無法復原。",
    all_orders: "所有訂單",
    in_plan: "預計完成及計劃時間取自現行排程（{plan}）。",
    new_order: "新增訂單",
    number: "訂單編號",
    new_order_hint: "訂單以「已計劃」狀態建立；在訂單頁下達後才會送到車間。",
    open_existing: "開啟此編號的訂單",
    confirm_past: "交期已過，訂單一開始便已延誤。仍要儲存嗎？",
    confirm_material: "物料於交期後才到，訂單必定延誤。仍要儲存嗎？",
    slot_in: |at| format!("自動重新排程約於 {at} 前把它排入；在排程頁重新排程可即時看到預計完成時間。"),
    history: "記錄",
    no_history: "暫無記錄（記錄功能推出前建立的訂單沒有記錄）。",
    when: "時間",
    who: "由",
    what: "內容",
    by_platform: "平台",
    history_shown: |shown, all| format!("顯示 {all} 項中最新的 {shown} 項；API 的訂單記錄有全部。"),
    event_created: "建立",
    event_released: "下達生產",
    event_cancelled: "取消",
    quote: "查詢交貨時間",
    quote_hint: "如現在建立並下達，按自動重新排程的插入方式，預計何時完成。不會建立訂單。",
    quote_on_time: "如現在建立並下達，預計於 {eta} 完成：準時。",
    quote_late: "如現在建立並下達，預計於 {eta} 完成：延誤 {hours} 小時。",
    quote_others: "會令另外 {n} 張訂單延誤。",
    rush_hint: "優先級 {priority} 或以上為急單：下達後，系統會即時修補現行排程，把它排在其他工作之前。",
};

/// Orders per page.
const PAGE: u32 = 50;
/// Longest customer name accepted in the filter.
const CUSTOMER_MAX: usize = 200;
/// How close to its due time an order not yet released is listed as to release: the plan holds
/// released work only, so such an order gets no machine time until it is released.
pub(crate) const RELEASE_HORIZON: time::Duration = time::Duration::days(7);

/// The list's query parameters, all kept as text so that a bad value becomes a message on the
/// page rather than a rejection.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct OrdersQuery {
    pub(crate) status: Option<String>,
    pub(crate) search: Option<String>,
    pub(crate) customer: Option<String>,
    pub(crate) due_after: Option<String>,
    pub(crate) due_before: Option<String>,
    pub(crate) sort: Option<String>,
    /// `late` or `to_release`.
    pub(crate) show: Option<String>,
    /// A site's id: orders with work its machines may do.
    pub(crate) site: Option<String>,
    /// A product's id: orders of its variants.
    pub(crate) product: Option<String>,
    pub(crate) cursor: Option<String>,
}

/// A filter parameter that is not valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FilterError {
    Status,
    DueAfter,
    DueBefore,
    Range,
    Customer,
    Search,
    Sort,
    Show,
    ReleaseStatus,
    Site,
    Product,
    Cursor,
}

fn parse_date(text: &str) -> Option<time::Date> {
    time::Date::parse(text, time::macros::format_description!("[year]-[month]-[day]")).ok()
}

/// The start of `date` on the local clock of `zone`.
fn local_midnight(date: time::Date, zone: &model::Zone) -> Timestamp {
    zone.at_local(date, 0)
}

fn present(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// The store filter and page the query asks for. Dates are local calendar days and both ends are
/// inclusive: due on or after the start of `due_after`, and before the end of `due_before`.
pub(crate) fn parse_filter(
    query: &OrdersQuery,
    zone: &model::Zone,
    now: Timestamp,
) -> Result<(OrderFilter, PageRequest), Vec<FilterError>> {
    let mut errors = Vec::new();
    // "open": planned, released or running.
    let open = (present(&query.status) == Some("open")).then_some(true);
    let status = match present(&query.status) {
        None | Some("open") => None,
        Some(text) => OrderStatus::parse(text).or_else(|| {
            errors.push(FilterError::Status);
            None
        }),
    };
    let mut date = |value: &Option<String>, error: FilterError| match present(value) {
        None => None,
        Some(text) => parse_date(text).or_else(|| {
            errors.push(error);
            None
        }),
    };
    let after = date(&query.due_after, FilterError::DueAfter);
    let before = date(&query.due_before, FilterError::DueBefore);
    if let (Some(after), Some(before)) = (after, before)
        && after > before
    {
        errors.push(FilterError::Range);
    }
    let customer = present(&query.customer).map(str::to_string);
    if customer.as_ref().is_some_and(|c| c.chars().count() > CUSTOMER_MAX) {
        errors.push(FilterError::Customer);
    }
    let search = present(&query.search).map(str::to_string);
    if search.as_ref().is_some_and(|c| c.chars().count() > CUSTOMER_MAX) {
        errors.push(FilterError::Search);
    }
    let sort = match present(&query.sort) {
        None | Some("created") => OrderSort::Created,
        Some("due") => OrderSort::Due,
        Some("newest") => OrderSort::Newest,
        Some(_) => {
            errors.push(FilterError::Sort);
            OrderSort::Created
        }
    };
    let (lateness, release_by) = match present(&query.show) {
        None => (None, None),
        Some("late") => (Some(store::Lateness { late: true, now }), None),
        Some("to_release") => (None, Some(now + RELEASE_HORIZON)),
        Some(_) => {
            errors.push(FilterError::Show);
            (None, None)
        }
    };
    let status = match (present(&query.show), status) {
        (Some("to_release"), None) if open.is_none() => Some(OrderStatus::Planned),
        (Some("to_release"), None) => {
            errors.push(FilterError::ReleaseStatus);
            None
        }
        (Some("to_release"), Some(status)) if status != OrderStatus::Planned => {
            errors.push(FilterError::ReleaseStatus);
            Some(status)
        }
        (_, status) => status,
    };
    let site = match present(&query.site) {
        None => None,
        Some(text) => text.parse::<i64>().ok().filter(|id| *id > 0).map(model::SiteId).or_else(|| {
            errors.push(FilterError::Site);
            None
        }),
    };
    let product = match present(&query.product) {
        None => None,
        Some(text) => text.parse::<i64>().ok().filter(|id| *id > 0).map(model::ProductId).or_else(|| {
            errors.push(FilterError::Product);
            None
        }),
    };
    let split = crate::api::orders::split_order_cursor(sort, query.cursor.as_deref());
    let cursor_due_ms = split.ok().and_then(|(_, due)| due);
    let request = split
        .ok()
        .and_then(|(cursor, _)| page_request(Some(PAGE), cursor).ok())
        .ok_or_else(|| errors.push(FilterError::Cursor));
    match request {
        Ok(request) if errors.is_empty() => Ok((
            OrderFilter {
                cursor_due_ms,
                changed_after: 0,
                status,
                open,
                due_after: after.map(|d| local_midnight(d, zone)),
                due_before: before
                    .and_then(|d| d.next_day())
                    .map(|d| local_midnight(d, zone))
                    .into_iter()
                    .chain(release_by)
                    .min(),
                machine: None,
                site,
                product,
                customer,
                number: None,
                search,
                sort,
                lateness,
            },
            request,
        )),
        _ => Err(errors),
    }
}

/// The list's URL with the filters of `query` and the given cursor.
pub(crate) fn list_url(query: &OrdersQuery, cursor: Option<&str>) -> String {
    let mut url = String::from("/orders");
    let mut separator = '?';
    let fields = [
        ("status", &query.status),
        ("search", &query.search),
        ("customer", &query.customer),
        ("due_after", &query.due_after),
        ("due_before", &query.due_before),
        ("sort", &query.sort),
        ("show", &query.show),
        ("site", &query.site),
        ("product", &query.product),
    ];
    for (name, value) in fields {
        if let Some(value) = present(value) {
            url.push(separator);
            url.push_str(name);
            url.push('=');
            url.push_str(&encode(value));
            separator = '&';
        }
    }
    if let Some(cursor) = cursor {
        url.push(separator);
        url.push_str("cursor=");
        url.push_str(&encode(cursor));
    }
    url
}

/// `GET /api/v1/orders/export` with `filter` (its due bounds as the instants the page's dates
/// stand for in the site's time).
fn export_url(filter: &OrderFilter) -> String {
    let mut url = String::from("/api/v1/orders/export");
    let status = filter.status.map(|s| s.as_str().to_string());
    let sort = match filter.sort {
        OrderSort::Due => Some("due".to_string()),
        OrderSort::Newest => Some("newest".to_string()),
        OrderSort::Created | OrderSort::Revision => None,
    };
    let fields = [
        ("status", status),
        ("open", filter.open.map(|open| open.to_string())),
        ("search", filter.search.clone()),
        ("customer", filter.customer.clone()),
        ("due_after", filter.due_after.map(crate::rfc3339)),
        ("due_before", filter.due_before.map(crate::rfc3339)),
        ("machine", filter.machine.map(|m| m.0.to_string())),
        ("site", filter.site.map(|s| s.0.to_string())),
        ("product", filter.product.map(|p| p.0.to_string())),
        ("sort", sort),
        ("late", filter.lateness.map(|l| l.late.to_string())),
    ];
    for (name, value) in fields {
        if let Some(value) = value {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str(name);
            url.push('=');
            url.push_str(&encode(&value));
        }
    }
    url
}

/// A query for one customer's orders.
fn customer_query(customer: &str) -> OrdersQuery {
    OrdersQuery { customer: Some(customer.to_string()), ..OrdersQuery::default() }
}

/// When each order of the active plan is planned to finish.
fn plan_ends(operations: &[PlannedOperation]) -> HashMap<OrderId, Timestamp> {
    let mut ends: HashMap<OrderId, Timestamp> = HashMap::new();
    for op in operations {
        ends.entry(op.order_id).and_modify(|end| *end = (*end).max(op.end)).or_insert(op.end);
    }
    ends
}

/// Variant names, read once each.
struct Variants<'a> {
    store: &'a store::Store,
    names: HashMap<VariantId, String>,
}

impl Variants<'_> {
    fn name(&mut self, id: VariantId) -> store::Result<String> {
        if let Some(name) = self.names.get(&id) {
            return Ok(name.clone());
        }
        let name = self.store.variant(id)?.name;
        self.names.insert(id, name.clone());
        Ok(name)
    }
}

/// One row of the list.
pub(crate) struct Row {
    order: Order,
    product: String,
    /// When the order finished, once done; otherwise its ETA in the active plan.
    eta: Option<Timestamp>,
}

/// What the list shows.
pub(crate) struct Listing {
    rows: Vec<Row>,
    next_cursor: Option<String>,
    has_plan: bool,
    /// Orders the filter lets through, over all pages.
    total: u64,
    /// The API's CSV export of every order the filter lets through.
    export: String,
}

/// Reads a page of orders with their products and active-plan ETAs.
pub(crate) fn gather_list(
    store: &store::Store,
    filter: &OrderFilter,
    request: PageRequest,
) -> store::Result<Listing> {
    let page = store.orders(filter, request)?;
    let next_cursor = crate::api::orders::order_cursor(filter.sort, &page);
    let plan = store.active_plan()?;
    let ends = match &plan {
        Some(plan) => plan_ends(&store.plan_operations(plan.id, None)?),
        None => HashMap::new(),
    };
    let mut variants = Variants { store, names: HashMap::new() };
    let mut rows = Vec::with_capacity(page.items.len());
    for order in page.items {
        let product = variants.name(order.variant_id)?;
        let eta = end_of(&order, ends.get(&order.id).copied());
        rows.push(Row { order, product, eta });
    }
    let total = store.count_orders(filter)?;
    Ok(Listing { rows, next_cursor, has_plan: plan.is_some(), total, export: export_url(filter) })
}

/// `GET /orders`.
pub(crate) async fn list(
    ctx: Ctx,
    State(state): State<AppState>,
    super::PageQuery(query): super::PageQuery<OrdersQuery>,
) -> PageResult {
    let o = ctx.t.orders_page;
    let mut query = query;
    if let Some(site) = ctx.home_site() {
        query.site = Some(site.0.to_string());
    }
    let sites = state.store.sites(PageRequest { after: None, limit: 1000 }).or_page(&ctx)?.items;
    let products = state.store.products(PageRequest { after: None, limit: 1000 }).or_page(&ctx)?.items;
    let choices = Choices { sites: &sites, products: &products };
    match parse_filter(&query, &ctx.zone, ctx.now) {
        Ok((filter, request)) => {
            // A site or product that does not exist is a bad filter, not an empty list.
            let unknown = if filter.site.is_some_and(|site| state.store.site(site).is_err()) {
                Some(FilterError::Site)
            } else if filter.product.is_some_and(|product| state.store.product(product).is_err()) {
                Some(FilterError::Product)
            } else {
                None
            };
            if let Some(unknown) = unknown {
                let mut response =
                    layout(&ctx, Nav::Orders, o.title, render_list(&ctx, &query, choices, Err(&[unknown])));
                *response.status_mut() = StatusCode::BAD_REQUEST;
                return Ok(response);
            }
            let listing = gather_list(&state.store, &filter, request).or_page(&ctx)?;
            let new_order = if ctx.may(Need::Order) {
                let variants =
                    state.store.variants(None, PageRequest { after: None, limit: 1000 }).or_page(&ctx)?;
                Some(new_order_form(&ctx, &variants.items, state.planning.rush_priority))
            } else {
                None
            };
            let customers = state.store.recent_customers(500).or_page(&ctx)?;
            let body = html! {
                (render_list(&ctx, &query, choices, Ok(&listing)))
                @if let Some(form) = new_order { (form) }
                // Known customers, offered by the customer fields: typed once, then chosen.
                datalist #known-customers { @for customer in &customers { option value=(customer) {} } }
            };
            Ok(layout(&ctx, Nav::Orders, o.title, body))
        }
        Err(errors) => {
            let mut response =
                layout(&ctx, Nav::Orders, o.title, render_list(&ctx, &query, choices, Err(&errors)));
            *response.status_mut() = StatusCode::BAD_REQUEST;
            Ok(response)
        }
    }
}

/// The form that enters an order (planners), due a week from today at 18:00 site time unless
/// changed; it opens the new order's page, where it is released.
fn new_order_form(ctx: &Ctx, variants: &[model::Variant], rush_priority: u8) -> Markup {
    let t = ctx.t;
    let o = t.orders_page;
    let due = format!("{}T18:00", ctx.zone.local(ctx.now).date() + time::Duration::days(7));
    html! {
        section.panel aria-labelledby="new-order-heading" {
            h2 #new-order-heading { (o.new_order) }
            p.muted {
                (o.new_order_hint)
                @if rush_priority > 0 { (t.sentence_gap) (o.rush_hint.replace("{priority}", &rush_priority.to_string())) }
            }
            form.row-form data-action="POST /api/v1/orders" data-then="goto:/orders/{id}" data-testid="new-order"
                data-existing="/orders/{id}" data-existing-label=(o.open_existing)
                data-past-due=(model::oee::unix_ms(ctx.now)) data-confirm-past=(o.confirm_past)
                data-confirm-material=(o.confirm_material) {
                label { (o.number) input name="number" required maxlength="64" pattern=(super::CODE_PATTERN) title=(t.code_hint) placeholder="HK-2612-001"; }
                label { (t.customer) input name="customer" required maxlength="200" list="known-customers" autocomplete="off"; }
                label { (t.product_variant)
                    select name="variant_id" data-type="int" required {
                        @for variant in variants { option value=(variant.id.0) { (variant.code) " · " (variant.name) } }
                    }
                }
                label { (t.quantity) input name="quantity" type="number" min="1" step="1" required data-type="int"; }
                // Typed in the site's time, which may not be the browser's: named, so a planner at
                // another site does not take it for their own.
                label { (t.due) " " span.muted { (ctx.zone_label()) } input name="due" type="datetime-local" required value=(due) data-type="site-datetime"; }
                label title=(o.priority_hint) { (o.priority) input name="priority" type="number" min="1" max="10" step="1" value="1" required data-type="int"; }
                // Optional: when the material arrives (no step of the order starts before).
                label { (o.material_ready) input name="material_ready" type="datetime-local" data-type="site-datetime"; }
                button.primary type="submit" { (t.create) }
                // When it would be done if entered and released now, entering nothing.
                button type="button" data-quote="/api/v1/orders/quote" title=(o.quote_hint) data-testid="quote-order"
                    data-quote-on-time=(o.quote_on_time) data-quote-late=(o.quote_late) data-quote-others=(o.quote_others) { (o.quote) }
            }
            p.quote-result role="status" data-quote-result data-testid="quote-result" {}
        }
    }
}

/// The planner's form that changes an open order: the whole order goes back (`PUT`), with what
/// may not change (the variant; the quantity once released) carried along unseen.
fn change_order_form(
    ctx: &Ctx,
    order: &Order,
    operations: &[Operation],
    planned_end: Option<Timestamp>,
) -> Markup {
    let (t, o) = (ctx.t, ctx.t.orders_page);
    let local = |at: Timestamp| {
        let at = ctx.zone.local(at);
        format!("{}T{:02}:{:02}", at.date(), at.hour(), at.minute())
    };
    html! {
        details.panel data-testid="change-order" {
            summary { (o.change_order) }
            p.muted { (o.change_hint) }
            // The version shown: a change someone made since is not overwritten unseen (412).
            // Counts change the version too: the fields drawn here let the page tell a change of
            // them (refused) from units counted meanwhile (sent again on the new version).
            form.row-form data-action={ "PUT /api/v1/orders/" (order.id.0) }
                data-if-match=(crate::api::orders::OrderDetail::new(order.clone(), operations.to_vec(), planned_end, ctx.now).tag())
                data-original=(editable_fields(order))
                data-past-due=(model::oee::unix_ms(ctx.now)) data-confirm-past=(o.confirm_past)
                data-confirm-material=(o.confirm_material) {
                input type="hidden" name="variant_id" data-type="int" value=(order.variant_id.0);
                label { (o.number) input name="number" required maxlength="64" pattern=(super::CODE_PATTERN) title=(t.code_hint) value=(order.number); }
                label { (t.customer) input name="customer" required maxlength="200" value=(order.customer); }
                @if order.status == OrderStatus::Planned {
                    label { (t.quantity) input name="quantity" type="number" min="1" step="1" required data-type="int" value=(order.quantity); }
                } @else {
                    input type="hidden" name="quantity" data-type="int" value=(order.quantity);
                }
                label { (t.due) " " span.muted { (ctx.zone_label()) } input name="due" type="datetime-local" required value=(local(order.due)) data-type="site-datetime"; }
                label title=(o.priority_hint) { (o.priority) input name="priority" type="number" min="1" max="10" step="1" required data-type="int" value=(order.priority); }
                label { (o.material_ready)
                    input name="material_ready" type="datetime-local" value=[order.material_ready.map(local)] data-type="site-datetime";
                }
                button.primary type="submit" { (t.save) }
            }
        }
    }
}

fn status_badge(t: &super::Text, status: OrderStatus) -> Markup {
    html! { span.badge.{"status-" (status.as_str())} { (t.order_status(status)) } }
}

/// When `order` ends: when it finished, once it is done, otherwise `planned` (its ETA in the active
/// plan). A plan made before the last operation finished still holds it, and would show an ETA
/// that is past, or yet to come, for an order already delivered.
fn end_of(order: &Order, planned: Option<Timestamp>) -> Option<Timestamp> {
    match order.status {
        OrderStatus::Done => order.finished_at,
        OrderStatus::Cancelled => None,
        _ => planned,
    }
}

/// The ETA cell of the list: the time, marked as actual once the order is done.
fn eta_cell(ctx: &Ctx, order: &Order, eta: Option<Timestamp>) -> Markup {
    let t = ctx.t;
    match eta {
        Some(eta) if order.status == OrderStatus::Done => html! {
            (ctx.short_time(eta)) " " span.muted title=(t.orders_page.finished) { (ctx.t.lparen) (t.orders_page.actual) (ctx.t.rparen) }
        },
        Some(eta) => html! { (ctx.short_time(eta)) },
        None => html! { span.muted { (t.none) } },
    }
}

/// The fields of `order` its change form edits, and its status, as `GET /api/v1/orders/{id}`
/// gives them (JSON).
fn editable_fields(order: &Order) -> String {
    let all = serde_json::to_value(order).unwrap_or_default();
    let fields =
        ["number", "customer", "variant_id", "quantity", "due", "priority", "material_ready", "status"];
    let picked: serde_json::Map<String, serde_json::Value> =
        fields.iter().map(|key| (key.to_string(), all.get(*key).cloned().unwrap_or_default())).collect();
    serde_json::Value::Object(picked).to_string()
}

/// The lateness cell: late by how much, or on time; and how many units short, for an order done
/// with fewer good units than ordered.
fn lateness(ctx: &Ctx, order: &Order, eta: Option<Timestamp>) -> Markup {
    let short = order.delivered.filter(|d| *d < order.quantity).map(|d| order.quantity - d);
    html! {
        (timeliness(ctx, order, eta))
        @if let Some(short) = short {
            " · " span.late-text data-testid="short" { ((ctx.t.orders_page.short)(short)) }
        }
    }
}

fn timeliness(ctx: &Ctx, order: &Order, eta: Option<Timestamp>) -> Markup {
    let t = ctx.t;
    let due = order.due;
    let open = !matches!(order.status, OrderStatus::Done | OrderStatus::Cancelled);
    match eta {
        Some(eta) if eta > due => html! {
            span.late-text { "▲ " (t.orders_page.late_by) " " (ctx.duration((eta - due).whole_seconds())) }
        },
        // Open and past its due time: late whatever a plan said (one made before the due time
        // passed may still expect it on time).
        _ if open && due < ctx.now => {
            html! {
                span.late-text { "▲ " (t.orders_page.overdue_by) " " (ctx.duration((ctx.now - due).whole_seconds())) }
            }
        }
        Some(_) => html! { span.ok-text { "✓ " (t.on_time) } },
        None => html! { span.muted { (t.none) } },
    }
}

/// A filter's select of records by id, `(name, label, every)` with "every" first, shown when
/// there are at least two to choose from.
fn record_select<'a>(
    (name, label, every): (&str, &str, &str),
    chosen: &Option<String>,
    records: impl ExactSizeIterator<Item = (i64, &'a str)>,
) -> Markup {
    let chosen = present(chosen);
    html! {
        @if records.len() > 1 {
            label { (label)
                select name=(name) data-testid={ "order-" (name) } {
                    option value="" { (every) }
                    @for (id, shown) in records {
                        option value=(id) selected[chosen == Some(id.to_string().as_str())] { (shown) }
                    }
                }
            }
        }
    }
}

/// What the list's filter offers to choose from.
#[derive(Clone, Copy)]
pub(crate) struct Choices<'a> {
    pub(crate) sites: &'a [model::Site],
    pub(crate) products: &'a [model::Product],
}

/// The list's HTML; `Err` holds the filter errors to explain instead of the table.
pub(crate) fn render_list(
    ctx: &Ctx,
    query: &OrdersQuery,
    choices: Choices<'_>,
    listing: Result<&Listing, &[FilterError]>,
) -> Markup {
    let Choices { sites, products } = choices;
    let t = ctx.t;
    let o = t.orders_page;
    let selected = present(&query.status);
    let filtered = [
        &query.status,
        &query.search,
        &query.customer,
        &query.due_after,
        &query.due_before,
        &query.show,
        &query.site,
        &query.product,
    ]
    .into_iter()
    .any(|v| present(v).is_some());
    html! {
        h1 { (o.title) }
        // The form to enter an order is below the list: one step away for a keyboard.
        @if ctx.may(Need::Order) { p { a href="#new-order-heading" { (o.new_order) " ↓" } } }
        form.filters method="get" action="/orders" data-testid="order-filters" {
            label { (t.status)
                select name="status" {
                    option value="" { (o.all_statuses) }
                    option value="open" selected[selected == Some("open")] { (o.open_statuses) }
                    @for status in OrderStatus::ALL {
                        option value=(status.as_str()) selected[selected == Some(status.as_str())] { (t.order_status(status)) }
                    }
                }
            }
            label { (o.search)
                input name="search" type="search" value=(query.search.as_deref().unwrap_or(""))
                    placeholder=(o.search_hint) maxlength="200";
            }
            label { (t.customer)
                input name="customer" type="search" value=(query.customer.as_deref().unwrap_or(""))
                    placeholder=(o.customer_hint) maxlength="200" list="known-customers";
            }
            label { (o.due_from) input name="due_after" type="date" value=(query.due_after.as_deref().unwrap_or("")); }
            label { (o.due_until) input name="due_before" type="date" value=(query.due_before.as_deref().unwrap_or("")); }
            label { (o.sort)
                select name="sort" data-testid="order-sort" {
                    option value="" { (o.sort_created) }
                    option value="newest" selected[present(&query.sort) == Some("newest")] { (o.sort_newest) }
                    option value="due" selected[present(&query.sort) == Some("due")] { (o.sort_due) }
                }
            }
            label { (o.show)
                select name="show" data-testid="order-show" {
                    option value="" { (o.all_orders) }
                    option value="late" selected[present(&query.show) == Some("late")] { (o.show_late) }
                    option value="to_release" selected[present(&query.show) == Some("to_release")] { (o.show_to_release) }
                }
            }
            (record_select(("product", o.product, o.all_products), &query.product,
                products.iter().map(|p| (p.id.0, p.name.as_str()))))
            // Several sites: their orders apart (by the machines their steps may run on).
            (record_select(("site", t.site, o.all_sites), &query.site, sites.iter().map(|s| (s.id.0, s.name.as_str()))))
            button.primary type="submit" { (t.filter) }
            @if filtered { a.button href="/orders" { (o.clear) } }
        }
        @match listing {
            Err(errors) => {
                section.panel.problem role="alert" data-testid="filter-errors" {
                    p.error { (o.bad_filters) }
                    ul {
                        @for error in errors {
                            li { (filter_message(t, *error, query)) }
                        }
                    }
                }
            }
            Ok(listing) => { (order_table(ctx, query, listing)) }
        }
    }
}

/// What is wrong with a filter, quoting the value given.
fn filter_message(t: &super::Text, error: FilterError, query: &OrdersQuery) -> String {
    let o = t.orders_page;
    let given = |value: &Option<String>| present(value).unwrap_or("").to_string();
    match error {
        FilterError::Status => format!("{}: “{}” — {}", t.status, given(&query.status), o.bad_status),
        FilterError::DueAfter => format!("{}: “{}” — {}", o.due_from, given(&query.due_after), o.bad_date),
        FilterError::DueBefore => format!("{}: “{}” — {}", o.due_until, given(&query.due_before), o.bad_date),
        FilterError::Range => o.bad_range.to_string(),
        FilterError::Customer => o.bad_customer.to_string(),
        FilterError::Search => o.bad_search.to_string(),
        FilterError::Sort => o.bad_sort.to_string(),
        FilterError::Show => o.bad_show.to_string(),
        FilterError::ReleaseStatus => o.bad_release_status.to_string(),
        FilterError::Site => o.bad_site.to_string(),
        FilterError::Product => o.bad_product.to_string(),
        FilterError::Cursor => o.bad_cursor.to_string(),
    }
}

fn order_table(ctx: &Ctx, query: &OrdersQuery, listing: &Listing) -> Markup {
    let t = ctx.t;
    let o = t.orders_page;
    html! {
        section.panel #order-list data-testid="order-list" data-live data-refresh-on="production" {
            @if !listing.has_plan { p.muted { (o.no_active_plan) " " a href="/plan" { (t.nav_plan) } } }
            @if listing.total > 0 {
                p.muted data-testid="order-total" {
                    ((o.total)(listing.total)) " · " a href=(listing.export) download data-testid="export-orders" { (o.export_csv) }
                }
            }
            @if listing.rows.is_empty() {
                p.muted { (o.none_found) }
            } @else {
                table.orders {
                    thead { tr {
                        th { (t.order) } th { (t.customer) } th.product { (t.product_variant) } th.num { (t.quantity) }
                        th { (t.due) } th { (t.status) } th { (t.eta) } th { (t.lateness) }
                        th.num.carbon title=(o.carbon_pending) { (o.carbon) }
                    } }
                    tbody {
                        @for row in &listing.rows {
                            @let order = &row.order;
                            // (A done order's ETA is when it finished; the judgement takes that from the order.)
                            @let late = crate::api::orders::eta_and_lateness(order, row.eta, ctx.now).1 == Some(true);
                            tr.late[late] data-testid="order-row" data-order-id=(order.id.0) {
                                td.nw { a href={ "/orders/" (order.id.0) } { (order.number) } }
                                td { a.quiet href=(list_url(&customer_query(&order.customer), None)) { (order.customer) } }
                                td.product { (row.product) }
                                td.num { (order.quantity) }
                                td.nw { (ctx.short_time(order.due)) }
                                td { (status_badge(t, order.status)) }
                                td.nw { (eta_cell(ctx, order, row.eta)) }
                                td.nw { (lateness(ctx, order, row.eta)) }
                                td.num.muted.carbon title=(o.carbon_pending) { (t.none) }
                            }
                        }
                    }
                }
            }
            div.pager {
                @if query.cursor.as_deref().is_some_and(|c| !c.is_empty()) { a href=(list_url(query, None)) { (t.first_page) } }
                @if let Some(next) = &listing.next_cursor { a href=(list_url(query, Some(next))) rel="next" { (t.next_page) } }
            }
        }
    }
}

/// What the order page shows.
pub(crate) struct OrderView {
    order: Order,
    product: String,
    operations: Vec<Operation>,
    machines: HashMap<MachineId, String>,
    plan: Option<i64>,
    /// When the active plan was published.
    plan_published: Option<Timestamp>,
    planned: HashMap<model::OperationId, Planned>,
    history: crate::api::orders::OrderHistory,
    /// When a released order the active plan lacks is slotted in by itself: the active plan's
    /// age that the automatic re-plan waits for (`new_order_minutes`), if it re-plans.
    slot_in_after: Option<time::Duration>,
}

/// Reads one order with its operations and their places in the active plan.
pub(crate) fn gather_order(
    store: &store::Store,
    id: OrderId,
    planning: &crate::replanner::PlanningConfig,
) -> store::Result<OrderView> {
    let order = store.order(id)?;
    let operations = store.operations(id)?;
    let product = store.variant(order.variant_id)?.name;
    // A code another site uses too is shown with its site.
    let machines = super::machine_labels(
        store,
        &store.machines(&MachineFilter::default(), PageRequest { after: None, limit: 10_000 })?.items,
    );
    let (plan, plan_published, planned) = match store.active_plan()? {
        Some(plan) => (
            Some(plan.id),
            plan.published_at,
            planned_by_operation(&store.plan_operations(plan.id, None)?, id),
        ),
        None => (None, None, HashMap::new()),
    };
    let slot_in_after = (planning.auto_replan && planning.new_order_minutes > 0)
        .then(|| time::Duration::minutes(i64::from(planning.new_order_minutes)));
    let history = crate::api::orders::order_history(store, id)?;
    Ok(OrderView {
        order,
        product,
        operations,
        machines,
        plan,
        plan_published,
        planned,
        slot_in_after,
        history,
    })
}

/// `GET /orders/{id}`.
pub(crate) async fn detail(ctx: Ctx, State(state): State<AppState>, Path(id): Path<String>) -> PageResult {
    let id = id
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::not_found("no such order"))
        .or_page(&ctx)?;
    let view = gather_order(&state.store, OrderId(id), &state.planning).or_page(&ctx)?;
    let title = format!("{} {}", ctx.t.order, view.order.number);
    Ok(layout(&ctx, Nav::Orders, &title, render_order(&ctx, &view)))
}

/// The order page's HTML.
pub(crate) fn render_order(ctx: &Ctx, view: &OrderView) -> Markup {
    let t = ctx.t;
    let o = t.orders_page;
    let order = &view.order;
    let eta = end_of(order, view.planned.values().map(|p| p.end).max());
    let code = |id: &MachineId| view.machines.get(id).map_or("?", String::as_str);
    let may_plan = ctx.may(Need::Order);
    html! {
        p.crumbs { a href="/orders" { "← " (o.all_orders) } }
        div.order-head {
            h1 { (t.order) " " (order.number) " " (status_badge(t, order.status)) }
            @if may_plan {
                div.toolbar {
                    @if order.status == OrderStatus::Planned {
                        button.primary data-action={ "POST /api/v1/orders/" (order.id.0) "/release" }
                            title=(o.release_hint) data-testid="release-order" { (o.release) }
                    }
                    @if order.status.can_become(OrderStatus::Cancelled) {
                        button.danger data-action={ "POST /api/v1/orders/" (order.id.0) "/cancel" }
                            data-confirm=(o.cancel_confirm) data-testid="cancel-order" { (o.cancel_order) }
                    }
                }
            }
        }
        @if may_plan && !matches!(order.status, OrderStatus::Done | OrderStatus::Cancelled) {
            (change_order_form(ctx, order, &view.operations, view.planned.values().map(|p| p.end).max()))
        }
        // ETA and lateness move with every plan and count.
        section.panel #order-facts data-live data-refresh-on="production plan" {
            dl.pairs.wide data-testid="order-facts" {
                dt { (t.customer) } dd { (order.customer) }
                dt { (t.product_variant) } dd { (view.product) }
                dt { (t.quantity) } dd { (order.quantity) }
                // Scrap upstream does not travel on: the last step gets (or made) fewer good units.
                @let last = view.operations.iter().rev().find(|op| op.status != OrderStatus::Cancelled);
                @let output = last.map(|op| if op.status == OrderStatus::Done { op.good } else { op.quantity });
                @if let Some(output) = output.filter(|output| *output < order.quantity) {
                    dt { (o.output) } dd.late-text data-testid="short-output" { ((o.output_short)(output, order.quantity)) }
                }
                dt { (t.due) } dd { (ctx.time(order.due)) }
                dt { (o.priority) } dd title=(o.priority_hint) { (order.priority) " / 10" }
                dt { (t.status) } dd { (t.order_status(order.status)) }
                dt { (o.material_ready) }
                dd { @match order.material_ready { Some(at) => { (ctx.time(at)) } None => { (o.material_on_hand) } } }
                dt { (o.entered) } dd { (ctx.time(order.created_at)) }
                @if order.status == OrderStatus::Done {
                    dt { (o.finished) }
                    dd { @match eta { Some(at) => { (ctx.time(at)) } None => { span.muted { (t.none) } } } }
                } @else {
                    dt { (t.eta) }
                    dd {
                        @match (view.plan, eta) {
                            (None, _) => { span.muted { (o.no_active_plan) } }
                            (Some(_), None) => {
                                span.muted { (o.not_in_plan) }
                                // Released, it joins the plan by itself once the plan is old enough.
                                @if let (true, Some(after), Some(published)) =
                                    (matches!(order.status, OrderStatus::Released | OrderStatus::Running), view.slot_in_after, view.plan_published)
                                {
                                    br;
                                    span.muted data-testid="slot-in" {
                                        ((o.slot_in)(&ctx.short_time((published + after).max(ctx.now))))
                                    }
                                }
                            }
                            (Some(_), Some(eta)) => { (ctx.time(eta)) }
                        }
                    }
                }
                dt { (t.lateness) } dd { (lateness(ctx, order, eta)) }
            }
        }
        section.panel #order-operations aria-labelledby="operations-heading" data-live data-refresh-on="production plan" {
            h2 #operations-heading { (o.operations) }
            @if let Some(plan) = view.plan {
                @let (before, after) = o.in_plan.split_once("{plan}").unwrap_or((o.in_plan, ""));
                p.muted { (before) a href={ "/plan?id=" (plan) } { "#" (plan) } (after) }
            }
            table data-testid="order-operations" {
                thead { tr {
                    th.num { (o.step) } th { (o.name) } th { (t.status) } th { (t.machine) }
                    th { (o.setup_from) } th { (o.planned_start) } th { (o.planned_end) }
                    th.num { (t.quantity) } th.num { (t.good) } th.num { (t.scrap) }
                } }
                tbody {
                    @for operation in &view.operations {
                        @let planned = view.planned.get(&operation.id);
                        tr {
                            td.num { (operation.seq + 1) }
                            td { (operation.name) }
                            td { (status_badge(t, operation.status)) }
                            td {
                                @if let Some(machine) = operation.machine_id {
                                    a href={ "/machines/" (machine.0) } { (code(&machine)) } " " span.muted { (ctx.t.lparen) (o.actual) (ctx.t.rparen) }
                                } @else if let Some(planned) = planned {
                                    @for (index, machine) in planned.machines.iter().enumerate() {
                                        @if index > 0 { ", " }
                                        a href={ "/machines/" (machine.0) } { (code(machine)) }
                                    }
                                    " " span.muted { (ctx.t.lparen) (o.planned) (ctx.t.rparen) }
                                } @else {
                                    span.muted { (t.none) }
                                }
                            }
                            @match planned {
                                Some(planned) => {
                                    td { @if planned.setup_start < planned.start { (ctx.short_time(planned.setup_start)) } @else { span.muted { (t.none) } } }
                                    td {
                                        @if let Some(at) = operation.started_at {
                                            // Started since the plan was made: its real start.
                                            (ctx.short_time(at)) " " span.muted { (ctx.t.lparen) (o.actual) (ctx.t.rparen) }
                                        } @else {
                                            (ctx.short_time(planned.start))
                                        }
                                    }
                                    td {
                                        @if let Some(at) = operation.finished_at {
                                            // Done since the plan was made: its real end, not the planned one.
                                            (ctx.short_time(at)) " " span.muted { (ctx.t.lparen) (o.actual) (ctx.t.rparen) }
                                        } @else {
                                            (ctx.short_time(planned.end))
                                            @if planned.parts > 1 { " " span.muted { "(" (planned.parts) " " (o.parts) ")" } }
                                        }
                                    }
                                }
                                None => {
                                    td.muted { (t.none) }
                                    @match operation.started_at {
                                        Some(at) => { td { (ctx.short_time(at)) " " span.muted { (ctx.t.lparen) (o.actual) (ctx.t.rparen) } } }
                                        None => { td.muted { (t.none) } }
                                    }
                                    @match operation.finished_at {
                                        Some(at) => { td { (ctx.short_time(at)) " " span.muted { (ctx.t.lparen) (o.actual) (ctx.t.rparen) } } }
                                        None => { td.muted { (t.none) } }
                                    }
                                }
                            }
                            td.num { (operation.quantity) }
                            td.num { (operation.good) }
                            td.num { (operation.scrap) }
                        }
                    }
                }
            }
        }
        (history_panel(ctx, &view.history))
    }
}

/// The order's history: what people did to it, and the plans that moved its ETA, newest first.
fn history_panel(ctx: &Ctx, history: &crate::api::orders::OrderHistory) -> Markup {
    let (t, o) = (ctx.t, ctx.t.orders_page);
    let p = t.plan_page;
    // (when, who, what): events and ETA moves in one list.
    let mut rows: Vec<(Timestamp, Markup, String)> = Vec::new();
    for event in &history.events {
        let who = html! { @match &event.actor { Some(actor) => { (actor) } None => { span.muted { (o.by_platform) } } } };
        let what = match event.kind.as_str() {
            "created" => o.event_created.to_string(),
            "released" => o.event_released.to_string(),
            "cancelled" => o.event_cancelled.to_string(),
            _ => event
                .changes
                .iter()
                .map(|change| {
                    let shown = |value: &Option<String>| match value {
                        None => t.none.to_string(),
                        Some(text) if matches!(change.field.as_str(), "due" | "material_ready") => {
                            Timestamp::parse(text, &time::format_description::well_known::Rfc3339)
                                .map_or_else(|_| text.clone(), |at| ctx.short_time(at))
                        }
                        Some(text) => text.clone(),
                    };
                    let field = match change.field.as_str() {
                        "number" => o.number,
                        "customer" => t.customer,
                        "quantity" => t.quantity,
                        "due" => t.due,
                        "priority" => o.priority,
                        "material_ready" => o.material_ready,
                        other => other,
                    };
                    format!("{field}{}{} → {}", t.colon, shown(&change.before), shown(&change.after))
                })
                .collect::<Vec<_>>()
                .join("; "),
        };
        rows.push((event.at, who, what));
    }
    let mut previous: Option<Timestamp> = None;
    for eta in &history.etas {
        let who = html! { a href={ "/plan?id=" (eta.plan_id) } { (p.plan) " #" (eta.plan_id) } };
        let moved = match previous {
            None => format!("{} {}", t.eta, ctx.short_time(eta.eta)),
            Some(before) => format!("{} {} → {}", t.eta, ctx.short_time(before), ctx.short_time(eta.eta)),
        };
        let what = match &eta.trigger {
            Some(trigger) => {
                format!("{moved}{}{}{}", t.space_lparen, super::plan::trigger_why(p, trigger), t.rparen)
            }
            None => moved,
        };
        previous = Some(eta.eta);
        rows.push((eta.published_at, who, what));
    }
    // Newest first; of the same time, the later recorded first (events before the plans made
    // after them).
    let mut rows: Vec<_> = rows.into_iter().enumerate().collect();
    rows.sort_by_key(|(index, (at, _, _))| std::cmp::Reverse((*at, *index)));
    let rows: Vec<_> = rows.into_iter().map(|(_, row)| row).collect();
    html! {
        section.panel #order-history aria-labelledby="history-heading" data-live data-refresh-on="plan" data-testid="order-history" {
            h2 #history-heading { (o.history) }
            @if rows.is_empty() {
                p.muted { (o.no_history) }
            } @else {
                table {
                    thead { tr { th { (o.when) } th { (o.who) } th { (o.what) } } }
                    tbody {
                        @for (at, who, what) in rows.iter().take(HISTORY_SHOWN) {
                            tr { td.nw { (ctx.short_time(*at)) } td { (who) } td { (what) } }
                        }
                    }
                }
                @if rows.len() > HISTORY_SHOWN {
                    p.muted { ((o.history_shown)(HISTORY_SHOWN, rows.len())) }
                }
            }
        }
    }
}

/// Most history rows the order page shows (the API has all).
const HISTORY_SHOWN: usize = 50;

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    const NOW: Timestamp = datetime!(2026-11-24 09:00 UTC);

    fn query(pairs: &[(&str, &str)]) -> OrdersQuery {
        let mut q = OrdersQuery::default();
        for (name, value) in pairs {
            let value = Some(value.to_string());
            match *name {
                "status" => q.status = value,
                "customer" => q.customer = value,
                "due_after" => q.due_after = value,
                "due_before" => q.due_before = value,
                "cursor" => q.cursor = value,
                "show" => q.show = value,
                "sort" => q.sort = value,
                _ => unreachable!(),
            }
        }
        q
    }

    #[test]
    fn an_empty_query_lists_everything_from_the_start() {
        let (filter, request) =
            parse_filter(&query(&[("status", ""), ("customer", "  ")]), &model::Zone::fixed(480), NOW)
                .unwrap();
        assert_eq!(filter.status, None);
        assert_eq!(filter.customer, None);
        assert_eq!(filter.due_after, None);
        assert_eq!(filter.due_before, None);
        assert_eq!(request, PageRequest { after: None, limit: 50 });
    }

    #[test]
    fn dates_are_whole_local_days_inclusive() {
        let q = query(&[
            ("status", "released"),
            ("customer", " Kwun Tong Metal "),
            ("due_after", "2026-11-24"),
            ("due_before", "2026-11-30"),
            ("cursor", "150"),
        ]);
        let (filter, request) = parse_filter(&q, &model::Zone::fixed(480), NOW).unwrap();
        assert_eq!(filter.status, Some(OrderStatus::Released));
        assert_eq!(filter.customer.as_deref(), Some("Kwun Tong Metal"));
        // Midnight in Hong Kong is 16:00 UTC the day before.
        assert_eq!(filter.due_after, Some(datetime!(2026-11-23 16:00 UTC)));
        assert_eq!(
            filter.due_before,
            Some(datetime!(2026-11-30 16:00 UTC)),
            "the whole of the 30th is included"
        );
        assert_eq!(request.after, Some(150));
        assert_eq!(local_midnight(date!(2026 - 11 - 24), &model::Zone::UTC), datetime!(2026-11-24 00:00 UTC));
    }

    #[test]
    fn bad_values_are_named_not_guessed() {
        let q = query(&[
            ("status", "lost"),
            ("due_after", "24/11/2026"),
            ("due_before", "2026-02-30"),
            ("cursor", "abc"),
        ]);
        assert_eq!(
            parse_filter(&q, &model::Zone::UTC, NOW).unwrap_err(),
            [FilterError::Status, FilterError::DueAfter, FilterError::DueBefore, FilterError::Cursor]
        );
        let q = query(&[("due_after", "2026-12-01"), ("due_before", "2026-11-01")]);
        assert_eq!(parse_filter(&q, &model::Zone::UTC, NOW).unwrap_err(), [FilterError::Range]);
        let q = query(&[("customer", &"x".repeat(201))]);
        assert_eq!(parse_filter(&q, &model::Zone::UTC, NOW).unwrap_err(), [FilterError::Customer]);
        // Every error has words in both languages, quoting what was given.
        let q = query(&[("status", "lost"), ("due_after", "24/11/2026")]);
        assert_eq!(
            filter_message(super::super::Lang::En.text(), FilterError::DueAfter, &q),
            "Due on or after: “24/11/2026” — not a date; use the form YYYY-MM-DD."
        );
        for lang in [super::super::Lang::En, super::super::Lang::ZhHk] {
            let t = lang.text();
            for error in [FilterError::Status, FilterError::DueAfter, FilterError::Range, FilterError::Cursor]
            {
                assert!(!filter_message(t, error, &q).is_empty());
            }
        }
    }

    #[test]
    fn late_and_to_release_orders_are_judged_now() {
        let (filter, _) =
            parse_filter(&query(&[("status", "open"), ("sort", "newest")]), &model::Zone::UTC, NOW).unwrap();
        assert_eq!((filter.status, filter.open, filter.sort), (None, Some(true), OrderSort::Newest));
        assert_eq!(export_url(&filter), "/api/v1/orders/export?open=true&sort=newest");
        let q = query(&[("show", "to_release"), ("status", "open")]);
        assert_eq!(parse_filter(&q, &model::Zone::UTC, NOW).unwrap_err(), [FilterError::ReleaseStatus]);
        let (filter, _) = parse_filter(&query(&[("show", "late")]), &model::Zone::UTC, NOW).unwrap();
        assert_eq!(filter.lateness, Some(store::Lateness { late: true, now: NOW }));
        assert_eq!((filter.status, filter.due_before), (None, None));
        assert_eq!(export_url(&filter), "/api/v1/orders/export?late=true");
        // To release: planned orders due within a week (or past due), or by the date given
        // when that is sooner.
        for status in ["", "planned"] {
            let q = query(&[("show", "to_release"), ("status", status)]);
            let (filter, _) = parse_filter(&q, &model::Zone::UTC, NOW).unwrap();
            assert_eq!(filter.status, Some(OrderStatus::Planned));
            assert_eq!(filter.due_before, Some(datetime!(2026-12-01 09:00 UTC)));
            assert_eq!(filter.lateness, None);
            assert_eq!(
                export_url(&filter),
                "/api/v1/orders/export?status=planned&due_before=2026-12-01T09%3A00%3A00Z"
            );
        }
        let q = query(&[("show", "to_release"), ("due_before", "2026-11-25")]);
        assert_eq!(
            parse_filter(&q, &model::Zone::UTC, NOW).unwrap().0.due_before,
            Some(datetime!(2026-11-26 00:00 UTC))
        );
        let q = query(&[("show", "to_release"), ("due_before", "2026-12-25")]);
        assert_eq!(
            parse_filter(&q, &model::Zone::UTC, NOW).unwrap().0.due_before,
            Some(datetime!(2026-12-01 09:00 UTC))
        );
        let q = query(&[("show", "to_release"), ("status", "running")]);
        assert_eq!(parse_filter(&q, &model::Zone::UTC, NOW).unwrap_err(), [FilterError::ReleaseStatus]);
        let q = query(&[("show", "soon")]);
        assert_eq!(parse_filter(&q, &model::Zone::UTC, NOW).unwrap_err(), [FilterError::Show]);
        assert_eq!(list_url(&query(&[("show", "late")]), None), "/orders?show=late");
    }

    #[test]
    fn page_links_keep_the_filters() {
        let q =
            query(&[("status", "planned"), ("customer", "A & B Ltd"), ("due_after", ""), ("cursor", "50")]);
        assert_eq!(list_url(&q, Some("100")), "/orders?status=planned&customer=A+%26+B+Ltd&cursor=100");
        assert_eq!(list_url(&q, None), "/orders?status=planned&customer=A+%26+B+Ltd");
        assert_eq!(list_url(&OrdersQuery::default(), None), "/orders");
    }

    #[test]
    fn split_operations_are_summed_up() {
        let op = |operation: i64, order: i64, part: u32, machine: i64, from: Timestamp, to: Timestamp| {
            PlannedOperation {
                operation_id: model::OperationId(operation),
                order_id: OrderId(order),
                part,
                quantity: 10,
                machine_id: MachineId(machine),
                setup_start: from,
                start: from + time::Duration::minutes(10),
                end: to,
            }
        };
        let ops = [
            op(1, 7, 0, 1, datetime!(2026-11-24 08:00 UTC), datetime!(2026-11-24 09:00 UTC)),
            op(1, 7, 1, 2, datetime!(2026-11-24 08:30 UTC), datetime!(2026-11-24 10:00 UTC)),
            op(2, 8, 0, 1, datetime!(2026-11-24 11:00 UTC), datetime!(2026-11-24 12:00 UTC)),
        ];
        let planned = planned_by_operation(&ops, OrderId(7));
        assert_eq!(planned.len(), 1, "only the order's operations");
        let first = &planned[&model::OperationId(1)];
        assert_eq!(first.machines, [MachineId(1), MachineId(2)]);
        assert_eq!(first.setup_start, datetime!(2026-11-24 08:00 UTC));
        assert_eq!(first.end, datetime!(2026-11-24 10:00 UTC));
        assert_eq!(first.parts, 2);
        let ends = plan_ends(&ops);
        assert_eq!(ends[&OrderId(7)], datetime!(2026-11-24 10:00 UTC));
    }
}
