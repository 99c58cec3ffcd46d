//! The OpenAPI 3.1 document served at `/api/v1/openapi.json`, built once from the same Rust types
//! the handlers use (schemas derived with `schemars`), so it cannot drift from the wire format. A
//! test checks that every path listed here answers and every API route is listed.

use std::collections::HashSet;
use std::sync::OnceLock;

use axum::extract::MatchedPath;
use axum::http::request::Parts;
use axum::http::{Method, header};
use axum::response::IntoResponse;
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};

use crate::auth::Reader;
use crate::error::ApiError;

/// The document, built at its first use.
fn built() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(build)
}

/// Serves the document. Needs a token of any role, like every API route.
pub(crate) async fn document(_: Reader) -> impl IntoResponse {
    static BODY: OnceLock<Vec<u8>> = OnceLock::new();
    let body = BODY.get_or_init(|| serde_json::to_vec_pretty(built()).unwrap_or_default());
    ([(header::CONTENT_TYPE, "application/json")], body.clone())
}

/// Refuses a query string on an API operation whose document lists no query parameter (a 400
/// naming the first one), so that `GET /machine-states?machine=4` is an error rather than every
/// machine's state: an operation that takes parameters rejects unknown ones itself (`QueryParams`
/// with `deny_unknown_fields`). Called by the token check, so a caller without a valid token
/// still learns only that (401). Paths outside `/api/v1` pass.
pub(crate) fn reject_undocumented_query(parts: &Parts) -> Result<(), ApiError> {
    static TAKES_QUERY: OnceLock<HashSet<(String, String)>> = OnceLock::new();
    let Some(query) = parts.uri.query().filter(|query| !query.is_empty()) else { return Ok(()) };
    let Some(path) =
        parts.extensions.get::<MatchedPath>().and_then(|path| path.as_str().strip_prefix("/api/v1"))
    else {
        return Ok(());
    };
    let takes_query = TAKES_QUERY.get_or_init(|| {
        let doc = built();
        let mut operations = HashSet::new();
        for (path, methods) in doc["paths"].as_object().into_iter().flatten() {
            for (method, operation) in methods.as_object().into_iter().flatten() {
                let parameters = operation["parameters"].as_array().into_iter().flatten();
                if parameters.into_iter().any(|parameter| parameter["in"] == "query") {
                    operations.insert((method.clone(), path.clone()));
                }
            }
        }
        operations
    });
    let method =
        if parts.method == Method::HEAD { "get".to_owned() } else { parts.method.as_str().to_lowercase() };
    if takes_query.contains(&(method, path.to_owned())) {
        return Ok(());
    }
    let first = form_urlencoded::parse(query.as_bytes()).next().map(|(name, _)| name.into_owned());
    Err(ApiError::bad_request(
        first.unwrap_or_else(|| "query".to_owned()),
        "unknown query parameter: this operation takes none",
    ))
}

/// The roles an operation's description names (`None` for an operation that needs no token, or
/// one the document does not list). `path` is the route's pattern under `/api/v1`.
pub(crate) fn admitted_roles(method: &Method, path: &str) -> Option<&'static [model::Role]> {
    static ROLES: OnceLock<std::collections::HashMap<(String, String), Vec<model::Role>>> = OnceLock::new();
    let roles = ROLES.get_or_init(|| {
        let all = [
            model::Role::Admin,
            model::Role::Planner,
            model::Role::Operator,
            model::Role::Viewer,
            model::Role::Device,
        ];
        let mut roles = std::collections::HashMap::new();
        for (path, methods) in built()["paths"].as_object().into_iter().flatten() {
            for (method, operation) in methods.as_object().into_iter().flatten() {
                let text = operation["description"].as_str().unwrap_or_default();
                if text == Who::Anyone.text() {
                    continue;
                }
                let named: Vec<model::Role> = all
                    .into_iter()
                    .filter(|role| {
                        let name = role.as_str();
                        text == Who::Any.text()
                            || (text.contains(name) && !text.contains(&format!("not {name}")))
                    })
                    .collect();
                roles.insert((method.clone(), path.clone()), named);
            }
        }
        roles
    });
    roles.get(&(method.as_str().to_lowercase(), path.to_owned())).map(Vec::as_slice)
}

/// The records: paths read with `GET` and changed with `PUT` or `DELETE` (under `/api/v1`),
/// which get versions (see `conditional`).
pub(crate) fn is_record(path: &str) -> bool {
    static RECORDS: OnceLock<HashSet<String>> = OnceLock::new();
    RECORDS
        .get_or_init(|| {
            let mut records = HashSet::new();
            for (path, methods) in built()["paths"].as_object().into_iter().flatten() {
                let has = |method: &str| methods.get(method).is_some();
                if has("get") && (has("put") || has("delete")) {
                    records.insert(path.clone());
                }
            }
            records
        })
        .contains(path)
}

/// Who may call an operation, for the description; one per role extractor of `auth` (a test
/// calls every operation as every role and compares).
#[derive(Clone, Copy)]
enum Who {
    /// No token needed.
    Anyone,
    /// Any role, devices too (`auth::Principal`).
    Any,
    /// `auth::Reader`.
    Reader,
    /// `auth::Reporter`.
    Reporter,
    /// `auth::MachineReporter`.
    MachineReporter,
    /// `auth::Ingester`.
    Ingest,
    /// `auth::Planner`.
    Planner,
    /// `auth::Orderer`.
    Orderer,
    /// `auth::Maintainer`.
    Maintainer,
    /// `auth::Administrator`.
    Admin,
}

impl Who {
    fn text(self) -> &'static str {
        match self {
            Who::Anyone => "No token needed.",
            Who::Any => "Any role.",
            Who::Reader => "Roles: admin, planner, sales, maintenance, operator, viewer (not device).",
            Who::Reporter => "Roles: admin, planner, maintenance, operator.",
            Who::MachineReporter => {
                "Roles: admin, planner, maintenance, operator, and device for a machine of its own site."
            }
            Who::Ingest => "Roles: admin, and device for its own site.",
            Who::Planner => "Roles: admin, planner.",
            Who::Orderer => "Roles: admin, planner, sales.",
            Who::Maintainer => "Roles: admin, planner, maintenance.",
            Who::Admin => "Role: admin.",
        }
    }
}

struct Doc {
    generator: SchemaGenerator,
    paths: Map<String, Value>,
}

impl Doc {
    fn schema<T: JsonSchema>(&mut self) -> Value {
        self.generator.subschema_for::<T>().to_value()
    }

    fn op(
        &mut self,
        method: &str,
        path: &str,
        summary: &str,
        who: Who,
        body: Option<Value>,
        ok: (u16, Option<Value>),
    ) {
        self.op_with(method, path, summary, who, body, ok, Vec::new());
    }

    #[allow(clippy::too_many_arguments, reason = "a private builder call that reads like a table row")]
    fn op_with(
        &mut self,
        method: &str,
        path: &str,
        summary: &str,
        who: Who,
        body: Option<Value>,
        ok: (u16, Option<Value>),
        mut parameters: Vec<Value>,
    ) {
        let mut responses = Map::new();
        let (status, schema) = ok;
        let success = match schema {
            Some(schema) => {
                json!({"description": "Success", "content": {"application/json": {"schema": schema}}})
            }
            None => json!({"description": "Success, no content"}),
        };
        responses.insert(status.to_string(), success);
        let problem = json!({"description": "Problem details (RFC 9457)",
            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}});
        for code in ["400", "401", "403", "404", "409", "413", "415", "422", "503"] {
            responses.insert(code.into(), problem.clone());
        }
        if matches!(method, "post" | "put") {
            responses.insert("408".into(), problem.clone());
        }
        if path == "/auth/login" {
            let mut too_many = problem.clone();
            too_many["headers"] = json!({"Retry-After": {"description": "Seconds until a sign-in is taken again.",
                "schema": {"type": "integer", "minimum": 1}}});
            responses.insert("429".into(), too_many);
        }
        if path.contains("{id}") {
            parameters.insert(0, json!({"name": "id", "in": "path", "required": true, "schema": {"type": "integer", "minimum": 1}}));
        }
        let mut operation = json!({
            "operationId": operation_id(method, path),
            "tags": [path.split('/').nth(1).unwrap_or_default()],
            "summary": summary,
            "description": who.text(),
            "parameters": parameters,
            "responses": responses,
        });
        if matches!(who, Who::Anyone) {
            operation["security"] = json!([]);
        }
        if let Some(body) = body {
            operation["requestBody"] =
                json!({"required": true, "content": {"application/json": {"schema": body}}});
        }
        let entry = self.paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[method] = operation;
    }

    /// The five routes of a plain resource: list, create, get, replace, delete.
    fn resource<T: JsonSchema, N: JsonSchema>(
        &mut self,
        base: &str,
        noun: &str,
        change: Who,
        filters: &[(&str, &str, &str)],
    ) {
        let item = self.schema::<T>();
        let new = self.schema::<N>();
        let list = json!({"type": "object", "required": ["items"], "properties": {
            "items": {"type": "array", "items": item},
            "next_cursor": {"type": "string", "description": "Pass as `cursor` for the next page; absent on the last page."}}});
        let mut parameters = page_parameters();
        for (name, kind, description) in filters {
            let schema = match *kind {
                "date-time" => json!({"type": "string", "format": "date-time"}),
                other => json!({"type": other}),
            };
            parameters.push(json!({"name": name, "in": "query", "required": false, "description": description, "schema": schema}));
        }
        let one = format!("{base}/{{id}}");
        self.op_with(
            "get",
            base,
            &format!("List {noun}s, oldest first"),
            Who::Reader,
            None,
            (200, Some(list)),
            parameters,
        );
        self.op(
            "post",
            base,
            &format!("Create {} {noun}", article(noun)),
            change,
            Some(new.clone()),
            (201, Some(item.clone())),
        );
        self.op("get", &one, &format!("Get one {noun}"), Who::Reader, None, (200, Some(item.clone())));
        self.op(
            "put",
            &one,
            &format!("Replace {} {noun}", article(noun)),
            change,
            Some(new),
            (200, Some(item)),
        );
        let delete = format!("Delete {} {noun} nothing refers to", article(noun));
        self.op("delete", &one, &delete, change, None, (204, None));
    }
}

/// A name for code generators, from the method and the path: `get /orders/{id}/operations` is
/// `getOrdersByIdOperations`. Unique, as method and path are.
fn operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_string();
    for segment in path.split(['/', '-', '_']).filter(|segment| !segment.is_empty()) {
        let word = segment.trim_start_matches('{').trim_end_matches('}');
        let word = if segment.starts_with('{') { format!("by_{word}") } else { word.to_string() };
        for part in word.split('_') {
            let mut letters = part.chars();
            if let Some(first) = letters.next() {
                id.extend(first.to_uppercase());
                id.push_str(letters.as_str());
            }
        }
    }
    id
}

/// "an" before a noun that starts with a vowel, else "a".
fn article(noun: &str) -> &'static str {
    if noun.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" }
}

fn page_parameters() -> Vec<Value> {
    vec![
        json!({"name": "limit", "in": "query", "required": false, "description": "Page length, 1 to 500 (default 50).",
            "schema": {"type": "integer", "minimum": 1, "maximum": 500}}),
        json!({"name": "cursor", "in": "query", "required": false,
            "description": "The `next_cursor` of the previous page.", "schema": {"type": "string"}}),
    ]
}

/// The whole document.
pub(crate) fn build() -> Value {
    // OpenAPI 3.1 schemas are JSON Schema 2020-12 (`"type": ["string", "null"]`, not 3.0's
    // `nullable`), with the definitions under the components.
    let settings = SchemaSettings::draft2020_12().with(|settings| {
        settings.definitions_path = "/components/schemas".into();
        settings.meta_schema = None;
    });
    let mut doc = Doc { generator: settings.into_generator(), paths: Map::new() };
    doc.resource::<model::Site, model::NewSite>("/sites", "site", Who::Admin, &[]);
    let calendar = doc.schema::<model::Calendar>();
    doc.op(
        "get",
        "/sites/{id}/calendar",
        "Get a site's shift calendar",
        Who::Reader,
        None,
        (200, Some(calendar.clone())),
    );
    doc.op(
        "put",
        "/sites/{id}/calendar",
        "Replace a site's shift calendar",
        Who::Admin,
        Some(calendar.clone()),
        (200, Some(calendar)),
    );
    doc.resource::<model::Line, model::NewLine>(
        "/lines",
        "line",
        Who::Admin,
        &[("site", "integer", "Only lines of this site.")],
    );
    doc.resource::<model::Machine, model::NewMachine>(
        "/machines",
        "machine",
        Who::Admin,
        &[
            ("site", "integer", "Only machines of this site."),
            ("line", "integer", "Only machines of this line."),
            (
                "retired",
                "boolean",
                "Only retired machines (true) or only those in service (false); all when absent.",
            ),
        ],
    );
    if let Some(delete) = doc.paths.get_mut("/machines/{id}").and_then(|p| p.get_mut("delete")) {
        delete["summary"] = json!(
            "Delete a machine nothing refers to; one with a history (states, counts, readings, alarms) only with with_history=true, and that history with it"
        );
        let flag = json!({"name": "with_history", "in": "query", "required": false, "schema": {"type": "boolean"},
            "description": "Delete the machine's states, counts, readings, alarms and alarm rules too (409 without it when it has any)."});
        match delete["parameters"].as_array_mut() {
            Some(parameters) => parameters.push(flag),
            None => delete["parameters"] = json!([flag]),
        }
    }
    doc.resource::<model::Material, model::NewMaterial>("/materials", "material", Who::Planner, &[]);
    doc.resource::<model::Product, model::NewProduct>("/products", "product", Who::Planner, &[]);
    doc.resource::<model::Variant, model::NewVariant>(
        "/variants",
        "variant",
        Who::Planner,
        &[
            ("product", "integer", "Only variants of this product."),
            (
                "code",
                "string",
                "Only the variant of this code (exact): how an integration finds the id of a code it knows.",
            ),
        ],
    );
    doc.resource::<model::Routing, model::NewRouting>("/routings", "routing", Who::Planner, &[]);
    doc.resource::<model::Order, model::NewOrder>(
        "/orders",
        "order",
        Who::Orderer,
        &[
            ("status", "string", "Only orders in this status: planned, released, running, done, cancelled."),
            ("due_before", "date-time", "Only orders due before this RFC 3339 time."),
            ("due_after", "date-time", "Only orders due at or after this RFC 3339 time."),
            ("machine", "integer", "Only orders with an operation that may run on this machine."),
            ("site", "integer", "Only orders with an operation that may run on a machine of this site."),
            ("product", "integer", "Only orders of a variant of this product."),
            ("customer", "string", "Only orders of this customer (exact match)."),
            ("number", "string", "Only the order of this number (exact match): how an integration finds an order it knows by number."),
            ("search", "string", "Only orders whose number or customer contains this text (1 to 200 characters; ASCII letters in any case)."),
            ("open", "boolean", "`true`: only open orders (planned, released, running); `false`: only the others (done, cancelled)."),
            ("sort", "string", "`created` (default: as entered), `newest` (the last entered first) or `due` (earliest due first, then as entered). The cursor works with either, but a list by due time meets an order again, or not at all, when its due time changes while the pages are read: for a complete list read by `created` or `changed_after`."),
            ("late", "boolean", "`true`: only late orders, as the orders page marks them: done after the due time; open (not done or cancelled) and past the due time, or finished by the active plan after it. `false`: only the others."),
            ("changed_after", "integer", "Only orders changed after this revision (an order's `revision`), least recently changed first: an integration keeps the highest revision it has seen and asks for what changed since (0: every order). An order that changes again while the pages are read comes again later, never not at all. Not with `sort`. Deleted orders: `GET /orders/deleted`."),
        ],
    );
    let order = doc.schema::<model::Order>();
    let operations = doc.schema::<Vec<model::Operation>>();
    if let Some(get) = doc.paths.get_mut("/orders/{id}").and_then(|p| p.get_mut("get")) {
        get["summary"] = json!("Get one order with its operations");
        get["responses"]["200"]["content"]["application/json"]["schema"] = json!({"allOf": [order.clone(), {"type": "object", "properties": {
                "operations": operations,
                "eta": {"type": "string", "format": "date-time", "description": "An open order's end in the active plan; absent outside it, and once done or cancelled."},
                "late": {"type": "boolean", "description": "As the orders page and `late=` judge it: a done order by when it finished; an open one once overdue or by its ETA. Absent for a cancelled order and an open one neither overdue nor in the active plan."}}}]});
    }
    doc.op(
        "post",
        "/orders/{id}/release",
        "Release a planned order to the shop floor",
        Who::Orderer,
        None,
        (200, Some(order.clone())),
    );
    doc.op(
        "post",
        "/orders/{id}/cancel",
        "Cancel an order and its unfinished operations",
        Who::Orderer,
        None,
        (200, Some(order)),
    );
    doc.op(
        "get",
        "/orders/export",
        "Every order the filters match, as CSV: the import's columns, then status, created_at, finished_at, \
         delivered, the active plan's eta and late, id and revision (at most 100,000 orders; 409 beyond)",
        Who::Reader,
        None,
        (200, None),
    );
    let list = doc.paths["/orders"]["get"]["parameters"].clone();
    if let Some(export) = doc.paths.get_mut("/orders/export").and_then(|p| p.get_mut("get")) {
        let filters: Vec<Value> = list
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| !matches!(p["name"].as_str(), Some("limit" | "cursor")))
            .cloned()
            .collect();
        export["parameters"] = json!(filters);
        export["responses"]["200"] = json!({"description": "The orders as CSV", "content": {"text/csv": {"schema": {"type": "string"}}}});
    }
    let deleted = json!({"type": "object", "required": ["items"], "properties": {
        "items": {"type": "array", "items": {"type": "object", "required": ["id", "number", "revision"], "properties": {
            "id": {"type": "integer"}, "number": {"type": "string"},
            "revision": {"type": "integer", "description": "The revision the deletion took, in the sequence of `Order.revision`."}}}},
        "next_cursor": {"type": "string", "description": "Pass as `cursor` for the next page; absent on the last page."}}});
    let mut deleted_params = page_parameters();
    deleted_params.push(json!({"name": "changed_after", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 0},
        "description": "Only orders deleted after this revision (default 0: every order deleted)."}));
    doc.op_with(
        "get",
        "/orders/deleted",
        "Orders deleted after a revision, in the order of their revisions",
        Who::Reader,
        None,
        (200, Some(deleted)),
        deleted_params,
    );
    {
        let history = doc.schema::<crate::api::orders::OrderHistory>();
        doc.op(
            "get",
            "/orders/{id}/history",
            "What was done to an order (entered, changed with each field's old and new value, released, cancelled: by whom and when) and each published plan that moved its ETA",
            Who::Reader,
            None,
            (200, Some(history)),
        );
    }
    {
        let request = doc.schema::<crate::api::orders::QuoteRequest>();
        let quote = doc.schema::<crate::api::orders::Quote>();
        doc.op(
            "post",
            "/orders/quote",
            "Quote a delivery: when an order would be done if it were entered and released now, by the plan the platform would make for it (slotted into the active plan as the automatic re-plan does, or a plan of all released work when none is active); nothing is stored or published",
            Who::Orderer,
            Some(request),
            (200, Some(quote)),
        );
    }
    doc.op("post", "/orders/import", "Import orders from CSV, all or nothing", Who::Orderer, None,
        (201, Some(json!({"type": "object", "properties": {"imported": {"type": "integer"}, "orders": {"type": "array", "items": {"type": "integer"}},
            "skipped": {"type": "array", "items": {"type": "object", "properties": {"number": {"type": "string"}, "id": {"type": "integer"}}}}}}))));
    if let Some(import) = doc.paths.get_mut("/orders/import").and_then(|p| p.get_mut("post")) {
        import["requestBody"] = json!({"required": true, "content": {"text/csv": {"schema": {"type": "string"}}},
            "description": "Header row, then one order per row: number, customer, variant (code), quantity, due (RFC 3339), optional priority (1-10) and material_ready (RFC 3339). The columns an export adds after these are read past, as are empty columns without a name."});
        let created = import["responses"]["201"].clone();
        import["responses"]["200"] = json!({"description": "With existing=skip: nothing was new, nothing imported",
            "content": created["content"].clone()});
        import["parameters"] = json!([{"name": "existing", "in": "query", "required": false,
            "schema": {"type": "string", "enum": ["refuse", "skip"]},
            "description": "What to do with a row whose order number is in use: `refuse` the file (default), or `skip` the row, leave that order as it is and import the rest (the answer lists them under `skipped`; 200 when nothing was new)."}]);
    }

    {
        use crate::api::telemetry_schemas as t;
        let metrics = doc.schema::<t::MetricList>();
        let series = doc.schema::<t::Series>();
        let spans = doc.schema::<Vec<t::Span>>();
        let current = doc.schema::<Vec<t::CurrentState>>();
        let one_state = doc.schema::<t::CurrentState>();
        let report = doc.schema::<t::StateReport>();
        let production = doc.schema::<t::ProductionReport>();
        let production_out = doc.schema::<t::ProductionOut>();
        let oee = doc.schema::<t::OeeReport>();
        let q = |name: &str, kind: &str, required: bool, description: &str| {
            let schema = match kind {
                "date-time" => json!({"type": "string", "format": "date-time"}),
                other => json!({"type": other}),
            };
            json!({"name": name, "in": "query", "required": required, "description": description, "schema": schema})
        };
        let period = || {
            vec![
                q("from", "date-time", false, "Start, RFC 3339 (default: `to` minus the default span)."),
                q("to", "date-time", false, "End, RFC 3339 (default: now)."),
            ]
        };
        doc.op(
            "get",
            "/machines/{id}/metrics",
            "Metric names a machine has reported",
            Who::Reader,
            None,
            (200, Some(metrics)),
        );
        let mut series_params = vec![q("metric", "string", true, "The metric name.")];
        series_params.extend(period());
        series_params.push(q("step", "integer", false, "Seconds per aggregated point (min, max, avg, last, count); absent for raw readings. Steps start at the site's local midnight on the first day of the range (step=86400: its days). Whole minutes read the 1-minute roll-ups."));
        series_params.push(q(
            "limit",
            "integer",
            false,
            "Most points returned, 1 to 100000 (default 10000).",
        ));
        let bounded = |parameter: &mut Value, least: i64, most: Option<i64>| {
            parameter["schema"]["minimum"] = json!(least);
            if let Some(most) = most {
                parameter["schema"]["maximum"] = json!(most);
            }
        };
        for parameter in &mut series_params {
            match parameter["name"].as_str() {
                Some("step") => bounded(parameter, 1, Some(i64::from(u32::MAX))),
                Some("limit") => bounded(parameter, 1, Some(100_000)),
                _ => {}
            }
        }
        doc.op_with(
            "get",
            "/machines/{id}/series",
            "A metric's readings, raw or aggregated (default: the last hour)",
            Who::Reader,
            None,
            (200, Some(series)),
            series_params,
        );
        doc.op_with(
            "get",
            "/machines/{id}/states",
            "The machine's state timeline (default: the last 24 hours)",
            Who::Reader,
            None,
            (200, Some(spans)),
            period(),
        );
        doc.op(
            "post",
            "/machines/{id}/states",
            "Report that the machine entered a state (operators, or the site's devices)",
            Who::MachineReporter,
            Some(report),
            (201, Some(one_state)),
        );
        doc.op(
            "post",
            "/machines/{id}/production",
            "Report finished units (operators, or the site's devices)",
            Who::MachineReporter,
            Some(production),
            (201, Some(production_out)),
        );
        doc.op(
            "get",
            "/machine-states",
            "Every machine's current state",
            Who::Reader,
            None,
            (200, Some(current)),
        );
        let state_rule = doc.schema::<model::StateRule>();
        doc.op(
            "get",
            "/machines/{id}/state-rule",
            "The rule deriving the machine's state from a metric",
            Who::Reader,
            None,
            (200, Some(state_rule.clone())),
        );
        doc.op(
            "put",
            "/machines/{id}/state-rule",
            "Derive the machine's state from a metric (for machines that report no states)",
            Who::Admin,
            Some(state_rule.clone()),
            (200, Some(state_rule)),
        );
        doc.op(
            "delete",
            "/machines/{id}/state-rule",
            "Stop deriving the machine's state",
            Who::Admin,
            None,
            (204, None),
        );
        let count_rule = doc.schema::<model::CountRule>();
        doc.op(
            "get",
            "/machines/{id}/count-rule",
            "The rule counting the machine's units from counter metrics",
            Who::Reader,
            None,
            (200, Some(count_rule.clone())),
        );
        doc.op(
            "put",
            "/machines/{id}/count-rule",
            "Count the machine's units from counter metrics (for machines that report no unit counts)",
            Who::Admin,
            Some(count_rule.clone()),
            (200, Some(count_rule)),
        );
        doc.op(
            "delete",
            "/machines/{id}/count-rule",
            "Stop counting the machine's units from counters",
            Who::Admin,
            None,
            (204, None),
        );
        let ingest_report = doc.schema::<t::IngestReport>();
        let telemetry = json!({"type": "array", "maxItems": 10000, "items": {"type": "object", "required": ["site", "machine", "metrics"],
            "properties": {
                "site": {"type": "string", "description": "Site code."},
                "machine": {"type": "string", "description": "Machine code."},
                "ts": {"description": "RFC 3339 time or Unix epoch milliseconds; the time received when absent."},
                "metrics": {"type": "object", "additionalProperties": {"type": ["number", "boolean"]}}}}});
        doc.op(
            "post", "/telemetry",
            "Store telemetry over HTTP (admins, or devices for their own site); answers once the readings are durable",
            Who::Ingest,
            Some(telemetry),
            (200, Some(ingest_report)),
        );
        let mut oee_params = vec![
            q("machine", "integer", false, "One machine."),
            q("line", "integer", false, "Every machine of a line."),
            q("site", "integer", false, "Every machine of a site (default: every machine)."),
        ];
        for parameter in &mut oee_params {
            let text = format!(
                "{} Give at most one of machine, line and site.",
                parameter["description"].as_str().unwrap_or_default()
            );
            parameter["description"] = json!(text);
        }
        oee_params.extend(period());
        oee_params.push(q(
            "shift",
            "string",
            false,
            "`current`: the shift in progress by the site's calendar, up to now (between shifts, the last one that ended); `previous`: the one before it. Not with from and to. The machines must be of one site (give site, line or machine when there are several); the answer names the shift. A calendar without shifts works whole days: its shift is the site's day. 409 when the calendar has no shift in the week before.",
        ));
        doc.op_with("get", "/oee", "ISO 22400 OEE, availability, effectiveness, quality and downtime Pareto (default: the last 24 hours)", Who::Reader, None, (200, Some(oee)), oee_params);
    }

    {
        let rule = doc.schema::<model::alarm::AlarmRule>();
        let rules = doc.schema::<Vec<model::alarm::AlarmRule>>();
        let new_rule = doc.schema::<model::alarm::NewAlarmRule>();
        let alarm = doc.schema::<model::alarm::Alarm>();
        let alarms = json!({"type": "object", "required": ["items"], "properties": {
            "items": {"type": "array", "items": alarm.clone()},
            "next_cursor": {"type": "string", "description": "Pass as `cursor` for the next (older) page."}}});
        doc.op("get", "/alarm-rules", "List alarm rules", Who::Reader, None, (200, Some(rules)));
        doc.op(
            "post",
            "/alarm-rules",
            "Create an alarm rule",
            Who::Maintainer,
            Some(new_rule.clone()),
            (201, Some(rule.clone())),
        );
        doc.op("get", "/alarm-rules/{id}", "Get an alarm rule", Who::Reader, None, (200, Some(rule.clone())));
        doc.op(
            "put",
            "/alarm-rules/{id}",
            "Replace an alarm rule",
            Who::Maintainer,
            Some(new_rule),
            (200, Some(rule)),
        );
        doc.op(
            "delete",
            "/alarm-rules/{id}",
            "Delete an alarm rule (its alarms stay in the history)",
            Who::Maintainer,
            None,
            (204, None),
        );
        let mut parameters = page_parameters();
        for (name, kind, description) in [
            ("status", "string", "Only alarms in this status: active, acknowledged, cleared."),
            (
                "open",
                "boolean",
                "true: only open alarms (not cleared, or cleared before anyone acknowledged them); false: only the others.",
            ),
            ("machine", "integer", "Only alarms of this machine."),
            ("site", "integer", "Only alarms of this site's machines."),
            ("severity", "string", "Only alarms of this severity: info, warning, critical."),
            (
                "from",
                "string",
                "Only alarms up at some time from this RFC 3339 time on: not cleared before it.",
            ),
            (
                "to",
                "string",
                "Only alarms up at some time before this RFC 3339 time: first raised before it (an alarm that came back counts as up from its first occurrence).",
            ),
            (
                "sort",
                "string",
                "`created` (default): newest first by when each was first raised, so one that came back keeps its place; `latest`: by the latest occurrence (`raised_at`) first, so one that came back moves up.",
            ),
        ] {
            parameters.push(json!({"name": name, "in": "query", "required": false, "description": description, "schema": {"type": kind}}));
        }
        doc.op_with(
            "get",
            "/alarms",
            "List alarms, newest first: by when each was first raised (default), or with sort=latest by its latest occurrence",
            Who::Reader,
            None,
            (200, Some(alarms)),
            parameters,
        );
        let note = doc.schema::<crate::api::alarms::Acknowledge>();
        doc.op(
            "post", "/alarms/{id}/acknowledge",
            "Acknowledge an alarm that is active, or that cleared before anyone acknowledged it (operators and up), optionally with a note of what was found and done",
            Who::Reporter,
            Some(note),
            (200, Some(alarm)),
        );
        // The note is optional: no body at all acknowledges without one.
        if let Some(op) = doc.paths.get_mut("/alarms/{id}/acknowledge").and_then(|p| p.get_mut("post")) {
            op["requestBody"]["required"] = json!(false);
        }
        let request = doc.schema::<crate::api::alarms::AcknowledgeCleared>();
        let acknowledged = doc.schema::<crate::api::alarms::Acknowledged>();
        doc.op(
            "post", "/alarms/acknowledge-cleared",
            "Acknowledge every alarm that cleared before anyone acknowledged it, of one machine or all (operators and up)",
            Who::Reporter,
            Some(request),
            (200, Some(acknowledged)),
        );
        doc.op("get", "/stream", "Server-sent events: machine_state, production, alarm and plan (a plan became active) changes as they happen. Each has an id; reconnecting with it in Last-Event-ID first sends the events missed (of the last 4,096), or a `lagged` event (data: how many were lost, or `unknown` after a server restart)", Who::Reader, None,
            (200, Some(json!({"type": "string", "description": "text/event-stream; each event's data is a JSON object with a `type` field"}))));
        if let Some(stream) = doc.paths.get_mut("/stream").and_then(|p| p.get_mut("get")) {
            stream["responses"]["200"] = json!({"description": "The event stream",
                "content": {"text/event-stream": {"schema": {"type": "string"}}}});
        }
    }

    {
        use crate::api::plan_schemas as p;
        let request = doc.schema::<p::PlanRequest>();
        let detail = doc.schema::<p::PlanDetail>();
        let summary = doc.schema::<model::PlanSummary>();
        let gantt = doc.schema::<Vec<p::GanttLane>>();
        let dispatch = doc.schema::<p::Dispatch>();
        let list = json!({"type": "object", "required": ["items"], "properties": {
            "items": {"type": "array", "items": summary.clone()}, "next_cursor": {"type": "string"}}});
        doc.op_with(
            "get",
            "/plans",
            "List plans, newest first",
            Who::Reader,
            None,
            (200, Some(list)),
            page_parameters(),
        );
        doc.op(
            "post",
            "/plans",
            "Plan the open operations of released orders (finite capacity, shift calendars, setups)",
            Who::Planner,
            Some(request),
            (201, Some(detail.clone())),
        );
        // Every field is optional, and no body at all is the defaults.
        doc.paths["/plans"]["post"]["requestBody"]["required"] = json!(false);
        doc.op(
            "get",
            "/plans/{id}",
            "A plan with order ETAs and its diff against the plan active when it was computed",
            Who::Reader,
            None,
            (200, Some(detail)),
        );
        doc.op(
            "post",
            "/plans/{id}/publish",
            "Make a draft plan the active one (409 when it is stale)",
            Who::Planner,
            None,
            (200, Some(summary)),
        );
        doc.op(
            "get",
            "/plans/{id}/gantt",
            "The plan per machine: operations with order, times and lateness",
            Who::Reader,
            None,
            (200, Some(gantt)),
        );
        doc.op(
            "get",
            "/machines/{id}/dispatch",
            "The active plan's queue for this machine",
            Who::Reader,
            None,
            (200, Some(dispatch)),
        );
        doc.op(
            "get", "/plans/{id}/problem",
            "The solver problem of a plan (the scheduler's JSON format; `microfactory schedule solve --format json` solves it)",
            Who::Reader,
            None,
            (200, Some(json!({"type": "object"}))),
        );
        let window = doc.schema::<model::MaintenanceWindow>();
        let windows = doc.schema::<Vec<model::MaintenanceWindow>>();
        let new_window = doc.schema::<model::NewMaintenanceWindow>();
        doc.op(
            "get",
            "/machines/{id}/maintenance",
            "The machine's planned maintenance windows",
            Who::Reader,
            None,
            (200, Some(windows.clone())),
        );
        doc.op(
            "post",
            "/machines/{id}/maintenance",
            "Plan a maintenance window (the planner schedules no work in it)",
            Who::Maintainer,
            Some(new_window),
            (201, Some(window)),
        );
        doc.op_with(
            "get",
            "/maintenance",
            "Every machine's maintenance windows not over yet, earliest first: the maintenance schedule",
            Who::Reader,
            None,
            (200, Some(windows)),
            vec![json!({"name": "machine", "in": "query", "required": false, "description": "Only this machine's windows.", "schema": {"type": "integer"}})],
        );
        doc.op(
            "delete",
            "/maintenance/{id}",
            "Remove a maintenance window that is not over (one that is over is history: 409)",
            Who::Maintainer,
            None,
            (204, None),
        );
        let operation = doc.schema::<model::Operation>();
        let start = doc.schema::<crate::api::order_schemas::StartRequest>();
        let finish = doc.schema::<crate::api::order_schemas::FinishRequest>();
        doc.op(
            "post",
            "/operations/{id}/start",
            "Start an operation on a machine (operators and up)",
            Who::Reporter,
            Some(start),
            (200, Some(operation.clone())),
        );
        doc.op(
            "post",
            "/operations/{id}/finish",
            "Finish a running operation with good and scrap counts (operators and up)",
            Who::Reporter,
            Some(finish.clone()),
            (200, Some(operation.clone())),
        );
        doc.op(
            "post",
            "/operations/{id}/pause",
            "Stop a running operation for now with the good and scrap units made since its last count; \
             it waits to be started again for the rest, which the next plan schedules (operators and up)",
            Who::Reporter,
            Some(finish),
            (200, Some(operation)),
        );
    }

    let login = doc.schema::<crate::api::access_schemas::Login>();
    let new_token = doc.schema::<crate::api::access_schemas::NewTokenResponse>();
    let user = doc.schema::<model::User>();
    let users = doc.schema::<Vec<model::User>>();
    let new_user = doc.schema::<crate::api::access_schemas::NewUser>();
    let user_change = doc.schema::<crate::api::access_schemas::UserChange>();
    let tokens = doc.schema::<Vec<crate::api::access_schemas::TokenInfo>>();
    let token_request = doc.schema::<crate::api::access_schemas::TokenRequest>();
    doc.op(
        "post",
        "/auth/login",
        "Log in with user name and password; returns a new API token",
        Who::Anyone,
        Some(login),
        (201, Some(new_token.clone())),
    );
    doc.op("get", "/me", "The calling user", Who::Any, None, (200, Some(user.clone())));
    let password_change = doc.schema::<crate::api::access_schemas::PasswordChange>();
    doc.op(
        "post",
        "/me/password",
        "Change your own password (the current one is needed; not for device accounts)",
        Who::Reader,
        Some(password_change),
        (204, None),
    );
    doc.op("get", "/users", "List users", Who::Admin, None, (200, Some(users)));
    doc.op("post", "/users", "Create a user", Who::Admin, Some(new_user), (201, Some(user.clone())));
    doc.op(
        "patch",
        "/users/{id}",
        "Change a user's role or password",
        Who::Admin,
        Some(user_change),
        (200, Some(user)),
    );
    doc.op("delete", "/users/{id}", "Delete a user and their tokens", Who::Admin, None, (204, None));
    doc.op("get", "/tokens", "List your tokens (admins: everyone's)", Who::Any, None, (200, Some(tokens)));
    doc.op(
        "post",
        "/tokens",
        "Create an API token; the secret is shown only in this response",
        Who::Reader,
        Some(token_request),
        (201, Some(new_token)),
    );
    doc.op("delete", "/tokens/{id}", "Revoke a token (admins: anyone's)", Who::Any, None, (204, None));
    doc.op(
        "get",
        "/openapi.json",
        "This document",
        Who::Reader,
        None,
        (200, Some(json!({"type": "object"}))),
    );

    // Records (see `conditional`): tagged when read, and changed only as last read when asked.
    let problem = json!({"description": "Problem details (RFC 9457)",
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}});
    for methods in doc.paths.values_mut() {
        let has = |method: &str| methods.get(method).is_some();
        if !(has("get") && (has("put") || has("delete"))) {
            continue;
        }
        let get = &mut methods["get"];
        for (status, response) in get["responses"].as_object_mut().into_iter().flatten() {
            if status.starts_with('2') {
                response["headers"] = json!({"ETag": {"description":
                    "The record's version: send it as If-Match with a change, or as If-None-Match to read it again only if changed.",
                    "schema": {"type": "string"}}});
            }
        }
        get["responses"]["304"] =
            json!({"description": "Not modified: If-None-Match named the current ETag"});
        if let Some(parameters) = get["parameters"].as_array_mut() {
            parameters.push(json!({"name": "If-None-Match", "in": "header", "required": false, "schema": {"type": "string"}}));
        }
        for method in ["put", "delete"] {
            let Some(operation) = methods.get_mut(method) else { continue };
            if let Some(parameters) = operation["parameters"].as_array_mut() {
                parameters.push(json!({"name": "If-Match", "in": "header", "required": false,
                    "description": "The ETag of the version read: the change is refused (412) if the record has changed since.",
                    "schema": {"type": "string"}}));
            }
            operation["responses"]["412"] = problem.clone();
            if method == "put" {
                for (status, response) in operation["responses"].as_object_mut().into_iter().flatten() {
                    if status.starts_with('2') {
                        response["headers"] = json!({"ETag": {"description":
                            "With If-Match: the version the change made, for the next change.",
                            "schema": {"type": "string"}}});
                    }
                }
            }
        }
    }
    let mut schemas = doc.generator.take_definitions(true);
    schemas.insert("Problem".into(), json!({
        "type": "object",
        "description": "RFC 9457 problem details.",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string", "description": "urn:microfactory:problem:<kind>"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "instance": {"type": "string", "description": "The request path."},
            "field": {"type": "string", "description": "The first offending field, when there is one."},
            "errors": {"type": "array", "items": {"type": "object", "properties": {
                "field": {"type": "string"}, "message": {"type": "string"}}}},
            "request_id": {"type": "integer", "description": "Also in the x-request-id header and the server log."},
            "existing_id": {"type": "integer", "description": "With a 409 for a number in use: the id of the record that has it."}
        }
    }));
    let mut paths = Value::Object(std::mem::take(&mut doc.paths));
    let mut schemas = Value::Object(schemas.into_iter().collect());
    plain_descriptions(&mut paths);
    plain_descriptions(&mut schemas);
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "microfactory API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Every operation needs 'Authorization: Bearer <token>' unless it says otherwise. \
                Lists are paginated with limit and cursor. Errors are RFC 9457 problem details naming the field."
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}, {"session": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": crate::auth::SESSION_COOKIE,
                    "description": "The dashboard's sign-in. A request that changes something must also send the X-Microfactory-Csrf header (any value); without it the answer is 403."}
            },
            "schemas": schemas
        }
    })
}

/// Descriptions drawn from the code's documentation name fields as its links do
/// (`` See [`Order::number`] ``): a reader of the API sees the field's name (`` `number` ``).
fn plain_descriptions(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                match item {
                    Value::String(text) if key == "description" && text.contains("[`") => {
                        *text = plain_links(text);
                    }
                    _ => plain_descriptions(item),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(plain_descriptions),
        _ => {}
    }
}

/// `` [`Type::field`] `` as `` `field` `` (and `` [`Type`] `` as `` `Type` ``).
fn plain_links(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("[`") {
        let Some(end) = rest[start..].find("`]") else { break };
        let inner = &rest[start + 2..start + end];
        out.push_str(&rest[..start]);
        out.push('`');
        out.push_str(inner.rsplit("::").next().unwrap_or(inner));
        out.push('`');
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    out
}
