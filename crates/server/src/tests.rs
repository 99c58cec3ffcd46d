//! API tests through the real router, on a real (in-memory) SQLite store seeded with the demo
//! factory, with time from a manual clock.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use expect_test::expect;
use model::{ManualClock, Role};
use serde_json::{Value, json};
use store::Store;
use time::macros::datetime;
use tower::ServiceExt as _;

use crate::auth::{shown_prefix, token_digest};
use crate::{AppState, ServerConfig};

const ADMIN: &str = "admin-token-for-tests-0123";

struct Harness {
    app: Router,
    store: Store,
    state: AppState,
}

struct Reply {
    status: StatusCode,
    json: Value,
    text: String,
}

/// An in-memory store with the demo factory, the admin token and one user per other role.
fn seeded_store(now: model::Timestamp) -> Store {
    let store = Store::open_in_memory().unwrap();
    crate::bootstrap(&store, Some(ADMIN), now, false).unwrap().unwrap();
    crate::demo::seed(&store, now).unwrap();
    for role in [Role::Planner, Role::Sales, Role::Maintenance, Role::Operator, Role::Viewer] {
        let user = store.create_user(role.as_str(), role, None, "$argon2id$unused", now).unwrap();
        let token = token_for(role);
        store.create_token(user.id, "test", &token_digest(&token), &shown_prefix(&token), now).unwrap();
    }
    store
}

/// The demo factory with the admin token, one user per role, and a manual clock at `NOW`.
fn harness() -> Harness {
    harness_with(crate::AlarmConfig::default())
}

/// The clock of every harness.
const NOW: model::Timestamp = datetime!(2026-11-24 09:00 +08:00);

fn harness_with(alarms: crate::AlarmConfig) -> Harness {
    let store = seeded_store(NOW);
    let state =
        AppState::new(store.clone(), Arc::new(ManualClock::new(NOW)), ServerConfig::default(), alarms);
    Harness { app: crate::router(state.clone()), store, state }
}

impl Harness {
    /// Hands an MQTT message to the pipeline as the broker would (from a trusted publisher, QoS 1).
    /// The returned receiver ends when the broker may acknowledge it: once it is stored.
    async fn publish(&self, topic: &str, payload: Vec<u8>) -> tokio::sync::oneshot::Receiver<()> {
        let (receipt, released) = mqtt::Receipt::new();
        let incoming = crate::pipeline::Incoming {
            topic: topic.to_string(),
            payload,
            publisher: crate::pipeline::Publisher::AnySite,
            receipt: Some(receipt.guarded()),
        };
        self.state.ingest(incoming).await;
        released
    }

    /// The first released order (as the API shows it) and its first operation.
    async fn first_released_operation(&self) -> (Value, Value) {
        let released = self.get("/api/v1/orders?status=released&limit=1").await.json;
        let order = released["items"][0].clone();
        let detail = self.get(&format!("/api/v1/orders/{}", order["id"])).await.json;
        (order, detail["operations"][0].clone())
    }

    /// A second site, `sz` (Shenzhen).
    fn second_site(&self) -> model::SiteId {
        let site = model::NewSite {
            code: "sz".into(),
            name: "Shenzhen".into(),
            utc_offset: Some("+08:00".into()),
            time_zone: None,
        };
        self.store.create_site(&site).unwrap().id
    }

    /// A device account `name` bound to `site`, and its API token.
    fn device_token(&self, name: &str, site: model::SiteId) -> String {
        self.bound_token(name, Role::Device, site)
    }

    /// An account `name` of `role` bound to `site`, and its API token.
    fn bound_token(&self, name: &str, role: Role, site: model::SiteId) -> String {
        let user = self.store.create_user(name, role, Some(site), "$argon2id$unused", NOW).unwrap();
        let token = format!("{name}-bound-token-0123456789");
        self.store
            .create_token(user.id, "gateway", &token_digest(&token), &shown_prefix(&token), NOW)
            .unwrap();
        token
    }
}

fn token_for(role: Role) -> String {
    match role {
        Role::Admin => ADMIN.to_string(),
        other => format!("{}-token-for-tests-0123", other.as_str()),
    }
}

impl Harness {
    async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, Vec<u8>)>,
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = match body {
            Some((content_type, bytes)) => {
                request.header("content-type", content_type).body(Body::from(bytes))
            }
            None => request.body(Body::empty()),
        }
        .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Reply { status, json: serde_json::from_str(&text).unwrap_or(Value::Null), text }
    }

    async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, Some(ADMIN), None).await
    }

    async fn post_json(&self, path: &str, token: &str, body: &Value) -> Reply {
        self.send_json("POST", path, token, body).await
    }

    async fn send_json(&self, method: &str, path: &str, token: &str, body: &Value) -> Reply {
        self.send(method, path, Some(token), Some(("application/json", body.to_string().into_bytes()))).await
    }

    fn order_count(&self) -> usize {
        let filter = store::OrderFilter::default();
        self.store.orders(&filter, store::PageRequest { after: None, limit: 10_000 }).unwrap().items.len()
    }
}

fn valid_order() -> Value {
    json!({"number": "SO-T-1", "customer": "Test Ltd", "variant_id": 1, "quantity": 10,
           "due": "2026-12-01T18:00:00+08:00", "priority": 2})
}

#[tokio::test]
async fn health_needs_no_token_but_the_api_does() {
    let h = harness();
    assert_eq!(h.send("GET", "/healthz", None, None).await.status, StatusCode::OK);
    let reply = h.send("GET", "/api/v1/machines", None, None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.json["type"], "urn:microfactory:problem:unauthorized");
    assert_eq!(
        h.send("GET", "/api/v1/machines", Some("mf_not-a-token"), None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(h.send("GET", "/metrics", None, None).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn every_documented_operation_exists_and_needs_a_token() {
    let h = harness();
    let doc = h.get("/api/v1/openapi.json").await.json;
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 20, "{}", paths.len());
    let mut names = std::collections::HashSet::new();
    for (path, operations) in paths {
        for (method, operation) in operations.as_object().unwrap() {
            // Code generators name their methods after these.
            let name = operation["operationId"].as_str().unwrap();
            assert!(names.insert(name.to_string()), "{name} twice");
            let url = format!("/api/v1{}", path.replace("{id}", "1"));
            let reply = h.send(&method.to_uppercase(), &url, None, None).await;
            let public = operation.get("security").is_some_and(|s| s.as_array().is_some_and(Vec::is_empty));
            if public {
                assert_ne!(reply.status, StatusCode::NOT_FOUND, "{method} {url}");
            } else {
                assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{method} {url} answered without a token");
            }
        }
    }
}

#[tokio::test]
async fn the_seeded_machines_are_listed() {
    let h = harness();
    let reply = h.get("/api/v1/machines?limit=500").await;
    assert_eq!(reply.status, StatusCode::OK);
    let codes: Vec<&str> =
        reply.json["items"].as_array().unwrap().iter().map(|m| m["code"].as_str().unwrap()).collect();
    assert_eq!(codes.len(), 11);
    assert!(codes.contains(&"cnc-01") && codes.contains(&"qc-01"), "{codes:?}");
    assert!(reply.json.get("next_cursor").is_none());
}

#[tokio::test]
async fn roles_are_enforced() {
    let h = harness();
    let before = h.order_count();
    for role in [Role::Viewer, Role::Operator] {
        let reply = h.post_json("/api/v1/orders", &token_for(role), &valid_order()).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{role:?}: {}", reply.text);
    }
    assert_eq!(h.order_count(), before);
    let planner = token_for(Role::Planner);
    assert_eq!(h.post_json("/api/v1/orders", &planner, &valid_order()).await.status, StatusCode::CREATED);
    let site = json!({"code": "sz", "name": "Shenzhen plant", "utc_offset": "+08:00"});
    assert_eq!(h.post_json("/api/v1/sites", &planner, &site).await.status, StatusCode::FORBIDDEN);
    assert_eq!(h.post_json("/api/v1/sites", ADMIN, &site).await.status, StatusCode::CREATED);
    assert_eq!(h.send("GET", "/api/v1/users", Some(&planner), None).await.status, StatusCode::FORBIDDEN);
    assert_eq!(
        h.send("GET", "/api/v1/orders", Some(&token_for(Role::Viewer)), None).await.status,
        StatusCode::OK
    );
    // Maintenance plans maintenance windows and edits alarm rules, and reports as operators do;
    // orders and plans are not theirs.
    let maintenance = token_for(Role::Maintenance);
    let window =
        json!({"start": "2026-11-25T08:00:00+08:00", "end": "2026-11-25T10:00:00+08:00", "reason": "oil"});
    for role in [Role::Viewer, Role::Operator] {
        let reply = h.post_json("/api/v1/machines/1/maintenance", &token_for(role), &window).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{role:?}");
    }
    let planned = h.post_json("/api/v1/machines/1/maintenance", &maintenance, &window).await;
    assert_eq!(planned.status, StatusCode::CREATED, "{}", planned.text);
    let rule = json!({"name": "bearing", "metric": "bearing_temp_c", "condition": {"kind": "above", "threshold": 80.0},
                      "severity": "warning"});
    let created = h.post_json("/api/v1/alarm-rules", &maintenance, &rule).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(
        h.post_json("/api/v1/alarm-rules", &token_for(Role::Operator), &rule).await.status,
        StatusCode::FORBIDDEN
    );
    let down = json!({"state": "down", "reason": "breakdown"});
    assert_eq!(
        h.post_json("/api/v1/machines/2/states", &maintenance, &down).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        h.post_json("/api/v1/orders", &maintenance, &valid_order()).await.status,
        StatusCode::FORBIDDEN
    );
    let plan = json!({"time_limit_seconds": 0});
    assert_eq!(h.post_json("/api/v1/plans", &maintenance, &plan).await.status, StatusCode::FORBIDDEN);
    let id = planned.json["id"].as_i64().unwrap();
    let removed = h.send("DELETE", &format!("/api/v1/maintenance/{id}"), Some(&maintenance), None).await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.text);
    // The sales desk enters, changes, quotes, releases and cancels orders, and reads the rest;
    // plans, the catalogue, production, alarms and maintenance are not theirs.
    let sales = token_for(Role::Sales);
    let mut order = valid_order();
    order["number"] = json!("SO-SALES-1");
    let entered = h.post_json("/api/v1/orders", &sales, &order).await;
    assert_eq!(entered.status, StatusCode::CREATED, "{}", entered.text);
    let id = entered.json["id"].as_i64().unwrap();
    order["priority"] = json!(3);
    let body = Some(("application/json", order.to_string().into_bytes()));
    assert_eq!(
        h.send("PUT", &format!("/api/v1/orders/{id}"), Some(&sales), body).await.status,
        StatusCode::OK
    );
    let quote = json!({"variant_id": 2, "quantity": 5, "due": "2026-12-11T18:00:00+08:00"});
    assert_eq!(h.post_json("/api/v1/orders/quote", &sales, &quote).await.status, StatusCode::OK);
    for action in ["release", "cancel"] {
        let reply = h.send("POST", &format!("/api/v1/orders/{id}/{action}"), Some(&sales), None).await;
        assert_eq!(reply.status, StatusCode::OK, "{action}: {}", reply.text);
    }
    assert_eq!(h.send("GET", "/api/v1/orders/export", Some(&sales), None).await.status, StatusCode::OK);
    let routing = json!({"code": "r", "name": "r", "steps": []});
    for (method, path, body) in [
        ("POST", "/api/v1/plans", json!({"time_limit_seconds": 0})),
        ("POST", "/api/v1/routings", routing),
        ("POST", "/api/v1/machines/1/maintenance", window),
        ("POST", "/api/v1/alarm-rules", rule),
        ("POST", "/api/v1/machines/2/states", down),
        ("POST", "/api/v1/operations/1/start", json!({"machine_id": 1})),
        ("POST", "/api/v1/alarms/acknowledge-cleared", json!({})),
    ] {
        let reply = h
            .send(method, path, Some(&sales), Some(("application/json", body.to_string().into_bytes())))
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{method} {path}: {}", reply.text);
    }
    assert_eq!(h.send("GET", "/api/v1/users", Some(&sales), None).await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn invalid_orders_name_the_field_and_change_nothing() {
    let h = harness();
    let before = h.order_count();
    let with = |key: &str, value: Value| {
        let mut order = valid_order();
        order[key] = value;
        order
    };
    let cases = [
        (with("quantity", json!(-5)), StatusCode::BAD_REQUEST, "quantity"),
        (with("quantity", json!(0)), StatusCode::UNPROCESSABLE_ENTITY, "quantity"),
        (with("quantity", json!("ten")), StatusCode::BAD_REQUEST, "quantity"),
        (with("variant_id", json!(9999)), StatusCode::UNPROCESSABLE_ENTITY, "variant_id"),
        (with("due", json!("next tuesday")), StatusCode::BAD_REQUEST, "due"),
        (with("due", json!("2026-13-01T18:00:00Z")), StatusCode::BAD_REQUEST, "due"),
        (with("priority", json!(99)), StatusCode::UNPROCESSABLE_ENTITY, "priority"),
        (with("customer", json!(["a"])), StatusCode::BAD_REQUEST, "customer"),
        (with("colour", json!("red")), StatusCode::BAD_REQUEST, "colour"),
        (json!({"customer": "x"}), StatusCode::BAD_REQUEST, "number"),
        (
            with("material_ready", json!("9999-12-31T23:59:59Z")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "material_ready",
        ),
        // Within the quantity's own limit, but years of work for one step.
        (with("quantity", json!(1_000_000)), StatusCode::UNPROCESSABLE_ENTITY, "quantity"),
    ];
    for (body, status, field) in cases {
        let reply = h.post_json("/api/v1/orders", ADMIN, &body).await;
        assert_eq!(reply.status, status, "{body}: {}", reply.text);
        assert_eq!(reply.json["field"], field, "{body}: {}", reply.text);
        assert_eq!(reply.json["status"], status.as_u16());
    }
    // A record is an object, not an array of its fields in order.
    let positional = json!(["SO-ARR", "Test Ltd", 1, 5, "2026-12-20T10:00:00Z", 1, null]);
    let reply = h.post_json("/api/v1/orders", ADMIN, &positional).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    assert!(reply.json["detail"].as_str().unwrap().contains("invalid type: sequence"), "{}", reply.text);
    // An unknown field of 100 KB does not come back many times over.
    let long = with(&"x".repeat(100_000), json!(1));
    let reply = h.post_json("/api/v1/orders", ADMIN, &long).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.text.len() < 2_000, "{} bytes", reply.text.len());
    let broken = h
        .send("POST", "/api/v1/orders", Some(ADMIN), Some(("application/json", b"{\"number\":".to_vec())))
        .await;
    assert_eq!(broken.status, StatusCode::BAD_REQUEST);
    // Messages speak to the sender, not of the parser: a date without its time, a syntax error.
    for due in ["2026-12-10", "2026-12-10T18:00:00"] {
        let reply = h.post_json("/api/v1/orders", ADMIN, &with("due", json!(due))).await;
        assert_eq!(
            reply.json["detail"],
            "due: must be an RFC 3339 time with its UTC offset, e.g. 2026-12-01T18:00:00+08:00",
            "{due}: {}",
            reply.text
        );
    }
    let trailing = h
        .send(
            "POST",
            "/api/v1/orders",
            Some(ADMIN),
            Some(("application/json", b"{\"number\": \"x\",}".to_vec())),
        )
        .await;
    assert_eq!(
        (trailing.status, &trailing.json["field"]),
        (StatusCode::BAD_REQUEST, &json!("body")),
        "{}",
        trailing.text
    );
    // No body at all is an error, not the defaults (only requests whose fields are all optional,
    // such as a plan's, take none); a calendar's holiday is a date, not a time.
    let empty = h.send("POST", "/api/v1/orders", Some(ADMIN), Some(("application/json", Vec::new()))).await;
    assert_eq!(
        (empty.status, &empty.json["detail"]),
        (StatusCode::BAD_REQUEST, &json!("body: is empty; send a JSON object")),
        "{}",
        empty.text
    );
    let acknowledge = h
        .send(
            "POST",
            "/api/v1/alarms/acknowledge-cleared",
            Some(ADMIN),
            Some(("application/json", Vec::new())),
        )
        .await;
    assert_eq!(acknowledge.status, StatusCode::BAD_REQUEST, "{}", acknowledge.text);
    let calendar = json!({"shifts": [], "holidays": ["2026-12-1"]});
    let reply = h
        .send(
            "PUT",
            "/api/v1/sites/1/calendar",
            Some(ADMIN),
            Some(("application/json", calendar.to_string().into_bytes())),
        )
        .await;
    assert_eq!(reply.json["detail"], "holidays[0]: must be a date, e.g. 2026-12-25", "{}", reply.text);
    let huge = vec![b' '; 10 * 1024 * 1024];
    let reply = h.send("POST", "/api/v1/orders", Some(ADMIN), Some(("application/json", huge))).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", reply.text);
    let reply = h.send("POST", "/api/v1/orders", Some(ADMIN), Some(("text/plain", b"{}".to_vec()))).await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(h.order_count(), before);
}

#[tokio::test]
async fn open_work_beyond_any_date_is_a_conflict_for_the_planner_not_a_crash() {
    let h = harness();
    // An order stored before its material date was checked: material in the year 9999.
    let variant = model::VariantId(valid_order()["variant_id"].as_i64().unwrap());
    let far = model::NewOrder {
        number: "SO-FAR".into(),
        customer: "Far Future Ltd".into(),
        variant_id: variant,
        quantity: 5,
        due: NOW + time::Duration::days(7),
        priority: 5,
        material_ready: Some(datetime!(9999-12-31 23:59 UTC)),
    };
    let order = h.store.create_order(&far, NOW).unwrap();
    h.store.set_order_status(order.id, model::OrderStatus::Released).unwrap();
    let reply = h.post_json("/api/v1/plans", ADMIN, &json!({"time_limit_seconds": 0})).await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.text);
    assert!(reply.json["detail"].as_str().unwrap().contains("years ahead"), "{}", reply.text);
    // The automatic repair meets the same error instead of a panic.
    let options =
        crate::planning::Options { repair: Some(time::Duration::minutes(60)), ..Default::default() };
    let repair = crate::planning::plan(
        &h.store,
        NOW,
        crate::planning::DEFAULT_OBJECTIVE,
        std::time::Duration::ZERO,
        &options,
    );
    assert!(matches!(repair, Err(crate::planning::PlanError::TooFar(_))));
    // Cancelled, the order no longer stands in the way.
    h.store.set_order_status(order.id, model::OrderStatus::Cancelled).unwrap();
    let reply = h.post_json("/api/v1/plans", ADMIN, &json!({"time_limit_seconds": 0})).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
}

#[tokio::test]
async fn a_rule_disabled_or_deleted_leaves_no_alarm_holding() {
    let h = harness();
    let planner = token_for(Role::Planner);
    let body = json!({"name": "Coolant hot", "metric": "coolant_c", "condition": {"kind": "above", "threshold": 40.0},
                      "severity": "warning"});
    for delete in [false, true] {
        let rule = h.post_json("/api/v1/alarm-rules", &planner, &body).await.json;
        let id = rule["id"].as_i64().unwrap();
        let alarm = h.store.raise_alarm(id, model::MachineId(1), NOW, Some(41.0), "Coolant hot").unwrap();
        let path = format!("/api/v1/alarm-rules/{id}");
        let status = if delete {
            h.send("DELETE", &path, Some(&planner), None).await.status
        } else {
            let mut disabled = body.clone();
            disabled["enabled"] = json!(false);
            h.send("PUT", &path, Some(&planner), Some(("application/json", disabled.to_string().into())))
                .await
                .status
        };
        assert!(status.is_success(), "delete {delete}: {status}");
        let stored = h.get("/api/v1/alarms?machine=1&limit=100").await.json;
        let stored =
            stored["items"].as_array().unwrap().iter().find(|a| a["id"] == alarm.id).unwrap().clone();
        assert_eq!(stored["status"], "cleared", "delete {delete}: {stored}");
        // Nobody acknowledged it: still open for people.
        let open = h.get("/api/v1/alarms?open=true&limit=100").await.json;
        assert!(open["items"].as_array().unwrap().iter().any(|a| a["id"] == alarm.id));
    }
}

#[tokio::test]
async fn a_line_with_machines_stays_at_their_site() {
    let h = harness();
    let sz = h.second_site();
    let line = h.get("/api/v1/lines?limit=1").await.json["items"][0].clone();
    let moved = json!({"site_id": sz.0, "code": line["code"], "name": line["name"]});
    let path = format!("/api/v1/lines/{}", line["id"]);
    let reply = h.send("PUT", &path, Some(ADMIN), Some(("application/json", moved.to_string().into()))).await;
    assert_eq!(
        (reply.status, &reply.json["field"]),
        (StatusCode::CONFLICT, &json!("site_id")),
        "{}",
        reply.text
    );
    assert_eq!(h.get(&path).await.json["site_id"], line["site_id"]);
}

#[tokio::test]
async fn user_names_differ_by_more_than_case_and_passwords_by_more_than_spaces() {
    let h = harness();
    let twin = json!({"username": "ADMIN", "role": "viewer", "password": "a-long-enough-password"});
    let reply = h.post_json("/api/v1/users", ADMIN, &twin).await;
    assert_eq!(
        (reply.status, &reply.json["field"]),
        (StatusCode::CONFLICT, &json!("username")),
        "{}",
        reply.text
    );
    for blank in [" ".repeat(12), "\u{200B}".repeat(12), format!("ab{}", " ".repeat(12))] {
        let body = json!({"username": "sam", "role": "viewer", "password": blank});
        let reply = h.post_json("/api/v1/users", ADMIN, &body).await;
        assert_eq!(
            (reply.status, &reply.json["field"]),
            (StatusCode::UNPROCESSABLE_ENTITY, &json!("password")),
            "{}",
            reply.text
        );
    }
}

#[tokio::test]
async fn users_change_their_own_password_with_the_current_one() {
    let h = harness();
    let body = json!({"username": "mei", "role": "operator", "password": "first-password-of-mei"});
    assert_eq!(h.post_json("/api/v1/users", ADMIN, &body).await.status, StatusCode::CREATED);
    let login = |password: &str| json!({"username": "mei", "password": password});
    let signed = h.post_json("/api/v1/auth/login", "", &login("first-password-of-mei")).await;
    let token = signed.json["token"].as_str().unwrap().to_string();
    // Another sign-in (on another computer), and a token made to last from it (for a script).
    let elsewhere =
        h.post_json("/api/v1/auth/login", "", &login("first-password-of-mei")).await.json["token"]
            .as_str()
            .unwrap()
            .to_string();
    let script = h.post_json("/api/v1/tokens", &elsewhere, &json!({"name": "script"})).await.json["token"]
        .as_str()
        .unwrap()
        .to_string();
    let h = &h;
    let me = |token: String| async move { h.send("GET", "/api/v1/me", Some(&token), None).await.status };
    let change = |current: &str, new: &str| json!({"current_password": current, "new_password": new});
    let wrong = h
        .post_json("/api/v1/me/password", &token, &change("a-guess-at-it-here", "second-password-of-mei"))
        .await;
    assert_eq!(
        (wrong.status, &wrong.json["field"]),
        (StatusCode::UNPROCESSABLE_ENTITY, &json!("current_password"))
    );
    let short = h.post_json("/api/v1/me/password", &token, &change("first-password-of-mei", "short")).await;
    assert_eq!(
        (short.status, &short.json["field"]),
        (StatusCode::UNPROCESSABLE_ENTITY, &json!("new_password"))
    );
    let done = h
        .post_json("/api/v1/me/password", &token, &change("first-password-of-mei", "second-password-of-mei"))
        .await;
    assert_eq!(done.status, StatusCode::NO_CONTENT, "{}", done.text);
    // The other sign-in ends; this one and the lasting token stay.
    assert_eq!(me(elsewhere).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(token.clone()).await, StatusCode::OK);
    assert_eq!(me(script.clone()).await, StatusCode::OK);
    let old = h.post_json("/api/v1/auth/login", "", &login("first-password-of-mei")).await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
    let new = h.post_json("/api/v1/auth/login", "", &login("second-password-of-mei")).await;
    assert_eq!(new.status, StatusCode::CREATED, "{}", new.text);
    // A password bought a sign-in that ends by itself, as a browser session does.
    let tokens = h.get("/api/v1/tokens").await.json;
    let logins: Vec<&Value> = tokens.as_array().unwrap().iter().filter(|t| t["name"] == "login").collect();
    assert!(logins.iter().all(|t| t["expires_at"].is_string()), "{logins:?}");
    // A password an admin sets for a forgotten one ends every sign-in of the user, and may keep
    // the lasting tokens.
    let mei = new.json["user"]["id"].as_i64().unwrap();
    let path = format!("/api/v1/users/{mei}");
    let forgotten = json!({"password": "third-password-of-mei", "keep_tokens": true});
    let reply = h.send_json("PATCH", &path, ADMIN, &forgotten).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(me(token).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(new.json["token"].as_str().unwrap().to_string()).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(script.clone()).await, StatusCode::OK);
    let alone = h.send_json("PATCH", &path, ADMIN, &json!({"keep_tokens": true})).await;
    assert_eq!(
        (alone.status, &alone.json["field"]),
        (StatusCode::UNPROCESSABLE_ENTITY, &json!("keep_tokens"))
    );
    // By default (the account was taken) the tokens a taker could have made end too.
    let taken = json!({"password": "fourth-password-of-mei"});
    assert_eq!(h.send_json("PATCH", &path, ADMIN, &taken).await.status, StatusCode::OK);
    assert_eq!(me(script).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn problem_details_have_the_documented_shape() {
    let h = harness();
    let mut order = valid_order();
    order["quantity"] = json!(0);
    order["number"] = json!("bad number");
    let reply = h.post_json("/api/v1/orders", ADMIN, &order).await;
    let mut body = reply.json.clone();
    body["request_id"] = json!(0);
    expect![[r#"
        {
          "detail": "number: may contain only ASCII letters, digits, '-', '_' and '.'; quantity: must be from 1 to 1000000",
          "errors": [
            {
              "field": "number",
              "message": "may contain only ASCII letters, digits, '-', '_' and '.'"
            },
            {
              "field": "quantity",
              "message": "must be from 1 to 1000000"
            }
          ],
          "field": "number",
          "instance": "/api/v1/orders",
          "request_id": 0,
          "status": 422,
          "title": "Invalid input",
          "type": "urn:microfactory:problem:validation"
        }"#]]
    .assert_eq(&serde_json::to_string_pretty(&body).unwrap());
}

#[tokio::test]
async fn the_dashboard_s_calls_from_a_chinese_page_are_refused_in_chinese() {
    let h = harness();
    let send = |body: Value, dashboard: bool| {
        let app = h.app.clone();
        async move {
            let mut request = Request::builder()
                .method("POST")
                .uri("/api/v1/orders")
                .header("authorization", format!("Bearer {ADMIN}"))
                .header("content-type", "application/json")
                .header("cookie", "mf_lang=zh-HK");
            if dashboard {
                request = request.header(crate::auth::CSRF_HEADER, "1");
            }
            let response = app.oneshot(request.body(Body::from(body.to_string())).unwrap()).await.unwrap();
            let (status, language) = (response.status(), response.headers().get("content-language").cloned());
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
            (status, language, serde_json::from_slice::<Value>(&bytes).unwrap())
        }
    };
    let mut order = valid_order();
    order["quantity"] = json!(2_000_000);
    let (status, language, problem) = send(order.clone(), true).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(language.as_ref().map(|l| l.to_str().unwrap()), Some("zh-HK"));
    assert_eq!(problem["detail"], "數量：須為 1 至 1000000", "{problem}");
    // The field stays a field name, for the page to find its input.
    assert_eq!(
        (&problem["errors"][0]["field"], &problem["errors"][0]["message"]),
        (&json!("quantity"), &json!("須為 1 至 1000000"))
    );
    // An API client is answered in English whatever its cookies.
    let (_, language, problem) = send(order, false).await;
    assert_eq!((language, &problem["detail"]), (None, &json!("quantity: must be from 1 to 1000000")));
    // A conflict naming its field says it with the field's label.
    assert_eq!(send(valid_order(), true).await.0, StatusCode::CREATED);
    let (status, _, problem) = send(valid_order(), true).await;
    assert_eq!(
        (status, &problem["detail"]),
        (StatusCode::CONFLICT, &json!("訂單編號：已被使用")),
        "{problem}"
    );
    // The rule for codes, in the words the form's hint uses.
    let mut order = valid_order();
    order["number"] = json!("訂單-001");
    let (_, _, problem) = send(order, true).await;
    assert_eq!(
        problem["detail"], "訂單編號：只可包含英文字母、數字及「-」「_」「.」（例如 HK-2612-001）",
        "{problem}"
    );
}

#[tokio::test]
async fn duplicate_numbers_conflict() {
    let h = harness();
    assert_eq!(h.post_json("/api/v1/orders", ADMIN, &valid_order()).await.status, StatusCode::CREATED);
    let reply = h.post_json("/api/v1/orders", ADMIN, &valid_order()).await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(reply.json["field"], "number");
}

#[tokio::test]
async fn order_detail_has_operations_and_the_life_cycle_is_enforced() {
    let h = harness();
    let created = h.post_json("/api/v1/orders", ADMIN, &valid_order()).await.json;
    let id = created["id"].as_i64().unwrap();
    let detail = h.get(&format!("/api/v1/orders/{id}")).await.json;
    assert_eq!(detail["number"], "SO-T-1");
    assert_eq!(detail["operations"].as_array().unwrap().len(), 4);
    let released = h.send("POST", &format!("/api/v1/orders/{id}/release"), Some(ADMIN), None).await;
    assert_eq!(released.json["status"], "released");
    let again = h.send("POST", &format!("/api/v1/orders/{id}/release"), Some(ADMIN), None).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    let delete = h.send("DELETE", &format!("/api/v1/orders/{id}"), Some(ADMIN), None).await;
    assert_eq!(delete.status, StatusCode::CONFLICT);
    assert_eq!(h.get("/api/v1/orders/abc").await.status, StatusCode::BAD_REQUEST);
    assert_eq!(h.get("/api/v1/orders/99999").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn lists_paginate_and_reject_bad_parameters() {
    let h = harness();
    let mut numbers = Vec::new();
    let mut path = "/api/v1/orders?limit=7".to_string();
    loop {
        let page = h.get(&path).await.json;
        numbers.extend(
            page["items"].as_array().unwrap().iter().map(|o| o["number"].as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/orders?limit=7&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(numbers.len(), crate::demo::DEMO_ORDERS);
    let released = h.get("/api/v1/orders?status=released&limit=500").await.json;
    assert!(released["items"].as_array().unwrap().iter().all(|o| o["status"] == "released"));
    let due = h.get("/api/v1/orders?due_before=2026-11-27T00:00:00%2B08:00&limit=500").await.json;
    for order in due["items"].as_array().unwrap() {
        assert!(order["due"].as_str().unwrap() < "2026-11-26T16:00:01Z", "{order}");
    }
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=abc", "limit"),
        ("cursor=xyz", "cursor"),
        ("status=lost", "status"),
        ("due_before=tomorrow", "due_before"),
        ("stauts=done", "stauts"),
    ] {
        let reply = h.get(&format!("/api/v1/orders?{query}")).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}: {}", reply.text);
        assert_eq!(reply.json["field"], field, "{query}: {}", reply.text);
    }
    // Operations without parameters refuse them too, rather than answer as if unfiltered.
    for path in ["/api/v1/machine-states?machine=4", "/api/v1/me?x", "/api/v1/machines/1?fields=code"] {
        let reply = h.get(path).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path}: {}", reply.text);
        let name = path.split_once('?').unwrap().1.split('=').next().unwrap();
        assert_eq!(reply.json["field"], name, "{path}: {}", reply.text);
    }
    let reply = h.send("POST", "/api/v1/orders/1/release?force=true", Some(ADMIN), None).await;
    assert_eq!(
        (reply.status, reply.json["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("force")),
        "{}",
        reply.text
    );
    // Without a token, only that.
    let reply = h.send("GET", "/api/v1/machine-states?machine=4", None, None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    // An empty query string is no parameter.
    assert_eq!(h.get("/api/v1/machine-states?").await.status, StatusCode::OK);
}

#[tokio::test]
async fn login_issues_tokens_that_can_be_revoked() {
    let h = harness();
    let password = "correct horse battery staple";
    let user = json!({"username": "mei", "role": "operator", "password": password});
    assert_eq!(h.post_json("/api/v1/users", ADMIN, &user).await.status, StatusCode::CREATED);
    let short = json!({"username": "kit", "role": "viewer", "password": "short"});
    assert_eq!(h.post_json("/api/v1/users", ADMIN, &short).await.json["field"], "password");
    let login = |password: &str| json!({"username": "mei", "password": password});
    let wrong = h
        .send(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(("application/json", login("nope").to_string().into_bytes())),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let ok = h
        .send(
            "POST",
            "/api/v1/auth/login",
            None,
            Some(("application/json", login(password).to_string().into_bytes())),
        )
        .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.text);
    let token = ok.json["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("mf_") && token.len() == 67);
    let me = h.send("GET", "/api/v1/me", Some(&token), None).await.json;
    assert_eq!(me["role"], "operator");
    let id = ok.json["id"].as_i64().unwrap();
    assert_eq!(
        h.send("DELETE", &format!("/api/v1/tokens/{id}"), Some(&token), None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(h.send("GET", "/api/v1/me", Some(&token), None).await.status, StatusCode::UNAUTHORIZED);
    let listed = h.get("/api/v1/tokens").await.text;
    assert!(!listed.contains(&token), "a listing must never show a secret");
}

#[tokio::test]
async fn csv_import_is_all_or_nothing_and_reports_lines() {
    let h = harness();
    let before = h.order_count();
    let bad = "number,customer,variant,quantity,due\n\
               CSV-1,Acme,phone-stand-black,10,2026-12-01T18:00:00+08:00\n\
               CSV-2,Acme,no-such-variant,10,2026-12-01T18:00:00+08:00\n\
               CSV-3,Acme,phone-stand-black,-4,2026-12-01\n";
    let reply = h
        .send("POST", "/api/v1/orders/import", Some(ADMIN), Some(("text/csv", bad.as_bytes().to_vec())))
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", reply.text);
    let fields: Vec<&str> =
        reply.json["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["line 3.variant", "line 4.quantity", "line 4.due"]);
    assert_eq!(h.order_count(), before);
    // The same file as Windows writes it names the same lines.
    let windows = bad.replace('\n', "\r\n");
    let reply =
        h.send("POST", "/api/v1/orders/import", Some(ADMIN), Some(("text/csv", windows.into_bytes()))).await;
    let fields: Vec<&str> =
        reply.json["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["line 3.variant", "line 4.quantity", "line 4.due"]);
    // What spreadsheets write when not asked for CSV UTF-8 gets a message that says so.
    let semicolons =
        b"number;customer;variant;quantity;due\nX;Acme;phone-stand-black;1;2026-12-01T18:00:00Z\n";
    let latin1 =
        b"number,customer,variant,quantity,due\nX,Caf\xe9 Ltd,phone-stand-black,1,2026-12-01T18:00:00Z\n";
    let short = b"number,customer,variant,quantity,due\nX,Acme,phone-stand-black,1\n";
    let unclosed = b"number,customer,variant,quantity,due\nX,\"Acme,phone-stand-black,1,2026-12-01T18:00:00Z\nY,Acme,phone-stand-black,1,2026-12-01T18:00:00Z\n";
    for (file, words) in [
        (&semicolons[..], "separated by commas"),
        (&latin1[..], "not UTF-8"),
        (&short[..], "has 4 fields where the header has 5"),
        (&unclosed[..], "line 2.row\",\"message\":\"a quote (\\\") opened on this line is never closed"),
    ] {
        let reply =
            h.send("POST", "/api/v1/orders/import", Some(ADMIN), Some(("text/csv", file.to_vec()))).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", reply.text);
        assert!(reply.text.contains(words), "{words}: {}", reply.text);
    }
    // An empty file is no import at all (400), as an empty body is everywhere.
    for empty in ["", " \r\n", "\u{feff}\r\n"] {
        let reply =
            h.send("POST", "/api/v1/orders/import", Some(ADMIN), Some(("text/csv", empty.into()))).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
        assert!(reply.text.contains("the CSV file is empty"), "{}", reply.text);
    }
    // A filter naming something that does not exist is wrong (not "none"), on every list.
    for path in [
        "/api/v1/orders?machine=99999",
        "/api/v1/alarms?machine=99999",
        "/api/v1/machines?site=99999",
        "/api/v1/machines?line=99999",
        "/api/v1/lines?site=99999",
        "/api/v1/variants?product=99999",
    ] {
        assert_eq!(h.get(path).await.status, StatusCode::NOT_FOUND, "{path}");
    }
    // A trailing comma (as some spreadsheets leave) is no extra field.
    let good = "number,customer,variant,quantity,due,priority\n\
                CSV-1,Acme,phone-stand-black,10,2026-12-01T18:00:00+08:00,3,\n\
                CSV-2,\"Lam & Sons, Ltd\",iot-enclosure-s-grey,200,2026-12-03T18:00:00+08:00,\n";
    let reply = h
        .send("POST", "/api/v1/orders/import", Some(ADMIN), Some(("text/csv", good.as_bytes().to_vec())))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.json["imported"], 2);
    assert_eq!(h.order_count(), before + 2);
    let again = h
        .send("POST", "/api/v1/orders/import", Some(ADMIN), Some(("text/csv", good.as_bytes().to_vec())))
        .await;
    assert_eq!(again.json["field"], "line 2.number", "{}", again.text);
    assert_eq!(
        again.json["errors"].as_array().unwrap().len(),
        2,
        "every number in use is named: {}",
        again.text
    );
    // One report names every problem of a row, those of its format and those of its values.
    let mixed = "number,customer,variant,quantity,due,priority\n\
                 BAD-2,Acme,no-such-variant,abc,2026-12-20,11\n\
                 BAD-3,,phone-stand-black,0,,\n";
    let reply = h
        .send("POST", "/api/v1/orders/import", Some(ADMIN), Some(("text/csv", mixed.as_bytes().to_vec())))
        .await;
    let fields: Vec<&str> =
        reply.json["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(
        fields,
        [
            "line 2.variant",
            "line 2.quantity",
            "line 2.due",
            "line 2.priority",
            "line 3.due",
            "line 3.customer",
            "line 3.quantity"
        ],
        "{}",
        reply.text
    );
    let viewer = h
        .send(
            "POST",
            "/api/v1/orders/import",
            Some(&token_for(Role::Viewer)),
            Some(("text/csv", good.into())),
        )
        .await;
    assert_eq!(viewer.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn catalogue_crud_round_trips() {
    let h = harness();
    let material = json!({"code": "ti-6al4v", "name": "Titanium Ti-6Al-4V"});
    let created = h.post_json("/api/v1/materials", ADMIN, &material).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let id = created.json["id"].as_i64().unwrap();
    let renamed = json!({"code": "ti-6al4v", "name": "Titanium grade 5"});
    let reply = h
        .send(
            "PUT",
            &format!("/api/v1/materials/{id}"),
            Some(ADMIN),
            Some(("application/json", renamed.to_string().into())),
        )
        .await;
    assert_eq!(reply.json["name"], "Titanium grade 5");
    assert_eq!(
        h.send("DELETE", &format!("/api/v1/materials/{id}"), Some(ADMIN), None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(h.get(&format!("/api/v1/materials/{id}")).await.status, StatusCode::NOT_FOUND);
    // A machine used by routings cannot be deleted.
    assert_eq!(h.send("DELETE", "/api/v1/machines/1", Some(ADMIN), None).await.status, StatusCode::CONFLICT);
    let routing = json!({"code": "r-x", "name": "X", "steps": [{"name": "mill", "eligible_machines": [424242],
        "setup_seconds": 60, "unit_seconds": 10.0, "setup_family": "x"}]});
    let reply = h.post_json("/api/v1/routings", ADMIN, &routing).await;
    assert_eq!(reply.json["field"], "steps[0].eligible_machines[0]", "{}", reply.text);
    let calendar = h.get("/api/v1/sites/1/calendar").await.json;
    assert_eq!(calendar["shifts"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn the_bearer_scheme_is_read_in_any_case() {
    let h = harness();
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let request = Request::builder()
            .uri("/api/v1/me")
            .header("authorization", format!("{scheme} {ADMIN}"))
            .body(Body::empty())
            .unwrap();
        let response = h.app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{scheme}");
        assert_eq!(response.headers()["cache-control"], "no-store", "API answers are not cached");
    }
}

#[tokio::test]
async fn guesses_at_the_current_password_are_slowed_down() {
    let h = harness();
    let body = json!({"username": "lam", "role": "operator", "password": "first-password-of-lam"});
    assert_eq!(h.post_json("/api/v1/users", ADMIN, &body).await.status, StatusCode::CREATED);
    let login = json!({"username": "lam", "password": "first-password-of-lam"});
    let token =
        h.post_json("/api/v1/auth/login", "", &login).await.json["token"].as_str().unwrap().to_string();
    let guess = json!({"current_password": "a-guess-at-it-here", "new_password": "second-password-of-lam"});
    let mut answers = Vec::new();
    for _ in 0..8 {
        let answer = h.post_json("/api/v1/me/password", &token, &guess).await;
        answers.push(answer.status);
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            let detail = answer.json["detail"].as_str().unwrap();
            assert!(detail.starts_with("too many wrong passwords; try again in"), "{detail}");
            break;
        }
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", answer.text);
    }
    assert_eq!(answers.last(), Some(&StatusCode::TOO_MANY_REQUESTS), "{answers:?}");
    // They count as failed sign-ins of the name: signing in waits too.
    assert_eq!(h.post_json("/api/v1/auth/login", "", &login).await.status, StatusCode::TOO_MANY_REQUESTS);
}

#[test]
#[should_panic(expected = "made_up is missing from PIPELINE_DROPS")]
fn a_drop_reason_missing_from_the_metrics_list_fails_the_tests() {
    crate::metrics::Metrics::default().count_ingest_drop("made_up");
}

#[tokio::test]
async fn metrics_count_requests() {
    let h = harness();
    h.get("/api/v1/machines").await;
    let text = h.get("/metrics").await.text;
    assert!(
        text.contains(
            r#"microfactory_http_requests_total{method="GET",route="/api/v1/machines",status="200"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"microfactory_orders{status="released"}"#), "{text}");
    assert!(text.contains("microfactory_http_request_duration_seconds_bucket"), "{text}");
    // Made-up methods share one series: anyone could otherwise grow the metrics without end.
    for method in ["BAR1", "BAR2"] {
        h.send(method, "/healthz", None, None).await;
    }
    let text = h.get("/metrics").await.text;
    assert!(!text.contains("BAR"), "{text}");
    assert!(text.contains(r#"{method="other",route="/healthz",status="405"} 2"#), "{text}");
    // Every sample belongs to a family with its help and type (what `promtool check metrics`
    // asks), and the drop and skip reasons are there at 0 before anything was dropped.
    let families: Vec<&str> =
        text.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next()).collect();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let name = line.split(['{', ' ']).next().unwrap();
        let family = ["_bucket", "_sum", "_count"].iter().fold(name, |n, s| n.strip_suffix(s).unwrap_or(n));
        assert!(families.contains(&name) || families.contains(&family), "{line} has no TYPE");
        assert!(
            text.contains(&format!("# HELP {family} ")) || text.contains(&format!("# HELP {name} ")),
            "{line}"
        );
    }
    for reason in [
        "future_timestamp",
        "malformed_json",
        "unknown_machine",
        "not_permitted",
        store::Refusal::Unreleased.as_str(),
    ] {
        assert!(
            text.contains(&format!("microfactory_ingest_dropped_total{{reason=\"{reason}\"}} 0")),
            "{reason}"
        );
    }
    for reason in ["retained", "same_millisecond"] {
        assert!(
            text.contains(&format!("microfactory_ingest_skipped_total{{reason=\"{reason}\"}} 0")),
            "{reason}"
        );
    }
}

#[tokio::test]
async fn unknown_paths_and_methods_are_problems() {
    let h = harness();
    let reply = h.get("/api/v1/nothing").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.json["type"], "urn:microfactory:problem:not-found");
    let reply = h.send("PATCH", "/api/v1/orders", Some(ADMIN), None).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn a_request_body_left_unread_is_drained_or_the_connection_closes() {
    // A refusal before the handler reads the body leaves it in the way of the next request on the
    // connection: it is read and dropped, up to the body limit; beyond that the answer says the
    // connection closes, so that a client pooling connections opens a new one.
    let h = harness();
    let connection = |token: Option<&'static str>, content_type: &'static str, body: Vec<u8>| {
        let app = h.app.clone();
        async move {
            let mut request = Request::builder().method("POST").uri("/api/v1/orders");
            if let Some(token) = token {
                request = request.header("authorization", format!("Bearer {token}"));
            }
            let request = request.header("content-type", content_type).body(Body::from(body)).unwrap();
            let response = app.oneshot(request).await.unwrap();
            (response.status(), response.headers().get("connection").map(|v| v.to_str().unwrap().to_string()))
        }
    };
    let order = || valid_order().to_string().into_bytes();
    let huge = || vec![b' '; 2 * 1024 * 1024];
    assert_eq!(connection(None, "application/json", order()).await, (StatusCode::UNAUTHORIZED, None));
    assert_eq!(
        connection(None, "application/json", huge()).await,
        (StatusCode::UNAUTHORIZED, Some("close".into()))
    );
    let viewer = Box::leak(token_for(Role::Viewer).into_boxed_str());
    assert_eq!(connection(Some(viewer), "application/json", order()).await, (StatusCode::FORBIDDEN, None));
    assert_eq!(
        connection(Some(viewer), "application/json", huge()).await,
        (StatusCode::FORBIDDEN, Some("close".into()))
    );
    assert_eq!(
        connection(Some(ADMIN), "text/plain", huge()).await,
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, Some("close".into()))
    );
    assert_eq!(connection(Some(ADMIN), "application/json", order()).await, (StatusCode::CREATED, None));
}

#[tokio::test]
async fn devices_publish_for_their_site_only_and_cannot_read() {
    let h = harness();
    let other = h.second_site();
    let home = h.device_token("gw-hk", model::SiteId(1));
    let away = h.device_token("gw-sz", other);
    assert_eq!(h.send("GET", "/api/v1/machines", Some(&home), None).await.status, StatusCode::FORBIDDEN);
    let report = json!({"state": "down", "reason": "e-stop"}).to_string().into_bytes();
    let reply = h
        .send("POST", "/api/v1/machines/1/states", Some(&home), Some(("application/json", report.clone())))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let reply = h
        .send("POST", "/api/v1/machines/1/states", Some(&away), Some(("application/json", report.clone())))
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let viewer = token_for(Role::Viewer);
    let reply =
        h.send("POST", "/api/v1/machines/1/states", Some(&viewer), Some(("application/json", report))).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let user = json!({"username": "gw2", "role": "device", "password": "a long enough password"});
    assert_eq!(h.post_json("/api/v1/users", ADMIN, &user).await.json["field"], "site_id");
    // A device account needs no password and cannot sign in with one: it uses tokens.
    let device = json!({"username": "gw3", "role": "device", "site_id": 1});
    assert_eq!(h.post_json("/api/v1/users", ADMIN, &device).await.status, StatusCode::CREATED);
    let person = json!({"username": "ada", "role": "viewer"});
    assert_eq!(h.post_json("/api/v1/users", ADMIN, &person).await.json["field"], "password");
    let old_device = h
        .store
        .create_user(
            "gw4",
            Role::Device,
            Some(model::SiteId(1)),
            &crate::auth::hash_password("an old device password").unwrap(),
            NOW,
        )
        .unwrap();
    let login = json!({"username": old_device.username, "password": "an old device password"});
    let reply = h.post_json("/api/v1/auth/login", "", &login).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
    assert!(reply.text.contains("device accounts sign in with tokens"), "{}", reply.text);
    // A device is given no password later either, and becomes a person only with one.
    let path = format!("/api/v1/users/{}", old_device.id.0);
    let patch = |body: Value| {
        h.send("PATCH", &path, Some(ADMIN), Some(("application/json", body.to_string().into_bytes())))
    };
    let reply = patch(json!({"password": "a device password"})).await;
    assert_eq!(
        (reply.status, &reply.json["field"]),
        (StatusCode::UNPROCESSABLE_ENTITY, &json!("password")),
        "{}",
        reply.text
    );
    let reply = patch(json!({"role": "operator"})).await;
    assert_eq!(
        (reply.status, &reply.json["field"]),
        (StatusCode::UNPROCESSABLE_ENTITY, &json!("password")),
        "{}",
        reply.text
    );
    let reply = patch(json!({"role": "operator", "password": "an operator's password"})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

#[tokio::test]
async fn people_bound_to_a_site_act_on_its_machines_only() {
    let h = harness();
    let workers = h.state.start_workers();
    let away_site = h.second_site();
    // Operators and maintenance may be bound; planners, sales and viewers cover every site.
    let person = |name: &str, role: &str, site: i64| json!({"username": name, "role": role, "password": "a long enough password", "site_id": site});
    let bound = h.post_json("/api/v1/users", ADMIN, &person("kim", "operator", away_site.0)).await;
    assert_eq!((bound.status, &bound.json["site_id"]), (StatusCode::CREATED, &json!(away_site.0)));
    let planner = h.post_json("/api/v1/users", ADMIN, &person("lee", "planner", 1)).await;
    assert_eq!(
        (planner.status, &planner.json["field"]),
        (StatusCode::UNPROCESSABLE_ENTITY, &json!("site_id"))
    );
    let path = format!("/api/v1/users/{}", bound.json["id"]);
    let moved = h.send_json("PATCH", &path, ADMIN, &json!({"site_id": 1})).await;
    assert_eq!(moved.json["site_id"], 1, "{}", moved.text);
    let fitter = h.send_json("PATCH", &path, ADMIN, &json!({"role": "maintenance"})).await;
    assert_eq!(fitter.json["site_id"], 1, "kept with a role that may be bound: {}", fitter.text);
    let free = h.send_json("PATCH", &path, ADMIN, &json!({"site_id": null})).await;
    assert_eq!((&free.json["role"], &free.json["site_id"]), (&json!("maintenance"), &Value::Null));
    let refused = h.send_json("PATCH", &path, ADMIN, &json!({"role": "planner", "site_id": 1})).await;
    assert_eq!(refused.json["field"], "site_id", "{}", refused.text);

    // Machine 1 is at the first site (hk-kt).
    let home = h.bound_token("op-home", Role::Operator, model::SiteId(1));
    let away = h.bound_token("op-away", Role::Operator, away_site);
    let away_fitter = h.bound_token("fit-away", Role::Maintenance, away_site);
    let home_fitter = h.bound_token("fit-home", Role::Maintenance, model::SiteId(1));
    let down = json!({"state": "down", "reason": "jam"});
    let reply = h.send_json("POST", "/api/v1/machines/1/states", &away, &down).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
    assert!(
        reply.text.contains("acts at site sz only") && reply.text.contains("at site hk-kt"),
        "{}",
        reply.text
    );
    let reply = h.send_json("POST", "/api/v1/machines/1/states", &home, &down).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let units = json!({"good": 2, "ideal_unit_seconds": 30.0});
    assert_eq!(
        h.send_json("POST", "/api/v1/machines/1/production", &away, &units).await.status,
        StatusCode::FORBIDDEN
    );

    // Operations: started, paused and finished only on the site's machines.
    let (_, operation) = h.first_released_operation().await;
    let machine = operation["eligible_machines"][0].clone();
    let machine_site = h.store.machine(model::MachineId(machine.as_i64().unwrap())).unwrap().site_id;
    assert_eq!(machine_site, model::SiteId(1));
    let start = format!("/api/v1/operations/{}/start", operation["id"]);
    let reply = h.send_json("POST", &start, &away, &json!({"machine_id": machine})).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
    let reply = h.send_json("POST", &start, &home, &json!({"machine_id": machine})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let finish = format!("/api/v1/operations/{}/finish", operation["id"]);
    let reply = h.send_json("POST", &finish, &away, &json!({"good": 1})).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
    assert_eq!(
        h.store.operation(model::OperationId(operation["id"].as_i64().unwrap())).unwrap().status,
        model::OperationStatus::Running
    );

    // Alarms: acknowledged one by one or in bulk only at the site.
    let rule = h
        .store
        .create_alarm_rule(&serde_json::from_value(json!({"name": "hot", "metric": "t", "condition": {"kind": "above", "threshold": 1.0}, "severity": "warning"})).unwrap())
        .unwrap();
    let alarm = h.store.raise_alarm(rule.id, model::MachineId(1), NOW, Some(2.0), "hot").unwrap();
    h.store.clear_alarm(rule.id, model::MachineId(1), NOW).unwrap();
    let ack = format!("/api/v1/alarms/{}/acknowledge", alarm.id);
    assert_eq!(h.send_json("POST", &ack, &away, &json!({})).await.status, StatusCode::FORBIDDEN);
    let bulk = h.send_json("POST", "/api/v1/alarms/acknowledge-cleared", &away, &json!({})).await;
    assert_eq!(bulk.json["acknowledged"], 0, "{}", bulk.text);
    let bulk =
        h.send_json("POST", "/api/v1/alarms/acknowledge-cleared", &away, &json!({"machine_id": 1})).await;
    assert_eq!(bulk.status, StatusCode::FORBIDDEN, "{}", bulk.text);
    let bulk = h.send_json("POST", "/api/v1/alarms/acknowledge-cleared", &home, &json!({})).await;
    assert_eq!(bulk.json["acknowledged"], 1, "{}", bulk.text);

    // Maintenance windows and alarm rules: of the site's machines only.
    let window =
        json!({"start": "2026-11-25T08:00:00+08:00", "end": "2026-11-25T10:00:00+08:00", "reason": "oil"});
    let reply = h.post_json("/api/v1/machines/1/maintenance", &away_fitter, &window).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
    let planned = h.post_json("/api/v1/machines/1/maintenance", &home_fitter, &window).await;
    assert_eq!(planned.status, StatusCode::CREATED, "{}", planned.text);
    let remove = format!("/api/v1/maintenance/{}", planned.json["id"]);
    assert_eq!(h.send("DELETE", &remove, Some(&away_fitter), None).await.status, StatusCode::FORBIDDEN);
    assert_eq!(h.send("DELETE", &remove, Some(&home_fitter), None).await.status, StatusCode::NO_CONTENT);
    let everywhere = json!({"name": "bearing", "metric": "bearing_temp_c", "condition": {"kind": "above", "threshold": 80.0},
                            "severity": "warning"});
    let reply = h.post_json("/api/v1/alarm-rules", &home_fitter, &everywhere).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
    let mut one = everywhere.clone();
    one["machine_id"] = json!(1);
    assert_eq!(h.post_json("/api/v1/alarm-rules", &away_fitter, &one).await.status, StatusCode::FORBIDDEN);
    let created = h.post_json("/api/v1/alarm-rules", &home_fitter, &one).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let path = format!("/api/v1/alarm-rules/{}", created.json["id"]);
    assert_eq!(h.send_json("PUT", &path, &away_fitter, &one).await.status, StatusCode::FORBIDDEN);
    assert_eq!(h.send_json("PUT", &path, &home_fitter, &everywhere).await.status, StatusCode::FORBIDDEN);
    assert_eq!(h.send("DELETE", &path, Some(&away_fitter), None).await.status, StatusCode::FORBIDDEN);
    let reply = h.send("DELETE", &path, Some(&home_fitter), None).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    // A rule for every machine of their own site is theirs; of another site's, or of both a
    // machine and a site, not.
    let mut site_wide = everywhere.clone();
    site_wide["site_id"] = json!(1);
    let reply = h.post_json("/api/v1/alarm-rules", &home_fitter, &site_wide).await;
    assert_eq!((reply.status, &reply.json["site_id"]), (StatusCode::CREATED, &json!(1)), "{}", reply.text);
    assert_eq!(
        h.post_json("/api/v1/alarm-rules", &away_fitter, &site_wide).await.status,
        StatusCode::FORBIDDEN
    );
    site_wide["machine_id"] = json!(1);
    let reply = h.post_json("/api/v1/alarm-rules", ADMIN, &site_wide).await;
    assert_eq!(reply.json["field"], "site_id", "{}", reply.text);
    // Reading is not bound: the other site's people see every site.
    assert_eq!(h.send("GET", "/api/v1/machines/1", Some(&away), None).await.status, StatusCode::OK);
    h.state.begin_stop();
    workers.finish().await;
}

#[tokio::test]
async fn a_site_may_follow_a_named_time_zone_and_its_summer_time() {
    let h = &harness();
    let site = |body: Value| async move { h.post_json("/api/v1/sites", ADMIN, &body).await };
    let reply = site(json!({"code": "de", "name": "Berlin", "time_zone": "europe/berlin"})).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(
        (&reply.json["time_zone"], &reply.json["utc_offset"]),
        (&json!("Europe/Berlin"), &Value::Null)
    );
    for (body, field) in [
        (json!({"code": "x1", "name": "X", "time_zone": "Mars/Olympus_Mons"}), "time_zone"),
        (
            json!({"code": "x2", "name": "X", "time_zone": "Asia/Hong_Kong", "utc_offset": "+08:00"}),
            "time_zone",
        ),
        (json!({"code": "x3", "name": "X"}), "utc_offset"),
        (json!({"code": "x4", "name": "X", "time_zone": 8}), "time_zone"),
    ] {
        let reply = site(body.clone()).await;
        assert!(reply.status.is_client_error(), "{body}: {}", reply.text);
        assert_eq!(reply.json["field"], field, "{body}: {}", reply.text);
    }

    // The demo's site, moved to Berlin with a night shift every day: Saturday 2026-10-24's night
    // shift is 9 hours, as the clocks go back an hour on Sunday morning.
    let berlin = json!({"code": "hk-kt", "name": "Moved", "time_zone": "Europe/Berlin"});
    let reply = h.send_json("PUT", "/api/v1/sites/1", ADMIN, &berlin).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let night = json!({"shifts": [{"name": "night", "days": days, "start": "22:00", "end": "06:00"}]});
    let reply = h.send_json("PUT", "/api/v1/sites/1/calendar", ADMIN, &night).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let busy = |from: &str, to: &str| {
        let path = format!("/api/v1/oee?machine=3&from={from}&to={to}");
        async move { h.get(&path).await.json["total"]["planned_busy_seconds"].clone() }
    };
    assert_eq!(busy("2026-10-24T12:00:00Z", "2026-10-25T12:00:00Z").await, 9.0 * 3600.0);
    assert_eq!(busy("2026-10-25T12:00:00Z", "2026-10-26T12:00:00Z").await, 8.0 * 3600.0);
    // Back to a fixed offset: the night is 8 hours whatever the season.
    let fixed = json!({"code": "hk-kt", "name": "Moved", "utc_offset": "+01:00"});
    let reply = h.send_json("PUT", "/api/v1/sites/1", ADMIN, &fixed).await;
    assert_eq!((&reply.json["time_zone"], &reply.json["utc_offset"]), (&Value::Null, &json!("+01:00")));
    assert_eq!(busy("2026-10-24T12:00:00Z", "2026-10-25T12:00:00Z").await, 8.0 * 3600.0);
}

#[tokio::test]
async fn oee_over_the_api_matches_a_hand_computed_morning() {
    let h = harness();
    let operator = token_for(Role::Operator);
    // Monday 2026-11-23, 08:00–12:00 Hong Kong time: all inside the demo's day shift, so
    // planned busy time is 4 h. Running 08:00–10:00, down 10:00–11:00 (jam), running 11:00–12:00:
    // APT = 3 h, availability 0.75. 100 units (90 good) at an ideal 81 s: 8,100 s of ideal time,
    // effectiveness 8,100 / 10,800 = 0.75, quality 0.9, OEE 0.75 × 0.75 × 0.9 = 0.50625. (They are
    // reported at 11:30: their 8,100 s of ideal time, 09:15–11:30, fall inside the period.)
    for (at, state, reason) in [
        ("2026-11-23T08:00:00+08:00", "running", None),
        ("2026-11-23T10:00:00+08:00", "down", Some("jam")),
        ("2026-11-23T11:00:00+08:00", "running", None),
    ] {
        let body = json!({"state": state, "reason": reason, "at": at});
        let reply = h.post_json("/api/v1/machines/3/states", &operator, &body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    }
    let production =
        json!({"good": 90, "scrap": 10, "ideal_unit_seconds": 81.0, "at": "2026-11-23T11:30:00+08:00"});
    assert_eq!(
        h.post_json("/api/v1/machines/3/production", &operator, &production).await.status,
        StatusCode::CREATED
    );
    let reply =
        h.get("/api/v1/oee?machine=3&from=2026-11-23T08:00:00%2B08:00&to=2026-11-23T12:00:00%2B08:00").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let total = &reply.json["total"];
    assert_eq!(total["planned_busy_seconds"], 14_400.0);
    assert_eq!(total["actual_production_seconds"], 10_800.0);
    assert_eq!(total["availability"], 0.75);
    assert_eq!(total["effectiveness"], 0.75);
    assert_eq!(total["quality"], 0.9);
    assert!((total["oee"].as_f64().unwrap() - 0.50625).abs() < 1e-12);
    assert_eq!(total["losses"][0]["reason"], "jam");
    // The machine first reported at 08:00, so a window from 06:00 starts its history there: the
    // two hours before are not lost time. The ten machines that never reported keep their whole
    // window, all of it offline without data.
    let early = h
        .get("/api/v1/oee?site=1&from=2026-11-23T06:00:00%2B08:00&to=2026-11-23T12:00:00%2B08:00")
        .await
        .json;
    let machines = early["machines"].as_array().unwrap();
    let third = machines.iter().find(|m| m["machine_id"] == 3).unwrap();
    for (key, value) in total.as_object().unwrap() {
        assert_eq!(third[key], *value, "{key}");
    }
    for quiet in machines.iter().filter(|m| m["machine_id"] != 3) {
        assert_eq!(quiet["planned_busy_seconds"], 21_600.0, "{quiet}");
        assert_eq!(quiet["losses"][0]["reason"], "no data", "{quiet}");
    }
    let site = h
        .get("/api/v1/oee?site=1&from=2026-11-23T08:00:00%2B08:00&to=2026-11-23T12:00:00%2B08:00")
        .await
        .json;
    assert_eq!(site["machines"].as_array().unwrap().len(), 11);
    assert_eq!(site["total"]["planned_busy_seconds"], 11.0 * 14_400.0);
    let states = h
        .get("/api/v1/machines/3/states?from=2026-11-23T09:00:00%2B08:00&to=2026-11-23T12:00:00%2B08:00")
        .await
        .json;
    assert_eq!(states.as_array().unwrap().len(), 3);
    assert_eq!(states[0]["from"], "2026-11-23T01:00:00Z");
    // The state in force now ends at now (09:00 on the 24th), not at a `to` ahead of it.
    let ahead = h
        .get("/api/v1/machines/3/states?from=2026-11-23T09:00:00%2B08:00&to=2026-11-26T00:00:00Z")
        .await
        .json;
    let last = ahead.as_array().unwrap().last().unwrap();
    assert_eq!(last["to"], "2026-11-24T01:00:00Z", "{ahead}");
    let future = h.get("/api/v1/machines/3/states?from=2026-11-25T00:00:00Z&to=2026-11-26T00:00:00Z").await;
    assert_eq!((future.status, future.json), (StatusCode::OK, json!([])));
    let current = h.get("/api/v1/machine-states").await.json;
    assert_eq!(current[0]["state"], "running");
    assert_eq!(h.get("/api/v1/oee?machine=3&line=1").await.status, StatusCode::BAD_REQUEST);
    // A site, line or machine that does not exist is not an empty report.
    for filter in ["site", "line", "machine"] {
        assert_eq!(
            h.get(&format!("/api/v1/oee?{filter}=999999")).await.status,
            StatusCode::NOT_FOUND,
            "{filter}"
        );
    }
    assert_eq!(
        h.get("/api/v1/oee?from=2026-11-25T08:00:00Z&to=2026-11-24T08:00:00Z").await.json["field"],
        "from"
    );

    // What has not happened yet counts neither way: a window past now ends at now (09:00 on the
    // 24th), and one wholly in the future has no planned time.
    let ahead = h
        .get("/api/v1/oee?machine=3&from=2026-11-23T11:00:00%2B08:00&to=2026-11-26T00:00:00%2B08:00")
        .await
        .json;
    assert_eq!(ahead["to"], "2026-11-24T01:00:00Z");
    assert_eq!(ahead["total"]["actual_production_seconds"], 22.0 * 3600.0, "{ahead}");
    let future = h
        .get("/api/v1/oee?machine=3&from=2026-11-25T00:00:00%2B08:00&to=2026-11-26T00:00:00%2B08:00")
        .await
        .json;
    assert_eq!(future["total"]["planned_busy_seconds"], 0.0, "{future}");
    assert_eq!(future["total"]["actual_production_seconds"], 0.0, "{future}");
    // Units counted before a machine's first state count: its history starts with their work.
    let units = json!({"good": 8, "scrap": 2, "ideal_unit_seconds": 30.0, "at": "2026-11-23T07:50:00+08:00"});
    assert_eq!(
        h.post_json("/api/v1/machines/4/production", &operator, &units).await.status,
        StatusCode::CREATED
    );
    let state = json!({"state": "running", "at": "2026-11-23T08:00:00+08:00"});
    assert_eq!(h.post_json("/api/v1/machines/4/states", &operator, &state).await.status, StatusCode::CREATED);
    let fourth = h
        .get("/api/v1/oee?machine=4&from=2026-11-23T06:00:00%2B08:00&to=2026-11-23T12:00:00%2B08:00")
        .await
        .json;
    assert_eq!(
        (&fourth["total"]["produced"], &fourth["total"]["quality"]),
        (&json!(10), &json!(0.8)),
        "{fourth}"
    );
    // From the first units' work on: their ideal time, 10 × 30 s, before they were counted at 07:50.
    assert_eq!(
        fourth["total"]["planned_busy_seconds"],
        4.0 * 3600.0 + 900.0,
        "from the first units' work on"
    );
}

#[tokio::test]
async fn a_quote_says_when_an_order_would_be_done_and_stores_nothing() {
    let h = harness();
    let body = json!({"variant_id": 2, "quantity": 40, "due": "2026-12-11T18:00:00+08:00"});
    let (orders, plans) =
        (h.order_count(), h.store.plans(store::PageRequest { after: None, limit: 500 }).unwrap().items.len());
    // No plan is active: a plan of all released work is made for it.
    let afresh = h.post_json("/api/v1/orders/quote", ADMIN, &body).await;
    assert_eq!(afresh.status, StatusCode::OK, "{}", afresh.text);
    assert_eq!(afresh.json["how"], "planned_afresh");
    assert!(afresh.json.get("plan_id").is_none() && afresh.json.get("other_late_orders_before").is_none());
    let steps = afresh.json["steps"].as_array().unwrap();
    assert!(!steps.is_empty());
    assert_eq!(afresh.json["eta"], steps.last().unwrap()["end"]);
    // With an active plan it is slotted in, and says what that does to the other orders.
    let plan = publish_a_plan(&h).await;
    let quote = h.post_json("/api/v1/orders/quote", &token_for(Role::Planner), &body).await;
    assert_eq!(quote.status, StatusCode::OK, "{}", quote.text);
    assert_eq!((&quote.json["how"], &quote.json["plan_id"]), (&json!("slotted_in"), &json!(plan)));
    let (before, after) = (
        quote.json["other_late_orders_before"].as_u64().unwrap(),
        quote.json["other_late_orders_after"].as_u64().unwrap(),
    );
    assert!(after >= before, "{before} -> {after}");
    let eta = quote.json["eta"].as_str().unwrap();
    assert!(eta > "2026-11-24T01:00:00Z", "{eta}");
    let late = quote.json["late"].as_bool().unwrap();
    assert_eq!(late, eta > "2026-12-11T10:00:00Z");
    // A rush order comes no later.
    let rush = h
        .post_json(
            "/api/v1/orders/quote",
            ADMIN,
            &json!({"variant_id": 2, "quantity": 40, "due": "2026-12-11T18:00:00+08:00", "priority": 9}),
        )
        .await;
    assert!(rush.json["eta"].as_str().unwrap() <= eta, "{} after {eta}", rush.json["eta"]);
    // Nothing was stored or published.
    assert_eq!(h.order_count(), orders);
    assert_eq!(h.store.plans(store::PageRequest { after: None, limit: 500 }).unwrap().items.len(), plans + 1);
    assert_eq!(h.store.active_plan().unwrap().unwrap().id, plan);
    // Bad input is named; a viewer may not ask.
    for (body, field) in [
        (json!({"variant_id": 2, "quantity": 0, "due": "2026-12-11T18:00:00+08:00"}), "quantity"),
        (json!({"variant_id": 999, "quantity": 5, "due": "2026-12-11T18:00:00+08:00"}), "variant_id"),
        (
            json!({"variant_id": 2, "quantity": 5, "due": "2026-12-11T18:00:00+08:00", "colour": "red"}),
            "colour",
        ),
    ] {
        let reply = h.post_json("/api/v1/orders/quote", ADMIN, &body).await;
        assert!(reply.status.is_client_error(), "{body}: {}", reply.text);
        assert!(reply.text.contains(field), "{body}: {}", reply.text);
    }
    assert_eq!(
        h.post_json("/api/v1/orders/quote", &token_for(Role::Viewer), &body).await.status,
        StatusCode::FORBIDDEN
    );
    // Quotes are worked out one at a time: while one holds the turn past a search's length,
    // another is refused (503) rather than queued on the cores.
    let held = h.state.quote_turn.clone().try_acquire_owned().unwrap();
    let busy = h.post_json("/api/v1/orders/quote", ADMIN, &body).await;
    assert_eq!(busy.status, StatusCode::SERVICE_UNAVAILABLE, "{}", busy.text);
    drop(held);
    assert_eq!(h.post_json("/api/v1/orders/quote", ADMIN, &body).await.status, StatusCode::OK);
}

/// A quote is what the automatic re-plan then does: entered and released, the order slotted in by
/// a repair that keeps every machine's order finishes when the quote said.
#[test]
fn a_quote_is_the_repair_that_slots_the_order_in() {
    let store = seeded_store(NOW);
    let options = crate::planning::Options {
        repair: Some(time::Duration::minutes(60)),
        threads: 1,
        search_loss_percent: 0.0,
        ..crate::planning::Options::default()
    };
    let plan = crate::planning::plan(
        &store,
        NOW,
        crate::planning::DEFAULT_OBJECTIVE,
        std::time::Duration::from_millis(200),
        &crate::planning::Options { threads: 1, ..options },
    )
    .unwrap();
    let plan = store.create_plan(&plan).unwrap();
    store.publish_plan(plan.id, NOW).unwrap();
    let new = model::NewOrder {
        number: "SO-QUOTED".into(),
        customer: "Kowloon Gadgets Ltd".into(),
        variant_id: model::VariantId(2),
        quantity: 40,
        due: datetime!(2026-12-11 18:00 +08:00),
        priority: 3,
        material_ready: None,
    };
    let at = NOW + time::Duration::minutes(20);
    let draft = store.draft_order(&new, at).unwrap();
    let (quoted, slotted) = crate::planning::quote(
        &store,
        at,
        crate::planning::DEFAULT_OBJECTIVE,
        std::time::Duration::from_millis(200),
        &options,
        &draft,
    )
    .unwrap();
    assert!(slotted);
    let eta = |plan: &store::NewPlan, order: model::OrderId| {
        plan.operations.iter().filter(|op| op.order_id == order).map(|op| op.end).max().unwrap()
    };
    let order = store.create_order(&new, at).unwrap();
    store.set_order_status(order.id, model::OrderStatus::Released).unwrap();
    let repaired = crate::planning::plan_with(
        &store,
        at,
        crate::planning::DEFAULT_OBJECTIVE,
        std::time::Duration::from_millis(200),
        &options,
        None,
        &[order.id],
    )
    .unwrap();
    assert_eq!(eta(&quoted, store::DRAFT_ORDER), eta(&repaired, order.id));
    assert_eq!(quoted.late_orders, repaired.late_orders);
}

#[tokio::test]
async fn order_names_are_trimmed_and_lists_find_open_and_newest_orders() {
    let h = harness();
    let mut order = valid_order();
    order["number"] = json!(" SO-TRIM-1 ");
    order["customer"] = json!("Harbour Audio Co\u{3000}");
    let created = h.post_json("/api/v1/orders", ADMIN, &order).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(
        (&created.json["number"], &created.json["customer"]),
        (&json!("SO-TRIM-1"), &json!("Harbour Audio Co"))
    );
    let id = created.json["id"].as_i64().unwrap();
    // The same customer as typed without the space, found with spaces around the search too.
    let found = h.get("/api/v1/orders?customer=Harbour%20Audio%20Co%20&search=%20SO-TRIM%20").await.json;
    assert_eq!(found["items"].as_array().unwrap().len(), 1, "{found}");
    // A change is trimmed as well.
    order["number"] = json!("SO-TRIM-1");
    order["customer"] = json!("  Kowloon Gadgets Ltd ");
    let changed = h
        .send(
            "PUT",
            &format!("/api/v1/orders/{id}"),
            Some(ADMIN),
            Some(("application/json", order.to_string().into_bytes())),
        )
        .await;
    assert_eq!(
        (changed.status, &changed.json["customer"]),
        (StatusCode::OK, &json!("Kowloon Gadgets Ltd")),
        "{}",
        changed.text
    );
    // Newest first: the order just entered leads.
    let newest = h.get("/api/v1/orders?sort=newest&limit=2").await.json;
    assert_eq!(newest["items"][0]["id"], id);
    let next = newest["next_cursor"].as_str().unwrap();
    let rest = h.get(&format!("/api/v1/orders?sort=newest&limit=500&cursor={next}")).await.json;
    assert!(
        rest["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["id"].as_i64().unwrap() < newest["items"][1]["id"].as_i64().unwrap())
    );
    assert_eq!(rest["items"].as_array().unwrap().len() + 2, h.order_count());
    // Open orders, in one list.
    let cancel = h.send("POST", &format!("/api/v1/orders/{id}/cancel"), Some(ADMIN), None).await;
    assert_eq!(cancel.status, StatusCode::OK);
    let open = h.get("/api/v1/orders?open=true&limit=500").await.json;
    let open = open["items"].as_array().unwrap();
    assert!(
        !open.is_empty()
            && open
                .iter()
                .all(|o| ["planned", "released", "running"].contains(&o["status"].as_str().unwrap()))
    );
    let closed = h.get("/api/v1/orders?open=false&limit=500").await.json;
    assert_eq!(closed["items"].as_array().unwrap().len() + open.len(), h.order_count());
    assert_eq!(h.get("/api/v1/orders?sort=oldest").await.json["field"], "sort");
}

#[tokio::test]
async fn alarms_list_by_latest_occurrence_and_by_period() {
    let h = harness();
    let rule = model::alarm::NewAlarmRule {
        name: "Gas".into(),
        machine_id: None,
        site_id: None,
        metric: Some("gas_ppm".into()),
        condition: model::alarm::Condition::Above { threshold: 50.0 },
        for_seconds: 0,
        deadband: 0.0,
        severity: model::alarm::Severity::Critical,
        enabled: true,
    };
    let rule = h.store.create_alarm_rule(&rule).unwrap().id;
    let (m1, m2) = (model::MachineId(1), model::MachineId(2));
    let hours = |n: i64| NOW - time::Duration::hours(n);
    // Ten hours ago on machine 1, cleared unseen; two hours ago on machine 2, cleared; back on
    // machine 1 an hour ago.
    let back = h.store.raise_alarm(rule, m1, hours(10), Some(60.0), "gas").unwrap().id;
    h.store.clear_alarm(rule, m1, hours(9)).unwrap();
    let other = h.store.raise_alarm(rule, m2, hours(2), Some(70.0), "gas").unwrap().id;
    h.store.clear_alarm(rule, m2, hours(2) + time::Duration::minutes(5)).unwrap();
    assert_eq!(h.store.raise_alarm(rule, m1, hours(1), Some(80.0), "gas").unwrap().id, back);
    let ids = |json: &Value| {
        json["items"].as_array().unwrap().iter().map(|a| a["id"].as_i64().unwrap()).collect::<Vec<_>>()
    };
    assert_eq!(ids(&h.get("/api/v1/alarms").await.json), [other, back], "by first raise");
    assert_eq!(ids(&h.get("/api/v1/alarms?sort=latest").await.json), [back, other]);
    // Page by page, the cursor carrying the time.
    let first = h.get("/api/v1/alarms?sort=latest&limit=1").await.json;
    let cursor = first["next_cursor"].as_str().unwrap().to_string();
    assert_eq!(cursor, format!("{}.{back}", model::oee::unix_ms(hours(1))));
    let second = h.get(&format!("/api/v1/alarms?sort=latest&limit=1&cursor={cursor}")).await.json;
    assert_eq!((ids(&second), second.get("next_cursor")), (vec![other], None));
    // Up within a period: the one of two hours ago cleared at 1:55 ago.
    let since = |from: time::OffsetDateTime| {
        format!("/api/v1/alarms?sort=latest&from={}", crate::rfc3339(from).replace('+', "%2B"))
    };
    assert_eq!(ids(&h.get(&since(hours(3))).await.json), [back, other]);
    assert_eq!(ids(&h.get(&(since(hours(1) - time::Duration::minutes(30)))).await.json), [back]);
    let before = format!("/api/v1/alarms?to={}", crate::rfc3339(hours(5)).replace('+', "%2B"));
    assert_eq!(ids(&h.get(&before).await.json), [back], "first raised ten hours ago");
    for (query, field) in [
        ("sort=newest", "sort"),
        ("sort=latest&cursor=12", "cursor"),
        ("sort=latest&cursor=.5", "cursor"),
        ("from=yesterday", "from"),
        ("from=2026-11-24T00:00:00Z&to=2026-11-23T00:00:00Z", "from"),
    ] {
        let reply = h.get(&format!("/api/v1/alarms?{query}")).await;
        assert_eq!(
            (reply.status, reply.json["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{query}: {}",
            reply.text
        );
    }
    // The page lists by latest occurrence, and within a period.
    let rows = |page: &str| {
        page.match_indices("data-alarm-id=\"")
            .map(|(at, _)| page[at + 15..].split('"').next().unwrap().parse::<i64>().unwrap())
            .collect::<Vec<_>>()
    };
    let page = h.page("/alarms?show=all", ADMIN, "en").await.text;
    assert_eq!(rows(&page), [back, other]);
    let recent = h.page("/alarms?show=all&within=8h", ADMIN, "en").await.text;
    assert_eq!(rows(&recent), [back, other]);
    assert!(recent.contains(r#"<option value="8h" selected>Last 8 h</option>"#), "{recent}");
    // One of yesterday, cleared a day and more ago, is of any time but not of the last 24 h.
    let old = h.store.raise_alarm(rule, model::MachineId(3), hours(30), None, "gas").unwrap().id;
    h.store.clear_alarm(rule, model::MachineId(3), hours(29)).unwrap();
    assert_eq!(rows(&h.page("/alarms?show=all", ADMIN, "en").await.text), [back, other, old]);
    let zh = h.page("/alarms?show=all&within=24h", ADMIN, "zh-HK").await.text;
    assert_eq!(rows(&zh), [back, other]);
    assert!(zh.contains("最近 24 小時"));
}

#[tokio::test]
async fn oee_of_the_current_and_previous_shift_by_the_site_s_calendar() {
    let h = harness();
    let operator = token_for(Role::Operator);
    for (at, state) in [("2026-11-23T21:00:00+08:00", "running"), ("2026-11-24T07:00:00+08:00", "down")] {
        let body = json!({"state": state, "reason": "jam", "at": at});
        assert_eq!(
            h.post_json("/api/v1/machines/3/states", &operator, &body).await.status,
            StatusCode::CREATED
        );
    }
    // 09:00 on Tuesday in Hong Kong: the early shift (06:00–14:00) is under way, up to now; the
    // night shift before it ran from 22:00 on Monday.
    for (shift, name, from, to) in [
        ("current", "early", "2026-11-23T22:00:00Z", "2026-11-24T01:00:00Z"),
        ("previous", "night", "2026-11-23T14:00:00Z", "2026-11-23T22:00:00Z"),
    ] {
        let reply = h.get(&format!("/api/v1/oee?machine=3&shift={shift}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert_eq!(
            (&reply.json["shift"], &reply.json["from"], &reply.json["to"]),
            (&json!(name), &json!(from), &json!(to))
        );
        // The same as the period given by its times.
        let explicit = h.get(&format!("/api/v1/oee?machine=3&from={from}&to={to}")).await.json;
        assert_eq!(reply.json["total"], explicit["total"], "{shift}");
        assert!(explicit.get("shift").is_none());
    }
    let early = h.get("/api/v1/oee?machine=3&shift=current").await.json;
    assert_eq!(
        (&early["total"]["availability"], &early["total"]["failures"]),
        (&json!(1.0 / 3.0), &json!(1)),
        "{early}"
    );
    let night = h.get("/api/v1/oee?machine=3&shift=previous").await.json;
    assert_eq!(night["total"]["availability"], json!(1.0), "{night}");
    // Every machine of the one site.
    let all = h.get("/api/v1/oee?shift=current").await.json;
    assert_eq!((all["machines"].as_array().unwrap().len(), &all["shift"]), (11, &json!("early")));
    for (query, field) in [("shift=current&from=2026-11-24T00:00:00Z", "shift"), ("shift=next", "shift")] {
        let reply = h.get(&format!("/api/v1/oee?{query}")).await;
        assert_eq!(
            (reply.status, reply.json["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{query}"
        );
    }
    // A second site keeps its own shifts: across sites there is no one shift.
    let site = h
        .store
        .create_site(&model::NewSite {
            code: "sz".into(),
            name: "Shenzhen".into(),
            utc_offset: Some("+08:00".into()),
            time_zone: None,
        })
        .unwrap();
    let machine = model::NewMachine {
        site_id: site.id,
        line_id: None,
        code: "SZ-1".into(),
        name: "Press".into(),
        kind: model::MachineKind::Other,
        capabilities: vec![],
        rated_power_kw: 0.0,
        retired: None,
    };
    let press = h.store.create_machine(&machine, NOW).unwrap().id;
    // Orders and alarms by site: the demo's orders all run at the first; an alarm of the press
    // is the second's.
    let count = |json: Value| json["items"].as_array().unwrap().len();
    assert_eq!(count(h.get("/api/v1/orders?site=1&limit=500").await.json), h.order_count());
    assert_eq!(count(h.get(&format!("/api/v1/orders?site={}&limit=500", site.id.0)).await.json), 0);
    assert_eq!(h.get("/api/v1/orders?site=999").await.status, StatusCode::NOT_FOUND);
    let rule = model::alarm::NewAlarmRule {
        name: "Stopped".into(),
        machine_id: None,
        site_id: None,
        metric: None,
        condition: model::alarm::Condition::StoppedLonger { minutes: 10 },
        for_seconds: 0,
        deadband: 0.0,
        severity: model::alarm::Severity::Warning,
        enabled: true,
    };
    let rule = h.store.create_alarm_rule(&rule).unwrap().id;
    let alarm = h.store.raise_alarm(rule, press, NOW, None, "stopped").unwrap().id;
    h.store.raise_alarm(rule, model::MachineId(1), NOW, None, "stopped").unwrap();
    let ids = |json: Value| {
        json["items"].as_array().unwrap().iter().map(|a| a["id"].as_i64().unwrap()).collect::<Vec<_>>()
    };
    assert_eq!(ids(h.get(&format!("/api/v1/alarms?site={}", site.id.0)).await.json), [alarm]);
    assert!(!ids(h.get("/api/v1/alarms?site=1").await.json).contains(&alarm));
    assert_eq!(h.get("/api/v1/alarms?site=999").await.status, StatusCode::NOT_FOUND);
    // The pages offer the sites once there are several.
    let orders = h.page(&format!("/orders?site={}", site.id.0), ADMIN, "en").await.text;
    assert!(
        orders.contains(r#"data-testid="order-site""#) && !orders.contains(r#"data-testid="order-row""#),
        "{orders}"
    );
    let alarms = h.page(&format!("/alarms?show=all&site={}", site.id.0), ADMIN, "en").await.text;
    assert_eq!(alarms.matches(r#"data-testid="alarm-row""#).count(), 1, "{alarms}");
    assert_eq!(h.page("/orders?site=999", ADMIN, "en").await.status, StatusCode::BAD_REQUEST);
    let reply = h.get("/api/v1/oee?shift=current").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    assert!(reply.text.contains("several sites"), "{}", reply.text);
    assert_eq!(
        h.get("/api/v1/oee?shift=current&site=1").await.json["machines"].as_array().unwrap().len(),
        11
    );
    // Without shifts a calendar works whole days: the shift is the site's day, named "".
    let day = h.get(&format!("/api/v1/oee?shift=current&site={}", site.id.0)).await.json;
    assert_eq!((&day["shift"], &day["from"]), (&json!(""), &json!("2026-11-23T16:00:00Z")), "{day}");
    // A week of holidays leaves no shift to report.
    let holidays =
        (16..=24).map(|d| time::Date::from_calendar_date(2026, time::Month::November, d).unwrap()).collect();
    h.store.set_calendar(site.id, &model::Calendar { shifts: vec![], holidays }).unwrap();
    let reply = h.get(&format!("/api/v1/oee?shift=previous&site={}", site.id.0)).await;
    assert_eq!(
        (reply.status, reply.json["field"].as_str()),
        (StatusCode::CONFLICT, Some("shift")),
        "{}",
        reply.text
    );
}

#[tokio::test]
async fn a_machine_s_oee_history_starts_at_its_first_report_ever_not_the_first_in_the_window() {
    let h = harness();
    let machines = h.get("/api/v1/machines?limit=500").await.json;
    let id = |code: &str| {
        let machine = machines["items"].as_array().unwrap().iter().find(|m| m["code"] == code).unwrap();
        model::MachineId(machine["id"].as_i64().unwrap())
    };
    let (mould, qc) = (id("imm-01"), id("qc-01"));
    // The harness site plans around the clock, in Hong Kong time; days 1 to 4 are 18 to 21 November.
    let planned = |machine: model::MachineId, day: u32| {
        let h = &h;
        async move {
            let (from, to) = (format!("2026-11-{}", 17 + day), format!("2026-11-{}", 18 + day));
            let path = format!(
                "/api/v1/oee?machine={}&from={from}T00:00:00%2B08:00&to={to}T00:00:00%2B08:00",
                machine.0
            );
            h.get(&path).await.json["total"]["planned_busy_seconds"].as_f64().unwrap()
        }
    };
    // The moulding machine first reports at 10:00 on day 3: nothing is planned before.
    let first = model::StateChange {
        machine: mould,
        at: datetime!(2026-11-20 10:00 +08:00),
        state: model::MachineState::Running,
        reason: None,
    };
    h.store.record_state(&first).unwrap();
    assert_eq!(planned(mould, 1).await, 0.0);
    assert_eq!(planned(mould, 2).await, 0.0);
    assert_eq!(planned(mould, 3).await, 14.0 * 3600.0);
    assert_eq!(planned(mould, 4).await, 86_400.0);
    // The QC cell reports counters only: 2 units at 10:00 on day 1 (30 s each, so from 09:59), and
    // 3 units early on each later day. Each later day is planned in full, not from its first
    // count's work (00:00:30).
    let rule =
        model::CountRule { good_metric: "good".into(), scrap_metric: None, ideal_unit_seconds: Some(30.0) };
    h.store.set_count_rule(qc, &rule).unwrap();
    for (at, value) in [
        (datetime!(2026-11-18 09:58 +08:00), 100.0),
        (datetime!(2026-11-18 10:00 +08:00), 102.0),
        (datetime!(2026-11-19 00:02 +08:00), 105.0),
        (datetime!(2026-11-20 00:02 +08:00), 108.0),
    ] {
        h.store.write_readings(&[model::Reading { machine: qc, metric: "good".into(), at, value }]).unwrap();
    }
    assert_eq!(planned(qc, 1).await, 14.0 * 3600.0 + 60.0);
    assert_eq!(planned(qc, 2).await, 86_400.0);
    assert_eq!(planned(qc, 3).await, 86_400.0);
}

#[tokio::test]
async fn steps_of_a_day_are_the_site_s_days() {
    let h = harness();
    // Half an hour before and after midnight in Hong Kong, the harness site's zone (UTC+8).
    let readings: Vec<model::Reading> =
        [(datetime!(2026-11-22 23:30 +08:00), 1.0), (datetime!(2026-11-23 00:30 +08:00), 100.0)]
            .into_iter()
            .map(|(at, value)| model::Reading {
                machine: model::MachineId(2),
                metric: "load".into(),
                at,
                value,
            })
            .collect();
    h.store.write_readings(&readings).unwrap();
    let days = h
        .get("/api/v1/machines/2/series?metric=load&from=2026-11-22T00:00:00%2B08:00&to=2026-11-24T00:00:00%2B08:00&step=86400")
        .await
        .json;
    let points: Vec<(&str, f64)> = days["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["ts"].as_str().unwrap(), p["avg"].as_f64().unwrap()))
        .collect();
    assert_eq!(points, [("2026-11-21T16:00:00Z", 1.0), ("2026-11-22T16:00:00Z", 100.0)], "{days}");
}

#[tokio::test]
async fn series_are_queryable_raw_and_aggregated() {
    let h = harness();
    let base = datetime!(2026-11-24 08:00 +08:00);
    let readings: Vec<model::Reading> = (0..180)
        .map(|i| model::Reading {
            machine: model::MachineId(2),
            metric: "spindle_temp_c".into(),
            at: base + time::Duration::seconds(i),
            value: 20.0 + i as f64 / 10.0,
        })
        .collect();
    h.store.write_readings(&readings).unwrap();
    let raw = h.get("/api/v1/machines/2/series?metric=spindle_temp_c&from=2026-11-24T08:00:00%2B08:00&to=2026-11-24T08:01:00%2B08:00").await;
    assert_eq!(raw.status, StatusCode::OK, "{}", raw.text);
    assert_eq!(raw.json["points"].as_array().unwrap().len(), 60);
    assert_eq!(raw.json["points"][0]["ts"], "2026-11-24T00:00:00Z");
    let per_minute = h.get("/api/v1/machines/2/series?metric=spindle_temp_c&from=2026-11-24T08:00:00%2B08:00&to=2026-11-24T08:03:00%2B08:00&step=60").await.json;
    let points = per_minute["points"].as_array().unwrap();
    assert_eq!(points.len(), 3);
    assert_eq!(points[1]["min"], 26.0);
    assert_eq!(points[1]["count"], 60);
    assert!(per_minute.get("next_from").is_none(), "{per_minute}");
    // More points than `limit`: the oldest come, and `next_from` asks for the rest.
    let path = "/api/v1/machines/2/series?metric=spindle_temp_c&to=2026-11-24T08:03:00%2B08:00&limit=100";
    let first = h.get(&format!("{path}&from=2026-11-24T08:00:00%2B08:00")).await.json;
    assert_eq!(first["points"].as_array().unwrap().len(), 100);
    assert_eq!(first["next_from"], "2026-11-24T00:01:40Z");
    let rest = h.get(&format!("{path}&from=2026-11-24T00:01:40Z")).await.json;
    assert_eq!(rest["points"].as_array().unwrap().len(), 80);
    assert_eq!(rest["points"][0]["ts"], "2026-11-24T00:01:40Z");
    assert!(rest.get("next_from").is_none(), "{rest}");
    let steps =
        "/api/v1/machines/2/series?metric=spindle_temp_c&from=2026-11-24T00:00:00Z&to=2026-11-24T00:03:00Z";
    let steps = h.get(&format!("{steps}&step=60&limit=2")).await.json;
    assert_eq!(
        (steps["points"].as_array().unwrap().len(), &steps["next_from"]),
        (2, &json!("2026-11-24T00:02:00Z"))
    );
    let names = h.get("/api/v1/machines/2/metrics").await.json;
    assert_eq!(names["metrics"], json!(["spindle_temp_c"]));
    let bad = h.get("/api/v1/machines/2/series?metric=x&step=0").await;
    assert_eq!(bad.json["field"], "step");
    assert_eq!(h.get("/api/v1/machines/2/series").await.json["field"], "metric");
    assert_eq!(h.get("/api/v1/machines/999/series?metric=x").await.status, StatusCode::NOT_FOUND);
}

/// A critical rule: `oven_c` above 80 for `seconds`, on every machine.
fn oven_above_80_for(seconds: u32) -> model::alarm::NewAlarmRule {
    model::alarm::NewAlarmRule {
        name: "Oven hot".into(),
        machine_id: None,
        site_id: None,
        metric: Some("oven_c".into()),
        condition: model::alarm::Condition::Above { threshold: 80.0 },
        for_seconds: seconds,
        deadband: 0.0,
        severity: model::alarm::Severity::Critical,
        enabled: true,
    }
}

#[tokio::test]
async fn a_delay_running_when_the_platform_stopped_still_runs_out_after_the_restart() {
    // An oven above 80 °C for a minute raises; it rose to 85 at 09:00:10 and reports only on
    // change. The platform stopped at 09:00:40 and starts again at 09:01:05 with the clock
    // manual: nothing new arrives, yet the alarm comes up once the minute from 09:00:10 is over.
    let start = NOW + time::Duration::seconds(65);
    let store = seeded_store(NOW);
    let rule = oven_above_80_for(60);
    let rule = store.create_alarm_rule(&rule).unwrap();
    let reading = |seconds: i64, value: f64| model::Reading {
        machine: model::MachineId(1),
        metric: "oven_c".into(),
        at: NOW + time::Duration::seconds(seconds),
        value,
    };
    store.write_readings(&[reading(0, 70.0), reading(10, 85.0), reading(30, 86.0)]).unwrap();
    let clock = Arc::new(ManualClock::new(start));
    let config = crate::AlarmConfig { tick_seconds: 1, ..crate::AlarmConfig::default() };
    let state = AppState::new(store.clone(), clock.clone(), ServerConfig::default(), config);
    let _workers = state.start_workers();
    let open = || {
        let filter = store::AlarmFilter { open: Some(true), ..store::AlarmFilter::default() };
        let all = store::PageRequest { after: None, limit: 100 };
        let alarms = store.alarms(&filter, all).unwrap().items;
        alarms.into_iter().filter(|a| a.rule_id == Some(rule.id)).collect::<Vec<_>>()
    };
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert!(open().is_empty(), "55 s of the minute have passed");
    clock.advance(time::Duration::seconds(10));
    let mut raised = Vec::new();
    for _ in 0..100 {
        raised = open();
        if !raised.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let [alarm] = &raised[..] else { panic!("one alarm once the minute is over: {raised:?}") };
    assert_eq!(alarm.raised_at, NOW + time::Duration::seconds(10), "from when the value rose");
    assert_eq!(alarm.value, Some(85.0));
    state.begin_stop();
}

#[tokio::test]
async fn the_alarm_worker_judges_a_site_s_rule_on_that_site_s_machines_only() {
    let h = harness();
    let workers = h.state.start_workers();
    let other = h.second_site();
    let rule = |name: &str, site: model::SiteId| {
        json!({"name": name, "metric": "oven_c", "condition": {"kind": "above", "threshold": 80.0},
               "severity": "warning", "site_id": site.0})
    };
    let here = h.post_json("/api/v1/alarm-rules", ADMIN, &rule("here", model::SiteId(1))).await;
    let there = h.post_json("/api/v1/alarm-rules", ADMIN, &rule("there", other)).await;
    assert_eq!((here.status, there.status), (StatusCode::CREATED, StatusCode::CREATED), "{}", there.text);
    // Let the worker pick up the new rules before the reading arrives.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let hot =
        vec![model::Reading { machine: model::MachineId(1), metric: "oven_c".into(), at: NOW, value: 95.0 }];
    h.store.write_readings(&hot).unwrap();
    h.state.alarm_input(crate::AlarmInput::Readings(Arc::new(hot)));
    for _ in 0..100 {
        if h.get("/api/v1/alarms?open=true").await.json["items"].as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Wait a little longer: a second alarm, from the other site's rule, would be a fault.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let raised = h.get("/api/v1/alarms?open=true").await.json["items"].as_array().unwrap().clone();
    let rules: Vec<&Value> = raised.iter().map(|alarm| &alarm["rule_id"]).collect();
    assert_eq!(rules, [&here.json["id"]], "{raised:?}");
    h.state.begin_stop();
    workers.finish().await;
}

#[tokio::test]
async fn an_alarm_worker_that_missed_inputs_catches_up_with_the_store() {
    // A rule and a hot reading reach the store but not the worker (as when its queue was full):
    // the next tick after a drop reads them from the store.
    let h = harness_with(crate::AlarmConfig { tick_seconds: 1, ..crate::AlarmConfig::default() });
    let _workers = h.state.start_workers();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let rule = oven_above_80_for(0);
    let rule = h.store.create_alarm_rule(&rule).unwrap();
    let hot = model::Reading { machine: model::MachineId(1), metric: "oven_c".into(), at: NOW, value: 95.0 };
    h.store.write_readings(&[hot]).unwrap();
    let open = || {
        let filter = store::AlarmFilter { open: Some(true), ..store::AlarmFilter::default() };
        let alarms = h.store.alarms(&filter, store::PageRequest { after: None, limit: 100 }).unwrap().items;
        alarms.into_iter().filter(|a| a.rule_id == Some(rule.id)).count()
    };
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(open(), 0, "nothing was lost yet, so nothing is read again");
    h.state.metrics.count_dropped_alarm_input();
    let mut raised = 0;
    for _ in 0..60 {
        raised = open();
        if raised > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(raised, 1);
    h.state.begin_stop();
}

#[tokio::test]
async fn alarms_are_raised_streamed_acknowledged_cleared_and_posted_to_webhooks() {
    // A webhook receiver on a free port that records every body it is sent.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/alarms", listener.local_addr().unwrap());
    let (bodies_tx, mut bodies) = tokio::sync::mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buffer = [0u8; 4096];
            loop {
                let n = socket.read(&mut buffer).await.unwrap();
                request.extend_from_slice(&buffer[..n]);
                let text = String::from_utf8_lossy(&request);
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("Content-Length: "))
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    if body.len() >= length {
                        // Signed with the shared secret over the timestamp and the body.
                        let header = |name: &str| {
                            head.lines().find_map(|l| l.strip_prefix(name)).unwrap_or_default().to_string()
                        };
                        let timestamp: i64 = header("X-Microfactory-Timestamp: ").parse().unwrap_or(0);
                        let expected = crate::webhook::signature(
                            &crate::webhook::Secret::new("a secret the receiver shares"),
                            timestamp,
                            body.as_bytes(),
                        );
                        let signed = header("X-Microfactory-Signature: ") == expected;
                        bodies_tx
                            .send(if signed { body.to_string() } else { format!("unsigned: {head}") })
                            .unwrap();
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            socket.write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n").await.unwrap();
        }
    });

    let now = NOW;
    let secret = Some(crate::webhook::Secret::new("a secret the receiver shares"));
    let h =
        harness_with(crate::AlarmConfig { webhooks: vec![hook], tick_seconds: 1, webhook_secret: secret });
    let _workers = h.state.start_workers();

    // Open the live stream before anything happens.
    let request = Request::builder()
        .uri("/api/v1/stream")
        .header("authorization", format!("Bearer {ADMIN}"))
        .header("accept-encoding", "gzip")
        .body(Body::empty())
        .unwrap();
    let response = h.app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    // A stream goes as it is, event by event.
    assert!(response.headers().get("content-encoding").is_none());
    let mut stream = response.into_body().into_data_stream();

    let rule = json!({"name": "Over-temperature", "metric": "temperature_c", "condition": {"kind": "above", "threshold": 80.0},
                      "for_seconds": 0, "severity": "warning"});
    let created = h.post_json("/api/v1/alarm-rules", ADMIN, &rule).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let viewer = h.post_json("/api/v1/alarm-rules", &token_for(Role::Viewer), &rule).await;
    assert_eq!(viewer.status, StatusCode::FORBIDDEN);
    let bad = json!({"name": "x", "condition": {"kind": "above", "threshold": 1.0}, "severity": "warning"});
    assert_eq!(h.post_json("/api/v1/alarm-rules", ADMIN, &bad).await.json["field"], "metric");
    let bad = json!({"name": "x", "metric": "t", "condition": {"kind": "stale", "seconds": 60}, "deadband": 2.0,
                     "severity": "info"});
    let refused = h.post_json("/api/v1/alarm-rules", ADMIN, &bad).await;
    assert_eq!(
        (refused.status, &refused.json["field"]),
        (StatusCode::UNPROCESSABLE_ENTITY, &json!("deadband"))
    );
    // Let the worker pick up the new rule before the reading arrives.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    let hot = vec![model::Reading {
        machine: model::MachineId(1),
        metric: "temperature_c".into(),
        at: now,
        value: 93.5,
    }];
    h.store.write_readings(&hot).unwrap();
    h.state.alarm_input(crate::AlarmInput::Readings(Arc::new(hot)));

    let frame =
        tokio::time::timeout(std::time::Duration::from_secs(10), futures_util::StreamExt::next(&mut stream))
            .await
            .expect("an alarm event on the stream")
            .unwrap()
            .unwrap();
    let frame = String::from_utf8_lossy(&frame).into_owned();
    assert!(frame.starts_with("id: ") && frame.contains("\nevent: alarm\n"), "{frame}");
    assert!(frame.contains("Over-temperature: temperature_c = 93.5 above 80"), "{frame}");

    let open = h.get("/api/v1/alarms?open=true").await.json;
    let alarm = &open["items"][0];
    assert_eq!(alarm["status"], "active");
    assert_eq!(alarm["severity"], "warning");
    // Listed by severity too.
    let count = |json: Value| json["items"].as_array().map(Vec::len);
    assert_eq!(count(h.get("/api/v1/alarms?severity=warning").await.json), Some(1));
    assert_eq!(count(h.get("/api/v1/alarms?severity=critical").await.json), Some(0));
    assert_eq!(h.get("/api/v1/alarms?severity=loud").await.status, StatusCode::BAD_REQUEST);
    let page = h.page("/alarms?severity=critical", ADMIN, "en").await.text;
    assert!(
        page.contains(r#"<option value="critical" selected>Critical</option>"#)
            && !page.contains("data-alarm-id"),
        "{page}"
    );
    let metrics = h.send("GET", "/metrics", Some(ADMIN), None).await.text;
    for line in ["{severity=\"warning\"} 1", "{severity=\"critical\"} 0", "{severity=\"info\"} 0"] {
        assert!(metrics.contains(&format!("microfactory_alarms_open{line}")), "{line}: {metrics}");
    }
    let id = alarm["id"].as_i64().unwrap();
    let path = format!("/api/v1/alarms/{id}/acknowledge");
    assert_eq!(
        h.send("POST", &path, Some(&token_for(Role::Viewer)), None).await.status,
        StatusCode::FORBIDDEN
    );
    // An optional note of what was found and done; anything else in the body is refused.
    let operator = token_for(Role::Operator);
    let refused = h.post_json(&path, &operator, &json!({"comment": "checked seals"})).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.text);
    let refused = h.post_json(&path, &operator, &json!({"note": "x".repeat(1001)})).await;
    assert_eq!(
        (refused.status, refused.json["errors"][0]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("note"))
    );
    let acked =
        h.post_json(&path, &operator, &json!({"note": " Coolant low: topped up.\nPump checked. "})).await;
    assert_eq!(acked.status, StatusCode::OK, "{}", acked.text);
    assert_eq!(acked.json["acknowledged_by"], "operator");
    assert_eq!(acked.json["note"], "Coolant low: topped up.\nPump checked.");
    assert_eq!(h.send("POST", &path, Some(ADMIN), None).await.status, StatusCode::CONFLICT);

    let cool = vec![model::Reading {
        machine: model::MachineId(1),
        metric: "temperature_c".into(),
        at: now + time::Duration::seconds(5),
        value: 60.0,
    }];
    h.state.alarm_input(crate::AlarmInput::Readings(Arc::new(cool)));
    let webhook =
        tokio::time::timeout(std::time::Duration::from_secs(10), bodies.recv()).await.unwrap().unwrap();
    assert!(webhook.contains("\"status\":\"active\""), "{webhook}");
    // The acknowledgement is a change receivers hear of too.
    let acknowledged =
        tokio::time::timeout(std::time::Duration::from_secs(10), bodies.recv()).await.unwrap().unwrap();
    assert!(acknowledged.contains("\"acknowledged_by\":\"operator\""), "{acknowledged}");
    let cleared =
        tokio::time::timeout(std::time::Duration::from_secs(10), bodies.recv()).await.unwrap().unwrap();
    assert!(cleared.contains("\"status\":\"cleared\""), "{cleared}");
    // Each delivery is counted on /metrics, beside the outcomes that did not happen, at 0.
    let family = "microfactory_webhook_notifications_total";
    let mut metrics = String::new();
    for _ in 0..100 {
        metrics = h.send("GET", "/metrics", Some(ADMIN), None).await.text;
        if metrics.contains(&format!("{family}{{outcome=\"delivered\"}} 3")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    for line in ["{outcome=\"delivered\"} 3", "{outcome=\"given_up\"} 0", "{outcome=\"dropped\"} 0"] {
        assert!(metrics.contains(&format!("{family}{line}")), "{line}: {metrics}");
    }
    assert!(
        metrics.contains("microfactory_alarms_open{severity=\"warning\"} 0"),
        "seen and cleared: {metrics}"
    );
    let history = h.get("/api/v1/alarms?status=cleared").await.json;
    assert_eq!(history["items"].as_array().unwrap().len(), 1);
    h.state.begin_stop();
}

#[tokio::test]
async fn health_says_so_when_only_api_writes_fail() {
    let h = harness();
    h.store.simulate_full_disk(true).unwrap();
    let order = |i: usize| json!({"number": format!("FULL-{i:04}-{}", "x".repeat(40)), "customer": "c".repeat(150), "variant_id": 1, "quantity": 1, "due": "2026-12-01T18:00:00+08:00"});
    let mut refused = None;
    for i in 0..300 {
        let reply = h.post_json("/api/v1/orders", ADMIN, &order(i)).await;
        if reply.status != StatusCode::CREATED {
            refused = Some(reply);
            break;
        }
    }
    let refused = refused.expect("the full disk took every order");
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE, "{}", refused.text);
    // No telemetry came in, so ingest has nothing to fail on: the API's failure is what counts.
    let health = h.send("GET", "/healthz", None, None).await;
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE, "{}", health.text);
    h.store.simulate_full_disk(false).unwrap();
    assert_eq!(h.post_json("/api/v1/orders", ADMIN, &order(999)).await.status, StatusCode::CREATED);
    assert_eq!(h.send("GET", "/healthz", None, None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_second_value_at_a_millisecond_a_series_has_one_at_is_counted_not_lost_unseen() {
    let h = harness();
    let workers = h.state.start_workers();
    let planner = token_for(Role::Planner);
    let rule = json!({"name": "Dup high", "metric": "dup", "condition": {"kind": "above", "threshold": 50.0}, "severity": "warning"});
    let created = h.post_json("/api/v1/alarm-rules", &planner, &rule).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    // A gateway that stamps whole seconds sends two values in one second.
    for value in [1.0, 99.0] {
        let payload = json!({"ts": "2026-11-24T08:59:00+08:00", "metrics": {"dup": value}}).to_string();
        let stored = h.publish("mf/v1/hk-kt/cnc-01/telemetry", payload.into_bytes()).await;
        tokio::time::timeout(std::time::Duration::from_secs(10), stored).await.unwrap().unwrap();
    }
    let text = h.state.metrics.render(&[], &[]);
    assert!(text.contains(r#"microfactory_ingest_skipped_total{reason="same_millisecond"} 1"#), "{text}");
    // The value not stored raises no alarm either: alarms judge what the history shows.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let alarms = h.get("/api/v1/alarms?open=true").await.json;
    let dup = alarms["items"].as_array().unwrap().iter().filter(|a| a["cause"]["metric"] == "dup").count();
    assert_eq!(dup, 0, "{alarms}");
    h.state.begin_stop();
    workers.finish().await;
}

#[tokio::test]
async fn a_full_disk_holds_back_mqtt_acknowledgements_until_the_batch_is_written() {
    let h = harness();
    let workers = h.state.start_workers();
    h.store.simulate_full_disk(true).unwrap();
    // Two hundred new series with long names need new pages, which the full disk refuses.
    let metrics: serde_json::Map<String, Value> =
        (0..200).map(|i| (format!("{:0>100}", i), json!(i as f64))).collect();
    let payload = json!({"ts": "2026-11-24T08:59:00+08:00", "metrics": metrics}).to_string();
    let mut released = h.publish("mf/v1/hk-kt/cnc-01/telemetry", payload.into_bytes()).await;
    let failures = || {
        h.state.metrics.render(&[], &[]).lines().find_map(|line| {
            line.strip_prefix("microfactory_ingest_write_failures_total ").map(|n| n.parse::<u64>().unwrap())
        })
    };
    for _ in 0..200 {
        if failures() >= Some(1) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(failures() >= Some(1), "the batch's write did not fail");
    // An HTTP ingest meanwhile is told at once that the store is not taking writes.
    let one = json!([{"site": "hk-kt", "machine": "cnc-02", "ts": "2026-11-24T08:59:00+08:00", "metrics": {"x": 1}}]);
    let reply = h.post_json("/api/v1/telemetry", ADMIN, &one).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{}", reply.text);
    assert!(reply.json["detail"].as_str().unwrap().contains("retry later"), "{}", reply.text);
    // Health says so; an API write is told the store cannot write (503), not an internal error.
    let health = h.send("GET", "/healthz", None, None).await;
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE, "{}", health.text);
    let many: Vec<Value> = (0..300)
        .map(|i| json!({"number": format!("FULL-{i:04}-{}", "x".repeat(40)), "customer": "c".repeat(150), "variant_id": 1, "quantity": 1, "due": "2026-12-01T18:00:00+08:00"}))
        .collect();
    let mut refused = None;
    for order in &many {
        let reply = h.post_json("/api/v1/orders", ADMIN, order).await;
        if reply.status != StatusCode::CREATED {
            refused = Some(reply);
            break;
        }
    }
    let refused = refused.expect("the full disk took every order");
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE, "{}", refused.text);
    assert!(refused.json["detail"].as_str().unwrap().contains("cannot write now"), "{}", refused.text);
    // The MQTT message is not acknowledged while its batch is not stored.
    assert!(matches!(released.try_recv(), Err(tokio::sync::oneshot::error::TryRecvError::Empty)));
    let count = |h: &Harness| h.store.metrics(model::MachineId(1)).unwrap().len();
    assert_eq!(count(&h), 0);

    // Room again: the held batch is written on its next attempt, and only then acknowledged.
    h.store.simulate_full_disk(false).unwrap();
    let released = tokio::time::timeout(std::time::Duration::from_secs(10), released).await;
    assert!(matches!(released, Ok(Ok(()))), "the receipt was not released after the disk had room again");
    assert_eq!(count(&h), 200);
    assert_eq!(h.send("GET", "/healthz", None, None).await.status, StatusCode::OK);
    h.state.begin_stop();
    workers.finish().await;
}

#[tokio::test]
async fn reported_times_must_be_recent_and_not_ahead_of_the_clock() {
    let h = harness();
    let operator = token_for(Role::Operator);
    // The window of machines' own messages: five minutes ahead of `NOW` to seven days back.
    for (at, ok) in [
        ("2100-01-01T00:00:00Z", false),
        ("2026-11-24T09:06:00+08:00", false),
        ("2026-11-24T09:04:00+08:00", true),
        ("2026-11-17T09:01:00+08:00", true),
        ("2026-11-17T08:59:00+08:00", false),
        ("1971-01-01T00:00:00Z", false),
    ] {
        let state =
            h.post_json("/api/v1/machines/2/states", &operator, &json!({"state": "idle", "at": at})).await;
        let units = json!({"good": 1, "ideal_unit_seconds": 10, "at": at});
        let production = h.post_json("/api/v1/machines/2/production", &operator, &units).await;
        for reply in [state, production] {
            if ok {
                assert_eq!(reply.status, StatusCode::CREATED, "{at}: {}", reply.text);
            } else {
                assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{at}: {}", reply.text);
                assert_eq!(reply.json["field"], "at", "{}", reply.text);
            }
        }
    }
    let current = h.get("/api/v1/machine-states").await.json;
    assert_eq!(current[0]["since"], "2026-11-24T01:04:00Z", "no state from the future took over");
    // As epoch milliseconds too, as machines' own messages give their times.
    let ms = (NOW.unix_timestamp() + 270) * 1000;
    let state =
        h.post_json("/api/v1/machines/2/states", &operator, &json!({"state": "running", "at": ms})).await;
    assert_eq!(state.status, StatusCode::CREATED, "{}", state.text);
    let current = h.get("/api/v1/machine-states").await.json;
    assert_eq!(current[0]["since"], "2026-11-24T01:04:30Z");
    for wrong in [json!("yesterday"), json!(1.5), json!(true)] {
        let reply =
            h.post_json("/api/v1/machines/2/states", &operator, &json!({"state": "idle", "at": wrong})).await;
        assert!(reply.status.is_client_error(), "{wrong}: {}", reply.text);
        assert_eq!(reply.json["field"], "at", "{}", reply.text);
    }
}

#[tokio::test]
async fn a_stop_entered_after_the_fact_is_history_not_news() {
    let h = harness();
    let operator = token_for(Role::Operator);
    let report = |body: Value| {
        let operator = operator.clone();
        let h = &h;
        async move { h.post_json("/api/v1/machines/2/states", &operator, &body).await }
    };
    let idle = report(json!({"state": "idle", "at": "2026-11-24T08:30:00+08:00"})).await;
    assert_eq!(idle.status, StatusCode::CREATED, "{}", idle.text);
    let mut live = h.state.live.subscribe();
    // A breakdown from 08:00 to the idle at 08:30, entered at 09:00.
    let late =
        report(json!({"state": "down", "reason": "breakdown", "at": "2026-11-24T08:00:00+08:00"})).await;
    assert_eq!(late.status, StatusCode::CREATED, "{}", late.text);
    assert_eq!(
        (late.json["state"].as_str(), late.json["since"].as_str()),
        (Some("idle"), Some("2026-11-24T00:30:00Z")),
        "the state now"
    );
    assert!(
        live.try_recv().is_err(),
        "no live event: the machine is not down now, so nothing repairs the plan"
    );
    let spans = h
        .get("/api/v1/machines/2/states?from=2026-11-24T07:00:00%2B08:00&to=2026-11-24T09:00:00%2B08:00")
        .await;
    assert!(spans.text.contains("breakdown"), "in the history: {}", spans.text);
    // A report of the state now is news as before.
    let now = report(json!({"state": "down", "reason": "breakdown"})).await;
    assert_eq!(now.json["state"], "down");
    assert!(matches!(
        live.try_recv().map(crate::Stamped::into_event),
        Ok(crate::LiveEvent::MachineState { state: model::MachineState::Down, .. })
    ));
}

#[tokio::test]
async fn a_unit_longer_than_any_shift_is_noted_on_the_plan() {
    let h = harness();
    let days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let day = json!({"shifts": [{"name": "day", "days": days, "start": "08:00", "end": "16:00"}]});
    assert_eq!(h.send_json("PUT", "/api/v1/sites/1/calendar", ADMIN, &day).await.status, StatusCode::OK);
    let plain = h.post_json("/api/v1/plans", ADMIN, &json!({"time_limit_seconds": 0})).await;
    assert_eq!(plain.json["notes"], json!([]), "{}", plain.text);
    // A curing step of 9 hours a unit, on a machine that works 8 hours a day.
    let step = json!({"name": "cure", "eligible_machines": [1], "setup_seconds": 0, "unit_seconds": 32400,
                      "setup_family": "cure"});
    let h = &h;
    let created = |path: &'static str, body: Value| async move {
        let reply = h.post_json(path, ADMIN, &body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{path}: {}", reply.text);
        reply.json["id"].as_i64().unwrap()
    };
    let routing = created("/api/v1/routings", json!({"code": "cure", "name": "Cure", "steps": [step]})).await;
    let product =
        created("/api/v1/products", json!({"code": "resin", "name": "Resin part", "family": "resin"})).await;
    let variant = created(
        "/api/v1/variants",
        json!({"product_id": product, "code": "resin-a", "name": "Resin A", "routing_id": routing}),
    )
    .await;
    let due = crate::rfc3339(NOW + time::Duration::days(30));
    let order = created(
        "/api/v1/orders",
        json!({"number": "SO-CURE", "customer": "Resin Ltd", "variant_id": variant, "quantity": 2, "due": due}),
    )
    .await;
    let released = h.send("POST", &format!("/api/v1/orders/{order}/release"), Some(ADMIN), None).await;
    assert_eq!(released.status, StatusCode::OK, "{}", released.text);
    let plan = h.post_json("/api/v1/plans", ADMIN, &json!({"time_limit_seconds": 0})).await;
    assert_eq!(plan.status, StatusCode::CREATED, "{}", plan.text);
    let notes = plan.json["notes"].as_array().unwrap();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0]["kind"], "longer_than_shifts");
    assert_eq!(notes[0]["order_number"], "SO-CURE");
    assert_eq!(
        (notes[0]["needs_seconds"].as_i64(), notes[0]["longest_open_seconds"].as_i64()),
        (Some(32400), Some(28800))
    );
    // Kept with the plan, and said on its page in both languages.
    let id = plan.json["id"].as_i64().unwrap();
    assert_eq!(h.get(&format!("/api/v1/plans/{id}")).await.json["notes"], plan.json["notes"]);
    let page = h.page(&format!("/plan?id={id}"), ADMIN, "en").await.text;
    assert!(
        page.contains("Order SO-CURE, step “cure”: one unit with its setup takes 9 h 00 min, but its machines never work longer than 8 h 00 min without a break."),
        "{page}"
    );
    let zh = h.page(&format!("/plan?id={id}"), ADMIN, "zh-HK").await.text;
    assert!(zh.contains("班次容納不了的工作") && zh.contains("一件連換線需時 9 小時"), "{zh}");
}

#[tokio::test]
async fn plan_utilisation_is_against_the_machines_open_time() {
    let h = harness();
    // One day shift every day, and a maintenance window on machine 1.
    let days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let day = json!({"shifts": [{"name": "day", "days": days, "start": "08:00", "end": "16:00"}]});
    assert_eq!(h.send_json("PUT", "/api/v1/sites/1/calendar", ADMIN, &day).await.status, StatusCode::OK);
    let window =
        json!({"start": "2026-11-25T08:00:00+08:00", "end": "2026-11-25T12:00:00+08:00", "reason": "oil"});
    assert_eq!(
        h.post_json("/api/v1/machines/1/maintenance", ADMIN, &window).await.status,
        StatusCode::CREATED
    );
    let plan = publish_a_plan(&h).await;
    let detail = h.get(&format!("/api/v1/plans/{plan}")).await.json;
    let span = {
        let at = |key: &str| {
            time::OffsetDateTime::parse(
                detail[key].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap()
        };
        (at("makespan_end") - at("created_at")).whole_seconds()
    };
    assert!(span > 2 * 86_400, "a plan over days: {span} s");
    for u in detail["utilisation"].as_array().unwrap() {
        let (busy, open) = (u["busy_seconds"].as_i64().unwrap(), u["open_seconds"].as_i64().unwrap());
        // A third of each day at most is open, less the maintenance on machine 1.
        assert!(open <= span / 3 + 8 * 3600, "{u}");
        if u["machine_id"] == 1 {
            assert!(open <= span / 3 + 4 * 3600, "{u}");
        }
        let expected = (busy as f64 / open as f64).min(1.0);
        assert!((u["utilisation"].as_f64().unwrap() - expected).abs() < 1e-9, "{u}");
    }
}

#[tokio::test]
async fn a_machine_with_a_history_is_deleted_only_with_it() {
    let h = harness();
    let machine = json!({"site_id": 1, "code": "tmp-1", "name": "Temporary", "kind": "other"});
    let id = h.post_json("/api/v1/machines", ADMIN, &machine).await.json["id"].as_i64().unwrap();
    let state = json!({"state": "down", "reason": "jam"});
    assert_eq!(
        h.post_json(&format!("/api/v1/machines/{id}/states"), ADMIN, &state).await.status,
        StatusCode::CREATED
    );
    let units = json!({"good": 3, "ideal_unit_seconds": 10});
    assert_eq!(
        h.post_json(&format!("/api/v1/machines/{id}/production"), ADMIN, &units).await.status,
        StatusCode::CREATED
    );
    let refused = h.send("DELETE", &format!("/api/v1/machines/{id}"), Some(ADMIN), None).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    assert!(refused.text.contains("1 state change, 1 count of units"), "{}", refused.text);
    assert_eq!(h.get(&format!("/api/v1/machines/{id}/states")).await.status, StatusCode::OK);
    let path = format!("/api/v1/machines/{id}?with_history=true");
    assert_eq!(h.send("DELETE", &path, Some(ADMIN), None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(h.get(&format!("/api/v1/machines/{id}")).await.status, StatusCode::NOT_FOUND);
    // Order operations on record keep a machine, and the answer says what to do instead.
    let refused = h.send("DELETE", "/api/v1/machines/1?with_history=true", Some(ADMIN), None).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    assert!(
        refused.text.contains("order operation") && refused.text.contains("retired instead"),
        "{}",
        refused.text
    );
    // Without a history, as before.
    let machine = json!({"site_id": 1, "code": "tmp-2", "name": "Typo", "kind": "other"});
    let id = h.post_json("/api/v1/machines", ADMIN, &machine).await.json["id"].as_i64().unwrap();
    assert_eq!(
        h.send("DELETE", &format!("/api/v1/machines/{id}"), Some(ADMIN), None).await.status,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn maintenance_is_planned_stop_time_in_oee() {
    let h = harness();
    // Idle for the last four hours (around the clock: the harness site's three shifts).
    let idle = model::StateChange {
        machine: model::MachineId(3),
        at: NOW - time::Duration::hours(4),
        state: model::MachineState::Idle,
        reason: None,
    };
    h.store.record_state(&idle).unwrap();
    let period = "from=2026-11-24T05:00:00%2B08:00&to=2026-11-24T09:00:00%2B08:00";
    let busy = |oee: &Value| oee["total"]["planned_busy_seconds"].as_f64().unwrap();
    let before = h.get(&format!("/api/v1/oee?machine=3&{period}")).await.json;
    // Planned ahead (a window may not be entered once it has begun: it would turn what the
    // machine reported into planned time after the fact).
    let window = |start: i64, end: i64| model::NewMaintenanceWindow {
        start: NOW - time::Duration::hours(start),
        end: NOW - time::Duration::hours(end),
        reason: "calibration".into(),
    };
    let entered = NOW - time::Duration::hours(5);
    h.store.create_maintenance(model::MachineId(3), &window(2, 1), entered).unwrap();
    let after = h.get(&format!("/api/v1/oee?machine=3&{period}")).await.json;
    assert_eq!(busy(&before) - busy(&after), 3600.0, "{before} {after}");
    // A window the machine ran through (a lot ran on into it) did not take place while it ran:
    // that time stays planned, and the units made in it count.
    h.store.create_maintenance(model::MachineId(3), &window(4, 3), entered).unwrap();
    let at = |minutes: i64| NOW - time::Duration::minutes(minutes);
    let running = model::StateChange { state: model::MachineState::Running, at: at(230), ..idle.clone() };
    let stop = model::StateChange { at: at(190), ..idle };
    h.store.record_state(&running).unwrap();
    h.store.record_state(&stop).unwrap();
    let units = model::ProductionRecord {
        machine: model::MachineId(3),
        at: at(200),
        operation: None,
        good: 4,
        scrap: 0,
        ideal_unit_seconds: 60.0,
        scrap_reason: None,
    };
    h.store.write_batch(&[], &[], &[units], &[]).unwrap();
    let ran = h.get(&format!("/api/v1/oee?machine=3&{period}")).await.json;
    assert_eq!(busy(&before) - busy(&ran), 3600.0 + 3600.0 - 40.0 * 60.0, "{ran}");
    assert_eq!(ran["total"]["good"], 4, "{ran}");
}

#[test]
fn topics_name_the_machine_that_has_the_code_now() {
    let store = Store::open_in_memory().unwrap();
    let site = store
        .create_site(&model::NewSite {
            code: "hk".into(),
            name: "HK".into(),
            utc_offset: None,
            time_zone: None,
        })
        .unwrap();
    let machine = |code: &str| model::NewMachine {
        site_id: site.id,
        line_id: None,
        code: code.into(),
        name: code.into(),
        kind: model::MachineKind::CncMill,
        capabilities: vec![],
        rated_power_kw: 0.0,
        retired: None,
    };
    let first = store.create_machine(&machine("a"), NOW).unwrap().id;
    let mut resolver = crate::pipeline::Resolver::new();
    let key = |code: &str| ingest::MachineKey::new("hk", code);
    let found = |resolver: &mut crate::pipeline::Resolver, code: &str| {
        resolver.resolve(&store, &key(code)).map(|r| r.0)
    };
    assert_eq!(found(&mut resolver, "a"), Some(first));
    // Renamed, and its old code given to a new machine: the old code names the new one at once.
    store.update_machine(first, &machine("b"), NOW).unwrap();
    let second = store.create_machine(&machine("a"), NOW).unwrap().id;
    assert_eq!((found(&mut resolver, "a"), found(&mut resolver, "b")), (Some(second), Some(first)));
    // Swapped codes (by way of a third), and a deleted machine.
    store.update_machine(first, &machine("c"), NOW).unwrap();
    store.update_machine(second, &machine("b"), NOW).unwrap();
    store.update_machine(first, &machine("a"), NOW).unwrap();
    assert_eq!((found(&mut resolver, "a"), found(&mut resolver, "b")), (Some(first), Some(second)));
    store.delete_machine(second, false).unwrap();
    assert_eq!(found(&mut resolver, "b"), None);
}

#[tokio::test]
async fn a_production_report_sent_again_counts_once() {
    let h = harness();
    let workers = h.state.start_workers();
    let operator = token_for(Role::Operator);
    let (_, operation) = h.first_released_operation().await;
    let (id, machine) =
        (operation["id"].as_i64().unwrap(), operation["eligible_machines"][0].as_i64().unwrap());
    let path = format!("/api/v1/machines/{machine}/production");
    let at = "2026-11-24T08:59:00+08:00";
    let units = json!({"good": 4, "scrap": 1, "operation_id": id, "at": at});
    let free = json!({"good": 2, "ideal_unit_seconds": 10, "at": at});
    // A client retrying after a timeout sends each report again.
    for _ in 0..2 {
        for report in [&units, &free] {
            let reply = h.post_json(&path, &operator, report).await;
            assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        }
    }
    let counted = h.store.operation(model::OperationId(id)).unwrap();
    assert_eq!((counted.good, counted.scrap), (4, 1));
    let oee = h.get(&format!("/api/v1/oee?machine={machine}")).await.json;
    assert_eq!((&oee["total"]["good"], &oee["total"]["scrap"]), (&json!(6), &json!(1)), "{oee}");
    // Another report at another time counts.
    let later = json!({"good": 4, "scrap": 1, "operation_id": id, "at": "2026-11-24T09:00:00+08:00"});
    assert_eq!(h.post_json(&path, &operator, &later).await.status, StatusCode::CREATED);
    assert_eq!(h.store.operation(model::OperationId(id)).unwrap().good, 8);
    // Reports without `at` in the same instant (the test's clock stands still) are no retries:
    // each counts, with a time of its own.
    for _ in 0..5 {
        let plain = json!({"good": 1, "operation_id": id});
        assert_eq!(h.post_json(&path, &operator, &plain).await.status, StatusCode::CREATED);
        let free = json!({"good": 1, "ideal_unit_seconds": 10});
        assert_eq!(h.post_json(&path, &operator, &free).await.status, StatusCode::CREATED);
    }
    assert_eq!(h.store.operation(model::OperationId(id)).unwrap().good, 13);
    let records = h.store.production(model::MachineId(machine), 0, i64::MAX).unwrap();
    assert_eq!(records.iter().filter(|r| r.operation.is_none()).map(|r| r.good).sum::<u32>(), 2 + 5);
    h.state.begin_stop();
    workers.finish().await;
}

/// The live stream's frames from `last_event_id` on (none: from now).
async fn open_stream(
    h: &Harness,
    last_event_id: Option<&str>,
) -> impl futures_util::Stream<Item = Result<axum::body::Bytes, axum::Error>> + Unpin {
    let mut request =
        Request::builder().uri("/api/v1/stream").header("authorization", format!("Bearer {ADMIN}"));
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    let response = h.app.clone().oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.into_body().into_data_stream()
}

/// The next event of a stream (keep-alive comments skipped) as its `id`, `event` and `data`.
async fn next_event(
    stream: &mut (impl futures_util::Stream<Item = Result<axum::body::Bytes, axum::Error>> + Unpin),
) -> (String, String, String) {
    loop {
        let frame =
            tokio::time::timeout(std::time::Duration::from_secs(10), futures_util::StreamExt::next(stream))
                .await
                .expect("an event within 10 s")
                .expect("the stream goes on")
                .unwrap();
        let frame = String::from_utf8_lossy(&frame).into_owned();
        let field = |name: &str| {
            frame.lines().find_map(|line| line.strip_prefix(name)).map_or_else(String::new, str::to_owned)
        };
        if !field("event: ").is_empty() {
            return (field("id: "), field("event: "), field("data: "));
        }
    }
}

#[tokio::test]
async fn the_stream_numbers_its_events_and_a_client_back_gets_what_it_missed() {
    let h = harness();
    let workers = h.state.start_workers();
    let operator = token_for(Role::Operator);
    let (order, operation) = h.first_released_operation().await;
    let (id, machine) =
        (operation["id"].as_i64().unwrap(), operation["eligible_machines"][0].as_i64().unwrap());
    let path = format!("/api/v1/machines/{machine}/production");
    let mut stream = open_stream(&h, None).await;
    let units = json!({"good": 4, "scrap": 1, "operation_id": id, "at": "2026-11-24T08:59:00+08:00"});
    for _ in 0..2 {
        assert_eq!(h.post_json(&path, &operator, &units).await.status, StatusCode::CREATED);
    }
    let (first_id, kind, data) = next_event(&mut stream).await;
    assert_eq!(kind, "production");
    let event: Value = serde_json::from_str(&data).unwrap();
    assert_eq!(
        (&event["machine_id"], &event["operation_id"], &event["order_id"], &event["good"], &event["scrap"]),
        (&json!(machine), &json!(id), &order["id"], &json!(4), &json!(1)),
        "{data}"
    );
    // The client goes away; meanwhile more happens. The retry above was no news.
    drop(stream);
    let free = json!({"good": 2, "ideal_unit_seconds": 10, "at": "2026-11-24T09:00:00+08:00"});
    for _ in 0..2 {
        assert_eq!(h.post_json(&path, &operator, &free).await.status, StatusCode::CREATED);
    }
    let more = json!({"good": 1, "operation_id": id, "at": "2026-11-24T09:01:00+08:00"});
    assert_eq!(h.post_json(&path, &operator, &more).await.status, StatusCode::CREATED);
    // Back with the id of the last event it had, it gets the two it missed, in order, then news.
    let mut back = open_stream(&h, Some(&first_id)).await;
    let (run, seq) = first_id.split_once('-').unwrap();
    let seq: u64 = seq.parse().unwrap();
    let missed = [next_event(&mut back).await, next_event(&mut back).await];
    assert_eq!(missed[0].0, format!("{run}-{}", seq + 1));
    assert_eq!(missed[1].0, format!("{run}-{}", seq + 2));
    assert!(missed[0].2.contains("\"good\":2") && !missed[0].2.contains("operation_id"), "{:?}", missed[0]);
    assert!(missed[1].2.contains(&format!("\"operation_id\":{id}")), "{:?}", missed[1]);
    let last = json!({"good": 1, "operation_id": id, "at": "2026-11-24T09:02:00+08:00"});
    assert_eq!(h.post_json(&path, &operator, &last).await.status, StatusCode::CREATED);
    assert_eq!(next_event(&mut back).await.0, format!("{run}-{}", seq + 3));
    // An id of another run of the server (or garbage) cannot be resumed: the client is told it
    // missed an unknown number of events, and reloads what it shows.
    for stale in ["1-5", "nonsense", &format!("{run}-{}", seq + 1000)] {
        let mut other = open_stream(&h, Some(stale)).await;
        assert_eq!(
            next_event(&mut other).await,
            (String::new(), "lagged".into(), "unknown".into()),
            "{stale}"
        );
    }
    h.state.begin_stop();
    workers.finish().await;
}

#[tokio::test]
async fn units_counted_while_a_lot_runs_show_in_oee_before_the_lot_ends() {
    let h = harness();
    let workers = h.state.start_workers();
    let (order, operation) = h.first_released_operation().await;
    let (order, operation) = (order["id"].as_i64().unwrap(), operation["id"].as_i64().unwrap());
    // cnc-03 runs from 08:00 and counts 40 units at an ideal 81 s by 08:55; the lot is not done.
    let events = json!([
        {"ts": "2026-11-24T08:00:00+08:00", "type": "state", "state": "running"},
        {"ts": "2026-11-24T08:30:00+08:00", "type": "produced", "operation_id": operation, "good": 20, "ideal_unit_seconds": 81},
        {"ts": "2026-11-24T08:55:00+08:00", "type": "produced", "operation_id": operation, "good": 18, "scrap": 2, "ideal_unit_seconds": 81},
    ]);
    let written = h.publish("mf/v1/hk-kt/cnc-03/events", events.to_string().into_bytes()).await;
    // The receipt is released (its sender dropped) once the batch is stored.
    let stored = tokio::time::timeout(std::time::Duration::from_secs(10), written).await;
    assert!(stored.is_ok(), "the events were not stored");
    let oee =
        h.get("/api/v1/oee?machine=3&from=2026-11-24T08:00:00%2B08:00&to=2026-11-24T09:00:00%2B08:00").await;
    assert_eq!(oee.status, StatusCode::OK, "{}", oee.text);
    let total = &oee.json["total"];
    // 40 units × 81 s = 3,240 s of ideal time in an hour of running: performance 0.9.
    assert_eq!(total["actual_production_seconds"], 3_600.0, "{total}");
    assert!((total["effectiveness"].as_f64().unwrap() - 0.9).abs() < 1e-9, "{total}");
    assert_eq!(total["quality"], 0.95, "{total}");
    let detail = h.get(&format!("/api/v1/orders/{order}")).await.json;
    let first = &detail["operations"][0];
    assert_eq!(
        (&first["status"], &first["good"], &first["scrap"]),
        (&json!("running"), &json!(38), &json!(2))
    );
    assert_eq!(first["machine_id"], 3);
    h.state.begin_stop();
    workers.finish().await;
}

#[tokio::test]
async fn a_counter_rise_reported_just_before_a_finish_counts_toward_the_finished_lot() {
    let h = harness();
    let workers = h.state.start_workers();
    let (order, operation) = h.first_released_operation().await;
    let (order, operation) = (order["id"].as_i64().unwrap(), operation["id"].as_i64().unwrap());
    let rule = model::CountRule { good_metric: "parts".into(), scrap_metric: None, ideal_unit_seconds: None };
    h.store.set_count_rule(model::MachineId(3), &rule).unwrap();
    // Four messages in quick succession, as a gateway sends them: they reach the decoder within
    // one flush interval.
    let messages = [
        (
            "events",
            json!({"ts": "2026-11-24T08:00:00+08:00", "type": "operation_started", "operation_id": operation}),
        ),
        ("telemetry", json!({"ts": "2026-11-24T08:01:00+08:00", "metrics": {"parts": 100}})),
        ("telemetry", json!({"ts": "2026-11-24T08:50:00+08:00", "metrics": {"parts": 105}})),
        (
            "events",
            json!({"ts": "2026-11-24T08:50:01+08:00", "type": "operation_finished", "operation_id": operation, "good": 0, "scrap": 0}),
        ),
    ];
    let mut last = None;
    for (kind, payload) in messages {
        last = Some(h.publish(&format!("mf/v1/hk-kt/cnc-03/{kind}"), payload.to_string().into_bytes()).await);
    }
    let stored = tokio::time::timeout(std::time::Duration::from_secs(10), last.unwrap()).await;
    assert!(stored.is_ok(), "the messages were not stored");
    let detail = h.get(&format!("/api/v1/orders/{order}")).await.json;
    let first = &detail["operations"][0];
    assert_eq!((&first["status"], &first["good"]), (&json!("done"), &json!(5)), "{first}");
    let production = h.store.production(model::MachineId(3), 0, i64::MAX).unwrap();
    assert!(production.iter().all(|p| p.operation.is_some()), "{production:?}");
    h.state.begin_stop();
    workers.finish().await;
}

#[tokio::test]
async fn a_machine_is_planned_as_set_up_for_the_family_it_last_produced() {
    let h = harness();
    let workers = h.state.start_workers();
    let operator = token_for(Role::Operator);
    // A machine with open work of two families, and a first operation of an order it may run.
    let before = crate::planning::build(&h.store, NOW, &crate::planning::Options::default()).unwrap();
    let on = |index: usize| -> Vec<(usize, &model::Operation)> {
        let mut found = Vec::new();
        for (j, (_, positions)) in before.jobs.iter().enumerate() {
            for (k, (op, _, _)) in positions.iter().enumerate() {
                if before.problem.jobs[j].operations[k].alternatives.iter().any(|a| a.machine == index) {
                    found.push((k, op));
                }
            }
        }
        found
    };
    let (machine, operation) = (0..before.machines.len())
        .find_map(|index| {
            let work = on(index);
            let (_, first) =
                work.iter().find(|(k, op)| *k == 0 && op.status == model::OrderStatus::Released)?;
            work.iter()
                .any(|(_, op)| op.setup_family != first.setup_family)
                .then(|| (before.machines[index].0, (*first).clone()))
        })
        .expect("a machine with work of two families");
    let (id, family) = (operation.id.0, operation.setup_family.clone());
    let path = format!("/api/v1/machines/{machine}/production");
    let reply = h.post_json(&path, &operator, &json!({"good": 1, "operation_id": id})).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let finish =
        h.post_json(&format!("/api/v1/operations/{id}/finish"), &operator, &json!({"good": 1})).await;
    assert_eq!(finish.status, StatusCode::OK, "{}", finish.text);
    let built = crate::planning::build(&h.store, NOW, &crate::planning::Options::default()).unwrap();
    let index = built.machines.iter().position(|m| m.0 == machine).unwrap();
    // The others never produced: each is set up for nothing, a family no operation has.
    let used: std::collections::HashSet<usize> =
        built.problem.jobs.iter().flat_map(|job| job.operations.iter().map(|op| op.family)).collect();
    let initial: Vec<usize> = (0..built.machines.len())
        .filter(|&m| built.problem.machines[m].initial_family.is_some_and(|f| used.contains(&f)))
        .collect();
    assert_eq!(initial, [index], "only the machine that produced is set up for something");
    assert!(built.problem.machines.iter().all(|m| m.initial_family.is_some()), "no machine runs work");
    // Its open work of that family needs no setup; any other family needs its own.
    let (mut same, mut other) = (0, 0);
    for (j, (_, positions)) in built.jobs.iter().enumerate() {
        for (k, (op, _, _)) in positions.iter().enumerate() {
            let spec = &built.problem.jobs[j].operations[k];
            if !spec.alternatives.iter().any(|a| a.machine == index) {
                continue;
            }
            let setup = built.problem.setup_time(index, None, spec.family);
            if op.setup_family == family {
                assert_eq!(setup, 0, "{op:?}");
                same += 1;
            } else {
                assert!(setup > 0 && setup == built.family_setup[spec.family], "{op:?}");
                other += 1;
            }
        }
    }
    assert!(other > 0, "open work of another family ({same} of the same)");
    // The plan shows that setup before the machine's first operation when it changes family.
    let plan =
        crate::planning::solve(&built, NOW, crate::planning::DEFAULT_OBJECTIVE, std::time::Duration::ZERO, 1)
            .unwrap();
    let first =
        plan.operations.iter().filter(|op| op.machine_id.0 == machine).min_by_key(|op| op.start).unwrap();
    let changes = h.store.operation(first.operation_id).unwrap().setup_family != family;
    assert_eq!(first.start > first.setup_start, changes, "{first:?}");
    h.state.begin_stop();
    workers.finish().await;
}

#[tokio::test]
async fn a_repair_asked_for_over_the_api_keeps_a_broken_machine_out_for_the_configured_time() {
    let h = harness();
    let planning = crate::PlanningConfig { expected_repair_minutes: 600, ..crate::PlanningConfig::default() };
    let state = h.state.clone().with_planning(planning);
    let h = Harness { app: crate::router(state.clone()), store: h.store.clone(), state };
    let plan = h.post_json("/api/v1/plans", ADMIN, &json!({"time_limit_seconds": 0})).await.json;
    let id = plan["id"].as_i64().unwrap();
    assert_eq!(
        h.post_json(&format!("/api/v1/plans/{id}/publish"), ADMIN, &json!({})).await.status,
        StatusCode::OK
    );
    let lanes = h.get(&format!("/api/v1/plans/{id}/gantt")).await.json;
    let busy =
        lanes.as_array().unwrap().iter().find(|lane| !lane["items"].as_array().unwrap().is_empty()).unwrap()
            ["machine_id"]
            .as_i64()
            .unwrap();
    let down = json!({"state": "down", "reason": "spindle fault"});
    let reply = h.post_json(&format!("/api/v1/machines/{busy}/states"), ADMIN, &down).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let repaired =
        h.post_json("/api/v1/plans", ADMIN, &json!({"time_limit_seconds": 0.3, "repair": true})).await;
    assert_eq!(repaired.status, StatusCode::CREATED, "{}", repaired.text);
    let after = h.get(&format!("/api/v1/plans/{}/gantt", repaired.json["id"])).await.json;
    let back = NOW + time::Duration::minutes(600);
    for lane in after.as_array().unwrap().iter().filter(|lane| lane["machine_id"] == busy) {
        for item in lane["items"].as_array().unwrap() {
            let start = time::OffsetDateTime::parse(
                item["setup_start"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap();
            assert!(start >= back, "work on the broken machine before its expected repair: {item}");
        }
    }
}

#[tokio::test]
async fn work_running_on_a_machine_that_breaks_down_resumes_after_the_repair_time() {
    let h = harness();
    let workers = h.state.start_workers();
    let operator = token_for(Role::Operator);
    let (order, operation) = h.first_released_operation().await;
    let (id, machine) =
        (operation["id"].as_i64().unwrap(), operation["eligible_machines"][0].as_i64().unwrap());
    let path = format!("/api/v1/machines/{machine}/production");
    let reply = h.post_json(&path, &operator, &json!({"good": 1, "operation_id": id})).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    // Down five minutes after that count; re-planned five minutes later, 90 minutes expected.
    let broke = NOW + time::Duration::minutes(5);
    h.store
        .record_state(&model::StateChange {
            machine: model::MachineId(machine),
            at: broke,
            state: model::MachineState::Down,
            reason: None,
        })
        .unwrap();
    let options = crate::planning::Options {
        repair: Some(time::Duration::minutes(60)),
        down_for: time::Duration::minutes(90),
        threads: 1,
        ..crate::planning::Options::default()
    };
    let now = broke + time::Duration::minutes(5);
    let built = crate::planning::build(&h.store, now, &options).unwrap();
    let (j, k) = built
        .jobs
        .iter()
        .enumerate()
        .find_map(|(j, (_, positions))| positions.iter().position(|(op, _, _)| op.id.0 == id).map(|k| (j, k)))
        .unwrap();
    let running = &built.problem.jobs[j].operations[k];
    let index = built.machines.iter().position(|m| m.0 == machine).unwrap();
    assert_eq!(
        running.fixed,
        Some(scheduler::FixedStart { machine: index, start: 90 * 60 }),
        "resumes after the repair"
    );
    // It has left what it had when the machine stopped: its units less one, less the five
    // minutes it ran after the count (not the ten up to now).
    let quantity = order["quantity"].as_u64().unwrap() as u32;
    let stored = h.store.operation(model::OperationId(id)).unwrap();
    let left = (stored.processing_seconds(quantity - 1) as i64 - 300).max(1);
    assert_eq!(running.alternatives[0].duration, left);
    assert!(built.problem.machines[index].unavailable.iter().any(|i| i.start == 0 && i.end >= 90 * 60));
    let plan =
        crate::planning::solve(&built, now, crate::planning::DEFAULT_OBJECTIVE, std::time::Duration::ZERO, 1)
            .unwrap();
    let back = now + time::Duration::minutes(90);
    for op in plan.operations.iter().filter(|op| op.machine_id.0 == machine) {
        assert!(op.setup_start >= back, "work on the machine while it is down: {op:?}");
    }
    // Back up after half an hour and re-planned ten minutes later: the lot runs now, and has done
    // five minutes before the breakdown and ten since (the half hour down does not count).
    let up = broke + time::Duration::minutes(30);
    let running_again = model::StateChange {
        machine: model::MachineId(machine),
        at: up,
        state: model::MachineState::Running,
        reason: None,
    };
    h.store.record_state(&running_again).unwrap();
    let later = up + time::Duration::minutes(10);
    let built = crate::planning::build(&h.store, later, &options).unwrap();
    let running = &built.problem.jobs[j].operations[k];
    assert_eq!(running.fixed, Some(scheduler::FixedStart { machine: index, start: 0 }));
    assert_eq!(running.alternatives[0].duration, (left - 600).max(1));
    h.state.begin_stop();
    workers.finish().await;
}

#[tokio::test]
async fn every_operation_admits_the_roles_its_description_names() {
    let h = harness();
    let device = h.device_token("gateway-hk", model::SiteId(1));
    let roles = ["admin", "planner", "operator", "viewer", "device"];
    let token = |role: &str| match role {
        "device" => device.clone(),
        "admin" => ADMIN.to_string(),
        other => token_for(Role::parse(other).unwrap()),
    };
    let doc = crate::openapi::build();
    let mut wrong = Vec::new();
    for (path, methods) in doc["paths"].as_object().unwrap() {
        for (method, operation) in methods.as_object().unwrap() {
            let text = operation["description"].as_str().unwrap();
            if text == "No token needed." || path == "/stream" {
                continue;
            }
            let named: Vec<&str> = if text == "Any role." {
                roles.to_vec()
            } else {
                roles
                    .iter()
                    .copied()
                    .filter(|r| text.contains(r) && !text.contains(&format!("not {r}")))
                    .collect()
            };
            // A record that does not exist, an unknown query parameter and an unknown field: a
            // role that may act learns what is wrong (404, 400); one that may not is refused
            // before anything about its request is looked at.
            let uri = format!("/api/v1{}?zzz=1", path.replace("{id}", "999999"));
            for role in roles {
                let mut request = Request::builder()
                    .method(method.to_uppercase().as_str())
                    .uri(&uri)
                    .header("authorization", format!("Bearer {}", token(role)));
                let body = if matches!(method.as_str(), "post" | "put") {
                    request = request.header("content-type", "application/json");
                    Body::from(r#"{"zzz_bogus": 1}"#)
                } else {
                    Body::empty()
                };
                let status = h.app.clone().oneshot(request.body(body).unwrap()).await.unwrap().status();
                let admitted = status != StatusCode::FORBIDDEN;
                if admitted != named.contains(&role) {
                    wrong.push(format!("{method} {path} as {role}: {status}, described as \"{text}\""));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_names_the_version_it_changes_and_a_changed_record_is_refused() {
    let h = harness();
    let planner = token_for(Role::Planner);
    // A planned order, as a planner reads it.
    let created = h
        .post_json(
            "/api/v1/orders",
            &planner,
            &json!({"number": "SO-TAG-1", "customer": "Acme", "variant_id": 1, "quantity": 5, "due": "2026-12-01T18:00:00+08:00"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let path = format!("/api/v1/orders/{}", created.json["id"]);
    let call = |method: &'static str, headers: Vec<(&'static str, String)>, body: Option<Value>| {
        let (h, path, planner) = (&h, path.clone(), planner.clone());
        async move {
            let mut request = Request::builder()
                .method(method)
                .uri(&path)
                .header("authorization", format!("Bearer {planner}"));
            for (name, value) in headers {
                request = request.header(name, value);
            }
            let request = match body {
                Some(body) => {
                    request.header("content-type", "application/json").body(Body::from(body.to_string()))
                }
                None => request.body(Body::empty()),
            }
            .unwrap();
            let response = h.app.clone().oneshot(request).await.unwrap();
            let tag = response.headers().get("etag").map(|v| v.to_str().unwrap().to_string());
            (response.status(), tag)
        }
    };
    let (status, tag) = call("GET", vec![], None).await;
    assert_eq!(status, StatusCode::OK);
    let tag = tag.expect("a record's GET carries an ETag");
    assert_eq!(call("GET", vec![("if-none-match", tag.clone())], None).await.0, StatusCode::NOT_MODIFIED);
    let edit = |customer: &str| json!({"number": "SO-TAG-1", "customer": customer, "variant_id": 1, "quantity": 5, "due": "2026-12-01T18:00:00+08:00"});
    // Two planners edit the version both read, at once: one edit is saved, the other refused.
    let (one, other) = tokio::join!(
        call("PUT", vec![("if-match", tag.clone())], Some(edit("Acme One"))),
        call("PUT", vec![("if-match", tag.clone())], Some(edit("Acme Two"))),
    );
    let mut statuses = [one.0.as_u16(), other.0.as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 412]);
    let saved = h.get(&path).await.json["customer"].clone();
    assert!(saved == "Acme One" || saved == "Acme Two", "{saved}");
    // The new version's tag works; the old one deletes nothing; an edit without If-Match is not held.
    let (_, now_tag) = call("GET", vec![], None).await;
    let now_tag = now_tag.unwrap();
    assert_ne!(now_tag, tag);
    assert_eq!(
        call("DELETE", vec![("if-match", tag.clone())], None).await.0,
        StatusCode::PRECONDITION_FAILED
    );
    // A weak tag never matches a change (RFC 9110: If-Match compares strongly).
    let weak = format!("W/{now_tag}");
    assert_eq!(
        call("PUT", vec![("if-match", weak)], Some(edit("Acme W"))).await.0,
        StatusCode::PRECONDITION_FAILED
    );
    // A role that may not change it is told that first, and learns nothing of its version.
    let viewer = Request::builder()
        .method("DELETE")
        .uri(&path)
        .header("authorization", format!("Bearer {}", token_for(Role::Viewer)))
        .header("if-match", "\"stale\"")
        .body(Body::empty())
        .unwrap();
    assert_eq!(h.app.clone().oneshot(viewer).await.unwrap().status(), StatusCode::FORBIDDEN);
    // Records below another record are versioned too: a site's calendar.
    let request = Request::builder()
        .uri("/api/v1/sites/1/calendar")
        .header("authorization", format!("Bearer {ADMIN}"))
        .body(Body::empty())
        .unwrap();
    assert!(h.app.clone().oneshot(request).await.unwrap().headers().contains_key("etag"));
    // A change made as asked answers with the new version's tag: the next needs no read first.
    let (status, changed) = call("PUT", vec![("if-match", now_tag.clone())], Some(edit("Acme Three"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(changed, call("GET", vec![], None).await.1);
    assert_ne!(changed.as_ref(), Some(&now_tag));
    assert_eq!(call("PUT", vec![], Some(edit("Acme Four"))).await.0, StatusCode::OK);
    // A conditional change whose body does not come holds up no other change of the record: the
    // body is read before the record's lock is taken.
    let (_, current) = call("GET", vec![], None).await;
    let stalled = Request::builder()
        .method("PUT")
        .uri(&path)
        .header("authorization", format!("Bearer {planner}"))
        .header("content-type", "application/json")
        .header("if-match", current.clone().unwrap())
        .body(Body::from_stream(futures_util::stream::pending::<Result<Vec<u8>, std::io::Error>>()))
        .unwrap();
    let stalled = tokio::spawn(h.app.clone().oneshot(stalled));
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let other = call("PUT", vec![("if-match", current.unwrap())], Some(edit("Acme Five")));
    let other = tokio::time::timeout(std::time::Duration::from_secs(10), other).await;
    assert_eq!(other.expect("held up by a body that never came").0, StatusCode::OK);
    stalled.abort();
    assert_eq!(call("DELETE", vec![("if-match", "*".into())], None).await.0, StatusCode::NO_CONTENT);
    assert_eq!(call("DELETE", vec![("if-match", "*".into())], None).await.0, StatusCode::PRECONDITION_FAILED);
}

#[tokio::test]
async fn cancelling_an_order_stops_the_machine_running_its_lot() {
    let h = harness();
    let workers = h.state.start_workers();
    let (order, operation) = h.first_released_operation().await;
    let machine = operation["eligible_machines"][0].as_i64().unwrap();
    let start = json!({"machine_id": machine});
    let path = format!("/api/v1/operations/{}/start", operation["id"]);
    assert_eq!(h.post_json(&path, &token_for(Role::Operator), &start).await.status, StatusCode::OK);
    let state = |h: &Harness| h.store.current_state(model::MachineId(machine), NOW).unwrap().map(|c| c.state);
    assert_eq!(state(&h), Some(model::MachineState::Running));
    let cancel = format!("/api/v1/orders/{}/cancel", order["id"]);
    assert_eq!(h.send("POST", &cancel, Some(&token_for(Role::Planner)), None).await.status, StatusCode::OK);
    assert_eq!(state(&h), Some(model::MachineState::Idle));
    h.state.begin_stop();
    workers.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_sent_at_once_are_checked_one_after_the_other() {
    let h = harness();
    let workers = h.state.start_workers();
    let operator = token_for(Role::Operator);
    let released = h.get("/api/v1/orders?status=released&limit=50").await.json;
    let mut firsts = Vec::new();
    for order in released["items"].as_array().unwrap() {
        let detail = h.get(&format!("/api/v1/orders/{}", order["id"])).await.json;
        firsts.push(detail["operations"][0].clone());
    }
    // Two lots that may each start on one machine, and a second machine for the first.
    let (a, b, machine) = firsts
        .iter()
        .enumerate()
        .find_map(|(i, a)| {
            let b = firsts[i + 1..]
                .iter()
                .find(|b| b["eligible_machines"].as_array().unwrap().contains(&a["eligible_machines"][0]))?;
            Some((a["id"].as_i64()?, b["id"].as_i64()?, a["eligible_machines"][0].as_i64()?))
        })
        .expect("two released lots sharing a machine");
    let start = |op: i64, machine: i64| {
        let (h, operator) = (&h, &operator);
        async move {
            let body = json!({"machine_id": machine});
            h.post_json(&format!("/api/v1/operations/{op}/start"), operator, &body).await
        }
    };
    let statuses = |replies: &[&Reply]| {
        let mut statuses: Vec<u16> = replies.iter().map(|r| r.status.as_u16()).collect();
        statuses.sort();
        statuses
    };
    // Two lots started on one machine at once: one starts, the other is told the machine is busy.
    let (one, other) = tokio::join!(start(a, machine), start(b, machine));
    assert_eq!(statuses(&[&one, &other]), [200, 409], "{} / {}", one.text, other.text);
    let running = h.store.running_operations().unwrap();
    assert_eq!(running.iter().filter(|op| op.machine_id == Some(model::MachineId(machine))).count(), 1);
    let started = if one.status == StatusCode::OK { a } else { b };
    // One lot finished twice at once: the second is told it cannot finish again, and the units
    // counted are the first's.
    let finish = |good: u32| {
        let (h, operator) = (&h, &operator);
        async move {
            h.post_json(&format!("/api/v1/operations/{started}/finish"), operator, &json!({"good": good}))
                .await
        }
    };
    let (one, other) = tokio::join!(finish(3), finish(4));
    assert_eq!(statuses(&[&one, &other]), [200, 409], "{} / {}", one.text, other.text);
    let done = h.store.operation(model::OperationId(started)).unwrap();
    let winner = if one.status == StatusCode::OK { 3 } else { 4 };
    assert_eq!((done.status, done.good), (model::OrderStatus::Done, winner));
    h.state.begin_stop();
    workers.finish().await;
}

#[tokio::test]
async fn units_reported_over_http_for_an_operation_count_toward_it() {
    let h = harness();
    let workers = h.state.start_workers();
    let operator = token_for(Role::Operator);
    let (order, operation) = h.first_released_operation().await;
    let order = order["id"].as_i64().unwrap();
    let (id, machine) =
        (operation["id"].as_i64().unwrap(), operation["eligible_machines"][0].as_i64().unwrap());
    let path = format!("/api/v1/machines/{machine}/production");
    let reply = h.post_json(&path, &operator, &json!({"good": 4, "scrap": 1, "operation_id": id})).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.json["ideal_unit_seconds"], operation["unit_seconds"], "{}", reply.text);
    let counted = &h.get(&format!("/api/v1/orders/{order}")).await.json["operations"][0];
    assert_eq!(
        (&counted["status"], &counted["good"], &counted["scrap"]),
        (&json!("running"), &json!(4), &json!(1))
    );
    assert_eq!(counted["machine_id"], machine);
    // A lot runs on one machine: another eligible machine may not count units of it.
    let twin = operation["eligible_machines"].as_array().unwrap().iter().find(|m| **m != machine).unwrap();
    let twin_path = format!("/api/v1/machines/{twin}/production");
    let taken = h.post_json(&twin_path, &operator, &json!({"good": 1, "operation_id": id})).await;
    assert_eq!(taken.status, StatusCode::CONFLICT, "{}", taken.text);
    assert!(taken.json["detail"].as_str().unwrap().contains("is running on"), "{}", taken.text);
    let still = &h.get(&format!("/api/v1/orders/{order}")).await.json["operations"][0];
    assert_eq!((&still["machine_id"], &still["good"]), (&json!(machine), &json!(4)));
    // The finish adds the rest; units reported after it are refused, not silently dropped.
    let finish = h
        .post_json(&format!("/api/v1/operations/{id}/finish"), &operator, &json!({"good": 2, "scrap": 0}))
        .await;
    assert_eq!(finish.status, StatusCode::OK, "{}", finish.text);
    assert_eq!((&finish.json["good"], &finish.json["scrap"]), (&json!(6), &json!(1)));
    let late = h.post_json(&path, &operator, &json!({"good": 1, "operation_id": id})).await;
    assert_eq!(late.status, StatusCode::CONFLICT, "{}", late.text);
    let eligible = operation["eligible_machines"].as_array().unwrap();
    let other = (1..=11).find(|m| !eligible.contains(&json!(m))).unwrap();
    let elsewhere = format!("/api/v1/machines/{other}/production");
    let wrong_machine = h.post_json(&elsewhere, &operator, &json!({"good": 1, "operation_id": id})).await;
    assert_eq!(wrong_machine.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", wrong_machine.text);
    let planned =
        h.get("/api/v1/orders?status=planned&limit=1").await.json["items"][0]["id"].as_i64().unwrap();
    let planned_op = h.get(&format!("/api/v1/orders/{planned}")).await.json["operations"][0].clone();
    let planned_path = format!("/api/v1/machines/{}/production", planned_op["eligible_machines"][0]);
    let unit = json!({"good": 1, "operation_id": planned_op["id"]});
    let unreleased = h.post_json(&planned_path, &operator, &unit).await;
    assert_eq!(unreleased.status, StatusCode::CONFLICT, "{}", unreleased.text);
    let unknown = h.post_json(&path, &operator, &json!({"good": 1, "operation_id": 999_999})).await;
    assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", unknown.text);
    assert_eq!(unknown.json["errors"][0]["field"], "operation_id", "{}", unknown.text);
    let machine = model::MachineId(machine);
    let records = h.store.production(machine, 0, i64::MAX).unwrap();
    let units: Vec<(u32, u32)> = records.iter().map(|r| (r.good, r.scrap)).collect();
    assert_eq!(units, [(4, 1), (2, 0)]);
    h.state.begin_stop();
    workers.finish().await;
}

#[tokio::test]
async fn http_ingest_stores_durably_checks_sites_and_feeds_alarms() {
    let h = harness();
    let workers = h.state.start_workers();

    let device = &h.device_token("gw", model::SiteId(1));

    // Gas on the moulding machine for six seconds: the demo's gas-leak rule (over 50 ppm for 5 s).
    let body = json!([
        {"site": "hk-kt", "machine": "imm-01", "ts": "2026-11-24T08:59:50+08:00", "metrics": {"gas_ppm": 80.5, "temperature_c": 61.2}},
        {"site": "hk-kt", "machine": "imm-01", "ts": "2026-11-24T08:59:56+08:00", "metrics": {"gas_ppm": 95.0, "door_open": true}},
        {"site": "hk-kt", "machine": "no-such-machine", "metrics": {"x": 1}},
        {"site": "hk-kt", "machine": "imm-01", "ts": "2026-11-24T08:59:57+08:00", "metrics": {"label": "text"}},
    ]);
    let reply = h.post_json("/api/v1/telemetry", device, &body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["accepted"], 4, "{}", reply.text);
    assert_eq!(reply.json["dropped"]["unknown_machine"], 1, "{}", reply.text);
    assert_eq!(
        reply.json["dropped"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum::<u64>(),
        2,
        "{}",
        reply.text
    );
    // Durable when answered: the readings are in the store now.
    let series = h.get("/api/v1/machines/4/series?metric=gas_ppm&from=2026-11-24T08:00:00%2B08:00&to=2026-11-24T10:00:00%2B08:00").await.json;
    assert_eq!(series["points"].as_array().unwrap().len(), 2, "{series}");
    let again = h.post_json("/api/v1/telemetry", device, &body).await;
    assert_eq!((again.json["accepted"].as_u64(), again.json["duplicates"].as_u64()), (Some(0), Some(4)));

    let mut alarm = None;
    for _ in 0..100 {
        let open = h.get("/api/v1/alarms?open=true").await.json;
        if let Some(first) = open["items"].as_array().and_then(|items| items.first()).cloned() {
            alarm = Some(first);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let alarm = alarm.expect("the gas-leak rule raises an alarm");
    assert_eq!(alarm["severity"], "critical");
    assert!(alarm["message"].as_str().unwrap().starts_with("Gas leak"), "{alarm}");

    // Another site's device may not publish here; people other than admins may not publish.
    let other = h.second_site();
    let away = &h.device_token("gw-sz", other);
    let one = json!([{"site": "hk-kt", "machine": "cnc-01", "metrics": {"x": 1}}]);
    let reply = h.post_json("/api/v1/telemetry", away, &one).await;
    assert_eq!(reply.json["dropped"]["not_permitted"], 1, "{}", reply.text);
    assert_eq!(
        h.post_json("/api/v1/telemetry", &token_for(Role::Operator), &one).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        h.post_json("/api/v1/telemetry", ADMIN, &json!({"not": "a list"})).await.status,
        StatusCode::BAD_REQUEST
    );
    let metrics = h.get("/metrics").await.text;
    assert!(metrics.contains("microfactory_ingest_dropped_total{reason=\"not_permitted\"} 1"), "{metrics}");
    h.state.begin_stop();
    workers.finish().await;
}

#[tokio::test]
async fn states_can_be_derived_from_a_metric() {
    let h = harness();
    let workers = h.state.start_workers();
    let rule = json!({"metric": "power_kw", "running_above": 2.0, "idle_above": 0.3});
    assert_eq!(
        h.send(
            "PUT",
            "/api/v1/machines/9/state-rule",
            Some(&token_for(Role::Planner)),
            Some(("application/json", rule.to_string().into()))
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    let reply = h
        .send(
            "PUT",
            "/api/v1/machines/9/state-rule",
            Some(ADMIN),
            Some(("application/json", rule.to_string().into())),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let bad = json!({"metric": "power_kw", "running_above": 1.0, "idle_above": 3.0});
    let reply = h
        .send(
            "PUT",
            "/api/v1/machines/9/state-rule",
            Some(ADMIN),
            Some(("application/json", bad.to_string().into())),
        )
        .await;
    assert_eq!(reply.json["field"], "idle_above");
    let readings = json!([
        {"site": "hk-kt", "machine": "asm-01", "ts": "2026-11-24T08:50:00+08:00", "metrics": {"power_kw": 0.1}},
        {"site": "hk-kt", "machine": "asm-01", "ts": "2026-11-24T08:51:00+08:00", "metrics": {"power_kw": 0.5}},
        {"site": "hk-kt", "machine": "asm-01", "ts": "2026-11-24T08:52:00+08:00", "metrics": {"power_kw": 0.6}},
        {"site": "hk-kt", "machine": "asm-01", "ts": "2026-11-24T08:53:00+08:00", "metrics": {"power_kw": 5.0}},
    ]);
    assert_eq!(h.post_json("/api/v1/telemetry", ADMIN, &readings).await.status, StatusCode::OK);
    let spans = h
        .get("/api/v1/machines/9/states?from=2026-11-24T08:00:00%2B08:00&to=2026-11-24T09:00:00%2B08:00")
        .await
        .json;
    let states: Vec<&str> = spans.as_array().unwrap().iter().map(|s| s["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["offline", "idle", "running"], "{spans}");
    assert_eq!(spans[2]["reason"], "power_kw = 5");
    h.state.begin_stop();
    workers.finish().await;
}

#[tokio::test]
async fn plans_are_feasible_published_once_and_feed_dispatch_lists() {
    let h = harness();
    let planner = token_for(Role::Planner);
    for (body, field) in [
        (json!({"time_limit_seconds": -1.0}), "time_limit_seconds"),
        (json!({"time_limit_seconds": 600}), "time_limit_seconds"),
        (json!({"objective": "cheapest"}), "objective"),
    ] {
        let reply = h.post_json("/api/v1/plans", &planner, &body).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {}", reply.text);
        assert_eq!(reply.json["field"], field);
    }
    assert_eq!(
        h.post_json("/api/v1/plans", &token_for(Role::Operator), &json!({})).await.status,
        StatusCode::FORBIDDEN
    );
    // All of a plan request is optional, so no body at all is the defaults.
    for content_type in [Some("application/json"), None] {
        let body = content_type.map(|c| (c, Vec::new()));
        let reply = h.send("POST", "/api/v1/plans", Some(&planner), body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{content_type:?}: {}", reply.text);
    }
    let reply = h.post_json("/api/v1/plans", &planner, &json!({"time_limit_seconds": 0.5})).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let plan = reply.json;
    let id = plan["id"].as_i64().unwrap();
    assert_eq!(plan["status"], "draft");
    let released =
        h.get("/api/v1/orders?status=released&limit=500").await.json["items"].as_array().unwrap().len();
    assert_eq!(plan["etas"].as_array().unwrap().len(), released, "every released order gets an ETA");
    let utilisation = plan["utilisation"].as_array().unwrap();
    assert!(!utilisation.is_empty());
    assert!(
        utilisation.iter().all(|u| (0.0..=1.0).contains(&u["utilisation"].as_f64().unwrap())),
        "{utilisation:?}"
    );

    // Independent checks of the Gantt data: no overlap on a machine (setups included), routing
    // order kept. (The demo works around the clock; calendar breaks are checked on generated
    // factories in `planning_properties`.)
    let lanes = h.get(&format!("/api/v1/plans/{id}/gantt")).await.json;
    assert_eq!(lanes.as_array().unwrap().len(), 11);
    let first_bar = lanes
        .as_array()
        .unwrap()
        .iter()
        .find_map(|l| l["items"].as_array().unwrap().first().cloned())
        .unwrap();
    assert!(first_bar["product"].as_str().is_some_and(|p| !p.is_empty()), "{first_bar}");
    let parse = |v: &Value| {
        time::OffsetDateTime::parse(v.as_str().unwrap(), &time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let mut ends: std::collections::HashMap<i64, Vec<(i64, time::OffsetDateTime, time::OffsetDateTime)>> =
        Default::default();
    for lane in lanes.as_array().unwrap() {
        let mut previous_end = None;
        for item in lane["items"].as_array().unwrap() {
            let (setup, start, end) =
                (parse(&item["setup_start"]), parse(&item["start"]), parse(&item["end"]));
            assert!(setup <= start && start < end, "{item}");
            if let Some(previous) = previous_end {
                assert!(setup >= previous, "overlap on {}: {item}", lane["code"]);
            }
            previous_end = Some(end);
            ends.entry(item["operation_id"].as_i64().unwrap()).or_default().push((
                item["part"].as_i64().unwrap(),
                start,
                end,
            ));
        }
    }
    for order in plan["etas"].as_array().unwrap() {
        let detail = h.get(&format!("/api/v1/orders/{}", order["order_id"])).await.json;
        let mut previous_end: Option<time::OffsetDateTime> = None;
        for op in detail["operations"].as_array().unwrap() {
            let mut parts = ends.get(&op["id"].as_i64().unwrap()).cloned().unwrap_or_default();
            parts.sort_by_key(|p| p.0);
            for (_, start, end) in parts {
                if let Some(previous) = previous_end {
                    assert!(start >= previous, "routing order broken in order {}", order["number"]);
                }
                previous_end = Some(end);
            }
        }
    }

    let dispatch = h.get("/api/v1/machines/1/dispatch").await.json;
    assert_eq!(dispatch["plan_id"], Value::Null, "no active plan yet");
    let mut live = h.state.live.subscribe();
    let published = h.send("POST", &format!("/api/v1/plans/{id}/publish"), Some(&planner), None).await;
    assert_eq!(published.status, StatusCode::OK, "{}", published.text);
    assert_eq!(published.json["status"], "active");
    assert!(
        matches!(live.try_recv().map(crate::Stamped::into_event), Ok(crate::LiveEvent::Plan { plan_id, trigger: None }) if plan_id == id),
        "publishing goes to the live stream"
    );
    assert_eq!(
        h.send("POST", &format!("/api/v1/plans/{id}/publish"), Some(&planner), None).await.status,
        StatusCode::CONFLICT
    );
    let dispatch = h.get("/api/v1/machines/1/dispatch").await.json;
    assert_eq!(dispatch["plan_id"], id);
    let starts: Vec<String> = dispatch["queue"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["start"].as_str().unwrap().to_string())
        .collect();
    let mut sorted = starts.clone();
    sorted.sort();
    assert_eq!(starts, sorted);
    assert_eq!(
        h.send("POST", "/api/v1/plans/99999/publish", Some(&planner), None).await.status,
        StatusCode::NOT_FOUND
    );
    let second = h.post_json("/api/v1/plans", &planner, &json!({"time_limit_seconds": 0.2})).await.json;
    assert_eq!(second["diff"]["against"], id);
    assert!(second["diff"]["compared_operations"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn asked_for_plans_take_turns_and_one_nobody_waits_for_is_not_stored() {
    let h = harness();
    let planner = token_for(Role::Planner);
    let plans = || h.store.plans(store::PageRequest { after: None, limit: 100 }).unwrap().items.len();
    let before = plans();
    // A client that goes away while its plan is computed: the request is dropped.
    let app = h.app.clone();
    let request = Request::builder()
        .method("POST")
        .uri("/api/v1/plans")
        .header("authorization", format!("Bearer {planner}"))
        .header("content-type", "application/json")
        .body(Body::from(json!({"time_limit_seconds": 30}).to_string()))
        .unwrap();
    let gone = tokio::spawn(async move { app.oneshot(request).await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    gone.abort();
    // Two at once: each waits its turn, both are made.
    let body = json!({"time_limit_seconds": 0.2});
    let (first, second) = tokio::join!(
        h.post_json("/api/v1/plans", &planner, &body),
        h.post_json("/api/v1/plans", &planner, &body)
    );
    assert_eq!((first.status, second.status), (StatusCode::CREATED, StatusCode::CREATED), "{}", second.text);
    assert_eq!(plans(), before + 2, "the plan nobody waited for is not stored");
}

#[tokio::test]
async fn orders_export_as_csv_with_the_list_s_filters() {
    let h = harness();
    let mut risky = valid_order();
    risky["customer"] = json!("=HYPERLINK(\"http://x\")");
    assert_eq!(h.post_json("/api/v1/orders", ADMIN, &risky).await.status, StatusCode::CREATED);
    let viewer = token_for(Role::Viewer);
    let export = |query: &str| {
        let (h, viewer) = (&h, viewer.clone());
        let path = format!("/api/v1/orders/export{query}");
        async move { h.send("GET", &path, Some(&viewer), None).await }
    };
    let all = export("").await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text);
    // Named by the site's day it was taken.
    let request = Request::builder()
        .uri("/api/v1/orders/export")
        .header("authorization", format!("Bearer {viewer}"))
        .body(Body::empty())
        .unwrap();
    let response = h.app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.headers()["content-disposition"], "attachment; filename=\"orders-2026-11-24.csv\"");
    // A spreadsheet knows UTF-8 by its byte-order mark (Excel would read Big5 or GBK without it).
    assert!(all.text.starts_with("\u{feff}number,customer,"), "{}", &all.text[..40]);
    let mut reader = csv::Reader::from_reader(all.text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(&header[..6], ["number", "customer", "variant", "quantity", "due", "priority"]);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), h.order_count());
    // A field that starts like a formula is exported as text.
    let mine = rows.iter().find(|row| &row[0] == "SO-T-1").unwrap();
    assert_eq!(&mine[1], "'=HYPERLINK(\"http://x\")");
    // Times in the site's time, as the orders page shows them, still exact instants.
    assert_eq!(&mine[4], "2026-12-01T18:00:00+08:00", "{mine:?}");
    assert_eq!(&mine[7], "planned");
    // The list's filters apply.
    let released = export("?status=released&sort=due").await;
    let released: Vec<csv::StringRecord> =
        csv::Reader::from_reader(released.text.as_bytes()).records().map(Result::unwrap).collect();
    let listed =
        h.get("/api/v1/orders?status=released&limit=500").await.json["items"].as_array().unwrap().len();
    assert_eq!(released.len(), listed);
    assert!(released.iter().all(|row| &row[7] == "released"));
    assert!(released.windows(2).all(|pair| pair[0][4] <= pair[1][4]), "by due time");
    assert_eq!(export("?limit=5").await.status, StatusCode::BAD_REQUEST);
    assert_eq!(export("?machine=999").await.status, StatusCode::NOT_FOUND);
    // ETA and lateness as the orders page judges them: a cancelled order has neither.
    let plan = publish_a_plan(&h).await;
    let planned = h.store.plan_operations(plan, None).unwrap()[0].order_id.0;
    let cancel = h.send("POST", &format!("/api/v1/orders/{planned}/cancel"), Some(ADMIN), None).await;
    assert_eq!(cancel.status, StatusCode::OK, "{}", cancel.text);
    let number =
        h.get(&format!("/api/v1/orders/{planned}")).await.json["number"].as_str().unwrap().to_string();
    let rows: Vec<csv::StringRecord> =
        csv::Reader::from_reader(export("").await.text.as_bytes()).records().map(Result::unwrap).collect();
    let cancelled = rows.iter().find(|row| row[0] == *number).unwrap();
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (status, delivered, eta, late) =
        (column("status"), column("delivered"), column("eta"), column("late"));
    assert_eq!(
        (&cancelled[status], &cancelled[delivered], &cancelled[eta], &cancelled[late]),
        ("cancelled", "", "", "")
    );
    assert!(rows.iter().any(|row| !row[eta].is_empty()), "open orders of the plan have an ETA");
    // `late` lists what the export marks late, and the rest with `late=false`, every order
    // on one side (one entered past its due time is late at once).
    let mut overdue = valid_order();
    overdue["number"] = json!("SO-OVERDUE");
    overdue["due"] = json!("2026-11-20T18:00:00+08:00");
    assert_eq!(h.post_json("/api/v1/orders", ADMIN, &overdue).await.status, StatusCode::CREATED);
    let rows: Vec<csv::StringRecord> =
        csv::Reader::from_reader(export("").await.text.as_bytes()).records().map(Result::unwrap).collect();
    let marked: std::collections::BTreeSet<String> =
        rows.iter().filter(|row| &row[late] == "true").map(|row| row[0].to_string()).collect();
    assert!(!marked.is_empty() && marked.len() < rows.len(), "{} late of {}", marked.len(), rows.len());
    let numbers = |query: &'static str| {
        let h = &h;
        async move {
            let page = h.get(&format!("/api/v1/orders?limit=500&{query}")).await.json;
            let items = page["items"].as_array().unwrap().iter();
            items
                .map(|o| o["number"].as_str().unwrap().to_string())
                .collect::<std::collections::BTreeSet<_>>()
        }
    };
    assert_eq!(numbers("late=true").await, marked);
    let on_time = numbers("late=false").await;
    assert_eq!(on_time.len() + marked.len(), rows.len());
    assert!(on_time.is_disjoint(&marked));
    let exported_late = export("?late=true").await;
    assert_eq!(exported_late.text.lines().count(), marked.len() + 1, "{}", exported_late.text);
    let reply = h.get("/api/v1/orders?late=maybe").await;
    assert_eq!((reply.status, reply.json["field"].as_str()), (StatusCode::BAD_REQUEST, Some("late")));
    // An export imports as it is, its own columns read past (here under new numbers).
    let mut again = csv::Writer::from_writer(Vec::new());
    again.write_record(&header).unwrap();
    for row in &released {
        let mut row: Vec<String> = row.iter().map(str::to_owned).collect();
        row[0] = format!("{}-AGAIN", row[0]);
        again.write_record(&row).unwrap();
    }
    let before = h.order_count();
    let csv = again.into_inner().unwrap();
    let imported = h.send("POST", "/api/v1/orders/import", Some(ADMIN), Some(("text/csv", csv))).await;
    assert_eq!(imported.status, StatusCode::CREATED, "{}", imported.text);
    assert_eq!(h.order_count(), before + released.len());
}

#[tokio::test]
async fn large_answers_go_gzip_compressed_to_clients_that_take_it() {
    use std::io::Read;
    let h = harness();
    let fetch = |path: String, accept: Option<&'static str>| {
        let app = h.app.clone();
        async move {
            let mut request = Request::builder().uri(path).header("authorization", format!("Bearer {ADMIN}"));
            if let Some(accept) = accept {
                request = request.header("accept-encoding", accept);
            }
            let response = app.oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
            let headers = response.headers().clone();
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
            (headers, bytes.to_vec())
        }
    };
    let gunzip = |bytes: &[u8]| {
        let mut text = String::new();
        flate2::read::GzDecoder::new(bytes).read_to_string(&mut text).unwrap();
        text
    };
    let (plain_headers, plain) = fetch("/api/v1/openapi.json".into(), None).await;
    assert!(plain_headers.get("content-encoding").is_none());
    let (headers, gzipped) = fetch("/api/v1/openapi.json".into(), Some("br, gzip;q=0.8")).await;
    assert_eq!(
        (&headers["content-encoding"], &headers["vary"]),
        (&"gzip".parse().unwrap(), &"accept-encoding".parse().unwrap())
    );
    assert!(gzipped.len() * 5 < plain.len(), "{} bytes gzipped from {}", gzipped.len(), plain.len());
    assert_eq!(gunzip(&gzipped).as_bytes(), plain);
    // Refused by weight, or not offered: as it is.
    let (headers, _) = fetch("/api/v1/openapi.json".into(), Some("gzip;q=0, br")).await;
    assert!(headers.get("content-encoding").is_none());

    // A plan's problem is stored gzipped and sent so, or unpacked for a client without gzip.
    let plan = h.post_json("/api/v1/plans", ADMIN, &json!({"time_limit_seconds": 0.1})).await.json;
    let id = plan["id"].as_i64().unwrap();
    let (headers, gzipped) = fetch(format!("/api/v1/plans/{id}/problem"), Some("gzip")).await;
    assert_eq!(headers["content-encoding"], "gzip");
    let (headers, plain) = fetch(format!("/api/v1/plans/{id}/problem"), None).await;
    assert!(headers.get("content-encoding").is_none());
    assert_eq!(gunzip(&gzipped).as_bytes(), plain);
    let problem: Value = serde_json::from_slice(&plain).unwrap();
    assert!(problem["jobs"].as_array().is_some_and(|jobs| !jobs.is_empty()));

    // Small answers and records with a tag go as they are.
    let (headers, _) = fetch("/healthz".into(), Some("gzip")).await;
    assert!(headers.get("content-encoding").is_none());
    let (headers, _) = fetch("/api/v1/machines/1".into(), Some("gzip")).await;
    assert!(headers.get("etag").is_some() && headers.get("content-encoding").is_none());
}

#[tokio::test]
async fn operators_start_and_finish_operations_and_repairs_keep_the_near_term() {
    let now = NOW;
    let h = harness();
    let workers = h.state.start_workers();
    let operator = token_for(Role::Operator);
    let planner = token_for(Role::Planner);

    let plan = h.post_json("/api/v1/plans", &planner, &json!({"time_limit_seconds": 0.3})).await.json;
    let id = plan["id"].as_i64().unwrap();
    assert_eq!(
        h.send("POST", &format!("/api/v1/plans/{id}/publish"), Some(&planner), None).await.status,
        StatusCode::OK
    );
    let problem = h.get(&format!("/api/v1/plans/{id}/problem")).await;
    assert!(
        problem.json["jobs"].as_array().is_some_and(|jobs| !jobs.is_empty()),
        "{}",
        &problem.text[..200.min(problem.text.len())]
    );

    // The first job on cnc-01 in the plan: start it there, then finish it.
    let dispatch = h.get("/api/v1/machines/1/dispatch").await.json;
    let first = &dispatch["queue"][0];
    let operation = first["operation_id"].as_i64().unwrap();
    let start = |machine: i64| json!({"machine_id": machine});
    let reply = h.post_json(&format!("/api/v1/operations/{operation}/start"), &operator, &start(11)).await;
    assert_eq!(reply.json["field"], "machine_id", "qc-01 cannot mill: {}", reply.text);
    assert_eq!(
        h.post_json(&format!("/api/v1/operations/{operation}/start"), &token_for(Role::Viewer), &start(1))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let finish_early =
        h.post_json(&format!("/api/v1/operations/{operation}/finish"), &operator, &json!({"good": 1})).await;
    assert_eq!(finish_early.status, StatusCode::CONFLICT);
    let started = h.post_json(&format!("/api/v1/operations/{operation}/start"), &operator, &start(1)).await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.text);
    assert_eq!(started.json["status"], "running");
    assert_eq!(
        h.post_json(&format!("/api/v1/operations/{operation}/start"), &operator, &start(1)).await.status,
        StatusCode::CONFLICT
    );
    let finished = h
        .post_json(
            &format!("/api/v1/operations/{operation}/finish"),
            &operator,
            &json!({"good": 9, "scrap": 1}),
        )
        .await;
    assert_eq!(finished.json["status"], "done", "{}", finished.text);
    assert_eq!((finished.json["good"].as_u64(), finished.json["scrap"].as_u64()), (Some(9), Some(1)));

    // cnc-02 breaks down: a repair moves its work elsewhere but keeps other near-term work.
    let down = json!({"state": "down", "reason": "spindle fault"});
    assert_eq!(h.post_json("/api/v1/machines/2/states", &operator, &down).await.status, StatusCode::CREATED);
    let repaired = h
        .post_json(
            "/api/v1/plans",
            &planner,
            &json!({"time_limit_seconds": 0.3, "repair": true, "freeze_minutes": 240}),
        )
        .await;
    assert_eq!(repaired.status, StatusCode::CREATED, "{}", repaired.text);
    let repaired_id = repaired.json["id"].as_i64().unwrap();
    assert_eq!(repaired.json["diff"]["against"], id);
    let before = h.get(&format!("/api/v1/plans/{id}/gantt")).await.json;
    let after = h.get(&format!("/api/v1/plans/{repaired_id}/gantt")).await.json;
    let repair_horizon = now + time::Duration::minutes(60);
    let parse = |v: &Value| {
        time::OffsetDateTime::parse(v.as_str().unwrap(), &time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    for lane in after.as_array().unwrap() {
        if lane["machine_id"] == 2 {
            for item in lane["items"].as_array().unwrap() {
                assert!(
                    parse(&item["setup_start"]) >= repair_horizon,
                    "work on the broken machine within the hour: {item}"
                );
            }
        }
    }
    // Near-term work on healthy machines that had not started keeps its place, unless its order
    // also had work on the broken machine (then what follows that work must move with it).
    let touched_orders: Vec<Value> = before
        .as_array()
        .unwrap()
        .iter()
        .filter(|lane| lane["machine_id"] == 2)
        .flat_map(|lane| lane["items"].as_array().unwrap().iter().map(|item| item["order_id"].clone()))
        .collect();
    let mut kept = 0;
    for lane in before.as_array().unwrap() {
        if lane["machine_id"] == 2 {
            continue;
        }
        for item in lane["items"].as_array().unwrap() {
            let start = parse(&item["setup_start"]);
            if start >= now
                && !touched_orders.contains(&item["order_id"])
                && parse(&item["start"]) < now + time::Duration::minutes(240)
                && item["operation_id"].as_i64() != Some(operation)
            {
                let same =
                    after.as_array().unwrap().iter().flat_map(|l| l["items"].as_array().unwrap().iter()).any(
                        |other| {
                            other["operation_id"] == item["operation_id"]
                                && other["part"] == item["part"]
                                && other["machine_id"] == item["machine_id"]
                                && other["start"] == item["start"]
                        },
                    );
                assert!(same, "near-term operation moved by the repair: {item}");
                kept += 1;
            }
        }
    }
    assert!(kept > 0, "the test needs frozen work to mean anything");
    h.state.begin_stop();
    workers.finish().await;
}

/// Creates and releases a rush order (priority 9) as a planner; returns its id and number.
async fn rush_order(h: &Harness, number: &str) -> (i64, String) {
    let planner = token_for(Role::Planner);
    let mut order = valid_order();
    order["number"] = json!(number);
    order["priority"] = json!(9);
    let created = h.post_json("/api/v1/orders", &planner, &order).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let id = created.json["id"].as_i64().unwrap();
    let released = h.send("POST", &format!("/api/v1/orders/{id}/release"), Some(&planner), None).await;
    assert_eq!(released.status, StatusCode::OK, "{}", released.text);
    (id, number.to_string())
}

/// Plans (0.2 s) and publishes as a planner; returns the plan's id.
/// Each order's first planned work in `operations` (by processing start).
fn first_work(
    operations: &[model::PlannedOperation],
) -> std::collections::HashMap<model::OrderId, &model::PlannedOperation> {
    let mut firsts: std::collections::HashMap<model::OrderId, &model::PlannedOperation> = Default::default();
    for op in operations {
        let entry = firsts.entry(op.order_id).or_insert(op);
        if op.start < entry.start {
            *entry = op;
        }
    }
    firsts
}

/// Sets when order `id`'s material is ready, the rest of it as it is.
fn set_material_ready(store: &Store, id: model::OrderId, ready: model::Timestamp) {
    let order = store.order(id).unwrap();
    let mut change: model::NewOrder = serde_json::from_value(json!({
        "number": order.number, "customer": order.customer, "variant_id": order.variant_id,
        "quantity": order.quantity, "due": crate::rfc3339(order.due), "priority": order.priority,
    }))
    .unwrap();
    change.material_ready = Some(ready);
    store.update_order(id, &change, NOW).unwrap();
}

/// Gives the order of plan `plan` whose work starts first within `starts` (none of it before) a
/// material time `delay` after that start, and checks that the replanner re-plans it, once, with
/// none of its work starting before the material (a machine may be set up before).
fn delayed_material_is_re_planned(
    h: &Harness,
    plan: i64,
    starts: std::ops::Range<model::Timestamp>,
    delay: time::Duration,
) {
    use model::PlanTrigger;

    use crate::replanner::{Memory, PlanningConfig, check_and_repair, due};
    let config = PlanningConfig::default();
    let operations = h.store.plan_operations(plan, None).unwrap();
    let firsts = first_work(&operations);
    let first = firsts
        .values()
        .filter(|op| starts.contains(&op.start))
        .min_by_key(|op| (op.start, op.order_id))
        .expect("an order starting then");
    let order = h.store.order(first.order_id).unwrap();
    assert_eq!(order.status, model::OrderStatus::Released);
    let ready = first.start + delay;
    set_material_ready(&h.store, order.id, ready);
    let found = due(&h.store, NOW, &config, None, &Default::default()).unwrap().expect("a re-plan is due");
    assert_eq!(found.trigger, PlanTrigger::MaterialLater { orders: vec![order.number.clone()] });
    let (again, _) =
        check_and_repair(&h.store, &NOW, &config, None, &mut Memory::default()).unwrap().unwrap();
    let starts = h.store.plan_operations(again, None).unwrap();
    let mine: Vec<_> = starts.iter().filter(|op| op.order_id == order.id).collect();
    assert!(
        !mine.is_empty() && mine.iter().all(|op| op.start >= ready),
        "ready {ready}, first was {first:?}: {mine:?}"
    );
    assert!(due(&h.store, NOW, &config, None, &Default::default()).unwrap().is_none(), "re-planned once");
}

async fn publish_a_plan(h: &Harness) -> i64 {
    let planner = token_for(Role::Planner);
    let plan = h.post_json("/api/v1/plans", &planner, &json!({"time_limit_seconds": 0.2})).await;
    assert_eq!(plan.status, StatusCode::CREATED, "{}", plan.text);
    let id = plan.json["id"].as_i64().unwrap();
    let published = h.send("POST", &format!("/api/v1/plans/{id}/publish"), Some(&planner), None).await;
    assert_eq!(published.status, StatusCode::OK, "{}", published.text);
    id
}

#[tokio::test]
async fn a_machine_running_again_after_a_breakdown_gets_its_work_back_at_once() {
    use crate::replanner::{Breakdown, Memory, PlanningConfig, check_and_repair, due_after};
    use model::PlanTrigger;
    let h = harness();
    let config = PlanningConfig::default();
    let minutes = |m: i64| NOW + time::Duration::minutes(m);
    let plan = publish_a_plan(&h).await;
    let busy = h.store.plan_operations(plan, None).unwrap()[0].machine_id;
    let code = h.store.machine(busy).unwrap().code;
    let first_start = |plan: i64| h.store.plan_operations(plan, Some(busy)).unwrap()[0].setup_start;
    let state = |at, state| model::StateChange { machine: busy, at, state, reason: None };
    let slotted = std::collections::HashSet::new();
    // Back before any plan kept it out: nothing to give back.
    assert!(due_after(&h.store, minutes(1), &config, None, &[busy], &slotted).unwrap().is_none());
    h.store.record_state(&state(minutes(1), model::MachineState::Down)).unwrap();
    let mut memory = Memory::default();
    let down = Some(Breakdown { machines: vec![busy], reported: minutes(1) });
    let (repaired, trigger) =
        check_and_repair(&h.store, &minutes(2), &config, down, &mut memory).unwrap().expect("a repair");
    assert_eq!(trigger, PlanTrigger::Breakdown { machine: code.clone() });
    let out_until = minutes(2) + time::Duration::minutes(i64::from(config.expected_repair_minutes));
    assert!(first_start(repaired) >= out_until, "kept out for the expected repair");
    // Running again after ten minutes: the next check gives the machine its work back.
    h.store.record_state(&state(minutes(11), model::MachineState::Running)).unwrap();
    memory.recovered = vec![busy];
    let (back, trigger) =
        check_and_repair(&h.store, &minutes(12), &config, None, &mut memory).unwrap().expect("a repair");
    assert_eq!(trigger, PlanTrigger::Recovered { machine: code });
    assert!(first_start(back) < out_until, "{} is no earlier than {out_until}", first_start(back));
    // Once only: the plan made since knew it was running.
    assert!(due_after(&h.store, minutes(13), &config, None, &[busy], &slotted).unwrap().is_none());
}

#[tokio::test]
async fn a_breakdown_before_a_machine_s_work_is_due_leaves_the_plan_as_it_is() {
    use crate::replanner::{Breakdown, Memory, PlanningConfig, check_and_repair};
    let h = harness();
    let config = PlanningConfig::default();
    let plan = publish_a_plan(&h).await;
    let operations = h.store.plan_operations(plan, None).unwrap();
    // Reported a second after the plan was made: the shop floor is where the plan has it.
    let reported = NOW + time::Duration::seconds(1);
    let back = reported + time::Duration::minutes(i64::from(config.expected_repair_minutes));
    // A machine whose work all starts after its expected repair, and one with work before.
    let first_start = |machine: model::MachineId| {
        operations.iter().filter(|op| op.machine_id == machine).map(|op| op.setup_start).min().unwrap()
    };
    let mut machines: Vec<model::MachineId> = operations.iter().map(|op| op.machine_id).collect();
    machines.sort_by_key(|m| first_start(*m));
    machines.dedup();
    let (soon, later) = (machines[0], *machines.last().unwrap());
    assert!(
        first_start(soon) < back && first_start(later) > back + time::Duration::minutes(1),
        "{operations:?}"
    );
    let down = |machine| {
        h.store
            .record_state(&model::StateChange {
                machine,
                at: reported,
                state: model::MachineState::Down,
                reason: None,
            })
            .unwrap();
        Some(Breakdown { machines: vec![machine], reported })
    };
    let mut memory = Memory::default();
    let at = reported;
    let slotted = std::collections::HashSet::new();
    let due = crate::replanner::due(&h.store, at, &config, down(later), &slotted).unwrap().expect("due");
    assert!(matches!(due.trigger, model::PlanTrigger::Breakdown { .. }));
    assert_eq!(check_and_repair(&h.store, &at, &config, down(later), &mut memory).unwrap(), None);
    assert_eq!(h.store.active_plan().unwrap().unwrap().id, plan, "the plan stays");
    let (repaired, _) =
        check_and_repair(&h.store, &at, &config, down(soon), &mut memory).unwrap().expect("a repair");
    assert_ne!(repaired, plan);
}

#[tokio::test]
async fn work_started_on_another_machine_than_planned_is_repaired_around() {
    use crate::replanner::{Memory, PlanningConfig, check_and_repair, due};
    use model::PlanTrigger;
    let h = harness();
    let config = PlanningConfig { repair_interval_minutes: 0, ..PlanningConfig::default() };
    let plan = publish_a_plan(&h).await;
    // A first step that may run on another machine than the plan gave it.
    let (op, other) = h
        .store
        .plan_operations(plan, None)
        .unwrap()
        .into_iter()
        .find_map(|planned| {
            let op = h.store.operation(planned.operation_id).unwrap();
            let other = op.eligible_machines.iter().copied().find(|m| *m != planned.machine_id);
            (op.seq == 0).then_some(()).and(other).map(|other| (op, other))
        })
        .expect("a first step with two machines");
    let slotted = std::collections::HashSet::new();
    let at = NOW + time::Duration::minutes(1);
    assert!(due(&h.store, at, &config, None, &slotted).unwrap().is_none(), "on plan");
    let started = store::OperationEvent {
        operation: op.id,
        machine: other,
        at,
        kind: store::OperationEventKind::Started,
        checked: true,
        counted_before: None,
        scrap_reason: None,
    };
    h.store.write_batch(&[], &[], &[], &[started]).unwrap();
    let number = h.store.order(op.order_id).unwrap().number;
    let code = h.store.machine(other).unwrap().code;
    let (repaired, trigger) =
        check_and_repair(&h.store, &at, &config, None, &mut Memory::default()).unwrap().expect("a repair");
    assert_eq!(trigger, PlanTrigger::Elsewhere { machine: code, orders: vec![number] });
    let parts = h.store.plan_operations(repaired, None).unwrap();
    assert!(parts.iter().filter(|p| p.operation_id == op.id).all(|p| p.machine_id == other), "{parts:?}");
    assert!(due(&h.store, at, &config, None, &slotted).unwrap().is_none(), "repaired once");
    let detail = h.get(&format!("/api/v1/plans/{repaired}")).await.json;
    assert_eq!(detail["trigger"]["kind"], "elsewhere", "{detail}");
}

#[tokio::test]
async fn an_order_raised_to_rush_priority_is_moved_ahead_by_a_repair() {
    use crate::replanner::{Memory, PlanningConfig, check_and_repair, due};
    use model::PlanTrigger;
    let h = harness();
    let config = PlanningConfig::default();
    let plan = publish_a_plan(&h).await;
    let detail = h.get(&format!("/api/v1/plans/{plan}")).await.json;
    let last = detail["etas"]
        .as_array()
        .unwrap()
        .iter()
        .max_by_key(|e| e["eta"].as_str().unwrap().to_string())
        .unwrap();
    let (id, number) = (last["order_id"].as_i64().unwrap(), last["number"].as_str().unwrap().to_string());
    let eta_in = |plan: i64| {
        let detail =
            h.store.plan(plan).map(|summary| crate::api::plans::detail(&h.store, summary).unwrap()).unwrap();
        detail.etas.iter().find(|e| e.order_id.0 == id).unwrap().eta
    };
    let before = eta_in(plan);
    // Raised to rush priority after the plan was made (a minute on, as the planner's edit).
    let mut order = h.get(&format!("/api/v1/orders/{id}")).await.json;
    assert!(order["priority"].as_u64().unwrap() < u64::from(config.rush_priority));
    let mut change = json!({});
    for key in ["number", "customer", "variant_id", "quantity", "due"] {
        change[key] = order[key].take();
    }
    change["priority"] = json!(10);
    let at = NOW + time::Duration::minutes(1);
    let new: model::NewOrder = serde_json::from_value(change).unwrap();
    h.store.update_order(model::OrderId(id), &new, at).unwrap();
    let mut memory = Memory::default();
    let (repaired, trigger) =
        check_and_repair(&h.store, &(at + time::Duration::minutes(1)), &config, None, &mut memory)
            .unwrap()
            .expect("a repair");
    assert_eq!(trigger, PlanTrigger::RushOrders { orders: vec![number] });
    assert!(eta_in(repaired) < before, "{} is no earlier than {before}", eta_in(repaired));
    // Once: the repair had it.
    let later = at + time::Duration::minutes(2);
    assert!(due(&h.store, later, &config, None, &memory.slotted).unwrap().is_none());
}

#[tokio::test]
async fn maintenance_entered_over_planned_work_makes_a_repair_that_moves_it() {
    use model::PlanTrigger;

    use crate::replanner::{PlanningConfig, due};
    let h = harness();
    let config = PlanningConfig::default();
    let slotted = std::collections::HashSet::new();
    let plan = publish_a_plan(&h).await;
    let freeze_end = NOW + time::Duration::minutes(i64::from(config.freeze_minutes));
    let operations = h.store.plan_operations(plan, None).unwrap();
    let later =
        operations.iter().find(|op| op.setup_start >= freeze_end).expect("work after the freeze window");
    let (machine, code) = (later.machine_id, h.store.machine(later.machine_id).unwrap().code);
    // A window over work inside the freeze window alone is no reason: a repair keeps that work.
    let frozen =
        operations.iter().find(|op| op.setup_start < freeze_end && op.end > NOW && op.machine_id != machine);
    if let Some(frozen) = frozen {
        let window = json!({"start": crate::rfc3339(frozen.setup_start), "end": crate::rfc3339(frozen.end), "reason": "oil"});
        let path = format!("/api/v1/machines/{}/maintenance", frozen.machine_id);
        assert_eq!(h.post_json(&path, &token_for(Role::Planner), &window).await.status, StatusCode::CREATED);
        assert!(due(&h.store, NOW, &config, None, &slotted).unwrap().is_none(), "frozen work stays");
    }
    let (start, end) =
        (later.setup_start - time::Duration::minutes(5), later.end + time::Duration::seconds(1));
    let window =
        json!({"start": crate::rfc3339(start), "end": crate::rfc3339(end), "reason": "spindle service"});
    let path = format!("/api/v1/machines/{machine}/maintenance");
    assert_eq!(h.post_json(&path, &token_for(Role::Planner), &window).await.status, StatusCode::CREATED);
    let found = due(&h.store, NOW, &config, None, &slotted).unwrap().expect("a repair is due");
    assert_eq!((found.active.id, found.trigger), (plan, PlanTrigger::Maintenance { machine: code.clone() }));
    let mut memory = crate::replanner::Memory::default();
    let (repaired, trigger) =
        crate::replanner::check_and_repair(&h.store, &NOW, &config, None, &mut memory).unwrap().unwrap();
    assert_eq!(trigger, PlanTrigger::Maintenance { machine: code });
    let clashing: Vec<_> = h
        .store
        .plan_operations(repaired, Some(machine))
        .unwrap()
        .into_iter()
        .filter(|op| op.setup_start >= freeze_end && op.setup_start < end && op.end > start)
        .collect();
    assert!(clashing.is_empty(), "{clashing:?}");
    assert!(due(&h.store, NOW, &config, None, &slotted).unwrap().is_none(), "repaired once");
}

#[tokio::test]
async fn changed_shifts_and_later_material_re_plan_the_work_they_concern() {
    use model::PlanTrigger;

    use crate::replanner::{Memory, PlanningConfig, check_and_repair, due};
    let h = harness();
    let config = PlanningConfig::default();
    let slotted = std::collections::HashSet::new();
    let plan = publish_a_plan(&h).await;
    assert!(due(&h.store, NOW, &config, None, &slotted).unwrap().is_none(), "as planned");
    // The site goes down to one day shift on weekdays, with a holiday tomorrow.
    let weekdays = ["mon", "tue", "wed", "thu", "fri"];
    let day = json!({"shifts": [{"name": "day", "days": weekdays, "start": "08:00", "end": "16:00"}], "holidays": ["2026-11-25"]});
    assert_eq!(h.send_json("PUT", "/api/v1/sites/1/calendar", ADMIN, &day).await.status, StatusCode::OK);
    let found = due(&h.store, NOW, &config, None, &slotted).unwrap().expect("a re-plan is due");
    assert_eq!((found.active.id, found.trigger), (plan, PlanTrigger::Calendar { site: "hk-kt".into() }));
    let mut memory = Memory::default();
    let (replanned, trigger) = check_and_repair(&h.store, &NOW, &config, None, &mut memory).unwrap().unwrap();
    assert_eq!(trigger, PlanTrigger::Calendar { site: "hk-kt".into() });
    let freeze_end = NOW + time::Duration::minutes(i64::from(config.freeze_minutes));
    let holiday = (datetime!(2026-11-25 00:00 +08:00), datetime!(2026-11-26 00:00 +08:00));
    for op in
        h.store.plan_operations(replanned, None).unwrap().iter().filter(|op| op.setup_start >= freeze_end)
    {
        assert!(op.end <= holiday.0 || op.setup_start >= holiday.1, "{op:?} on the holiday");
    }
    assert!(due(&h.store, NOW, &config, None, &slotted).unwrap().is_none(), "re-planned once");
    // An order's material now comes later than its planned start (after the freeze window).
    delayed_material_is_re_planned(
        &h,
        replanned,
        freeze_end..NOW + time::Duration::days(400),
        time::Duration::days(3),
    );
}

#[tokio::test]
async fn a_machine_taken_out_of_a_routing_loses_its_open_work_and_the_plan_follows() {
    use model::PlanTrigger;

    use crate::replanner::{Memory, PlanningConfig, check_and_repair, due};
    let h = harness();
    let config = PlanningConfig::default();
    let plan = publish_a_plan(&h).await;
    let freeze_end = NOW + time::Duration::minutes(i64::from(config.freeze_minutes));
    // Later work of a step with a choice of machines, and the routing it came from.
    let (machine, operation) = h
        .store
        .plan_operations(plan, None)
        .unwrap()
        .into_iter()
        .filter(|op| op.start >= freeze_end)
        .find_map(|op| {
            let operation = h.store.operation(op.operation_id).unwrap();
            (operation.eligible_machines.len() > 1 && operation.status == model::OrderStatus::Released)
                .then_some((op.machine_id, operation))
        })
        .expect("work with a choice of machines");
    let order = h.store.order(operation.order_id).unwrap();
    let routing = h.store.variant(order.variant_id).unwrap().routing_id.unwrap();
    let mut body = h.get(&format!("/api/v1/routings/{}", routing.0)).await.json;
    let steps = body["steps"].as_array_mut().unwrap();
    let step = &mut steps[operation.seq as usize];
    let kept: Vec<Value> = step["eligible_machines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| **m != json!(machine.0))
        .cloned()
        .collect();
    step["eligible_machines"] = json!(kept);
    let body = json!({"code": body["code"], "name": body["name"], "steps": body["steps"]});
    let reply = h.send_json("PUT", &format!("/api/v1/routings/{}", routing.0), ADMIN, &body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let now_eligible = h.store.operation(operation.id).unwrap().eligible_machines;
    assert!(!now_eligible.contains(&machine) && !now_eligible.is_empty(), "{now_eligible:?}");
    let found = due(&h.store, NOW, &config, None, &Default::default()).unwrap().expect("a re-plan is due");
    assert!(
        matches!(&found.trigger, PlanTrigger::Routing { orders } if orders.contains(&order.number)),
        "{:?}",
        found.trigger
    );
    let (replanned, _) =
        check_and_repair(&h.store, &NOW, &config, None, &mut Memory::default()).unwrap().unwrap();
    let parts = h.store.plan_operations(replanned, None).unwrap();
    assert!(parts.iter().filter(|p| p.operation_id == operation.id).all(|p| p.machine_id != machine));
    assert!(due(&h.store, NOW, &config, None, &Default::default()).unwrap().is_none(), "re-planned once");
}

#[tokio::test]
async fn material_late_for_frozen_work_re_plans_it_too() {
    use crate::replanner::PlanningConfig;
    let h = harness();
    let config = PlanningConfig::default();
    let plan = publish_a_plan(&h).await;
    let freeze_end = NOW + time::Duration::minutes(i64::from(config.freeze_minutes));
    // An order whose first work starts within the freeze window, not yet begun.
    delayed_material_is_re_planned(&h, plan, NOW..freeze_end, time::Duration::hours(5));
}

#[tokio::test]
async fn a_long_maintenance_moves_work_to_the_other_machines_it_may_run_on() {
    use crate::replanner::{Memory, PlanningConfig, check_and_repair};
    let h = harness();
    let config = PlanningConfig::default();
    let plan = publish_a_plan(&h).await;
    let freeze_end = NOW + time::Duration::minutes(i64::from(config.freeze_minutes));
    let operations = h.store.plan_operations(plan, None).unwrap();
    // A machine with later work that another machine may do as well.
    let (machine, moved) = operations
        .iter()
        .filter(|op| op.setup_start >= freeze_end)
        .find_map(|op| {
            let eligible = h.store.operation(op.operation_id).unwrap().eligible_machines;
            (eligible.len() > 1).then_some((op.machine_id, op.operation_id))
        })
        .expect("work with a choice of machines");
    let window = json!({"start": crate::rfc3339(freeze_end), "end": crate::rfc3339(NOW + time::Duration::days(40)), "reason": "rebuild"});
    let path = format!("/api/v1/machines/{machine}/maintenance");
    assert_eq!(h.post_json(&path, &token_for(Role::Planner), &window).await.status, StatusCode::CREATED);
    let (replanned, _) =
        check_and_repair(&h.store, &NOW, &config, None, &mut Memory::default()).unwrap().unwrap();
    let after = h.store.plan_operations(replanned, None).unwrap();
    let now_on = after.iter().find(|op| op.operation_id == moved).unwrap();
    assert_ne!(now_on.machine_id, machine, "not pushed past a 40-day closure: {now_on:?}");
}

#[tokio::test]
async fn a_due_time_moved_earlier_than_the_plan_finishes_the_order_re_plans_it() {
    use model::PlanTrigger;

    use crate::replanner::{Memory, PlanningConfig, check_and_repair};
    let h = harness();
    let config = PlanningConfig { repair_time_limit_seconds: 0.5, ..PlanningConfig::default() };
    let plan = publish_a_plan(&h).await;
    let freeze_end = NOW + time::Duration::minutes(i64::from(config.freeze_minutes));
    // The order the plan finishes last, none of its work within the freeze.
    let operations = h.store.plan_operations(plan, None).unwrap();
    let eta = |operations: &[model::PlannedOperation], order: model::OrderId| {
        operations.iter().filter(|op| op.order_id == order).map(|op| op.end).max().unwrap()
    };
    let last = operations
        .iter()
        .map(|op| op.order_id)
        .filter(|order| {
            operations.iter().filter(|op| op.order_id == *order).all(|op| op.setup_start >= freeze_end)
        })
        .max_by_key(|order| eta(&operations, *order))
        .unwrap();
    let before = eta(&operations, last);
    let order = h.get(&format!("/api/v1/orders/{}", last.0)).await.json;
    let change = |due: time::OffsetDateTime| {
        let body = json!({"number": order["number"], "customer": order["customer"], "variant_id": order["variant_id"],
            "quantity": order["quantity"], "due": crate::rfc3339(due), "priority": order["priority"]});
        let h = &h;
        async move {
            h.send(
                "PUT",
                &format!("/api/v1/orders/{}", last.0),
                Some(ADMIN),
                Some(("application/json", body.to_string().into_bytes())),
            )
            .await
        }
    };
    // Later: nothing to do.
    assert_eq!(change(before + time::Duration::days(3)).await.status, StatusCode::OK);
    assert!(h.state.take_requested_replans().is_empty());
    // Earlier than the plan finishes it: a re-plan searched afresh, which brings it forward.
    assert_eq!(change(NOW + time::Duration::days(1)).await.status, StatusCode::OK);
    let mut memory = Memory { requested: h.state.take_requested_replans(), ..Memory::default() };
    let number = order["number"].as_str().unwrap().to_string();
    assert_eq!(memory.requested, [PlanTrigger::DueEarlier { orders: vec![number.clone()] }]);
    let (replanned, trigger) = check_and_repair(&h.store, &NOW, &config, None, &mut memory).unwrap().unwrap();
    assert_eq!(trigger, PlanTrigger::DueEarlier { orders: vec![number] });
    let after = eta(&h.store.plan_operations(replanned, None).unwrap(), last);
    assert!(after < before, "{after} not before {before}");
    // Planned on time already, an earlier due time that the plan still meets asks for nothing.
    assert_eq!(change(after + time::Duration::hours(1)).await.status, StatusCode::OK);
    let _ = h.state.take_requested_replans();
    assert_eq!(change(after + time::Duration::minutes(30)).await.status, StatusCode::OK);
    assert!(h.state.take_requested_replans().is_empty());
}

#[tokio::test]
async fn a_maintenance_window_removed_lets_its_machine_s_work_come_back() {
    use model::PlanTrigger;

    use crate::replanner::{Memory, PlanningConfig, check_and_repair};
    let h = harness();
    let config = PlanningConfig::default();
    let plan = publish_a_plan(&h).await;
    let freeze_end = NOW + time::Duration::minutes(i64::from(config.freeze_minutes));
    let first_on = |plan: i64, machine: model::MachineId| {
        h.store
            .plan_operations(plan, Some(machine))
            .unwrap()
            .iter()
            .map(|op| op.setup_start)
            .filter(|at| *at >= freeze_end)
            .min()
    };
    // A machine with later work that only it may do: kept out, it waits for the window.
    let machine = h
        .store
        .plan_operations(plan, None)
        .unwrap()
        .into_iter()
        .find(|op| {
            op.setup_start >= freeze_end
                && h.store.operation(op.operation_id).unwrap().eligible_machines.len() == 1
        })
        .expect("work only one machine may do")
        .machine_id;
    let window = json!({"start": crate::rfc3339(freeze_end), "end": crate::rfc3339(NOW + time::Duration::days(5)), "reason": "rebuild"});
    let reply = h
        .post_json(&format!("/api/v1/machines/{}/maintenance", machine.0), &token_for(Role::Planner), &window)
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let mut memory = Memory::default();
    let (kept_out, _) = check_and_repair(&h.store, &NOW, &config, None, &mut memory).unwrap().unwrap();
    assert!(first_on(kept_out, machine).is_none_or(|at| at >= NOW + time::Duration::days(5)));
    // Called off: a re-plan brings the machine's work back.
    let path = format!("/api/v1/maintenance/{}", reply.json["id"]);
    assert_eq!(h.send("DELETE", &path, Some(ADMIN), None).await.status, StatusCode::NO_CONTENT);
    let code = h.store.machine(machine).unwrap().code;
    memory.requested = h.state.take_requested_replans();
    assert_eq!(memory.requested, [PlanTrigger::MaintenanceRemoved { machine: code.clone() }]);
    let (back, trigger) = check_and_repair(&h.store, &NOW, &config, None, &mut memory).unwrap().unwrap();
    assert_eq!(trigger, PlanTrigger::MaintenanceRemoved { machine: code });
    // Searched from the plan that kept it out: its work comes back before the window's end.
    let figures = |plan: i64| {
        let summary = h.store.plan(plan).unwrap();
        (summary.weighted_tardiness, summary.makespan_end)
    };
    assert!(figures(back) <= figures(kept_out), "{:?} after {:?}", figures(back), figures(kept_out));
    let again = first_on(back, machine).expect("work on the machine");
    assert!(again < NOW + time::Duration::days(5), "{again}");
    assert!(memory.requested.is_empty());
    // A window over no work, entered and removed: nothing to publish either time.
    let far = json!({"start": crate::rfc3339(NOW + time::Duration::days(300)), "end": crate::rfc3339(NOW + time::Duration::days(301)), "reason": "audit"});
    let reply = h
        .post_json(&format!("/api/v1/machines/{}/maintenance", machine.0), &token_for(Role::Planner), &far)
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(check_and_repair(&h.store, &NOW, &config, None, &mut memory).unwrap(), None, "no work in it");
    let path = format!("/api/v1/maintenance/{}", reply.json["id"]);
    assert_eq!(h.send("DELETE", &path, Some(ADMIN), None).await.status, StatusCode::NO_CONTENT);
    assert!(h.state.take_requested_replans().is_empty(), "no work waited behind it");
}

#[tokio::test]
async fn automatic_repairs_follow_breakdowns_rush_orders_and_work_off_the_plan() {
    use model::PlanTrigger;

    use crate::replanner::{PlanningConfig, due};
    let h = harness();
    let workers = h.state.start_workers();
    let config = PlanningConfig::default();
    let minutes = |m: i64| NOW + time::Duration::minutes(m);
    let mut memory = crate::replanner::Memory::default();
    let slotted = std::collections::HashSet::new();
    assert!(due(&h.store, NOW, &config, None, &slotted).unwrap().is_none(), "no active plan yet");
    let plan = publish_a_plan(&h).await;
    assert!(due(&h.store, NOW, &config, None, &slotted).unwrap().is_none(), "just published");

    // A machine with planned work breaks down after the plan was made; a breakdown the plan knew
    // of (reported before it was made) needs no repair.
    let busy = h.store.plan_operations(plan, None).unwrap()[0].machine_id;
    let code = h.store.machine(busy).unwrap().code;
    let down = |reported| Some(crate::replanner::Breakdown { machines: vec![busy], reported });
    let breakdown = due(&h.store, minutes(1), &config, down(minutes(1)), &slotted).unwrap().unwrap();
    assert_eq!((breakdown.active.id, breakdown.trigger), (plan, PlanTrigger::Breakdown { machine: code }));
    assert!(due(&h.store, minutes(1), &config, down(NOW), &slotted).unwrap().is_none(), "known to the plan");
    // Breakdowns reported together make one repair, named after a machine that has planned work.
    let idle = model::MachineId(9_999);
    let together = Some(crate::replanner::Breakdown { machines: vec![idle, busy], reported: minutes(1) });
    let found = due(&h.store, minutes(1), &config, together, &slotted).unwrap().unwrap().trigger;
    assert_eq!(found, PlanTrigger::Breakdown { machine: h.store.machine(busy).unwrap().code });
    let alone = Some(crate::replanner::Breakdown { machines: vec![idle], reported: minutes(1) });
    assert!(due(&h.store, minutes(1), &config, alone, &slotted).unwrap().is_none(), "no planned work");

    // A rush order is slotted in until a published repair had it; an order of ordinary priority
    // waits for the next plan.
    let mut ordinary = valid_order();
    ordinary["number"] = json!("SO-T-ORD");
    let ordinary =
        h.post_json("/api/v1/orders", &token_for(Role::Planner), &ordinary).await.json["id"].clone();
    h.send("POST", &format!("/api/v1/orders/{ordinary}/release"), Some(&token_for(Role::Planner)), None)
        .await;
    assert!(due(&h.store, NOW, &config, None, &slotted).unwrap().is_none(), "priority 2 is no rush");
    let (rush, number) = rush_order(&h, "SO-T-RUSH").await;
    let found = due(&h.store, NOW, &config, None, &slotted).unwrap().unwrap();
    assert_eq!(found.trigger, PlanTrigger::RushOrders { orders: vec![number.clone()] });
    assert_eq!(found.slotting, [model::OrderId(rush)]);
    assert!(due(&h.store, NOW, &config, None, &slotted).unwrap().is_some(), "due until a repair has it");
    let had = std::collections::HashSet::from([model::OrderId(rush)]);
    assert!(due(&h.store, NOW, &config, None, &had).unwrap().is_none(), "not again once a repair had it");
    let off = PlanningConfig { rush_priority: 0, ..config.clone() };
    assert!(due(&h.store, NOW, &off, None, &slotted).unwrap().is_none());

    // Work started two hours ahead of the plan: a repair once the interval since the publish has
    // passed, not before.
    let planned = h.store.plan_operations(plan, None).unwrap();
    let parts = crate::planning::progress::with_statuses(&h.store, plan, &planned).unwrap();
    let ahead = parts
        .iter()
        .find(|(op, status)| *status == model::OrderStatus::Released && op.setup_start > minutes(150))
        .map(|(op, _)| (*op).clone())
        .expect("work planned more than 2.5 hours ahead");
    let started = h
        .post_json(
            &format!("/api/v1/operations/{}/start", ahead.operation_id.0),
            &token_for(Role::Operator),
            &json!({"machine_id": ahead.machine_id}),
        )
        .await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.text);
    assert!(due(&h.store, minutes(9), &config, None, &had).unwrap().is_none(), "within the interval");
    let trigger = due(&h.store, minutes(10), &config, None, &had).unwrap().unwrap().trigger;
    assert!(matches!(trigger, PlanTrigger::Deviation { early, .. } if early >= 1), "{trigger:?}");
    let off = PlanningConfig { deviation_minutes: 0, ..config.clone() };
    assert!(due(&h.store, minutes(10), &off, None, &had).unwrap().is_none());

    // The repair (rush orders come before work off the plan) is published with its reason, has
    // the rush order and the early start, and the rush order is not slotted in again.
    let before = h.store.plan_operations(plan, None).unwrap();
    // The kept order's own: no search, which the plan published after a search of 0.2 s (more or
    // less good, as the machine is loaded) may or may not call for (see
    // `a_searched_repair_keeps_a_rush_order_where_the_kept_order_put_it`).
    let kept = PlanningConfig { repair_search_loss_percent: 0.0, ..config.clone() };
    let repaired = crate::replanner::check_and_repair(&h.store, &minutes(10), &kept, None, &mut memory)
        .unwrap()
        .expect("a repair");
    let active = h.store.active_plan().unwrap().unwrap();
    // The rush order goes ahead of all work on its first machine but what runs (the early start)
    // or was frozen (planned to start within the hour).
    let after = h.store.plan_operations(active.id, None).unwrap();
    let first = after.iter().filter(|op| op.order_id.0 == rush).min_by_key(|op| op.start).unwrap();
    let ahead_of_rush = |op: &&model::PlannedOperation| {
        op.machine_id == first.machine_id && op.start < first.start && op.operation_id != ahead.operation_id
    };
    for op in after.iter().filter(ahead_of_rush) {
        let was = before.iter().find(|old| (old.operation_id, old.part) == (op.operation_id, op.part));
        assert!(
            was.is_some_and(|old| old.start < minutes(70) && old.start == op.start),
            "{op:?} went before the rush order ({first:?})"
        );
    }
    assert_eq!((active.id, active.trigger.clone()), (repaired.0, Some(repaired.1)));
    assert_eq!(active.published_at, Some(minutes(10)));
    assert!(h.store.orders_missing_from_plan(active.id, 9).unwrap().is_empty(), "the rush order is planned");
    let listed = h.get(&format!("/api/v1/plans/{}", active.id)).await.json;
    assert_eq!(listed["trigger"]["kind"], "rush_orders", "{}", listed["trigger"]);
    assert_eq!(memory.slotted, had);
    // The early start is in the repair, and nothing is off the plan any more.
    let (late, early, cancelled) = crate::planning::progress::deviations(
        &crate::planning::progress::with_statuses(&h.store, active.id, &after).unwrap(),
        minutes(10),
        time::Duration::minutes(30),
        &std::collections::HashMap::new(),
    );
    assert_eq!((late, early, cancelled), (0, 0, 0));
    // An order cancelled while its work is planned hours ahead: the next repair frees that time.
    let later = after.iter().filter(|op| op.order_id.0 != rush).max_by_key(|op| op.end).unwrap();
    let cancelled = h
        .send(
            "POST",
            &format!("/api/v1/orders/{}/cancel", later.order_id.0),
            Some(&token_for(Role::Planner)),
            None,
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.text);
    let trigger = due(&h.store, minutes(20), &config, None, &memory.slotted).unwrap().unwrap().trigger;
    assert!(
        matches!(trigger, PlanTrigger::Deviation { late: 0, early: 0, cancelled } if cancelled >= 1),
        "{trigger:?}"
    );
    h.state.begin_stop();
    workers.finish().await;
}

#[tokio::test]
async fn released_orders_are_slotted_in_once_the_plan_is_a_while_old() {
    use model::PlanTrigger;

    use crate::replanner::{PlanningConfig, check_and_repair, due};
    let h = harness();
    let workers = h.state.start_workers();
    let config = PlanningConfig { deviation_minutes: 0, ..PlanningConfig::default() };
    let minutes = |m: i64| NOW + time::Duration::minutes(m);
    let mut memory = crate::replanner::Memory::default();
    let planner = token_for(Role::Planner);
    publish_a_plan(&h).await;
    // Two orders of ordinary priority, released after the plan was published (at NOW).
    let mut numbers = Vec::new();
    for number in ["SO-T-NEW1", "SO-T-NEW2"] {
        let mut order = valid_order();
        order["number"] = json!(number);
        let id = h.post_json("/api/v1/orders", &planner, &order).await.json["id"].clone();
        let released = h.send("POST", &format!("/api/v1/orders/{id}/release"), Some(&planner), None).await;
        assert_eq!(released.status, StatusCode::OK, "{}", released.text);
        numbers.push(number.to_string());
    }
    let none = std::collections::HashSet::new();
    assert!(
        due(&h.store, minutes(14), &config, None, &none).unwrap().is_none(),
        "the plan is not 15 minutes old"
    );
    let found = due(&h.store, minutes(15), &config, None, &none).unwrap().expect("due at 15 minutes");
    assert_eq!(found.trigger, PlanTrigger::NewOrders { orders: numbers.clone() });
    assert_eq!(found.slotting.len(), 2);
    let had: std::collections::HashSet<_> = found.slotting.iter().copied().collect();
    assert!(
        due(&h.store, minutes(15), &config, None, &had).unwrap().is_none(),
        "not again once a repair had them"
    );
    let off = PlanningConfig { new_order_minutes: 0, ..config.clone() };
    assert!(due(&h.store, minutes(600), &off, None, &none).unwrap().is_none(), "0 turns it off");
    // The repair has both orders, says why, and the next check finds nothing to do.
    let (id, trigger) =
        check_and_repair(&h.store, &minutes(15), &config, None, &mut memory).unwrap().expect("a repair");
    assert_eq!(trigger, PlanTrigger::NewOrders { orders: numbers });
    assert_eq!(h.store.active_plan().unwrap().unwrap().id, id);
    assert!(h.store.orders_missing_from_plan(id, 1).unwrap().is_empty(), "both are planned");
    assert_eq!(memory.slotted, had);
    assert!(check_and_repair(&h.store, &minutes(40), &config, None, &mut memory).unwrap().is_none());
    h.state.begin_stop();
    workers.finish().await;
}

/// A generated factory (60 orders, 6 machines, shifts) whose active plan is the ATCS dispatch,
/// published at `now`, as a plan that a search can beat.
fn dispatched_factory(now: model::Timestamp) -> (Store, model::PlanSummary) {
    let store = Store::open_in_memory().unwrap();
    crate::demo::seed_generated(&store, 60, 6, 11, now).unwrap();
    let (summary, _) = publish_dispatch(&store, now);
    (store, summary)
}

/// The ATCS dispatch of what `store` holds at `now`, published then.
fn publish_dispatch(store: &Store, now: model::Timestamp) -> (model::PlanSummary, store::NewPlan) {
    let built = crate::planning::build(store, now, &crate::planning::Options::default()).unwrap();
    let dispatched =
        crate::planning::solve(&built, now, crate::planning::DEFAULT_OBJECTIVE, std::time::Duration::ZERO, 1)
            .unwrap();
    let summary = store.create_plan(&dispatched).unwrap();
    store.publish_plan(summary.id, now).unwrap();
    (summary, dispatched)
}

/// A shop of `machines` fresh machines at `+08:00` working 08:00–12:00 and 13:00–17:00 every day,
/// and one released order per `(quantity, unit_seconds, setup_seconds)`, each of one step that
/// any machine can do, due at `due`.
fn two_shift_shop(machines: usize, lots: &[(u32, f64, u32)], due: model::Timestamp) -> Store {
    use model::*;
    let store = Store::open_in_memory().unwrap();
    let site = store
        .create_site(&NewSite {
            code: "hk".into(),
            name: "HK".into(),
            utc_offset: Some("+08:00".into()),
            time_zone: None,
        })
        .unwrap();
    let days = Weekday::ALL.to_vec();
    let shift = |name: &str, start: &str, end: &str| Shift {
        name: name.into(),
        days: days.clone(),
        start: start.into(),
        end: end.into(),
    };
    let calendar = Calendar {
        shifts: vec![shift("am", "08:00", "12:00"), shift("pm", "13:00", "17:00")],
        holidays: vec![],
    };
    store.set_calendar(site.id, &calendar).unwrap();
    let machines: Vec<MachineId> = (0..machines)
        .map(|i| {
            let machine = NewMachine {
                site_id: site.id,
                line_id: None,
                code: format!("m{i}"),
                name: format!("M{i}"),
                kind: MachineKind::CncMill,
                capabilities: vec![],
                rated_power_kw: 0.0,
                retired: None,
            };
            store.create_machine(&machine, NOW).unwrap().id
        })
        .collect();
    let product =
        store.create_product(&NewProduct { code: "p".into(), name: "P".into(), family: "f".into() }).unwrap();
    for (i, &(quantity, unit_seconds, setup_seconds)) in lots.iter().enumerate() {
        let step = RoutingStep {
            name: "make".into(),
            eligible_machines: machines.clone(),
            setup_seconds,
            unit_seconds,
            setup_family: "alu".into(),
        };
        let routing = store
            .create_routing(&NewRouting { code: format!("r{i}"), name: format!("R{i}"), steps: vec![step] })
            .unwrap();
        let variant = store
            .create_variant(&NewVariant {
                product_id: product.id,
                code: format!("v{i}"),
                name: format!("V{i}"),
                routing_id: Some(routing.id),
                bom: vec![],
            })
            .unwrap();
        let order = NewOrder {
            number: format!("SO-{i}"),
            customer: "c".into(),
            variant_id: variant.id,
            quantity,
            due,
            priority: 1,
            material_ready: None,
        };
        let order = store.create_order(&order, NOW).unwrap();
        store.set_order_status(order.id, OrderStatus::Released).unwrap();
    }
    store
}

#[test]
fn shifts_keep_their_length_whatever_the_fraction_of_a_second_a_plan_is_made_at() {
    // 60 units of 240 s, no setup, fill a four-hour shift exactly; planned at 07:00:00.4.
    let now = datetime!(2026-11-30 07:00:00.4 +08:00);
    let store = two_shift_shop(1, &[(60, 240.0, 0)], datetime!(2026-11-30 18:00 +08:00));
    let plan = crate::planning::plan(
        &store,
        now,
        "tardiness_then_makespan",
        std::time::Duration::from_millis(200),
        &crate::planning::Options { threads: 1, ..crate::planning::Options::default() },
    )
    .unwrap();
    let bars: Vec<_> = plan.operations.iter().map(|op| (op.quantity, op.start, op.end)).collect();
    assert_eq!(
        bars,
        [(60, datetime!(2026-11-30 08:00 +08:00), datetime!(2026-11-30 12:00 +08:00))],
        "one bar filling the first shift"
    );
    assert_eq!(plan.late_orders, 0);
}

#[test]
fn each_step_is_set_up_for_its_own_setup_time_and_work_of_one_family_follows_without_one() {
    // Two lots of the setup family "alu" on one fresh machine, one step set up in 5 minutes and
    // the other in 15 (a laser and a mill of one family): the first planned takes its own
    // setup, not the family's longest, and the second follows it without one.
    let store = two_shift_shop(1, &[(10, 60.0, 300), (10, 60.0, 900)], datetime!(2026-11-30 18:00 +08:00));
    let now = datetime!(2026-11-30 07:00 +08:00);
    let options = crate::planning::Options { threads: 1, ..crate::planning::Options::default() };
    let plan = crate::planning::plan(
        &store,
        now,
        "tardiness_then_makespan",
        std::time::Duration::from_millis(200),
        &options,
    )
    .unwrap();
    let mut bars: Vec<_> = plan.operations.iter().collect();
    bars.sort_by_key(|op| op.start);
    let own = |op: &model::PlannedOperation| store.operation(op.operation_id).unwrap().setup_seconds;
    let setups: Vec<i64> = bars.iter().map(|op| (op.start - op.setup_start).whole_seconds()).collect();
    assert_eq!(setups, [i64::from(own(bars[0])), 0], "{bars:?}");
    assert_eq!(plan.setup_seconds, i64::from(own(bars[0])));
}

#[test]
fn work_months_ahead_keeps_to_the_shifts_too() {
    // 100 lots of four hours on one machine working two four-hour shifts a day: 50 days of work,
    // past the six weeks of calendar a plan used to lay out (beyond them it ran around the clock).
    let store = two_shift_shop(1, &[(60, 240.0, 0); 100], datetime!(2027-06-30 18:00 +08:00));
    let now = datetime!(2026-11-30 07:00 +08:00);
    let options = crate::planning::Options { threads: 1, ..crate::planning::Options::default() };
    let plan =
        crate::planning::plan(&store, now, "tardiness_then_makespan", std::time::Duration::ZERO, &options)
            .unwrap();
    let hk = time::UtcOffset::from_hms(8, 0, 0).unwrap();
    let last = plan.operations.iter().map(|op| op.end).max().unwrap();
    assert!(last > now + time::Duration::days(49), "{last}");
    for op in &plan.operations {
        let (from, to) = (op.setup_start.to_offset(hk), op.end.to_offset(hk));
        let shift = if from.hour() < 12 { (8, 12) } else { (13, 17) };
        assert!(
            from.date() == to.date() && from.hour() >= shift.0 && (to.hour(), to.minute()) <= (shift.1, 0),
            "{from} to {to} is not inside one shift"
        );
    }
}

#[test]
fn plans_keep_shifts_at_their_local_times_across_a_change_to_summer_time() {
    // Six lots each filling a four-hour shift, in Berlin from Friday 2027-03-26; the clocks go
    // forward early on Sunday the 28th, so Sunday's shifts begin an hour earlier in UTC.
    let store = two_shift_shop(1, &[(60, 240.0, 0); 6], datetime!(2027-04-30 18:00 UTC));
    let berlin = model::NewSite {
        code: "hk".into(),
        name: "Berlin now".into(),
        utc_offset: None,
        time_zone: Some("Europe/Berlin".into()),
    };
    store.update_site(model::SiteId(1), &berlin).unwrap();
    let now = datetime!(2027-03-26 07:00 +01:00);
    let options = crate::planning::Options { threads: 1, ..crate::planning::Options::default() };
    let limit = std::time::Duration::from_millis(200);
    let plan = crate::planning::plan(&store, now, "tardiness_then_makespan", limit, &options).unwrap();
    let mut starts: Vec<_> = plan.operations.iter().map(|op| (op.start, op.end - op.start)).collect();
    starts.sort();
    let four_hours = time::Duration::hours(4);
    assert_eq!(
        starts,
        [
            (datetime!(2027-03-26 07:00 UTC), four_hours),
            (datetime!(2027-03-26 12:00 UTC), four_hours),
            (datetime!(2027-03-27 07:00 UTC), four_hours),
            (datetime!(2027-03-27 12:00 UTC), four_hours),
            (datetime!(2027-03-28 06:00 UTC), four_hours),
            (datetime!(2027-03-28 11:00 UTC), four_hours),
        ]
    );
}

#[test]
fn a_split_lot_has_no_part_longer_than_a_shift_and_a_fresh_machine_needs_its_setup() {
    let now = datetime!(2026-11-30 07:00 +08:00);
    // 7 units of 4,000 s: at most three fit a four-hour shift, so three parts (3 + 2 + 2).
    let store = two_shift_shop(1, &[(7, 4000.0, 0)], datetime!(2026-12-03 18:00 +08:00));
    let options = crate::planning::Options { threads: 1, ..crate::planning::Options::default() };
    let plan_of = |store: &Store| {
        let limit = std::time::Duration::from_millis(200);
        crate::planning::plan(store, now, "tardiness_then_makespan", limit, &options).unwrap()
    };
    let plan = plan_of(&store);
    let mut quantities: Vec<u32> = plan.operations.iter().map(|op| op.quantity).collect();
    quantities.sort();
    assert_eq!(quantities, [2, 2, 3]);
    for op in &plan.operations {
        assert!(op.end - op.setup_start <= time::Duration::hours(4), "{op:?}");
        assert!(op.end <= datetime!(2026-12-02 00:00 +08:00), "placed far out: {op:?}");
    }
    // A lot filling a shift exactly without a setup, in a family another step sets up for ten
    // minutes: the plan charges the family's setup on the fresh machine, so the lot is split.
    let store = two_shift_shop(1, &[(24, 600.0, 0), (1, 60.0, 600)], datetime!(2026-12-03 18:00 +08:00));
    // The step that sets up for ten minutes waits for its material, so the long lot comes first.
    let small = store.order_by_number("SO-1").unwrap().unwrap();
    let waiting = model::NewOrder {
        number: small.number.clone(),
        customer: small.customer.clone(),
        variant_id: small.variant_id,
        quantity: small.quantity,
        due: small.due,
        priority: small.priority,
        material_ready: Some(datetime!(2026-12-20 08:00 +08:00)),
    };
    store.update_order(small.id, &waiting, NOW).unwrap();
    let plan = plan_of(&store);
    for op in plan.operations.iter().filter(|op| op.order_id != small.id) {
        assert!(op.end - op.setup_start <= time::Duration::hours(4), "{op:?}");
        assert!(op.end <= datetime!(2026-12-01 00:00 +08:00), "placed far out: {op:?}");
    }
    // A machine that never produced is set up for nothing: its first lot sets up first.
    let store = two_shift_shop(1, &[(10, 60.0, 900)], datetime!(2026-12-03 18:00 +08:00));
    let plan = plan_of(&store);
    let first = &plan.operations[0];
    assert_eq!(
        (first.setup_start, first.start),
        (datetime!(2026-11-30 08:00 +08:00), datetime!(2026-11-30 08:15 +08:00))
    );
    assert_eq!(plan.setup_seconds, 900);
}

#[test]
fn a_repair_keeps_the_closed_time_before_frozen_work() {
    // The generated factory works from 06:00. At 05:30 a repair freezes the dispatch's work of
    // 06:00 to 07:00 (its fresh machines set up first); the half hour before it stays closed, so
    // nothing is planned into it.
    let (store, _) = dispatched_factory(datetime!(2026-11-30 05:00 +08:00));
    let at = datetime!(2026-11-30 05:30 +08:00);
    let options = crate::planning::Options {
        repair: Some(time::Duration::minutes(90)),
        threads: 1,
        ..crate::planning::Options::default()
    };
    let built = crate::planning::build(&store, at, &options).unwrap();
    let frozen = built.problem.jobs.iter().flat_map(|job| &job.operations).filter(|op| op.fixed.is_some());
    assert!(frozen.count() > 0, "work frozen");
    for machine in &built.problem.machines {
        assert_eq!(machine.unavailable.first(), Some(&scheduler::Interval { start: 0, end: 1_800 }));
    }
    let plan = crate::planning::solve(
        &built,
        at,
        "tardiness_then_makespan",
        std::time::Duration::from_millis(300),
        1,
    )
    .unwrap();
    let opening = datetime!(2026-11-30 06:00 +08:00);
    assert!(plan.operations.iter().all(|op| op.setup_start >= opening), "work before the shift starts");
}

#[test]
fn a_repair_just_after_planned_starts_passed_moves_work_only_as_far_as_they_slipped() {
    // Dispatched at 05:00, work from 06:00. Ten seconds after the first lots were due to start,
    // none has: a repair with nothing else changed (the next eight hours frozen) may move work by
    // those seconds, not put the late lots behind the frozen work (which held everything else back
    // by hours).
    let (store, dispatched) = dispatched_factory(datetime!(2026-11-30 05:00 +08:00));
    let repaired = repair_of(&store, datetime!(2026-11-30 06:00:10 +08:00), time::Duration::minutes(480));
    let before = store.plan_operations(dispatched.id, None).unwrap();
    for op in &repaired.operations {
        let planned = before.iter().find(|b| (b.operation_id, b.part) == (op.operation_id, op.part)).unwrap();
        assert_eq!(op.machine_id, planned.machine_id, "a repair keeps the machines");
    }
    // Most work moves by the ten seconds at most (a lot that no longer fits before a break
    // waits for the next shift, and the work after it on its machine).
    let starts: std::collections::HashMap<_, _> =
        before.iter().map(|op| ((op.operation_id, op.part), op.start)).collect();
    let hours_later = repaired
        .operations
        .iter()
        .filter(|op| (op.start - starts[&(op.operation_id, op.part)]).whole_seconds() > 3600);
    let hours_later = hours_later.count();
    assert!(
        hours_later * 10 < repaired.operations.len(),
        "{hours_later} of {} moved by hours",
        repaired.operations.len()
    );
}

/// The generated factory dispatched at 05:00, a re-optimisation due at 05:30 (returned) with a
/// search of `seconds` on one thread and the work of `freeze_minutes` kept.
fn reoptimisation_due(
    seconds: f64,
    freeze_minutes: u32,
) -> (Store, model::PlanSummary, model::Timestamp, crate::replanner::PlanningConfig, crate::replanner::Memory)
{
    let now = datetime!(2026-11-30 05:00 +08:00);
    let (store, dispatched) = dispatched_factory(now);
    let later = now + time::Duration::minutes(30);
    let config = crate::replanner::PlanningConfig {
        reoptimise_time_limit_seconds: seconds,
        solver_threads: 1,
        deviation_minutes: 0,
        freeze_minutes,
        ..crate::replanner::PlanningConfig::default()
    };
    let memory = crate::replanner::Memory { reoptimise: Some(later), ..crate::replanner::Memory::default() };
    (store, dispatched, later, config, memory)
}

#[test]
fn an_urgent_repair_cuts_a_reoptimisation_short_and_it_runs_again_after() {
    use crate::replanner::check_and_repair;
    // A search of ten minutes, which the test would wait for unless it is cut short.
    let (store, dispatched, later, config, mut memory) = reoptimisation_due(600.0, 60);
    let interrupt = memory.interrupt.clone();
    let cut = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        interrupt.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let outcome = check_and_repair(&store, &later, &config, None, &mut memory).unwrap();
    cut.join().unwrap();
    assert!(outcome.is_none(), "nothing is published from a search cut short");
    assert!(memory.reoptimise.is_some(), "the re-optimisation is still to do");
    assert!(memory.reoptimised.is_none());
    assert_eq!(store.active_plan().unwrap().unwrap().id, dispatched.id);
}

#[test]
fn a_scheduled_reoptimisation_publishes_only_a_plan_clearly_better() {
    use model::PlanTrigger;

    use crate::replanner::{PlanningConfig, check_and_repair};
    // Frozen for 90 minutes from 05:30: the fresh machines set up from 06:00, then work starts.
    let (store, dispatched, later, config, mut memory) = reoptimisation_due(1.0, 90);
    // A clock that moves a minute each time it is read: the search takes time on the shop's clock.
    struct Ticking(std::sync::Mutex<model::Timestamp>);
    impl model::Clock for Ticking {
        fn now(&self) -> model::Timestamp {
            let mut now = self.0.lock().unwrap();
            *now += time::Duration::minutes(1);
            *now - time::Duration::minutes(1)
        }
    }
    let clock = Ticking(std::sync::Mutex::new(later));
    let (id, trigger) =
        check_and_repair(&store, &clock, &config, None, &mut memory).unwrap().expect("a better plan");
    assert!(memory.reoptimise.is_none(), "done once");
    let PlanTrigger::Reoptimised { late_orders_before, weighted_tardiness_before, makespan_end_before } =
        trigger
    else {
        panic!("{trigger:?}")
    };
    // Nothing ran or changed since the dispatch: "before" is the dispatch moved on by 30 minutes.
    assert!(weighted_tardiness_before >= dispatched.weighted_tardiness, "{weighted_tardiness_before}");
    assert!(late_orders_before >= dispatched.late_orders && makespan_end_before >= dispatched.makespan_end);
    let active = store.active_plan().unwrap().unwrap();
    // Planned for when it began, published when its search was done.
    assert_eq!(active.id, id);
    assert!(active.published_at.is_some_and(|at| at > later), "{:?}", active.published_at);
    let gained = active.weighted_tardiness as f64 <= weighted_tardiness_before as f64 * 0.99
        || (active.weighted_tardiness <= weighted_tardiness_before
            && (active.makespan_end - later).as_seconds_f64()
                <= (makespan_end_before - later).as_seconds_f64() * 0.99);
    assert!(
        gained,
        "{} → {} (Σ priority × s late), ends {makespan_end_before} → {}",
        weighted_tardiness_before, active.weighted_tardiness, active.makespan_end
    );
    // Work the dispatch started within the freeze horizon kept its machine and start.
    let before = store.plan_operations(dispatched.id, None).unwrap();
    let after = store.plan_operations(id, None).unwrap();
    let horizon = later + time::Duration::minutes(i64::from(config.freeze_minutes));
    let frozen: Vec<_> = before.iter().filter(|op| op.setup_start >= later && op.start < horizon).collect();
    assert!(!frozen.is_empty(), "work planned within the hour");
    for old in frozen {
        let new = after.iter().find(|op| (op.operation_id, op.part) == (old.operation_id, old.part)).unwrap();
        assert_eq!((new.machine_id, new.start), (old.machine_id, old.start), "frozen work moved");
    }
    // From the plan just published, a search with no time finds nothing better: it is not
    // published again.
    let options = crate::planning::Options {
        repair: Some(time::Duration::minutes(60)),
        threads: 1,
        ..crate::planning::Options::default()
    };
    let again = crate::planning::reoptimise(
        &store,
        later,
        &active.objective,
        std::time::Duration::ZERO,
        &options,
        config.reoptimise_min_gain_percent,
        &Arc::default(),
    )
    .unwrap();
    assert!(again.better.is_none());
    assert_eq!(again.current, Some((active.late_orders, active.weighted_tardiness, active.makespan_end)));
    // With the gain out of reach (half the end and no tardiness to lose), the search's plan is
    // not published: the active plan stays, and the time is done with.
    let unreachable = PlanningConfig { reoptimise_min_gain_percent: 50.0, ..config.clone() };
    memory.reoptimise = Some(later);
    let outcome = check_and_repair(&store, &later, &unreachable, None, &mut memory).unwrap();
    assert!(outcome.is_none(), "{outcome:?}");
    assert_eq!((memory.reoptimise, store.active_plan().unwrap().unwrap().id), (None, id));
    let kept = crate::replanner::LastReoptimisation { at: later, published: None };
    assert_eq!(memory.reoptimised, Some(kept));
    // A breakdown goes first; the re-optimisation waits for the next check. (The machine has work
    // soon, so the repair moves it.)
    let busy = after
        .iter()
        .find(|op| {
            op.setup_start < later + time::Duration::minutes(45) && op.end > later + time::Duration::hours(2)
        })
        .unwrap()
        .machine_id;
    let reported = later + time::Duration::minutes(1);
    let state =
        model::StateChange { machine: busy, at: reported, state: model::MachineState::Down, reason: None };
    store.record_state(&state).unwrap();
    let down = crate::replanner::Breakdown { machines: vec![busy], reported };
    let at = later + time::Duration::minutes(2);
    memory.reoptimise = Some(at);
    let (_, trigger) = check_and_repair(&store, &at, &config, Some(down), &mut memory).unwrap().unwrap();
    assert!(matches!(trigger, PlanTrigger::Breakdown { .. }), "{trigger:?}");
    assert_eq!(memory.reoptimise, Some(at));
}

#[tokio::test]
async fn the_replanner_re_optimises_at_the_scheduled_time_not_at_its_start() {
    // Started at 04:59 Hong Kong time, after the day before's 05:00: that one is not made up for.
    let start = datetime!(2026-11-30 04:59 +08:00);
    let (store, dispatched) = dispatched_factory(start);
    let clock = Arc::new(ManualClock::new(start));
    let state =
        AppState::new(store.clone(), clock.clone(), ServerConfig::default(), crate::AlarmConfig::default());
    let config = crate::PlanningConfig {
        reoptimise_at: vec!["05:00".into(), "17:00".into()],
        reoptimise_time_limit_seconds: 1.0,
        solver_threads: 1,
        deviation_minutes: 0,
        ..crate::PlanningConfig::default()
    };
    let replanner = tokio::spawn(crate::replanner::run(state.clone(), config, state.stopping.clone()));
    let active = || store.active_plan().unwrap().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(active().id, dispatched.id, "nothing at the start");
    clock.advance(time::Duration::minutes(2));
    state.wake_replanner();
    let mut found = None;
    for _ in 0..200 {
        found = Some(active()).filter(|plan| plan.id != dispatched.id);
        if found.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let found = found.expect("a re-optimised plan within ten seconds of 05:00");
    assert!(matches!(found.trigger, Some(model::PlanTrigger::Reoptimised { .. })), "{:?}", found.trigger);
    assert_eq!(found.published_at, Some(datetime!(2026-11-30 05:01 +08:00)));
    // The settings page learns of it.
    let last = crate::replanner::LastReoptimisation {
        at: datetime!(2026-11-30 05:01 +08:00),
        published: Some(found.id),
    };
    for _ in 0..100 {
        if state.last_reoptimisation().is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(state.last_reoptimisation(), Some(last));
    state.begin_stop();
    replanner.await.unwrap();
}

#[tokio::test]
async fn a_breakdown_whose_event_was_missed_is_found_in_the_machine_states() {
    use crate::replanner::{Memory, check_and_repair};
    let h = harness();
    let plan = publish_a_plan(&h).await;
    let busy = h.store.plan_operations(plan, None).unwrap()[0].machine_id;
    let down = model::StateChange {
        machine: busy,
        at: NOW + time::Duration::minutes(2),
        state: model::MachineState::Down,
        reason: None,
    };
    h.store.record_state(&down).unwrap();
    let config = crate::PlanningConfig { deviation_minutes: 0, ..crate::PlanningConfig::default() };
    let at = NOW + time::Duration::minutes(3);
    // Without a missed event, a check does not look at the states (the event repairs it).
    assert!(check_and_repair(&h.store, &at, &config, None, &mut Memory::default()).unwrap().is_none());
    let mut memory = Memory { missed_events: true, ..Memory::default() };
    let (repaired, trigger) =
        check_and_repair(&h.store, &at, &config, None, &mut memory).unwrap().expect("a repair");
    let code = h.store.machine(busy).unwrap().code;
    assert_eq!(trigger, model::PlanTrigger::Breakdown { machine: code });
    assert!(!memory.missed_events, "looked once");
    // The repair knew of the breakdown: reading the states again finds nothing to do.
    memory.missed_events = true;
    assert!(check_and_repair(&h.store, &at, &config, None, &mut memory).unwrap().is_none());
    assert_eq!(h.store.active_plan().unwrap().unwrap().id, repaired);
}

#[tokio::test]
async fn a_repair_overtaken_by_a_newer_plan_is_stale_not_failed() {
    let h = harness();
    publish_a_plan(&h).await;
    // A planner computes a plan, a rush order arrives, and the planner publishes the plan while
    // a repair for the rush order is under way (judged by plans, not times: both at 9:01).
    let options = crate::planning::Options::default();
    let draft = crate::planning::plan(
        &h.store,
        NOW,
        crate::planning::DEFAULT_OBJECTIVE,
        std::time::Duration::ZERO,
        &options,
    )
    .unwrap();
    let newer = h.store.create_plan(&draft).unwrap();
    rush_order(&h, "SO-T-RUSH").await;
    /// A clock that the repair reads at its start and again to publish, and the planner's plan
    /// published between the two.
    struct PublishedMeanwhile {
        at: model::Timestamp,
        store: Store,
        plan: i64,
        reads: std::sync::atomic::AtomicUsize,
    }
    impl model::Clock for PublishedMeanwhile {
        fn now(&self) -> model::Timestamp {
            if self.reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed) == 1 {
                self.store.publish_plan(self.plan, self.at).unwrap();
            }
            self.at
        }
    }
    let clock = PublishedMeanwhile {
        at: NOW + time::Duration::minutes(1),
        store: h.store.clone(),
        plan: newer.id,
        reads: std::sync::atomic::AtomicUsize::new(0),
    };
    let mut memory = crate::replanner::Memory::default();
    let config = crate::PlanningConfig::default();
    let outcome = crate::replanner::check_and_repair(&h.store, &clock, &config, None, &mut memory);
    assert!(matches!(outcome, Err(crate::replanner::RepairError::Stale)), "{outcome:?}");
    assert!(memory.slotted.is_empty(), "the rush order is still to be slotted in");
    assert_eq!(h.store.active_plan().unwrap().unwrap().id, newer.id);
}

#[tokio::test]
async fn a_rush_order_is_planned_and_published_by_itself() {
    let h = harness();
    let workers = h.state.start_workers();
    let plan = publish_a_plan(&h).await;
    let config = crate::PlanningConfig { repair_time_limit_seconds: 0.2, ..crate::PlanningConfig::default() };
    let replanner = tokio::spawn(crate::replanner::run(h.state.clone(), config, h.state.stopping.clone()));
    // Past the replanner's first regular check: the next is 30 s away, so only the order's own
    // call wakes it in time.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(h.store.active_plan().unwrap().map(|p| p.id), Some(plan));
    let mut live = h.state.live.subscribe();
    let (_, number) = rush_order(&h, "SO-T-RUSH").await;
    let mut active = None;
    for _ in 0..100 {
        active = h.store.active_plan().unwrap().filter(|p| p.id != plan);
        if active.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let active = active.expect("a repair published within five seconds of the rush order");
    assert_eq!(active.trigger, Some(model::PlanTrigger::RushOrders { orders: vec![number] }));
    // The live stream tells dashboards, so stations show the new queue.
    let announced = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        loop {
            if let Ok(crate::LiveEvent::Plan { plan_id, trigger }) =
                live.recv().await.map(crate::Stamped::into_event)
            {
                return (plan_id, trigger);
            }
        }
    })
    .await
    .expect("a plan event");
    assert_eq!(announced, (active.id, active.trigger.clone()));
    h.state.begin_stop();
    replanner.await.unwrap();
    workers.finish().await;
}

#[tokio::test]
async fn retention_deletes_old_plans_but_the_active_one() {
    let h = harness();
    let first = publish_a_plan(&h).await;
    let second = publish_a_plan(&h).await;
    let later = NOW + time::Duration::days(91);
    let pruned = crate::retention::in_slices(&h.state, &h.state.stopping, "plans", move |store| {
        store.prune_plans(later, 1)
    })
    .await;
    assert_eq!(pruned, Some(1));
    assert_eq!(h.get(&format!("/api/v1/plans/{first}")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(h.get(&format!("/api/v1/plans/{second}")).await.json["status"], "active");
}

#[tokio::test]
async fn demo_orders_keep_arriving_released_with_free_numbers() {
    let h = harness();
    let before = h.store.order_stats().unwrap().by_status.iter().map(|(_, n)| *n).sum::<u64>();
    // A user took the number the next arrival would get: it takes the one after.
    let mut taken = valid_order();
    taken["number"] = json!(format!("SO-2611-{:03}", before + 1));
    assert_eq!(h.post_json("/api/v1/orders", ADMIN, &taken).await.status, StatusCode::CREATED);
    let mut random = model::random::SplitMix::new(7);
    let rush = crate::demo::arrive(&h.store, NOW, &mut random, true).unwrap().unwrap();
    assert_eq!(rush.number, format!("SO-2611-{:03}", before + 2));
    assert_eq!((rush.priority, rush.status), (9, model::OrderStatus::Released));
    assert_eq!(rush.due, time::macros::datetime!(2026-11-25 18:00 +08:00));
    let ordinary = crate::demo::arrive(&h.store, NOW, &mut random, false).unwrap().unwrap();
    assert!(ordinary.priority < 8 && ordinary.due > NOW, "{ordinary:?}");

    // The task: at 10,000 times real speed and 1,000 orders a simulated day, one every 9 ms or so.
    let settings =
        crate::simulation::SimSettings { speed: 10_000.0, orders_per_day: 1_000.0, ..Default::default() };
    let arrivals =
        tokio::spawn(crate::demo::order_arrivals(h.state.clone(), settings, h.state.stopping.clone()));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    h.state.begin_stop();
    arrivals.await.unwrap();
    let released =
        h.get("/api/v1/orders?status=released&limit=500").await.json["items"].as_array().unwrap().len();
    let after = h.store.order_stats().unwrap().by_status.iter().map(|(_, n)| *n).sum::<u64>();
    assert!(after >= before + 3 + 5, "only {} orders arrived", after - before - 3);
    assert!(released >= 7, "{released} released");
}

mod planning_properties {
    use proptest::prelude::*;

    use crate::planning;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

        /// Generated factories always plan and repair to schedules the independent checker accepts
        /// (calendars, setups, routing order, eligibility, frozen work), whatever the seed and
        /// whenever the repair happens (in a shift, at night, and, half the time, in the hour
        /// before Tuesday's first shift, where frozen work follows closed time).
        #[test]
        fn generated_factories_plan_and_repair_feasibly(seed in 0u64..10_000, orders in 5usize..40, machines in 3usize..9, down in 0usize..8, after in prop_oneof![20i64..3_000, 1_385i64..1_440]) {
            let now = time::macros::datetime!(2026-11-30 06:00 +08:00);
            let store = store::Store::open_in_memory().unwrap();
            crate::demo::seed_generated(&store, orders, machines, seed, now).unwrap();
            let built = planning::build(&store, now, &planning::Options::default()).unwrap();
            for limit in [std::time::Duration::ZERO, std::time::Duration::from_millis(30)] {
                let plan = planning::solve(&built, now, "tardiness_then_makespan", limit, 1);
                prop_assert!(plan.is_ok(), "{:?}", plan.err());
            }
            let plan = planning::solve(&built, now, "tardiness_then_makespan", std::time::Duration::from_millis(30), 1).unwrap();
            // Independently of the solver's checker: the generated factory works 06:00–22:00 Hong
            // Kong time, Monday to Saturday, so no setup or operation may touch the night or Sunday
            // (within the planning horizon). Running work alone may go on past a shift's end.
            let in_shifts = |operations: &[model::PlannedOperation], from: model::Timestamp| -> Result<(), TestCaseError> {
                let horizon = from + time::Duration::days(planning::HORIZON_DAYS);
                for op in operations.iter().filter(|op| op.end <= horizon && op.setup_start >= from) {
                    let (start, end) = (op.setup_start.to_offset(time::macros::offset!(+8)), op.end.to_offset(time::macros::offset!(+8)));
                    let minutes = |t: time::OffsetDateTime| i64::from(t.hour()) * 60 + i64::from(t.minute()) + i64::from(t.second() > 0);
                    prop_assert_eq!(start.date(), end.date(), "across midnight: {:?}", op);
                    prop_assert!(start.weekday() != time::Weekday::Sunday, "on a Sunday: {:?}", op);
                    prop_assert!(minutes(start) >= 6 * 60 && minutes(end) <= 22 * 60, "outside the shifts: {:?}", op);
                }
                Ok(())
            };
            in_shifts(&plan.operations, now)?;
            let summary = store.create_plan(&plan).unwrap();
            store.publish_plan(summary.id, now).unwrap();
            let broken = model::MachineId((down % machines) as i64 + 1);
            let later = now + time::Duration::minutes(after);
            store.record_state(&model::StateChange { machine: broken, at: later, state: model::MachineState::Down, reason: None }).unwrap();
            let options = planning::Options { repair: Some(time::Duration::minutes(60)), down_for: time::Duration::minutes(90), threads: 1, ..Default::default() };
            let repaired = planning::build(&store, later, &options).unwrap();
            // Nothing runs, so all closed time of the next two days is closed in the problem,
            // frozen work or not.
            for (index, machine) in repaired.problem.machines.iter().enumerate() {
                for step in 0..2 * 24 * 12 {
                    let at = later + time::Duration::minutes(5 * step);
                    let local = at.to_offset(time::macros::offset!(+8));
                    if local.weekday() == time::Weekday::Sunday || local.hour() < 6 || local.hour() >= 22 {
                        let second = (at - later).whole_seconds();
                        prop_assert!(machine.unavailable.iter().any(|i| i.start <= second && second < i.end), "machine {index} open at {local}");
                    }
                }
            }
            let repair = planning::solve(&repaired, later, "tardiness_then_makespan", std::time::Duration::from_millis(30), 1);
            prop_assert!(repair.is_ok(), "{:?}", repair.err());
            let repair = repair.unwrap();
            for op in &repair.operations {
                if op.machine_id == broken {
                    prop_assert!(op.setup_start >= later + time::Duration::minutes(90) || op.start < later + time::Duration::minutes(1),
                        "work on the broken machine while it is down: {op:?}");
                }
            }
            in_shifts(&repair.operations, later)?;
            // The replanner's own repair (a right shift where it holds).
            let shifted = planning::plan(&store, later, "tardiness_then_makespan", std::time::Duration::from_millis(30), &options);
            prop_assert!(shifted.is_ok(), "{:?}", shifted.err());
            in_shifts(&shifted.unwrap().operations, later)?;
        }
    }
}

#[tokio::test]
async fn plans_keep_out_of_maintenance_and_wait_for_material() {
    let h = harness();
    let planner = token_for(Role::Planner);
    let window = json!({"start": "2026-11-24T09:00:00+08:00", "end": "2026-11-25T17:30:00+08:00", "reason": "spindle service"});
    let created = h.post_json("/api/v1/machines/1/maintenance", &planner, &window).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let backwards =
        json!({"start": "2026-11-25T09:00:00+08:00", "end": "2026-11-24T09:00:00+08:00", "reason": "x"});
    assert_eq!(
        h.post_json("/api/v1/machines/1/maintenance", &planner, &backwards).await.json["field"],
        "end"
    );
    assert_eq!(
        h.post_json("/api/v1/machines/1/maintenance", &token_for(Role::Operator), &window).await.status,
        StatusCode::FORBIDDEN
    );
    // Planned ahead, one at a time: not from the past, not over another window.
    let past =
        json!({"start": "2026-11-24T07:00:00+08:00", "end": "2026-11-24T10:00:00+08:00", "reason": "x"});
    let refused = h.post_json("/api/v1/machines/2/maintenance", &planner, &past).await;
    assert_eq!(
        (refused.status, refused.json["errors"][0]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("start"))
    );
    assert!(refused.text.contains("is in the past"), "{}", refused.text);
    let overlapping =
        json!({"start": "2026-11-25T17:00:00+08:00", "end": "2026-11-25T18:00:00+08:00", "reason": "x"});
    let refused = h.post_json("/api/v1/machines/1/maintenance", &planner, &overlapping).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    assert!(
        refused.text.contains("overlaps maintenance window") && refused.text.contains("spindle service"),
        "{}",
        refused.text
    );
    assert_eq!(h.get("/api/v1/machines/1/maintenance").await.json.as_array().unwrap().len(), 1);
    // A released order whose material arrives in three days.
    let order = json!({"number": "MAT-1", "customer": "Waiting Ltd", "variant_id": 1, "quantity": 10,
        "due": "2026-12-10T18:00:00+08:00", "material_ready": "2026-11-27T08:00:00+08:00"});
    let created = h.post_json("/api/v1/orders", &planner, &order).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let order_id = created.json["id"].as_i64().unwrap();
    h.send("POST", &format!("/api/v1/orders/{order_id}/release"), Some(&planner), None).await;

    let plan = h.post_json("/api/v1/plans", &planner, &json!({"time_limit_seconds": 0.3})).await.json;
    let lanes = h.get(&format!("/api/v1/plans/{}/gantt", plan["id"])).await.json;
    let parse = |v: &Value| {
        time::OffsetDateTime::parse(v.as_str().unwrap(), &time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let (from, to) = (datetime!(2026-11-24 09:00 +08:00), datetime!(2026-11-25 17:30 +08:00));
    for lane in lanes.as_array().unwrap() {
        for item in lane["items"].as_array().unwrap() {
            if lane["machine_id"] == 1 {
                let (start, end) = (parse(&item["setup_start"]), parse(&item["end"]));
                assert!(end <= from || start >= to, "work in the maintenance window: {item}");
            }
            if item["order_id"] == order_id {
                assert!(
                    parse(&item["setup_start"]) >= datetime!(2026-11-27 08:00 +08:00),
                    "work before its material: {item}"
                );
            }
        }
    }
    let windows = h.get("/api/v1/machines/1/maintenance").await.json;
    let window_id = windows[0]["id"].as_i64().unwrap();
    assert_eq!(
        h.send("DELETE", &format!("/api/v1/maintenance/{window_id}"), Some(&planner), None).await.status,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn two_running_operations_on_one_machine_are_planned_one_after_the_other() {
    let h = harness();
    let _workers = h.state.start_workers();
    let planner = token_for(Role::Planner);
    let plan = h.post_json("/api/v1/plans", &planner, &json!({"time_limit_seconds": 0})).await.json;
    let id = plan["id"].as_i64().unwrap();
    h.send("POST", &format!("/api/v1/plans/{id}/publish"), Some(&planner), None).await;
    // Two operations of released orders started on cnc-01 (the second before the first finished):
    // an operator may not do that, but the machine itself may report it.
    let queue = h.get("/api/v1/machines/1/dispatch").await.json["queue"].as_array().unwrap().clone();
    let mut started = Vec::new();
    for item in &queue {
        let order = h.get(&format!("/api/v1/orders/{}", item["order_id"])).await.json;
        if order["status"] != "released" && order["status"] != "running" {
            continue;
        }
        let operation = item["operation_id"].as_i64().unwrap();
        let reply = h
            .post_json(&format!("/api/v1/operations/{operation}/start"), &planner, &json!({"machine_id": 1}))
            .await;
        if started.is_empty() {
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        } else {
            assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.text);
            assert_eq!(reply.json["field"], "machine_id", "{}", reply.text);
            let machine_says = store::OperationEvent {
                operation: model::OperationId(operation),
                machine: model::MachineId(1),
                at: NOW,
                kind: store::OperationEventKind::Started,
                checked: false,
                counted_before: None,
                scrap_reason: None,
            };
            h.store.write_batch(&[], &[], &[], &[machine_says]).unwrap();
        }
        started.push(operation);
        if started.len() == 2 {
            break;
        }
    }
    assert_eq!(started.len(), 2, "two operations started on cnc-01");
    for repair in [false, true] {
        let reply = h
            .post_json("/api/v1/plans", &planner, &json!({"time_limit_seconds": 0.2, "repair": repair}))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "repair {repair}: {}", reply.text);
        let id = reply.json["id"].as_i64().unwrap();
        let lanes = h.get(&format!("/api/v1/plans/{id}/gantt")).await.json;
        let cnc = lanes.as_array().unwrap().iter().find(|l| l["machine_id"] == 1).unwrap();
        let mut runs: Vec<(String, String)> = cnc["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| started.contains(&i["operation_id"].as_i64().unwrap()))
            .map(|i| (i["start"].as_str().unwrap().to_string(), i["end"].as_str().unwrap().to_string()))
            .collect();
        runs.sort();
        assert_eq!(runs.len(), 2, "both running operations stay on cnc-01: {cnc}");
        assert!(runs[0].1 <= runs[1].0, "they run one after the other: {runs:?}");
    }
}

#[tokio::test]
async fn steps_start_in_order_and_a_lot_takes_no_more_than_twice_its_units() {
    let h = harness();
    let _workers = h.state.start_workers();
    let operator = token_for(Role::Operator);
    let (order, first) = h.first_released_operation().await;
    let (order, quantity) = (order["id"].as_i64().unwrap(), order["quantity"].as_u64().unwrap());
    let detail = h.get(&format!("/api/v1/orders/{order}")).await.json;
    let second = &detail["operations"][1];
    let (second_id, second_machine) = (second["id"].as_i64().unwrap(), &second["eligible_machines"][0]);
    let path = format!("/api/v1/operations/{second_id}/start");
    let early = h.post_json(&path, &operator, &json!({"machine_id": second_machine})).await;
    assert_eq!(
        (early.status, &early.json["field"]),
        (StatusCode::CONFLICT, &json!("status")),
        "{}",
        early.text
    );
    assert!(early.json["detail"].as_str().unwrap().contains("step 1"), "{}", early.text);
    let units = json!({"good": 1, "operation_id": second_id});
    let counted =
        h.post_json(&format!("/api/v1/machines/{second_machine}/production"), &operator, &units).await;
    assert_eq!(counted.status, StatusCode::CONFLICT, "units start an operation too: {}", counted.text);
    // A machine may report the second step started anyway: the plan puts it after the first.
    let machine_says = store::OperationEvent {
        operation: model::OperationId(second_id),
        machine: model::MachineId(second_machine.as_i64().unwrap()),
        at: NOW,
        kind: store::OperationEventKind::Started,
        checked: false,
        counted_before: None,
        scrap_reason: None,
    };
    h.store.write_batch(&[], &[], &[], &[machine_says]).unwrap();
    for repair in [false, true] {
        let body = json!({"time_limit_seconds": 0, "repair": repair});
        let reply = h.post_json("/api/v1/plans", ADMIN, &body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "repair {repair}: {}", reply.text);
        let planned = h.get(&format!("/api/v1/plans/{}", reply.json["id"])).await;
        assert_eq!(planned.status, StatusCode::OK);
    }
    // The first step: started, then finished with more than twice its lot is refused, and
    // nothing is counted.
    let id = first["id"].as_i64().unwrap();
    let machine = &first["eligible_machines"][0];
    let started = h
        .post_json(&format!("/api/v1/operations/{id}/start"), &operator, &json!({"machine_id": machine}))
        .await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.text);
    let finish = format!("/api/v1/operations/{id}/finish");
    let too_many = h.post_json(&finish, &operator, &json!({"good": 2 * quantity + 11})).await;
    assert_eq!(too_many.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", too_many.text);
    assert!(too_many.json["detail"].as_str().unwrap().contains("at most"), "{}", too_many.text);
    let units = json!({"good": 1_000_001, "operation_id": id});
    let reply = h.post_json(&format!("/api/v1/machines/{machine}/production"), &operator, &units).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", reply.text);
    assert_eq!(h.store.operation(model::OperationId(id)).unwrap().good, 0);
    let done = h.post_json(&finish, &operator, &json!({"good": quantity + 2, "scrap": 1})).await;
    assert_eq!(done.status, StatusCode::OK, "a few extra units are fine: {}", done.text);
    let again = h.post_json(&finish, &operator, &json!({"good": 1})).await;
    assert!(again.json["detail"].as_str().unwrap().contains("cannot finish again"), "{}", again.text);
}

#[tokio::test]
async fn running_work_is_planned_for_the_work_it_has_left() {
    let h = harness();
    let planner = token_for(Role::Planner);
    let (order, first) = h.first_released_operation().await;
    let quantity = order["quantity"].as_i64().unwrap();
    assert!(quantity >= 4, "{order}");
    let operation = first["id"].as_i64().unwrap();
    let (unit, setup) = (first["unit_seconds"].as_f64().unwrap(), first["setup_seconds"].as_i64().unwrap());
    let machine = first["eligible_machines"][0].as_i64().unwrap();
    let event = |seconds_ago, kind| store::OperationEvent {
        operation: model::OperationId(operation),
        machine: model::MachineId(machine),
        at: NOW - time::Duration::seconds(seconds_ago),
        kind,
        checked: false,
        counted_before: None,
        scrap_reason: None,
    };
    // How long the plan made at `NOW` gives the running operation, in seconds.
    let planned = async || {
        let plan = h.post_json("/api/v1/plans", &planner, &json!({"time_limit_seconds": 0})).await.json;
        let lanes = h.get(&format!("/api/v1/plans/{}/gantt", plan["id"])).await.json;
        let lane = lanes.as_array().unwrap().iter().find(|l| l["machine_id"] == machine).unwrap();
        let item = lane["items"].as_array().unwrap().iter().find(|i| i["operation_id"] == operation).unwrap();
        let format = &time::format_description::well_known::Rfc3339;
        let at = |key: &str| time::OffsetDateTime::parse(item[key].as_str().unwrap(), format).unwrap();
        (at("end") - at("start")).whole_seconds()
    };
    // Started ten minutes ago, nothing counted yet: setup and every unit, less those ten minutes.
    h.store.write_batch(&[], &[], &[], &[event(600, store::OperationEventKind::Started)]).unwrap();
    let whole = (unit * quantity as f64).ceil() as i64;
    assert!(setup + whole > 600 && unit * 3.0 > 60.0, "a lot too short for this test: {first}");
    assert_eq!(planned().await, setup + whole - 600);
    // All but three units counted a minute ago (one of them scrap): three units less that minute.
    let made = u32::try_from(quantity - 3).unwrap();
    let produced = store::OperationEventKind::Produced { good: made - 1, scrap: 1, ideal_unit_ms: None };
    h.store.write_batch(&[], &[], &[], &[event(60, produced)]).unwrap();
    assert_eq!(planned().await, (unit * 3.0).ceil() as i64 - 60);
}

#[tokio::test]
async fn counter_metrics_count_units_toward_the_running_operation() {
    let h = harness();
    let workers = h.state.start_workers();
    let (order, first) = h.first_released_operation().await;
    let operation = first["id"].as_i64().unwrap();
    let machine = first["eligible_machines"][0].as_i64().unwrap();
    let code = h.get(&format!("/api/v1/machines/{machine}")).await.json["code"].as_str().unwrap().to_string();
    let path = format!("/api/v1/machines/{machine}/count-rule");
    let put = async |token: &str, rule: &Value| {
        h.send("PUT", &path, Some(token), Some(("application/json", rule.to_string().into()))).await
    };
    let rule = json!({"good_metric": "parts_good", "scrap_metric": "parts_scrap"});
    assert_eq!(put(&token_for(Role::Planner), &rule).await.status, StatusCode::FORBIDDEN);
    let same = put(ADMIN, &json!({"good_metric": "parts", "scrap_metric": "parts"})).await;
    assert_eq!(
        (same.status, same.json["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("scrap_metric"))
    );
    assert_eq!(h.get(&path).await.status, StatusCode::NOT_FOUND);
    assert_eq!(put(ADMIN, &rule).await.status, StatusCode::OK);
    assert_eq!(h.get(&path).await.json, rule);
    let started = h
        .post_json(
            &format!("/api/v1/operations/{operation}/start"),
            &token_for(Role::Operator),
            &json!({"machine_id": machine}),
        )
        .await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.text);
    let counters = |minute: u32, good: f64, scrap: f64| {
        json!({"site": "hk-kt", "machine": code, "ts": format!("2026-11-24T08:{minute:02}:00+08:00"),
            "metrics": {"parts_good": good, "parts_scrap": scrap}})
    };
    // The first readings are the baseline; then four good units and one scrapped.
    let readings = json!([counters(40, 120.0, 3.0), counters(45, 122.0, 3.0), counters(50, 124.0, 4.0)]);
    let reply = h.post_json("/api/v1/telemetry", ADMIN, &readings).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let counted = h.get(&format!("/api/v1/orders/{}", order["id"])).await.json["operations"][0].clone();
    assert_eq!((counted["good"].as_i64(), counted["scrap"].as_i64()), (Some(4), Some(1)), "{counted}");
    let oee = h
        .get(&format!(
            "/api/v1/oee?machine={machine}&from=2026-11-24T08:00:00%2B08:00&to=2026-11-24T09:00:00%2B08:00"
        ))
        .await
        .json;
    assert_eq!((oee["total"]["good"].as_u64(), oee["total"]["scrap"].as_u64()), (Some(4), Some(1)), "{oee}");
    assert_eq!(h.send("DELETE", &path, Some(ADMIN), None).await.status, StatusCode::NO_CONTENT);
    h.post_json("/api/v1/telemetry", ADMIN, &json!([counters(55, 130.0, 4.0)])).await;
    let after = h.get(&format!("/api/v1/orders/{}", order["id"])).await.json["operations"][0].clone();
    assert_eq!(after["good"].as_i64(), Some(4), "no rule, no counting: {after}");
    h.state.begin_stop();
    workers.finish().await;
}

#[tokio::test]
async fn the_simulator_goes_on_with_the_lots_its_machines_had_under_way() {
    let h = harness();
    let (_, first) = h.first_released_operation().await;
    let operation = model::OperationId(first["id"].as_i64().unwrap());
    let machine = model::MachineId(first["eligible_machines"][0].as_i64().unwrap());
    let event = |kind| store::OperationEvent {
        operation,
        machine,
        at: NOW,
        kind,
        checked: false,
        counted_before: None,
        scrap_reason: None,
    };
    let site = h.store.site(h.store.machine(machine).unwrap().site_id).unwrap();
    let settings = crate::simulation::SimSettings::default();
    let factory = crate::simulation::site_factory(&h.store, &site, &settings, 1.0, NOW).unwrap().unwrap();
    assert!(!factory.knows(operation), "not started yet: the job source hands it out");
    let produced = store::OperationEventKind::Produced { good: 2, scrap: 0, ideal_unit_ms: None };
    h.store
        .write_batch(&[], &[], &[], &[event(store::OperationEventKind::Started), event(produced)])
        .unwrap();
    let factory = crate::simulation::site_factory(&h.store, &site, &settings, 1.0, NOW).unwrap().unwrap();
    assert!(factory.knows(operation), "a restarted simulator goes on with the running lot");
    let finished = store::OperationEventKind::Finished { good: 0, scrap: 0, ideal_unit_ms: None };
    h.store.write_batch(&[], &[], &[], &[event(finished)]).unwrap();
    let factory = crate::simulation::site_factory(&h.store, &site, &settings, 1.0, NOW).unwrap().unwrap();
    assert!(!factory.knows(operation));
    // Its energy meter reads on from the last value stored, not from a new one.
    let meter = |factory: &sim::Factory| {
        factory.machines().iter().find(|m| m.id() == machine).unwrap().energy_meter()
    };
    let fresh = meter(&factory);
    let reading = |minutes, value| model::Reading {
        machine,
        metric: sim::ENERGY_METRIC.into(),
        at: NOW + time::Duration::minutes(minutes),
        value,
    };
    h.store.write_readings(&[reading(1, fresh + 812.5), reading(0, fresh + 700.0)]).unwrap();
    let factory = crate::simulation::site_factory(&h.store, &site, &settings, 1.0, NOW).unwrap().unwrap();
    assert_eq!(meter(&factory), fresh + 812.5);
}

#[tokio::test]
async fn a_sparkplug_gateway_node_needs_no_machine_of_its_own() {
    let h = harness();
    let workers = h.state.start_workers();
    let mut edge = ingest::sparkplug::EdgeNode::new("hk-kt", "gw-7", 0).unwrap();
    let value = |v| [("spindle_temp_c", ingest::sparkplug::MetricValue::Double(v))];
    let at = NOW - time::Duration::minutes(1);
    let messages = [
        edge.birth(at, &[]).unwrap(),
        edge.device_birth("cnc-01", at, &value(40.5)).unwrap(),
        edge.device_data("cnc-01", at + time::Duration::seconds(5), &value(41.0)).unwrap(),
    ];
    let mut last = None;
    for message in messages {
        last = Some(h.publish(&message.topic, message.payload).await);
    }
    let stored = tokio::time::timeout(std::time::Duration::from_secs(10), last.unwrap()).await;
    assert!(stored.is_ok(), "the messages were not stored");
    let metrics = h.get("/metrics").await.text;
    assert!(
        metrics.contains(r#"microfactory_ingest_dropped_total{reason="unknown_machine"} 0"#),
        "the gateway's birth is no loss: {metrics}"
    );
    let series = h
        .get("/api/v1/machines/1/series?metric=spindle_temp_c&from=2026-11-24T08:00:00%2B08:00&to=2026-11-24T09:00:00%2B08:00")
        .await
        .json;
    assert_eq!(series["points"].as_array().map(Vec::len), Some(2), "{series}");
    // A message whose contents are all dropped (a device birth before its node's) is still
    // acknowledged, though nothing else arrives after it.
    let mut stray = ingest::sparkplug::EdgeNode::new("hk-kt", "gw-8", 0).unwrap();
    let node_birth = stray.birth(at, &[]).unwrap();
    let device_birth = stray.device_birth("no-such-machine", at, &value(1.0)).unwrap();
    let send = async |message: ingest::Outgoing| {
        let written = h.publish(&message.topic, message.payload).await;
        tokio::time::timeout(std::time::Duration::from_secs(10), written).await.is_ok()
    };
    assert!(send(device_birth.clone()).await, "a dropped message is acknowledged");
    assert!(
        h.get("/metrics").await.text.contains("microfactory_ingest_dropped_total{reason=\"no_birth\"} 1")
    );
    // A reading of a machine that does not exist is a loss, and counted.
    assert!(send(node_birth).await && send(device_birth).await);
    let metrics = h.get("/metrics").await.text;
    assert!(metrics.contains("microfactory_ingest_dropped_total{reason=\"unknown_machine\"} 1"), "{metrics}");
    h.state.begin_stop();
    workers.finish().await;
}

mod web;

#[test]
fn simulated_operators_take_planned_work_only_near_its_planned_time() {
    use sim::JobSource;
    let now = datetime!(2026-11-30 05:00 +08:00);
    let (store, plan) = dispatched_factory(now);
    let planned: std::collections::HashMap<_, _> = store
        .plan_operations(plan.id, None)
        .unwrap()
        .into_iter()
        .filter(|op| op.part == 0)
        .map(|op| (op.operation_id, (op.machine_id, op.setup_start)))
        .collect();
    let site = store.sites(store::PageRequest { after: None, limit: 10 }).unwrap().items[0].id;
    let mut jobs = crate::simulation::StoreJobs::new(store.clone(), site, Arc::new(now));
    // The generated factory's shifts begin at 06:00.
    assert!(jobs.ready(now).is_empty(), "nothing is planned to start before the shift");
    let at = datetime!(2026-11-30 05:55 +08:00);
    let offered = jobs.ready(at);
    assert!(!offered.is_empty(), "the shift's first work");
    for offer in &offered {
        let (machine, start) = planned[&offer.operation];
        assert!(start <= at + crate::simulation::EARLY_START, "{:?} planned at {start}", offer.operation);
        assert_eq!(offer.eligible, [machine]);
    }
    // First steps planned for later are ready too, but wait for their time.
    let waiting = store
        .ready_operations(500)
        .unwrap()
        .iter()
        .filter(|op| planned[&op.id].1 > at + crate::simulation::EARLY_START)
        .count();
    assert!(waiting > 0);
    assert_eq!(
        jobs.ready(datetime!(2026-12-30 05:00 +08:00)).len(),
        store.ready_operations(500).unwrap().len()
    );
    // Work no plan has yet waits for the shift too.
    let variant = store
        .orders(&store::OrderFilter::default(), store::PageRequest { after: None, limit: 1 })
        .unwrap()
        .items[0]
        .variant_id;
    let new = model::NewOrder {
        number: "SO-UNPLANNED".into(),
        customer: "Walk-in".into(),
        variant_id: variant,
        quantity: 1,
        due: now + time::Duration::days(3),
        priority: 1,
        material_ready: None,
    };
    let order = store.create_order(&new, now).unwrap();
    store.set_order_status(order.id, model::OrderStatus::Released).unwrap();
    let first = store.operations(order.id).unwrap()[0].id;
    assert!(!jobs.ready(now).iter().any(|offer| offer.operation == first), "not before the shift");
    assert!(jobs.ready(datetime!(2026-11-30 06:30 +08:00)).iter().any(|offer| offer.operation == first));
}

#[tokio::test]
async fn a_role_that_may_not_write_is_refused_before_its_body_is_read() {
    // 403 for a caller whose role may not take the action, whatever the body: the body's schema
    // and validation rules are none of a viewer's business.
    let h = harness();
    let doc = h.get("/api/v1/openapi.json").await.json;
    let mut checked = Vec::new();
    for (path, operations) in doc["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let who = operation["description"].as_str().unwrap_or_default();
            if operation.get("requestBody").is_none()
                || !(who.starts_with("Roles: admin, planner.") || who.starts_with("Role: admin."))
            {
                continue;
            }
            let url = format!("/api/v1{}", path.replace("{id}", "1"));
            for body in [&b"{\"broken\": "[..], b"[1, 2]", b"{}"] {
                let reply = h
                    .send(
                        &method.to_uppercase(),
                        &url,
                        Some(&token_for(Role::Viewer)),
                        Some(("application/json", body.to_vec())),
                    )
                    .await;
                assert_eq!(
                    reply.status,
                    StatusCode::FORBIDDEN,
                    "{method} {url} {}: {}",
                    String::from_utf8_lossy(body),
                    reply.text
                );
            }
            checked.push(format!("{method} {path}"));
        }
    }
    assert!(checked.len() >= 20, "{checked:?}");
    // So are the shop floor's reports and telemetry, which a viewer may not send either.
    for path in [
        "/api/v1/machines/1/states",
        "/api/v1/machines/1/production",
        "/api/v1/telemetry",
        "/api/v1/operations/1/start",
        "/api/v1/operations/1/finish",
        "/api/v1/alarms/acknowledge-cleared",
    ] {
        let reply = h
            .send(
                "POST",
                path,
                Some(&token_for(Role::Viewer)),
                Some(("application/json", b"{\"broken\": ".to_vec())),
            )
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{path}: {}", reply.text);
    }
}

/// The live stream ends once its token no longer works, as other requests are refused at once.
#[tokio::test]
async fn the_live_stream_ends_when_its_token_is_revoked() {
    use futures_util::StreamExt as _;
    let h = harness();
    let user = h.store.create_user("watcher", Role::Viewer, None, "$argon2id$unused", NOW).unwrap();
    let token = "watcher-token-0123456789abcdef";
    let created = h
        .store
        .create_token(user.id, "wall screen", &token_digest(token), &shown_prefix(token), NOW)
        .unwrap();
    let request = Request::builder()
        .uri("/api/v1/stream")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let response = h.app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut stream = response.into_body().into_data_stream();
    // Still open after a recheck while the token works.
    let open = tokio::time::timeout(crate::live::RECHECK_EVERY * 2, stream.next()).await;
    assert!(open.is_err() || open.unwrap().is_some(), "the stream ended with its token still good");
    h.store.revoke_token(created.id, None, NOW).unwrap();
    let ended = tokio::time::timeout(crate::live::RECHECK_EVERY * 3, async {
        while stream.next().await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the stream outlived its revoked token");
}

/// Password guessing slows down: after five failures in a row a name waits, even with the right
/// password, and is told how long.
#[tokio::test]
async fn failed_sign_ins_make_the_next_ones_wait() {
    let h = harness();
    let body = json!({"username": "kai", "role": "viewer", "password": "the-password-of-kai"});
    assert_eq!(h.post_json("/api/v1/users", ADMIN, &body).await.status, StatusCode::CREATED);
    let login = |password: &str| json!({"username": "kai", "password": password});
    // Five failures are free; then each waits twice as long as the last, counted from when it
    // began. A password check on a loaded machine may outlast the first waits of a second or
    // two, so guesses go on until one is held back (no test of how long anything takes).
    let mut guesses = 0;
    loop {
        let wrong = h.post_json("/api/v1/auth/login", "", &login("a-wrong-guess-here")).await;
        guesses += 1;
        if wrong.status == StatusCode::TOO_MANY_REQUESTS {
            break;
        }
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.text);
        assert!(guesses < 12, "never held back");
    }
    assert!(guesses > 5, "held back after {guesses} guesses");
    let held = h.post_json("/api/v1/auth/login", "", &login("the-password-of-kai")).await;
    assert_eq!(held.status, StatusCode::TOO_MANY_REQUESTS, "{}", held.text);
    assert!(held.json["detail"].as_str().unwrap().starts_with("too many failed sign-ins; try again in"));
    // The sign-in page says so too, in the reader's language.
    let form = "username=KAI&password=the-password-of-kai";
    let request = Request::builder()
        .method("POST")
        .uri("/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept-language", "zh-HK")
        .body(Body::from(form))
        .unwrap();
    let response = h.app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}: rounded up, never short, at most a minute");
    let page = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    assert!(String::from_utf8_lossy(&page).contains("登入失敗次數過多"));
    // Other names are not held back.
    let admin = h
        .post_json("/api/v1/auth/login", "", &json!({"username": "nobody", "password": "x-x-x-x-x-x-x"}))
        .await;
    assert_eq!(admin.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn tokens_are_bounded_and_devices_cannot_make_their_own() {
    let h = harness();
    let device = h.device_token("gw-tokens", model::SiteId(1));
    let made = h.post_json("/api/v1/tokens", &device, &json!({"name": "spare"})).await;
    assert_eq!(made.status, StatusCode::FORBIDDEN, "{}", made.text);
    let viewer = token_for(Role::Viewer);
    let mut created = 0;
    loop {
        let reply = h.post_json("/api/v1/tokens", &viewer, &json!({"name": format!("t{created}")})).await;
        if reply.status != StatusCode::CREATED {
            assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.text);
            break;
        }
        created += 1;
        assert!(created <= 100, "no limit");
    }
    // The viewer's own test token counts too.
    assert_eq!(created, 99);
}

/// A first start that stopped before it showed the credentials makes them again: new password,
/// new first token, the unseen ones revoked.
#[test]
fn a_first_start_that_never_showed_its_credentials_makes_new_ones() {
    let store = Store::open_in_memory().unwrap();
    let first = crate::bootstrap(&store, None, NOW, false).unwrap().unwrap();
    assert!(crate::bootstrap(&store, None, NOW, false).unwrap().is_none(), "users exist");
    let again = crate::bootstrap(&store, None, NOW, true).unwrap().unwrap();
    assert_ne!((&again.password, &again.token), (&first.password, &first.token));
    let (_, hash) = store.user_credentials("admin").unwrap().unwrap();
    assert!(crate::auth::verify_password(&again.password, &hash));
    assert!(!crate::auth::verify_password(&first.password, &hash));
    let tokens = store.tokens(None).unwrap();
    assert_eq!(tokens.iter().filter(|t| t.revoked_at.is_none()).count(), 1, "{tokens:?}");
    assert_eq!(store.users().unwrap().len(), 1);
    // With the token preset in the environment, which a restart still has: it stays and works.
    let store = Store::open_in_memory().unwrap();
    crate::bootstrap(&store, Some(ADMIN), NOW, false).unwrap().unwrap();
    let again = crate::bootstrap(&store, Some(ADMIN), NOW, true).unwrap().unwrap();
    assert_eq!(again.token, ADMIN);
    let owner = store.token_owner(&token_digest(ADMIN), NOW).unwrap().expect("the preset token works");
    assert_eq!(owner.user.username, "admin");
}

/// A machine without a state source of its own (a hand work bench) is shown running from a start
/// at the station to the finish, so its OEE is not that of a machine that never ran.
#[tokio::test]
async fn a_start_and_a_finish_at_the_station_set_the_machine_s_state() {
    let h = harness();
    let workers = h.state.start_workers();
    let operator = token_for(Role::Operator);
    let (_, operation) = h.first_released_operation().await;
    let (id, machine) =
        (operation["id"].as_i64().unwrap(), operation["eligible_machines"][0].as_i64().unwrap());
    let state_of = |states: Value| {
        states.as_array().unwrap().iter().find(|s| s["machine_id"] == machine).map(|s| s["state"].clone())
    };
    assert_eq!(state_of(h.get("/api/v1/machine-states").await.json), None);
    let started = h
        .post_json(&format!("/api/v1/operations/{id}/start"), &operator, &json!({"machine_id": machine}))
        .await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.text);
    assert_eq!(state_of(h.get("/api/v1/machine-states").await.json), Some(json!("running")));
    let finished = h
        .post_json(&format!("/api/v1/operations/{id}/finish"), &operator, &json!({"good": 1, "scrap": 0}))
        .await;
    assert_eq!(finished.status, StatusCode::OK, "{}", finished.text);
    assert_eq!(state_of(h.get("/api/v1/machine-states").await.json), Some(json!("idle")));
    h.state.begin_stop();
    workers.finish().await;
}

/// Stopping while a batch cannot be written does not wait for the disk: the batch's messages stay
/// unacknowledged (their receipts are abandoned) and the workers finish.
#[tokio::test]
async fn a_stop_with_a_full_disk_finishes_and_acknowledges_nothing_unstored() {
    let h = harness();
    let workers = h.state.start_workers();
    h.store.simulate_full_disk(true).unwrap();
    let metrics: serde_json::Map<String, Value> =
        (0..200).map(|i| (format!("{:0>100}", i), json!(i as f64))).collect();
    let payload = json!({"ts": "2026-11-24T08:59:00+08:00", "metrics": metrics}).to_string();
    let first = h.publish("mf/v1/hk-kt/cnc-01/telemetry", payload.clone().into_bytes()).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // Another batch arrives while the first is being retried.
    let second = h.publish("mf/v1/hk-kt/cnc-02/telemetry", payload.into_bytes()).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    h.state.begin_stop();
    let finished = tokio::time::timeout(std::time::Duration::from_secs(10), workers.finish()).await;
    assert!(finished.is_ok(), "the workers kept retrying after the stop");
    for receipt in [first, second] {
        let told = tokio::time::timeout(std::time::Duration::from_secs(5), receipt).await;
        assert!(matches!(told, Ok(Err(_))), "an unstored message was acknowledged: {told:?}");
    }
}

/// A body that trickles in (or stops) gets 408 once `http.header_timeout_seconds` has passed,
/// rather than holding its connection for good.
#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_is_refused() {
    let store = seeded_store(NOW);
    let config = ServerConfig { header_timeout_seconds: 1, ..ServerConfig::default() };
    let state =
        AppState::new(store.clone(), Arc::new(ManualClock::new(NOW)), config, crate::AlarmConfig::default());
    let app = crate::router(state);
    use futures_util::StreamExt as _;
    let stalled = || {
        futures_util::stream::once(async {
            Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b"{\"username\":"))
        })
        .chain(futures_util::stream::pending())
    };
    for path in ["/api/v1/auth/login", "/login"] {
        let request = Request::builder()
            .method("POST")
            .uri(path)
            .header(
                "content-type",
                if path == "/login" { "application/x-www-form-urlencoded" } else { "application/json" },
            )
            .header("content-length", "1000")
            .body(Body::from_stream(stalled()))
            .unwrap();
        let answer =
            tokio::time::timeout(std::time::Duration::from_secs(5), app.clone().oneshot(request)).await;
        let response = answer.expect("the server kept waiting for the body").unwrap();
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT, "{path}");
    }
}

#[tokio::test]
async fn a_retired_machine_leaves_routings_plans_and_oee_and_keeps_its_history() {
    let h = harness();
    let workers = h.state.start_workers();
    let machine = json!({"site_id": 1, "code": "old-1", "name": "Old saw", "kind": "other"});
    let old = h.post_json("/api/v1/machines", ADMIN, &machine).await.json["id"].as_i64().unwrap();
    let idle = json!({"state": "idle", "at": "2026-11-24T07:00:00+08:00"});
    assert_eq!(
        h.post_json(&format!("/api/v1/machines/{old}/states"), ADMIN, &idle).await.status,
        StatusCode::CREATED
    );
    let step = |machines: Value| json!({"name": "saw", "eligible_machines": machines, "setup_seconds": 60, "unit_seconds": 30, "setup_family": "saw"});
    let routing = json!({"code": "saw-only", "name": "Saw", "steps": [step(json!([old]))]});
    let routing = h.post_json("/api/v1/routings", ADMIN, &routing).await.json["id"].as_i64().unwrap();
    let retire = |retired: bool| json!({"site_id": 1, "code": "old-1", "name": "Old saw", "kind": "other", "retired": retired});
    let path = format!("/api/v1/machines/{old}");

    // The only machine of a routing step stays in service.
    let refused = h.send_json("PUT", &path, ADMIN, &retire(true)).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    assert!(refused.text.contains("saw-only (saw)"), "{}", refused.text);
    let both = json!({"code": "saw-only", "name": "Saw", "steps": [step(json!([old, 1]))]});
    assert_eq!(
        h.send_json("PUT", &format!("/api/v1/routings/{routing}"), ADMIN, &both).await.status,
        StatusCode::OK
    );

    // Work running on it keeps it in service too.
    let (_, operation) = h.first_released_operation().await;
    let busy = operation["eligible_machines"][0].as_i64().unwrap();
    let start = format!("/api/v1/operations/{}/start", operation["id"]);
    let started = h.post_json(&start, &token_for(Role::Operator), &json!({"machine_id": busy})).await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.text);
    let current = h.get(&format!("/api/v1/machines/{busy}")).await.json;
    let mut put = current.clone();
    for key in ["id", "retired_at"] {
        put.as_object_mut().unwrap().remove(key);
    }
    put["retired"] = json!(true);
    let refused = h.send_json("PUT", &format!("/api/v1/machines/{busy}"), ADMIN, &put).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    assert!(refused.text.contains("work runs on the machine"), "{}", refused.text);

    // Retired: out of the routing, listed as retired, refused in routings, its OEE ends there.
    let retired = h.send_json("PUT", &path, ADMIN, &retire(true)).await;
    assert_eq!(retired.status, StatusCode::OK, "{}", retired.text);
    assert_eq!(retired.json["retired_at"], "2026-11-24T01:00:00Z");
    let steps = h.get(&format!("/api/v1/routings/{routing}")).await.json["steps"].clone();
    assert_eq!(steps[0]["eligible_machines"], json!([1]));
    for (query, listed) in [("retired=true", true), ("retired=false", false), ("site=1", true)] {
        let items = h.get(&format!("/api/v1/machines?{query}")).await.json["items"].clone();
        assert_eq!(items.as_array().unwrap().iter().any(|m| m["id"] == old), listed, "{query}");
    }
    let again = h.send_json("PUT", &format!("/api/v1/routings/{routing}"), ADMIN, &both).await;
    assert_eq!(again.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", again.text);
    assert!(again.text.contains("is retired"), "{}", again.text);
    let period = "from=2026-11-24T07:00:00%2B08:00&to=2026-11-24T11:00:00%2B08:00";
    let oee = h.get(&format!("/api/v1/oee?machine={old}&{period}")).await.json;
    assert_eq!(oee["total"]["planned_busy_seconds"].as_f64(), Some(7200.0), "{oee}");
    assert_eq!(h.get(&format!("/api/v1/machines/{old}/states")).await.status, StatusCode::OK);
    // No maintenance on a machine that is planned no more.
    let window =
        json!({"start": "2026-11-25T08:00:00+08:00", "end": "2026-11-25T12:00:00+08:00", "reason": "oil"});
    let refused = h.post_json(&format!("/api/v1/machines/{old}/maintenance"), ADMIN, &window).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    // Planning passes it by.
    let plan = publish_a_plan(&h).await;
    let lanes = h.get(&format!("/api/v1/plans/{plan}/gantt")).await.json;
    assert!(!lanes.to_string().contains("old-1"), "{lanes}");

    // Back in service, outside routings until put back.
    let back = h.send_json("PUT", &path, ADMIN, &retire(false)).await;
    assert_eq!(back.status, StatusCode::OK, "{}", back.text);
    assert_eq!(back.json["retired_at"], Value::Null);
    let steps = h.get(&format!("/api/v1/routings/{routing}")).await.json["steps"].clone();
    assert_eq!(steps[0]["eligible_machines"], json!([1]));
    h.state.begin_stop();
    workers.finish().await;
}

#[tokio::test]
async fn an_integration_follows_every_changed_and_deleted_order_by_revision() {
    let h = harness();
    let planner = token_for(Role::Planner);
    // Every order once, least recently changed first, whatever changes while the pages are read.
    let total = h.get("/api/v1/orders?limit=500").await.json["items"].as_array().unwrap().len();
    let mut seen: Vec<(i64, i64)> = Vec::new();
    let mut path = "/api/v1/orders?changed_after=0&limit=10".to_string();
    let mut changed = None;
    loop {
        let page = h.get(&path).await.json;
        for order in page["items"].as_array().unwrap() {
            seen.push((order["id"].as_i64().unwrap(), order["revision"].as_i64().unwrap()));
        }
        if changed.is_none() {
            // One order already read changes: it comes again, later.
            let first = seen[0].0;
            let cancel =
                h.send("POST", &format!("/api/v1/orders/{first}/cancel"), Some(&planner), None).await;
            assert_eq!(cancel.status, StatusCode::OK, "{}", cancel.text);
            changed = Some(first);
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/orders?changed_after=0&limit=10&cursor={cursor}"),
            None => break,
        }
    }
    let revisions: Vec<i64> = seen.iter().map(|(_, r)| *r).collect();
    assert!(revisions.windows(2).all(|w| w[0] < w[1]), "by revision");
    let mut ids: Vec<i64> = seen.iter().map(|(id, _)| *id).collect();
    assert_eq!(seen.last().map(|(id, _)| *id), changed, "the changed order last");
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), total, "none missed");
    assert_eq!(seen.len(), total + 1, "the changed one twice");

    // From the highest revision seen: what changes next, and nothing else.
    let high = *revisions.last().unwrap();
    assert!(changed_since(&h, high).await.is_empty());
    let workers = h.state.start_workers();
    let (order, operation) = h.first_released_operation().await;
    let machine = operation["eligible_machines"][0].as_i64().unwrap();
    let start = format!("/api/v1/operations/{}/start", operation["id"]);
    let started = h.post_json(&start, &token_for(Role::Operator), &json!({"machine_id": machine})).await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.text);
    assert_eq!(
        changed_since(&h, high).await,
        [order["id"].as_i64().unwrap()],
        "an operation's start moves its order"
    );
    // A deleted order is listed apart, with its revision.
    let planned = h.get("/api/v1/orders?status=planned&limit=1").await.json["items"][0].clone();
    let id = planned["id"].as_i64().unwrap();
    assert_eq!(
        h.send("DELETE", &format!("/api/v1/orders/{id}"), Some(&planner), None).await.status,
        StatusCode::NO_CONTENT
    );
    let deleted = h.get(&format!("/api/v1/orders/deleted?changed_after={high}")).await.json;
    assert_eq!(deleted["items"].as_array().unwrap().len(), 1, "{deleted}");
    assert_eq!(
        (&deleted["items"][0]["id"], &deleted["items"][0]["number"]),
        (&planned["id"], &planned["number"])
    );
    assert!(deleted["items"][0]["revision"].as_i64().unwrap() > high);
    // Wrong asks are refused.
    for bad in [
        "/api/v1/orders?changed_after=-1",
        "/api/v1/orders?changed_after=0&sort=due",
        "/api/v1/orders/deleted?changed_after=-1",
    ] {
        assert_eq!(h.get(bad).await.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    // The export takes it too: the changes as CSV.
    let export = h.get(&format!("/api/v1/orders/export?changed_after={high}")).await;
    assert_eq!(export.text.lines().count(), 2, "{}", export.text);
    h.state.begin_stop();
    workers.finish().await;
}

/// The ids of the orders changed after `revision`.
async fn changed_since(h: &Harness, revision: i64) -> Vec<i64> {
    let items = h.get(&format!("/api/v1/orders?changed_after={revision}")).await.json["items"].clone();
    items.as_array().unwrap().iter().map(|o| o["id"].as_i64().unwrap()).collect()
}

#[tokio::test]
async fn an_order_file_sent_again_imports_only_what_is_new() {
    let h = harness();
    let import = |path: &'static str, file: String| {
        let app = &h;
        async move { app.send("POST", path, Some(ADMIN), Some(("text/csv", file.into_bytes()))).await }
    };
    // As a spreadsheet saves it: empty columns past the last one used.
    let first = "number,customer,variant,quantity,due,,\n\
                 ERP-1,Acme,phone-stand-black,10,2026-12-01T18:00:00+08:00,,\n"
        .to_string();
    let reply = import("/api/v1/orders/import?existing=skip", first.clone()).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let erp1 = reply.json["orders"][0].clone();
    let second = format!("{first}ERP-2,Acme,phone-stand-black,5,2026-12-02T18:00:00+08:00,,\n");
    let reply = import("/api/v1/orders/import?existing=skip", second.clone()).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.json["imported"], 1);
    assert_eq!(reply.json["skipped"], json!([{"number": "ERP-1", "id": erp1}]));
    // Nothing new, or nothing at all: nothing to do, no error.
    let reply = import("/api/v1/orders/import?existing=skip", second.clone()).await;
    assert_eq!((reply.status, &reply.json["imported"]), (StatusCode::OK, &json!(0)), "{}", reply.text);
    let header_only = "number,customer,variant,quantity,due\n".to_string();
    let reply = import("/api/v1/orders/import?existing=skip", header_only.clone()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    // Without it, as before: a file is new orders.
    let reply = import("/api/v1/orders/import", second).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", reply.text);
    assert!(reply.text.contains("existing=skip"), "{}", reply.text);
    assert_eq!(import("/api/v1/orders/import", header_only).await.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(import("/api/v1/orders/import?existing=update", first).await.status, StatusCode::BAD_REQUEST);
    // A compressed file is refused as such, not read as garbage.
    let request = Request::builder()
        .method("POST")
        .uri("/api/v1/orders/import")
        .header("authorization", format!("Bearer {ADMIN}"))
        .header("content-type", "text/csv")
        .header("content-encoding", "gzip")
        .body(Body::from(vec![0x1f, 0x8b, 8, 0]))
        .unwrap();
    let response = h.app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // A value under a column without a name is not read past.
    let stray =
        "number,customer,variant,quantity,due,\nERP-3,Acme,phone-stand-black,1,2026-12-02T18:00:00+08:00,x\n";
    let reply = import("/api/v1/orders/import", stray.to_string()).await;
    assert!(reply.text.contains("column 6, which has no name"), "{}", reply.text);

    // The same order posted again says which order has the number; the list finds it by number.
    let order = json!({"number": "ERP-1", "customer": "Acme", "variant_id": 1, "quantity": 10, "due": "2026-12-01T18:00:00+08:00"});
    let again = h.post_json("/api/v1/orders", &token_for(Role::Planner), &order).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text);
    assert_eq!(again.json["existing_id"], erp1);
    // In another case too: people read `erp-1` as the same order.
    let lower = json!({"number": "erp-1", "customer": "Acme", "variant_id": 1, "quantity": 10, "due": "2026-12-01T18:00:00+08:00"});
    let again = h.post_json("/api/v1/orders", &token_for(Role::Planner), &lower).await;
    assert_eq!((again.status, &again.json["existing_id"]), (StatusCode::CONFLICT, &erp1), "{}", again.text);
    assert!(again.text.contains(r#"as \"ERP-1\""#), "{}", again.text);
    let cased =
        "number,customer,variant,quantity,due\nerp-1,Acme,phone-stand-black,1,2026-12-02T18:00:00+08:00\n";
    let reply = import("/api/v1/orders/import", cased.to_string()).await;
    assert_eq!(reply.json["field"], "line 2.number", "{}", reply.text);
    let variant = h.get("/api/v1/variants?code=phone-stand-black").await.json["items"].clone();
    assert_eq!(variant.as_array().map(Vec::len), Some(1), "{variant}");
    assert_eq!(variant[0]["code"], "phone-stand-black");
    assert_eq!(h.get("/api/v1/variants?code=no-such").await.json["items"], json!([]));
    let found = h.get("/api/v1/orders?number=ERP-1").await.json["items"].clone();
    assert_eq!(found.as_array().unwrap().len(), 1);
    assert_eq!(found[0]["id"], erp1);

    // What the export escapes against spreadsheet formulas imports as it was.
    let dashed =
        "number,customer,variant,quantity,due\n-ERP-9,=Acme,phone-stand-black,1,2026-12-02T18:00:00+08:00\n";
    assert_eq!(import("/api/v1/orders/import", dashed.to_string()).await.status, StatusCode::CREATED);
    let export = h.get("/api/v1/orders/export?number=-ERP-9").await.text;
    assert!(export.contains("'-ERP-9,'=Acme"), "{export}");
    let item = h.get("/api/v1/orders?number=-ERP-9").await.json["items"][0]["id"].as_i64().unwrap();
    let planner = token_for(Role::Planner);
    assert_eq!(
        h.send("DELETE", &format!("/api/v1/orders/{item}"), Some(&planner), None).await.status,
        StatusCode::NO_CONTENT
    );
    let reply = import("/api/v1/orders/import", export).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let back = h.get("/api/v1/orders?number=-ERP-9").await.json["items"][0].clone();
    assert_eq!(back["customer"], "=Acme");
    // A quote the customer's name starts with survives too.
    let quoted = json!({"number": "ERP-Q", "customer": "'=Quoted", "variant_id": 1, "quantity": 1, "due": "2026-12-02T18:00:00+08:00"});
    let id = h.post_json("/api/v1/orders", &planner, &quoted).await.json["id"].as_i64().unwrap();
    let export = h.get("/api/v1/orders/export?number=ERP-Q").await.text;
    assert!(export.contains("ERP-Q,''=Quoted"), "{export}");
    assert_eq!(
        h.send("DELETE", &format!("/api/v1/orders/{id}"), Some(&planner), None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(import("/api/v1/orders/import", export).await.status, StatusCode::CREATED);
    assert_eq!(h.get("/api/v1/orders?number=ERP-Q").await.json["items"][0]["customer"], "'=Quoted");
}

/// A generated factory of 120 orders on 6 machines (`seed`; orders made at 05:00), its
/// dispatched plan published at `now`, and a repair of it at `at` (two hours frozen,
/// [`repair_of`]): the published plan and the repair.
fn dispatched_and_repaired(
    seed: u64,
    now: model::Timestamp,
    at: model::Timestamp,
) -> (Store, model::PlanSummary, store::NewPlan, store::NewPlan) {
    let store = Store::open_in_memory().unwrap();
    crate::demo::seed_generated(&store, 120, 6, seed, datetime!(2026-11-30 05:00 +08:00)).unwrap();
    let (summary, dispatched) = publish_dispatch(&store, now);
    let repaired = repair_of(&store, at, time::Duration::minutes(120));
    (store, summary, dispatched, repaired)
}

/// A repair of the active plan at `at` with the work of `freeze` kept, on one thread (a search of
/// 300 ms where one is needed).
fn repair_of(store: &Store, at: model::Timestamp, freeze: time::Duration) -> store::NewPlan {
    let options =
        crate::planning::Options { repair: Some(freeze), threads: 1, ..crate::planning::Options::default() };
    crate::planning::plan(
        store,
        at,
        crate::planning::DEFAULT_OBJECTIVE,
        std::time::Duration::from_millis(300),
        &options,
    )
    .unwrap()
}

#[test]
fn a_searched_repair_keeps_a_rush_order_where_the_kept_order_put_it() {
    // The loaded factory whose kept order costs a search (published at 09:51, repaired four
    // minutes later), and a rush order arriving meanwhile: the search may move other work, but
    // the rush order keeps the places the kept order gave it, ahead of all other work.
    let now = datetime!(2026-11-30 09:51 +08:00);
    let at = now + time::Duration::minutes(4);
    let store = Store::open_in_memory().unwrap();
    crate::demo::seed_generated(&store, 120, 6, 3, datetime!(2026-11-30 05:00 +08:00)).unwrap();
    publish_dispatch(&store, now);
    let all = store::PageRequest { after: None, limit: 1 };
    let variant = store.orders(&store::OrderFilter::default(), all).unwrap().items[0].variant_id;
    let order = model::NewOrder {
        number: "RUSH-1".into(),
        customer: "Rush Ltd".into(),
        variant_id: variant,
        quantity: 20,
        // Not due for a while: what a search would put back first.
        due: at + time::Duration::days(10),
        priority: 10,
        material_ready: None,
    };
    let rush = store.create_order(&order, at).unwrap().id;
    store.set_order_status(rush, model::OrderStatus::Released).unwrap();
    let repair = |search_loss_percent: f64| {
        let options = crate::planning::Options {
            repair: Some(time::Duration::minutes(120)),
            threads: 1,
            rush_priority: 8,
            search_loss_percent,
            ..crate::planning::Options::default()
        };
        let plan = crate::planning::plan(
            &store,
            at,
            crate::planning::DEFAULT_OBJECTIVE,
            std::time::Duration::from_millis(300),
            &options,
        )
        .unwrap();
        let places = |plan: &store::NewPlan| -> Vec<_> {
            plan.operations
                .iter()
                .filter(|op| op.order_id == rush)
                .map(|op| (op.machine_id, op.start))
                .collect()
        };
        (places(&plan), plan)
    };
    let (kept_places, kept) = repair(0.0);
    let (searched_places, searched) = repair(crate::planning::REPAIR_SEARCH_LOSS_PERCENT);
    // (Whether the search finds enough to be taken depends on the machine's speed: here it takes
    // a plan 10 % better within 300 ms.)
    assert!(searched.weighted_tardiness <= kept.weighted_tardiness);
    assert!(!kept_places.is_empty());
    assert_eq!(searched_places, kept_places, "the search moved the rush order");
}

#[test]
fn a_repair_with_nothing_changed_moves_nothing() {
    // Plans are published with the gaps that a repair's list schedule fills already filled, so a
    // repair before anything was due moves no operation.
    for seed in [3, 11] {
        let now = datetime!(2026-11-30 05:00 +08:00);
        let (store, summary, _, repaired) =
            dispatched_and_repaired(seed, now, now + time::Duration::minutes(30));
        let place = |ops: &[model::PlannedOperation]| {
            let mut places: Vec<_> = ops
                .iter()
                .map(|op| (op.operation_id, op.part, op.machine_id, op.setup_start, op.start))
                .collect();
            places.sort();
            places
        };
        assert_eq!(place(&repaired.operations), place(&store.plan_operations(summary.id, None).unwrap()));
    }
}

#[test]
fn a_repair_that_keeping_every_machines_order_would_make_much_worse_searches() {
    // A dispatched plan of a loaded generated factory. Four minutes after it was published
    // nothing has started: keeping every machine's order, lots that no longer fit before 22:00
    // wait for the next morning, and work behind them shift after shift (published at 09:51, the
    // plain shift alone made 61 orders late, against the plan's 36). The repair then searches
    // from that order and takes what it finds.
    for now in [datetime!(2026-11-30 09:51 +08:00), datetime!(2026-11-30 06:30 +08:00)] {
        searched_repair_keeps_the_near_term(now);
    }
}

fn searched_repair_keeps_the_near_term(now: model::Timestamp) {
    let at = now + time::Duration::minutes(4);
    let (store, summary, dispatched, repaired) = dispatched_and_repaired(3, now, at);
    // Not worse by the objective, weighted tardiness. The number of late orders is not what
    // the search weighs: with the 300 ms of a loaded machine it has ended one above the plan's
    // (22 -> 23 with the weighted tardiness 6.2 M -> 3.7 M), so it is not held to it.
    assert!(
        repaired.weighted_tardiness <= dispatched.weighted_tardiness,
        "late {} -> {}, weighted tardiness {} -> {}",
        dispatched.late_orders,
        repaired.late_orders,
        dispatched.weighted_tardiness,
        repaired.weighted_tardiness
    );
    // The search moved other work, not what the shop floor is about to do: work due within the
    // freeze (two hours) stays on its machine, and starts about when it was due. (Published at
    // 06:30, a search free to move work that the freeze rules let go, as it follows a lot whose
    // start passed, moved two such lots by hours.)
    let mut near = 0;
    for op in store.plan_operations(summary.id, None).unwrap() {
        if op.setup_start >= now + time::Duration::hours(2) {
            continue;
        }
        let now = repaired
            .operations
            .iter()
            .find(|r| (r.operation_id, r.part) == (op.operation_id, op.part))
            .unwrap();
        assert_eq!(now.machine_id, op.machine_id, "near-term work changed machines: {op:?} -> {now:?}");
        assert!(
            (now.start - op.start).abs() < time::Duration::minutes(30),
            "near-term work moved: {op:?} -> {now:?}"
        );
        near += 1;
    }
    assert!(near > 0, "no work due within the freeze");
}
