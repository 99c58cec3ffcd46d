//! The dashboard through the real router: sign-in and sessions, the CSRF rule for cookie-borne
//! requests, every page rendering in both languages, and — the rule that keeps pages honest — a
//! role never sees a button for an action it may not take, and the API behind every button a
//! page hides from a role answers that role with 403.

use std::collections::BTreeSet;

use super::*;

impl Harness {
    /// A page fetched with a session cookie holding `token` (and a language cookie).
    pub(super) async fn page(&self, path: &str, token: &str, lang: &str) -> Reply {
        let request = Request::builder()
            .method("GET")
            .uri(path)
            .header("cookie", format!("mf_session={token}; mf_lang={lang}"))
            .body(Body::empty())
            .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let location = headers.get("location").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        Reply { status, json: Value::String(location), text }
    }

    /// The Plan page of plan `id` in `lang`, from its sentence on why the plan was made on.
    async fn plan_trigger(&self, id: i64, lang: &str) -> String {
        let page = self.page(&format!("/plan?id={id}"), ADMIN, lang).await;
        assert_eq!(page.status, StatusCode::OK);
        page.text.split("data-testid=\"plan-trigger\"").nth(1).unwrap_or_default().to_owned()
    }

    /// Posts the sign-in form `body`; where it sends the browser, and the cookie it sets.
    async fn sign_in(&self, body: &str) -> (String, String) {
        self.sign_in_with(body, None).await
    }

    /// Signs in with one extra request header, such as a proxy's `X-Forwarded-Proto`.
    async fn sign_in_with(&self, body: &str, extra: Option<(&str, &str)>) -> (String, String) {
        let mut request = Request::builder()
            .method("POST")
            .uri("/login")
            .header("content-type", "application/x-www-form-urlencoded");
        if let Some((name, value)) = extra {
            request = request.header(name, value);
        }
        let request = request.body(Body::from(body.to_string())).unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        let header = |name: &str| response.headers()[name].to_str().unwrap().to_string();
        (header("location"), header("set-cookie"))
    }

    /// A request authenticated by the session cookie, with or without the CSRF header.
    async fn cookie_request(&self, method: &str, path: &str, token: &str, csrf: bool) -> StatusCode {
        let mut request =
            Request::builder().method(method).uri(path).header("cookie", format!("mf_session={token}"));
        if csrf {
            request = request.header("x-microfactory-csrf", "1");
        }
        let response = self.app.clone().oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
        response.status()
    }

    /// Makes every kind of button appear for an admin: an active and a draft plan, a released
    /// order with a running operation, an active alarm.
    async fn busy_factory(&self) -> (i64, i64, i64) {
        let first = self.post_json("/api/v1/plans", ADMIN, &json!({"time_limit_seconds": 0})).await;
        assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
        let active = first.json["id"].as_i64().unwrap();
        let published =
            self.send("POST", &format!("/api/v1/plans/{active}/publish"), Some(ADMIN), None).await;
        assert_eq!(published.status, StatusCode::OK, "{}", published.text);
        let draft = self.post_json("/api/v1/plans", ADMIN, &json!({"time_limit_seconds": 0})).await;
        assert_eq!(draft.status, StatusCode::CREATED, "{}", draft.text);
        // The first operation the active plan puts on the first machine with work.
        let gantt = self.get(&format!("/api/v1/plans/{active}/gantt")).await.json;
        let lane =
            gantt.as_array().unwrap().iter().find(|l| !l["items"].as_array().unwrap().is_empty()).unwrap();
        let machine = lane["machine_id"].as_i64().unwrap();
        let item = &lane["items"][0];
        let (order, operation) = (item["order_id"].as_i64().unwrap(), item["operation_id"].as_i64().unwrap());
        if self.get(&format!("/api/v1/orders/{order}")).await.json["status"] == "planned" {
            let released =
                self.send("POST", &format!("/api/v1/orders/{order}/release"), Some(ADMIN), None).await;
            assert_eq!(released.status, StatusCode::OK, "{}", released.text);
        }
        let _workers = self.state.start_workers();
        let started = self
            .post_json(
                &format!("/api/v1/operations/{operation}/start"),
                ADMIN,
                &json!({"machine_id": machine}),
            )
            .await;
        assert_eq!(started.status, StatusCode::OK, "{}", started.text);
        let rule = self.store.alarm_rules().unwrap()[0].id;
        self.store.raise_alarm(rule, model::MachineId(machine), NOW, Some(1.0), "test alarm").unwrap();
        (machine, order, draft.json["id"].as_i64().unwrap())
    }
}

/// Every `data-action` of a page with its `data-body`, entities decoded.
fn actions(html: &str) -> BTreeSet<(String, Option<String>)> {
    fn attribute(tag: &str, name: &str) -> Option<String> {
        let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
        let end = start + tag[start..].find('"')?;
        Some(
            tag[start..end]
                .replace("&quot;", "\"")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&#39;", "'")
                .replace("&amp;", "&"),
        )
    }
    html.split('<')
        .filter_map(|tag| {
            let tag = tag.split('>').next()?;
            Some((attribute(tag, "data-action")?, attribute(tag, "data-body")))
        })
        .collect()
}

/// A valid body for an action without `data-body` (forms), so that what the API answers is about
/// the role, not about the body. A new kind of action fails here until it has a sample.
fn sample_body(action: &str) -> Option<Value> {
    let (method, path) = action.split_once(' ').unwrap();
    let last = path.rsplit('/').next().unwrap();
    let numeric = last.parse::<i64>().is_ok();
    match (method, path) {
        ("DELETE", _) => None,
        ("POST", _) if ["acknowledge", "publish", "release", "cancel"].contains(&last) => None,
        ("POST", "/api/v1/plans") => Some(json!({"time_limit_seconds": 0})),
        ("POST", "/api/v1/alarm-rules") | ("PUT", _) if path.starts_with("/api/v1/alarm-rules") => {
            Some(json!({
                "name": "sample", "metric": "temperature", "condition": {"kind": "above", "threshold": 1.0},
                "severity": "info"
            }))
        }
        ("PUT", _) if last == "state-rule" => {
            Some(json!({"metric": "power_kw", "running_above": 2.0, "idle_above": 0.3}))
        }
        ("PUT", _) if last == "count-rule" => Some(json!({"good_metric": "parts_good"})),
        ("POST", _) if last == "finish" || last == "pause" => Some(json!({"good": 1, "scrap": 0})),
        ("PATCH", _) if path.starts_with("/api/v1/users/") && numeric => Some(json!({"role": "viewer"})),
        ("POST", "/api/v1/users") => {
            Some(json!({"username": "sample-user", "role": "viewer", "password": "a-long-sample-password"}))
        }
        ("POST", "/api/v1/tokens") => Some(json!({"name": "sample"})),
        ("POST", _) if last == "maintenance" => Some(
            json!({"start": "2026-12-01T08:00:00+08:00", "end": "2026-12-01T10:00:00+08:00", "reason": "sample"}),
        ),
        ("POST", "/api/v1/me/password") => {
            Some(json!({"current_password": "not-the-password", "new_password": "a-long-sample-password"}))
        }
        ("PUT", _) if path.starts_with("/api/v1/orders/") && numeric => Some(json!({
            "number": "SO-SAMPLE-2", "customer": "Sample", "variant_id": 1, "quantity": 1,
            "due": "2026-12-01T18:00:00+08:00", "priority": 1
        })),
        ("POST", "/api/v1/orders") => Some(json!({
            "number": "SO-SAMPLE", "customer": "Sample", "variant_id": 1, "quantity": 1,
            "due": "2026-12-01T18:00:00+08:00", "priority": 1
        })),
        ("POST" | "PUT", _) if path == "/api/v1/sites" || path.starts_with("/api/v1/sites/") && numeric => {
            Some(json!({"code": "sample-site", "name": "Sample", "utc_offset": "+08:00"}))
        }
        ("PUT", _) if last == "calendar" => Some(json!({"shifts": [], "holidays": []})),
        ("POST" | "PUT", _) if path == "/api/v1/lines" || path.starts_with("/api/v1/lines/") && numeric => {
            Some(json!({"site_id": 1, "code": "sample-line", "name": "Sample"}))
        }
        ("POST" | "PUT", _)
            if path == "/api/v1/machines" || path.starts_with("/api/v1/machines/") && numeric =>
        {
            Some(json!({"site_id": 1, "code": "sample-machine", "name": "Sample", "kind": "other"}))
        }
        ("POST" | "PUT", _)
            if path == "/api/v1/materials" || path.starts_with("/api/v1/materials/") && numeric =>
        {
            Some(json!({"code": "sample-material", "name": "Sample"}))
        }
        ("POST" | "PUT", _)
            if path == "/api/v1/products" || path.starts_with("/api/v1/products/") && numeric =>
        {
            Some(json!({"code": "sample-product", "name": "Sample", "family": "sample"}))
        }
        ("POST" | "PUT", _)
            if path == "/api/v1/variants" || path.starts_with("/api/v1/variants/") && numeric =>
        {
            Some(json!({"product_id": 1, "code": "sample-variant", "name": "Sample"}))
        }
        ("POST" | "PUT", _)
            if path == "/api/v1/routings" || path.starts_with("/api/v1/routings/") && numeric =>
        {
            Some(json!({"code": "sample-routing", "name": "Sample", "steps": [
                {"name": "sample", "eligible_machines": [1], "unit_seconds": 1.0, "setup_family": "sample"}
            ]}))
        }
        _ => panic!("no sample body for the dashboard action {action}; add one to sample_body"),
    }
}

#[tokio::test]
async fn pages_need_a_session_and_sign_in_sets_one() {
    let h = harness();
    let anonymous = h.send("GET", "/orders?status=done", None, None).await;
    assert_eq!(anonymous.status, StatusCode::SEE_OTHER);
    let stale = h.page("/", "mf_not_a_token", "en").await;
    assert_eq!(stale.status, StatusCode::SEE_OTHER, "an unknown session goes to the sign-in page");
    assert_eq!(stale.json, "/login?next=%2F");
    let form = h.send("GET", "/login?next=/plan", None, None).await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.text.contains(r#"name="next" value="/plan""#), "{}", form.text);

    let password = "a-long-test-password-1";
    let hash = crate::auth::hash_password(password).unwrap();
    h.store.create_user("lee", Role::Operator, None, &hash, NOW).unwrap();
    let body = format!("username=lee&password={password}&next=%2Fplan");
    let signed_in =
        h.send("POST", "/login", None, Some(("application/x-www-form-urlencoded", body.into()))).await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER, "{}", signed_in.text);
    let wrong = "username=lee&password=not-the-password&next=%2F";
    let refused =
        h.send("POST", "/login", None, Some(("application/x-www-form-urlencoded", wrong.into()))).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(refused.text.contains("Wrong user name or password"), "{}", refused.text);
    // The user name stays; the password is typed again, and is marked as what was wrong.
    assert!(
        refused.text.contains(r#"name="username" autocomplete="username" value="lee""#),
        "{}",
        refused.text
    );
    assert!(refused.text.contains(r#"required autofocus aria-invalid="true""#), "{}", refused.text);

    // Open redirects are refused: only local paths are places to go back to.
    let (location, cookie) =
        h.sign_in(&format!("username=lee&password={password}&next=%2F%2Fevil.example")).await;
    assert_eq!(location, "/");
    // Another site's form cannot sign anyone in.
    let (cross_cookie, cross_site) = {
        let request = Request::builder()
            .method("POST")
            .uri("/login")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("sec-fetch-site", "cross-site")
            .body(Body::from(format!("username=lee&password={password}")))
            .unwrap();
        let response = h.app.clone().oneshot(request).await.unwrap();
        (response.headers().get("set-cookie").cloned(), response.status())
    };
    assert_eq!((cross_site, cross_cookie), (StatusCode::FORBIDDEN, None));
    // A control character cannot go into a Location header: back to the start, not a 500.
    let (location, _) = h.sign_in(&format!("username=lee&password={password}&next=%2Fx%01")).await;
    assert_eq!(location, "/");
    let switched = h.send("GET", "/lang?to=zh-HK&back=/%01", None, None).await;
    assert_eq!(switched.status, StatusCode::SEE_OTHER, "{}", switched.text);
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain HTTP must get its cookie back: {cookie}");
    // Behind a TLS-terminating proxy the cookie is kept off plain HTTP.
    let signed = format!("username=lee&password={password}");
    for proxy in [("x-forwarded-proto", "https"), ("forwarded", "for=192.0.2.60;proto=https;by=203.0.113.43")]
    {
        let (_, cookie) = h.sign_in_with(&signed, Some(proxy)).await;
        assert!(cookie.ends_with("; Secure"), "{proxy:?}: {cookie}");
    }
    for plain in [("x-forwarded-proto", "http, https"), ("forwarded", "proto=http, proto=https")] {
        let (_, cookie) = h.sign_in_with(&signed, Some(plain)).await;
        assert!(!cookie.contains("Secure"), "{plain:?}: {cookie}");
    }
    let token = cookie.trim_start_matches("mf_session=").split(';').next().unwrap().to_string();
    let overview = h.page("/", &token, "en").await;
    assert_eq!(overview.status, StatusCode::OK);
    assert!(overview.text.contains("lee"), "the header names the user");

    // The cookie works for the API, but a state change also needs the CSRF header.
    let path = "/api/v1/machines/1/states";
    assert_eq!(h.cookie_request("GET", path, &token, false).await, StatusCode::OK);
    assert_eq!(h.cookie_request("POST", path, &token, false).await, StatusCode::FORBIDDEN);
    assert_ne!(h.cookie_request("POST", path, &token, true).await, StatusCode::FORBIDDEN);

    // Signing out revokes the session's token.
    let request = Request::builder()
        .method("POST")
        .uri("/logout")
        .header("cookie", format!("mf_session={token}"))
        .body(Body::empty())
        .unwrap();
    let response = h.app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(h.page("/", &token, "en").await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn device_accounts_get_no_pages() {
    let h = harness();
    let device = h.device_token("gw-hk", model::SiteId(1));
    let page = h.page("/", &device, "en").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
}

/// The pages, for a factory made busy by [`Harness::busy_factory`].
fn pages(machine: i64, order: i64, draft: i64) -> Vec<String> {
    vec![
        "/".into(),
        "/orders".into(),
        format!("/orders/{order}"),
        "/plan".into(),
        format!("/plan?id={draft}"),
        "/station".into(),
        format!("/station?machine={machine}"),
        format!("/machines/{machine}"),
        "/alarms".into(),
        "/alarms?show=all".into(),
        "/factory".into(),
        "/products".into(),
        "/settings".into(),
    ]
}

#[tokio::test]
async fn a_machine_s_pages_show_its_own_site_s_local_time() {
    let h = harness();
    let site = json!({"code": "de", "name": "Berlin", "time_zone": "Europe/Berlin"});
    let site = h.post_json("/api/v1/sites", ADMIN, &site).await.json["id"].clone();
    let machine =
        json!({"site_id": site, "code": "de-1", "name": "Lathe", "kind": "other", "rated_power_kw": 3});
    let reply = h.post_json("/api/v1/machines", ADMIN, &machine).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let id = &reply.json["id"];
    // NOW (09:00 UTC on 2026-11-24) is 10:00 in Berlin and 17:00 in Hong Kong, the first site.
    for path in [format!("/machines/{id}"), format!("/station?machine={id}")] {
        let page = h.page(&path, ADMIN, "en").await.text;
        assert!(page.contains(r#"data-offset-minutes="60" data-time-zone="Europe/Berlin""#), "{path}");
    }
    let overview = h.page("/", ADMIN, "en").await.text;
    assert!(overview.contains(r#"data-offset-minutes="480" data-time-zone="Asia/Hong_Kong""#));
}

#[tokio::test]
async fn every_page_renders_in_both_languages() {
    let h = harness();
    let (machine, order, draft) = h.busy_factory().await;
    for path in pages(machine, order, draft) {
        for (lang, marker) in [("en", r#"<html lang="en">"#), ("zh-HK", r#"<html lang="zh-HK">"#)] {
            let page = h.page(&path, ADMIN, lang).await;
            assert_eq!(page.status, StatusCode::OK, "{path} in {lang}: {}", page.text);
            assert!(page.text.contains(marker), "{path} in {lang}");
        }
        let zh = h.page(&path, ADMIN, "zh-HK").await.text;
        assert!(zh.contains("總覽") && zh.contains("登出"), "{path}: the frame is translated");
    }
    assert_eq!(h.page("/machines/999999", ADMIN, "en").await.status, StatusCode::NOT_FOUND);
    assert_eq!(h.page("/orders/999999", ADMIN, "en").await.status, StatusCode::NOT_FOUND);
    // A query that does not parse is left out, not answered with a bare 400.
    for path in ["/station?machine=abc", "/alarms?machine=x&show=open", "/login?next=%zz"] {
        let page = h.page(path, ADMIN, "en").await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.text);
        assert!(page.text.starts_with("<!DOCTYPE html>"), "{path}");
    }
}

#[tokio::test]
async fn an_unknown_address_is_a_page_for_a_browser_and_a_problem_for_a_program() {
    let h = harness();
    let get = |path: &'static str, accept: &'static str| {
        let app = h.app.clone();
        async move {
            let request = Request::builder()
                .uri(path)
                .header("accept", accept)
                .header("cookie", "mf_lang=zh-HK")
                .body(Body::empty())
                .unwrap();
            let response = app.oneshot(request).await.unwrap();
            let status = response.status();
            let kind = response.headers().get("content-type").unwrap().to_str().unwrap().to_owned();
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
            (status, kind, String::from_utf8_lossy(&bytes).into_owned())
        }
    };
    // What Chromium sends for a typed address.
    let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8";
    let (status, kind, text) = get("/machines", browser).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(kind.starts_with("text/html"), "{kind}");
    assert!(
        text.contains(r#"<html lang="zh-HK">"#)
            && text.contains("此處沒有內容")
            && text.contains(r#"href="/""#),
        "{text}"
    );
    for (path, accept) in [("/oee", "application/json"), ("/oee", "*/*"), ("/api/v1/nope", browser)] {
        let (status, kind, text) = get(path, accept).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(kind.starts_with("application/problem+json"), "{path} with {accept}: {kind}");
        assert!(text.contains("not-found"), "{text}");
    }
    // A typed address that only takes a form's POST.
    let (status, kind, text) = get("/logout", browser).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(kind.starts_with("text/html") && text.contains("此網址不是可開啟的頁面"), "{text}");
    let (status, kind, _) = get("/logout", "application/json").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(kind.starts_with("application/problem+json"), "{kind}");
}

#[tokio::test]
async fn settings_show_the_automatic_re_planning_settings() {
    let mut h = harness();
    let planning =
        crate::PlanningConfig { deviation_minutes: 0, rush_priority: 9, ..crate::PlanningConfig::default() };
    h.state = h.state.clone().with_planning(planning);
    h.app = crate::router(h.state.clone());
    let page = h.page("/settings", &token_for(Role::Viewer), "en").await;
    let panel = page.text.split("data-testid=\"planning-settings\"").nth(1).unwrap_or_default();
    for row in [
        "<th scope=\"row\">Repair and publish the active plan by itself</th><td>On</td>",
        "<th scope=\"row\">Rush orders are slotted in at once from priority</th><td>9</td>",
        "<th scope=\"row\">Other released orders are slotted in at most after</th><td>15 min</td>",
        "<th scope=\"row\">Work off the plan by more than this leads to a repair</th><td>Off</td>",
        "<th scope=\"row\">Scheduled re-optimisation at (the first site's time)</th><td>05:00 (Asia/Hong_Kong)</td>",
        "<th scope=\"row\">A re-optimised plan is published when better by at least</th><td>1 %</td>",
        "<td data-testid=\"last-reoptimisation\">None since the server started</td>",
    ] {
        assert!(panel.contains(row), "{row} not in {}", panel.chars().take(1500).collect::<String>());
    }
    h.state.set_last_reoptimisation(crate::replanner::LastReoptimisation { at: NOW, published: Some(7) });
    let page = h.page("/settings", &token_for(Role::Viewer), "zh-HK").await;
    let shown = page.text.split("data-testid=\"last-reoptimisation\"").nth(1).unwrap_or_default();
    assert!(
        shown.contains("<a href=\"/plan?id=7\">已發佈排程 #7</a>"),
        "{}",
        shown.chars().take(300).collect::<String>()
    );
}

#[tokio::test]
async fn an_automatic_repair_says_why_it_was_made() {
    let h = harness();
    let workers = h.state.start_workers();
    publish_a_plan(&h).await;
    let (_, number) = rush_order(&h, "SO-T-RUSH").await;
    let config = crate::PlanningConfig::default();
    let mut memory = crate::replanner::Memory::default();
    let (plan, _) = crate::replanner::check_and_repair(&h.store, &NOW, &config, None, &mut memory)
        .unwrap()
        .expect("a repair");
    // Then an order of ordinary priority, slotted in once that repair is 15 minutes old.
    let planner = token_for(Role::Planner);
    let mut order = valid_order();
    order["number"] = json!("SO-T-NEW");
    let id = h.post_json("/api/v1/orders", &planner, &order).await.json["id"].clone();
    h.send("POST", &format!("/api/v1/orders/{id}/release"), Some(&planner), None).await;
    let later = NOW + time::Duration::minutes(15);
    let (new, _) = crate::replanner::check_and_repair(&h.store, &later, &config, None, &mut memory)
        .unwrap()
        .expect("a repair for the new order");
    let said = [
        (plan, "en", format!("Repaired and published automatically: rush orders {number} arrived.")),
        (plan, "zh-HK", format!("系統自動修補並發佈：收到急單 {number}。")),
        (
            new,
            "en",
            "Repaired and published automatically: released orders SO-T-NEW were not in the plan.".into(),
        ),
        (new, "zh-HK", "系統自動修補並發佈：已下達的訂單 SO-T-NEW 不在排程內。".into()),
    ];
    for (plan, lang, said) in said {
        let shown = h.plan_trigger(plan, lang).await;
        assert!(
            shown.starts_with(&format!(">{said}<")),
            "{lang}: {}",
            shown.chars().take(200).collect::<String>()
        );
    }
    h.state.begin_stop();
    workers.finish().await;
}

#[tokio::test]
async fn a_re_optimised_plan_shows_what_it_gained() {
    let h = harness();
    let mut plan = crate::planning::plan(
        &h.store,
        NOW,
        crate::planning::DEFAULT_OBJECTIVE,
        std::time::Duration::ZERO,
        &crate::planning::Options::default(),
    )
    .unwrap();
    plan.trigger = Some(model::PlanTrigger::Reoptimised {
        late_orders_before: 4,
        weighted_tardiness_before: 7_200,
        makespan_end_before: NOW + time::Duration::days(2),
    });
    let late = plan.late_orders;
    let plan = h.store.create_plan(&plan).unwrap().id;
    let said = [
        (
            "en",
            format!(
                "Re-optimised at a scheduled time and published automatically, as it is better than the plan before: late orders 4 → {late}, weighted lateness "
            ),
        ),
        (
            "zh-HK",
            format!("系統按預定時間重新優化，結果優於原排程，已自動發佈：延誤訂單 4 → {late}，加權延誤 "),
        ),
    ];
    for (lang, said) in said {
        let shown = h.plan_trigger(plan, lang).await;
        assert!(
            shown.starts_with(&format!(">{said}")),
            "{lang}: {}",
            shown.chars().take(300).collect::<String>()
        );
        assert!(
            shown.contains("11-26"),
            "the end before, as a date: {}",
            shown.chars().take(300).collect::<String>()
        );
    }
}

#[tokio::test]
async fn the_station_offers_to_finish_with_the_units_not_counted_yet() {
    let h = harness();
    let (machine, order, _) = h.busy_factory().await;
    let detail = h.get(&format!("/api/v1/orders/{order}")).await.json;
    let running = detail["operations"].as_array().unwrap().iter().find(|o| o["status"] == "running").unwrap();
    let (operation, quantity) = (running["id"].as_i64().unwrap(), detail["quantity"].as_u64().unwrap());
    let good_input = |page: &str| {
        let at = page.find(r#"name="good""#).expect("a finish form");
        let value = &page[at..][page[at..].find("value=\"").unwrap() + 7..];
        value[..value.find('"').unwrap()].parse::<u64>().unwrap()
    };
    let page = h.page(&format!("/station?machine={machine}"), ADMIN, "en").await.text;
    assert_eq!(good_input(&page), quantity, "nothing counted yet: the whole lot");
    // With a lot running, the next ones say why they cannot start instead of offering to.
    assert!(page.contains(r#"data-testid="next-operation""#), "work queued behind the running lot");
    assert!(!page.contains(r#"data-testid="start-operation""#));
    assert!(page.contains("Finish the running lot first"));
    assert!(!page.contains("Counted so far"));
    // A finish short of the lot asks first, from the units left (the browser test answers it).
    assert!(
        page.contains(&format!(
            r#"data-short-of="{quantity}" data-confirm-short="Not counted: {{n}} of the lot"#
        )),
        "{page}"
    );
    // The stop buttons carry the machine's state, which makes "Running again" stand out when it
    // is stopped (and keeps it plain while it runs).
    let state = h.get("/api/v1/machine-states").await.json;
    let now =
        state.as_array().unwrap().iter().find(|s| s["machine_id"] == machine).map(|s| s["state"].clone());
    let shown = now.and_then(|s| s.as_str().map(str::to_owned)).unwrap_or_else(|| "offline".into());
    assert!(
        page.contains(&format!(r#"<div class="reasons" data-machine-id="{machine}" data-state="{shown}">"#)),
        "{shown}"
    );
    let produced = store::OperationEventKind::Produced { good: 3, scrap: 1, ideal_unit_ms: None };
    let event = store::OperationEvent {
        operation: model::OperationId(operation),
        machine: model::MachineId(machine),
        at: NOW,
        kind: produced,
        checked: false,
        counted_before: None,
        scrap_reason: None,
    };
    h.store.write_batch(&[], &[], &[], &[event]).unwrap();
    let page = h.page(&format!("/station?machine={machine}"), ADMIN, "en").await.text;
    assert!(page.contains("Counted so far: Good 3 · Scrap 1"), "{page}");
    assert_eq!(good_input(&page), quantity - 4, "the finish offers the rest of the lot");
    assert!(page.contains(&format!(r#"data-short-of="{}""#, quantity - 4)));
    // Both forms say what the offer was made from, so a count that comes in meanwhile makes the
    // server refuse the report (and the page draw itself again) instead of counting twice.
    let carried = r#"<input type="hidden" name="counted_before" data-type="int" value="4">"#;
    assert_eq!(page.matches(carried).count(), 2, "{page}");
    assert_eq!(page.matches("data-reload-on-conflict").count(), 2);
}

#[tokio::test]
async fn the_step_after_a_finished_one_processes_only_its_good_units() {
    let h = harness();
    let operator = token_for(Role::Operator);
    let (order, operation) = h.first_released_operation().await;
    let (order, quantity) = (order["id"].as_i64().unwrap(), order["quantity"].as_u64().unwrap());
    let id = operation["id"].as_i64().unwrap();
    assert_eq!(operation["quantity"], quantity);
    let workers = h.state.start_workers();
    let machine = &operation["eligible_machines"][0];
    let start = h
        .post_json(&format!("/api/v1/operations/{id}/start"), &operator, &json!({"machine_id": machine}))
        .await;
    assert_eq!(start.status, StatusCode::OK, "{}", start.text);
    // Read with units counted that are not there (or were counted since): refused, nothing lost.
    let stale = h
        .post_json(
            &format!("/api/v1/operations/{id}/finish"),
            &operator,
            &json!({"good": quantity - 3, "scrap": 3, "counted_before": 2}),
        )
        .await;
    assert_eq!(stale.status, StatusCode::CONFLICT, "{}", stale.text);
    assert_eq!(stale.json["errors"][0]["field"], "counted_before", "{}", stale.text);
    let finish = h
        .post_json(
            &format!("/api/v1/operations/{id}/finish"),
            &operator,
            &json!({"good": quantity - 3, "scrap": 3, "counted_before": 0}),
        )
        .await;
    assert_eq!(finish.status, StatusCode::OK, "{}", finish.text);
    let operations = h.get(&format!("/api/v1/orders/{order}")).await.json["operations"].clone();
    assert_eq!(operations[0]["quantity"], quantity);
    assert_eq!(operations[1]["quantity"], quantity - 3, "{operations}");
    // The plan gives the next step the time of its good units, not of the order's quantity.
    let built = crate::planning::build(&h.store, NOW, &crate::planning::Options::default()).unwrap();
    let next = h.store.operation(model::OperationId(operations[1]["id"].as_i64().unwrap())).unwrap();
    let (_, positions) =
        built.jobs.iter().find(|(_, positions)| positions.iter().any(|(op, _, _)| op.id == next.id)).unwrap();
    let planned: u32 =
        positions.iter().filter(|(op, _, _)| op.id == next.id).map(|(_, _, units)| units).sum();
    assert_eq!(u64::from(planned), quantity - 3);
    // Its order page says so too.
    for lang in ["en", "zh-HK"] {
        let page = h.page(&format!("/orders/{order}"), ADMIN, lang).await.text;
        let table = &page[page.find(r#"data-testid="order-operations""#).unwrap()..];
        let second = &table[table.find("<tr>").unwrap()..][4..];
        let second = &second[second.find("<tr>").unwrap()..];
        let second = &second[second.find("<tr>").unwrap()..second.find("</tr>").unwrap()];
        assert!(second.contains(&format!(r#"<td class="num">{}</td>"#, quantity - 3)), "{second}");
        let short = if lang == "en" {
            format!("{} of {quantity} expected, 3 short", quantity - 3)
        } else {
            "短缺 3".into()
        };
        let at = page.find(r#"data-testid="short-output""#).expect("the order says it will be short");
        assert!(page[at..].contains(&short), "{lang}");
    }
    // Once the rest is made, the order says what it delivered, and the list that it ended short.
    for step in operations.as_array().unwrap().iter().skip(1) {
        let (id, machine) = (step["id"].as_i64().unwrap(), &step["eligible_machines"][0]);
        let start = h
            .post_json(&format!("/api/v1/operations/{id}/start"), &operator, &json!({"machine_id": machine}))
            .await;
        assert_eq!(start.status, StatusCode::OK, "{}", start.text);
        let finish = h
            .post_json(&format!("/api/v1/operations/{id}/finish"), &operator, &json!({"good": quantity - 3}))
            .await;
        assert_eq!(finish.status, StatusCode::OK, "{}", finish.text);
    }
    let done = h.get(&format!("/api/v1/orders/{order}")).await.json;
    assert_eq!((&done["status"], &done["delivered"]), (&json!("done"), &json!(quantity - 3)));
    for (lang, short) in [("en", "3 short"), ("zh-HK", "短缺 3")] {
        let page = h.page("/orders?status=done", ADMIN, lang).await.text;
        let at = page.find(r#"data-testid="short""#).expect("the list says the order ended short");
        assert!(page[at..].starts_with(&format!(r#"data-testid="short">{short}<"#)), "{lang}");
    }
    h.state.begin_stop();
    workers.finish().await;
}

#[tokio::test]
async fn a_lot_stopped_for_now_counts_its_units_and_is_planned_and_started_again_for_the_rest() {
    let h = harness();
    let operator = token_for(Role::Operator);
    let (order, operation) = h.first_released_operation().await;
    let (order, quantity) = (order["id"].as_i64().unwrap(), order["quantity"].as_u64().unwrap());
    let id = operation["id"].as_i64().unwrap();
    let workers = h.state.start_workers();
    let machine = operation["eligible_machines"][0].as_i64().unwrap();
    let post = |action: &'static str, body: Value| {
        let (h, operator) = (&h, operator.clone());
        async move { h.post_json(&format!("/api/v1/operations/{id}/{action}"), &operator, &body).await }
    };
    let plan = h.post_json("/api/v1/plans", ADMIN, &json!({"time_limit_seconds": 0})).await.json;
    let publish = format!("/api/v1/plans/{}/publish", plan["id"]);
    assert_eq!(h.send("POST", &publish, Some(ADMIN), None).await.status, StatusCode::OK);
    // Only a running lot stops for now.
    let early = post("pause", json!({"good": 1})).await;
    assert_eq!(
        (early.status, &early.json["field"]),
        (StatusCode::CONFLICT, &json!("status")),
        "{}",
        early.text
    );
    assert_eq!(post("start", json!({"machine_id": machine})).await.status, StatusCode::OK);
    let page = h.page(&format!("/station?machine={machine}"), ADMIN, "en").await.text;
    assert!(page.contains(r#"data-testid="pause-operation""#), "the station offers to stop for now");
    // Nothing left for later is a finish, not a stop.
    let whole = post("pause", json!({"good": quantity})).await;
    assert_eq!((whole.status, &whole.json["field"]), (StatusCode::UNPROCESSABLE_ENTITY, &json!("good")));
    let first = quantity / 2;
    let stopped = post("pause", json!({"good": first - 1, "scrap": 1})).await;
    assert_eq!(stopped.status, StatusCode::OK, "{}", stopped.text);
    assert_eq!(
        (&stopped.json["status"], &stopped.json["good"], &stopped.json["scrap"]),
        (&json!("released"), &json!(first - 1), &json!(1))
    );
    // The next plan gives it the time of the units it has left.
    let built = crate::planning::build(&h.store, NOW, &crate::planning::Options::default()).unwrap();
    let (_, positions) = built.jobs.iter().find(|(o, _)| o.id.0 == order).unwrap();
    let planned: u32 = positions.iter().filter(|(op, _, _)| op.id.0 == id).map(|(_, _, units)| units).sum();
    assert_eq!(u64::from(planned), quantity - first);
    // Started again (on any of its machines) and finished with the rest: the lot is whole, and
    // it keeps the time it first started.
    let other = operation["eligible_machines"].as_array().unwrap().last().unwrap().as_i64().unwrap();
    let again = post("start", json!({"machine_id": other})).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(again.json["started_at"], stopped.json["started_at"]);
    let done = post("finish", json!({"good": quantity - first})).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    assert_eq!((&done.json["status"], &done.json["good"]), (&json!("done"), &json!(quantity - 1)));
    h.state.begin_stop();
    workers.finish().await;
}

#[tokio::test]
async fn an_overdue_order_outside_the_plan_is_at_risk_and_a_station_shows_its_machine_s_alarms() {
    let h = harness();
    h.busy_factory().await;
    // Entered after the active plan, already two days past its due time.
    let overdue = model::NewOrder {
        number: "SO-OVERDUE".into(),
        customer: "Late Ltd".into(),
        variant_id: model::VariantId(1),
        quantity: 3,
        due: NOW - time::Duration::days(2),
        priority: 5,
        material_ready: None,
    };
    // Many cancelled orders of the past, due before it, do not crowd it out.
    let past: Vec<model::NewOrder> =
        (0..501).map(|i| model::NewOrder { number: format!("SO-PAST-{i}"), ..overdue.clone() }).collect();
    for order in h.store.create_orders(&past, NOW).unwrap() {
        h.store.set_order_status(order.id, model::OrderStatus::Cancelled).unwrap();
    }
    let order = h.store.create_order(&overdue, NOW).unwrap();
    for (lang, overview, list) in [
        ("en", "1 open order is past its due time and not in the active plan:", "Overdue by"),
        ("zh-HK", "1 張未完成訂單已過交期，且不在現行排程中：", "已逾期"),
    ] {
        let page = h.page("/", ADMIN, lang).await.text;
        let at = page.find(r#"data-testid="overdue-unplanned""#).expect("the overdue line");
        assert!(page[at..].contains(overview) && page[at..].contains("SO-OVERDUE"), "{lang}");
        let page = h.page(&format!("/orders/{}", order.id.0), ADMIN, lang).await.text;
        assert!(page.contains(list), "{lang}: the order page says it is overdue");
    }
    // Ten open alarms: the overview lists the eight most urgent and says so.
    let rule = h.store.alarm_rules().unwrap()[0].id;
    for machine in 2..=10 {
        h.store.raise_alarm(rule, model::MachineId(machine), NOW, Some(60.0), "Gas leak").unwrap();
    }
    let page = h.page("/", ADMIN, "en").await.text;
    assert!(
        page.contains("The 8 most urgent of 10 open alarms."),
        "{}",
        &page[page.find("overview-alarms").unwrap()..][..2000]
    );
    // The station of a machine with an alarm shows it, with the acknowledgement for an operator.
    let station = h.page("/station?machine=3", ADMIN, "en").await.text;
    let at = station.find(r#"id="station-alarms""#).expect("the alarm panel");
    assert!(!station[at..at + 120].contains("hidden"), "{}", &station[at..at + 120]);
    assert!(station[at..].contains("Gas leak") && station[at..].contains("/acknowledge"));
    let quiet = h.page("/station?machine=11", ADMIN, "en").await.text;
    let at = quiet.find(r#"id="station-alarms""#).unwrap();
    assert!(quiet[at..at + 150].contains("hidden"), "no alarms, no panel");
}

#[tokio::test]
async fn a_rule_on_a_metric_no_machine_reports_is_flagged() {
    let h = harness();
    let reading =
        model::Reading { machine: model::MachineId(1), metric: "temperature_c".into(), at: NOW, value: 30.0 };
    h.store.write_readings(&[reading]).unwrap();
    let typo = json!({"name": "Typo", "metric": "temprature_c", "condition": {"kind": "above", "threshold": 80.0},
                      "severity": "warning"});
    assert_eq!(h.post_json("/api/v1/alarm-rules", ADMIN, &typo).await.status, StatusCode::CREATED);
    let page = h.page("/alarms", ADMIN, "en").await.text;
    assert!(
        page.contains(r#"<datalist id="known-metrics"><option value="temperature_c">"#),
        "the form offers it"
    );
    let rows: Vec<&str> = page.split(r#"data-testid="rule-row""#).skip(1).collect();
    let flagged = |metric: &str| {
        let row = rows.iter().find(|row| row.contains(&format!("<td>{metric}"))).unwrap();
        row[..row.find("</tr>").unwrap()].contains("unknown-metric")
    };
    assert!(flagged("temprature_c"));
    assert!(!flagged("temperature_c"));
}

#[tokio::test]
async fn orders_are_found_by_a_part_of_their_number_or_customer() {
    let h = harness();
    let all = h.get("/api/v1/orders?limit=500").await.json["items"].as_array().unwrap().clone();
    let customer = all[0]["customer"].as_str().unwrap().to_string();
    let word = customer.split(' ').next().unwrap().to_lowercase();
    let expected =
        all.iter().filter(|o| o["customer"].as_str().unwrap().to_lowercase().contains(&word)).count();
    let found = h.get(&format!("/api/v1/orders?limit=500&search={word}")).await.json;
    assert_eq!(found["items"].as_array().unwrap().len(), expected, "{word}");
    assert!(expected > 0 && expected < all.len());
    for lang in ["en", "zh-HK"] {
        let page = h.page(&format!("/orders?search={word}"), ADMIN, lang).await.text;
        assert_eq!(page.matches(r#"data-testid="order-row""#).count(), expected, "{lang}");
        assert!(page.contains(&format!(r#"name="search" type="search" value="{word}""#)), "{lang}");
    }
    let number = all[1]["number"].as_str().unwrap();
    let found = h.get(&format!("/api/v1/orders?search={}", &number[number.len() - 3..])).await.json;
    assert!(found["items"].as_array().unwrap().iter().any(|o| o["number"] == number));
    assert_eq!(h.get("/api/v1/orders?search=").await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn orders_are_found_by_product_and_the_forms_offer_known_customers() {
    let h = harness();
    let products = h.get("/api/v1/products").await.json["items"].as_array().unwrap().clone();
    assert!(products.len() > 1, "the seeded catalogue has several products");
    let all = h.get("/api/v1/orders?limit=500").await.json["items"].as_array().unwrap().clone();
    let variants = h.get("/api/v1/variants?limit=500").await.json["items"].as_array().unwrap().clone();
    let product_of = |order: &Value| {
        variants.iter().find(|v| v["id"] == order["variant_id"]).unwrap()["product_id"].clone()
    };
    let product = product_of(&all[0]);
    let expected: Vec<&Value> = all.iter().filter(|o| product_of(o) == product).map(|o| &o["id"]).collect();
    assert!(!expected.is_empty() && expected.len() < all.len(), "{expected:?}");
    let found = h.get(&format!("/api/v1/orders?limit=500&product={product}")).await.json;
    let found: Vec<&Value> = found["items"].as_array().unwrap().iter().map(|o| &o["id"]).collect();
    assert_eq!(found, expected);
    assert_eq!(h.get("/api/v1/orders?product=9999").await.status, StatusCode::NOT_FOUND);
    let export = h.get(&format!("/api/v1/orders/export?product={product}")).await.text;
    assert_eq!(export.lines().count(), expected.len() + 1, "a header and each order");
    let page = h.page(&format!("/orders?product={product}"), ADMIN, "en").await.text;
    assert_eq!(page.matches(r#"data-testid="order-row""#).count(), expected.len().min(50));
    assert!(page.contains(&format!(r#"<option value="{product}" selected>"#)), "{page}");
    let bad = h.page("/orders?product=9999", ADMIN, "en").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.text.contains("Product: not a known product."));
    // The customers entered before are offered, each once, the latest first.
    let page = h.page("/orders", ADMIN, "en").await.text;
    let offered =
        page.split(r#"<datalist id="known-customers">"#).nth(1).unwrap().split("</datalist>").next().unwrap();
    let latest = all.iter().max_by_key(|o| o["id"].as_i64()).unwrap()["customer"].as_str().unwrap();
    assert!(offered.starts_with(&format!(r#"<option value="{latest}">"#)), "{offered}");
    let mut names: Vec<&str> =
        offered.split("<option value=\"").skip(1).map(|o| o.split('"').next().unwrap()).collect();
    let count = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), count, "each customer once");
}

#[tokio::test]
async fn orders_list_earliest_due_first_when_asked_and_say_how_many_match() {
    let h = harness();
    let all = h.get("/api/v1/orders?limit=500").await.json["items"].as_array().unwrap().clone();
    let due = |o: &Value| {
        time::OffsetDateTime::parse(
            o["due"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    let mut expected: Vec<(time::OffsetDateTime, i64)> =
        all.iter().map(|o| (due(o), o["id"].as_i64().unwrap())).collect();
    expected.sort();
    assert!(
        expected.iter().map(|(_, id)| *id).collect::<Vec<_>>()
            != all.iter().map(|o| o["id"].as_i64().unwrap()).collect::<Vec<_>>(),
        "the demo's orders are not entered in due order"
    );
    // The API, page by page.
    let (mut ids, mut cursor) = (Vec::new(), String::new());
    loop {
        let page = h.get(&format!("/api/v1/orders?sort=due&limit=7{cursor}")).await.json;
        ids.extend(page["items"].as_array().unwrap().iter().map(|o| o["id"].as_i64().unwrap()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(ids, expected.iter().map(|(_, id)| *id).collect::<Vec<_>>());
    assert_eq!(h.get("/api/v1/orders?sort=price").await.status, StatusCode::BAD_REQUEST);
    // A cursor of the list as entered is not one of the list by due time.
    assert_eq!(h.get("/api/v1/orders?sort=due&cursor=5").await.status, StatusCode::BAD_REQUEST);
    assert_eq!(h.get("/api/v1/orders?sort=due&cursor=1796896800000.").await.status, StatusCode::BAD_REQUEST);
    assert_eq!(h.get("/api/v1/orders?sort=due&cursor=1796896800000.x").await.status, StatusCode::BAD_REQUEST);
    // The page: the first rows by due time, the total over all pages, the choice kept.
    let page = h.page("/orders?sort=due", ADMIN, "en").await.text;
    let first = page.split(r#"data-testid="order-row" data-order-id=""#).nth(1).unwrap();
    assert!(first.starts_with(&format!("{}\"", expected[0].1)), "{first:.80}");
    assert!(page.contains(&format!("{} orders", all.len())), "the total");
    assert!(page.contains(r#"<option value="due" selected>"#));
    let zh = h.page("/orders?sort=due", ADMIN, "zh-HK").await.text;
    assert!(zh.contains(&format!("共 {} 張訂單", all.len())));
    let bad = h.page("/orders?sort=price", ADMIN, "en").await.text;
    assert!(bad.contains("Sort: not a known order."), "{bad:.200}");
}

#[tokio::test]
async fn alarm_messages_are_said_in_the_page_s_language() {
    let h = harness();
    let rule = json!({"name": "Gas leak", "metric": "gas_ppm", "condition": {"kind": "above", "threshold": 50.0},
                      "for_seconds": 0, "severity": "critical"});
    let rule = h.post_json("/api/v1/alarm-rules", ADMIN, &rule).await;
    assert_eq!(rule.status, StatusCode::CREATED, "{}", rule.text);
    let id = rule.json["id"].as_i64().unwrap();
    let alarm = h
        .store
        .raise_alarm(id, model::MachineId(4), NOW, Some(72.5), "Gas leak: gas_ppm = 72.5 above 50")
        .unwrap();
    for (lang, said) in [
        ("en", "Gas leak: gas_ppm = 72.5 above 50"),
        ("zh-HK", "Gas leak：氣體濃度（gas_ppm） = 72.5，高於 50"),
    ] {
        for path in ["/alarms", "/", "/machines/4"] {
            let page = h.page(path, ADMIN, lang).await.text;
            assert!(page.contains(said), "{lang} {path}");
        }
    }
    // The API keeps the English message and gives the cause for others to say it their way.
    let listed = h.get("/api/v1/alarms").await.json;
    let item = listed["items"].as_array().unwrap().iter().find(|a| a["id"] == alarm.id).unwrap().clone();
    assert_eq!(item["message"], "Gas leak: gas_ppm = 72.5 above 50");
    assert_eq!(
        item["cause"],
        json!({"rule_name": "Gas leak", "metric": "gas_ppm", "condition": {"kind": "above", "threshold": 50.0}})
    );
    assert_eq!(item["fired_at"], item["raised_at"], "without a delay it came up as the condition began");
}

#[tokio::test]
async fn an_alarm_shows_when_it_came_up_and_since_when_its_condition_held() {
    let h = harness();
    let rule = json!({"name": "Long stop", "condition": {"kind": "stopped_longer", "minutes": 30}, "severity": "warning"});
    let id = h.post_json("/api/v1/alarm-rules", ADMIN, &rule).await.json["id"].as_i64().unwrap();
    // Down at 08:57, raised at 09:27: the page leads with 09:27 and says since when.
    let since = NOW - time::Duration::minutes(30);
    h.store.raise_alarm_fired(id, model::MachineId(4), since, NOW, None, "Long stop").unwrap();
    let fired = NOW.to_offset(time::UtcOffset::from_hms(8, 0, 0).unwrap());
    let (fired_text, since_text) = (
        format!("{:02}:{:02}", fired.hour(), fired.minute()),
        format!(
            "{:02}:{:02}",
            (fired - time::Duration::minutes(30)).hour(),
            (fired - time::Duration::minutes(30)).minute()
        ),
    );
    for path in ["/alarms", "/", "/machines/4"] {
        let page = h.page(path, ADMIN, "en").await.text;
        let at = page.find(&fired_text).unwrap_or_else(|| panic!("{path}: no {fired_text}"));
        assert!(
            page[at..].contains(&format!("since {since_text}")),
            "{path}: {}",
            &page[at..(at + 200).min(page.len())]
        );
    }
    let listed = h.get("/api/v1/alarms").await.json;
    let item = &listed["items"][0];
    assert_ne!(item["fired_at"], item["raised_at"], "{item}");
}

#[tokio::test]
async fn an_alarm_that_came_back_says_how_often_and_since_when() {
    let h = harness();
    let rule = json!({"name": "Hot", "metric": "temperature_c", "condition": {"kind": "above", "threshold": 80.0},
                      "severity": "warning"});
    let id = h.post_json("/api/v1/alarm-rules", ADMIN, &rule).await.json["id"].as_i64().unwrap();
    let m = model::MachineId(4);
    let first = NOW - time::Duration::hours(2);
    h.store.raise_alarm(id, m, first, Some(81.0), "Hot").unwrap();
    h.store.clear_alarm(id, m, first + time::Duration::minutes(10)).unwrap();
    h.store.raise_alarm(id, m, NOW - time::Duration::hours(1), Some(82.0), "Hot").unwrap();
    h.store.clear_alarm(id, m, NOW - time::Duration::minutes(50)).unwrap();
    let alarm = h.store.raise_alarm(id, m, NOW, Some(83.0), "Hot").unwrap();
    let local = first.to_offset(time::UtcOffset::from_hms(8, 0, 0).unwrap());
    let first_text = format!("{:02}:{:02}", local.hour(), local.minute());
    for (lang, said) in
        [("en", format!("3× · first {first_text}")), ("zh-HK", format!("3× · 首次 {first_text}"))]
    {
        for path in ["/alarms", "/", "/machines/4"] {
            let page = h.page(path, ADMIN, lang).await.text;
            assert!(page.contains(&said), "{lang} {path}: no {said}");
        }
    }
    let listed = h.get("/api/v1/alarms").await.json;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "one alarm, three times");
    let item = &listed["items"][0];
    assert_eq!(
        (item["id"].as_i64(), item["occurrences"].as_u64(), item["status"].as_str()),
        (Some(alarm.id), Some(3), Some("active"))
    );
    let first_raised = item["first_raised_at"].as_str().unwrap();
    assert_eq!(
        model::Timestamp::parse(first_raised, &time::format_description::well_known::Rfc3339).unwrap(),
        first
    );
}

#[tokio::test]
async fn a_done_order_shows_when_it_finished_and_is_judged_by_that() {
    let h = harness();
    let (_, order, _) = h.busy_factory().await;
    let detail = h.get(&format!("/api/v1/orders/{order}")).await.json;
    let due: model::Timestamp = model::Timestamp::parse(
        detail["due"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    // The first step was started at the station: its start is kept and shown, not the plan's.
    let started = detail["operations"][0]["started_at"].as_str().expect("a start time");
    assert_eq!(
        model::Timestamp::parse(started, &time::format_description::well_known::Rfc3339).unwrap(),
        NOW
    );
    assert!(detail["operations"][1].get("started_at").is_none_or(Value::is_null));
    let page = h.page(&format!("/orders/{order}"), ADMIN, "en").await.text;
    let steps = &page[page.find("order-operations").unwrap()..];
    let first_step = &steps[..steps.find("</tr>").unwrap() + 5];
    let first_step = &steps[first_step.len()..][..steps[first_step.len()..].find("</tr>").unwrap()];
    assert!(first_step.contains("09:00 <span class=\"muted\">(actual)</span>"), "{first_step}");
    // Every operation finishes; the last one two hours after the order was due, although the
    // active plan still holds the order with an ETA in time.
    let operations = detail["operations"].as_array().unwrap();
    let events: Vec<store::OperationEvent> = operations
        .iter()
        .enumerate()
        .map(|(index, operation)| store::OperationEvent {
            operation: model::OperationId(operation["id"].as_i64().unwrap()),
            machine: model::MachineId(operation["eligible_machines"][0].as_i64().unwrap()),
            at: due + time::Duration::hours(2)
                - time::Duration::minutes((operations.len() - 1 - index) as i64),
            kind: store::OperationEventKind::Finished { good: 1, scrap: 0, ideal_unit_ms: None },
            checked: false,
            counted_before: None,
            scrap_reason: None,
        })
        .collect();
    h.store.write_batch(&[], &[], &[], &events).unwrap();
    let finished = h.get(&format!("/api/v1/orders/{order}")).await.json;
    assert_eq!(finished["status"], "done");
    let at = finished["finished_at"].as_str().unwrap();
    assert_eq!(
        model::Timestamp::parse(at, &time::format_description::well_known::Rfc3339).unwrap(),
        due + time::Duration::hours(2)
    );
    let last = &finished["operations"][operations.len() - 1];
    assert_eq!(last["finished_at"], finished["finished_at"]);

    let page = h.page(&format!("/orders/{order}"), ADMIN, "en").await.text;
    assert!(page.contains("<dt>Finished</dt>"), "{page}");
    assert!(!page.contains("<dt>ETA</dt>"), "{page}");
    assert!(page.contains("▲ Late by 2 h"), "{page}");
    let list = h.page("/orders?status=done", ADMIN, "en").await.text;
    let row = &list[list.find(&format!("data-order-id=\"{order}\"")).expect("the order's row")..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(row.contains("(actual)") && row.contains("▲ Late by 2 h"), "{row}");
    let page = h.page(&format!("/orders/{order}"), ADMIN, "zh-HK").await.text;
    assert!(page.contains("<dt>完成時間</dt>"), "{page}");
    // The overview's delivery figure counts it, late.
    let page = h.page("/", ADMIN, "en").await.text;
    let kpi = &page[page.find("data-testid=\"on-time-kpi\"").expect("the on-time figure")..];
    assert!(
        kpi.starts_with("data-testid=\"on-time-kpi\"><span class=\"value\">0.0 %</span><span class=\"label\">On time in full, 30 days · 0 / 1</span>"),
        "{}",
        &kpi[..200]
    );
}

#[tokio::test]
async fn a_cancelled_order_is_no_longer_at_risk() {
    let h = harness();
    let mut order = valid_order();
    order["number"] = json!("SO-T-LATE");
    order["due"] = json!("2026-11-24T09:01:00+08:00");
    let id = h.post_json("/api/v1/orders", ADMIN, &order).await.json["id"].as_i64().unwrap();
    h.send("POST", &format!("/api/v1/orders/{id}/release"), Some(ADMIN), None).await;
    publish_a_plan(&h).await;
    let at_risk = |page: String| {
        let risk = &page[page.find("id=\"risk-heading\"").expect("the risk panel")..];
        risk.contains("SO-T-LATE")
    };
    assert!(at_risk(h.page("/", ADMIN, "en").await.text), "late in the active plan");
    let cancelled = h.send("POST", &format!("/api/v1/orders/{id}/cancel"), Some(ADMIN), None).await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.text);
    assert!(!at_risk(h.page("/", ADMIN, "en").await.text), "the plan still holds it, but it is cancelled");
}

#[tokio::test]
async fn an_alarm_that_cleared_unseen_stays_open_until_acknowledged() {
    let h = harness();
    let rule = h.store.alarm_rules().unwrap()[0].id;
    let machine = model::MachineId(1);
    let alarm = h.store.raise_alarm(rule, machine, NOW, Some(120.0), "Gas leak at night").unwrap();
    h.store.clear_alarm(rule, machine, NOW + time::Duration::minutes(1)).unwrap();
    let action = format!("data-action=\"POST /api/v1/alarms/{}/acknowledge\"", alarm.id);
    for path in ["/", "/alarms"] {
        let page = h.page(path, ADMIN, "en").await.text;
        assert!(
            page.contains("Gas leak: gas_ppm = 120 above 50") && page.contains(&action),
            "{path}: {page}"
        );
        assert!(
            page.contains("Cleared · <strong class=\"late-text\">not acknowledged</strong>"),
            "{path}: {page}"
        );
    }
    let page = h.page("/alarms", ADMIN, "zh-HK").await.text;
    assert!(page.contains("已解除 · <strong class=\"late-text\">未確認</strong>"), "{page}");
    let operator = token_for(Role::Operator);
    let acked =
        h.send("POST", &format!("/api/v1/alarms/{}/acknowledge", alarm.id), Some(&operator), None).await;
    assert_eq!(acked.status, StatusCode::OK, "{}", acked.text);
    assert_eq!(
        (&acked.json["status"], &acked.json["acknowledged_by"]),
        (&json!("cleared"), &json!("operator"))
    );
    let again =
        h.send("POST", &format!("/api/v1/alarms/{}/acknowledge", alarm.id), Some(&operator), None).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text);
    let page = h.page("/", ADMIN, "en").await.text;
    assert!(!page.contains("Gas leak at night") && page.contains("No open alarms."), "{page}");
    let open = h.get("/api/v1/alarms?open=true").await.json;
    assert_eq!(open["items"], json!([]));
}

#[tokio::test]
async fn cleared_alarms_are_acknowledged_all_at_once_by_machine_or_everywhere() {
    let h = harness();
    let rules: Vec<i64> = h.store.alarm_rules().unwrap().iter().map(|r| r.id).collect();
    // Each of another rule: the same rule's alarm back before anyone saw it is the same alarm.
    let brief = |rule: i64, machine: i64, minutes: i64| {
        let (machine, at) = (model::MachineId(machine), NOW + time::Duration::minutes(minutes));
        let alarm = h.store.raise_alarm(rule, machine, at, Some(99.0), "brief").unwrap();
        h.store.clear_alarm(rule, machine, at + time::Duration::seconds(30)).unwrap();
        alarm.id
    };
    let (first, second, elsewhere) = (brief(rules[0], 1, 0), brief(rules[1], 1, 5), brief(rules[0], 2, 10));
    let still = h
        .store
        .raise_alarm(rules[2], model::MachineId(1), NOW + time::Duration::minutes(20), None, "still")
        .unwrap();
    let page = h.page("/alarms?show=open&machine=1", ADMIN, "en").await.text;
    assert!(
        page.contains(r#"data-body="{&quot;machine_id&quot;:1}" data-testid="acknowledge-cleared""#),
        "{page}"
    );
    let path = "/api/v1/alarms/acknowledge-cleared";
    let viewer = token_for(Role::Viewer);
    assert_eq!(h.post_json(path, &viewer, &json!({})).await.status, StatusCode::FORBIDDEN);
    let operator = token_for(Role::Operator);
    let unknown = h.post_json(path, &operator, &json!({"machine_id": 999})).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.text);
    let wrong = h.post_json(path, &operator, &json!({"machine": 1})).await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST, "{}", wrong.text);
    let one = h.post_json(path, &operator, &json!({"machine_id": 1})).await;
    assert_eq!((one.status, &one.json), (StatusCode::OK, &json!({"acknowledged": 2})), "{}", one.text);
    let open: Vec<i64> = h.get("/api/v1/alarms?open=true").await.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_i64().unwrap())
        .collect();
    assert_eq!(open, [still.id, elsewhere], "the active one waits for its own acknowledgement");
    let by = h.store.alarm(first).unwrap();
    assert_eq!(
        (by.status, by.acknowledged_by.as_deref()),
        (model::alarm::AlarmStatus::Cleared, Some("operator"))
    );
    assert!(!h.store.alarm(second).unwrap().needs_acknowledgement());
    let rest = h.post_json(path, &operator, &json!({})).await;
    assert_eq!(rest.json, json!({"acknowledged": 1}), "{}", rest.text);
    let page = h.page("/alarms", ADMIN, "en").await.text;
    assert!(!page.contains("acknowledge-cleared"), "nothing cleared is left to acknowledge");
}

#[tokio::test]
async fn hidden_buttons_are_forbidden_behind() {
    let h = harness();
    let (machine, order, draft) = h.busy_factory().await;
    let mut admin = BTreeSet::new();
    for path in pages(machine, order, draft) {
        admin.extend(actions(&h.page(&path, ADMIN, "en").await.text));
    }
    // The busy factory shows every kind of action to an admin.
    let kinds: BTreeSet<&str> = admin.iter().map(|(a, _)| a.split('/').nth(3).unwrap_or("")).collect();
    for kind in [
        "alarms",
        "alarm-rules",
        "plans",
        "operations",
        "machines",
        "users",
        "tokens",
        "sites",
        "lines",
        "products",
        "variants",
        "routings",
        "materials",
    ] {
        assert!(kinds.contains(kind), "no {kind} action on any page: {admin:?}");
    }
    for role in [Role::Viewer, Role::Operator, Role::Maintenance, Role::Sales, Role::Planner] {
        let token = token_for(role);
        let mut shown = BTreeSet::new();
        for path in pages(machine, order, draft) {
            let page = h.page(&path, &token, "en").await;
            assert_eq!(page.status, StatusCode::OK, "{path} as {role:?}");
            shown.extend(actions(&page.text));
        }
        let hidden: Vec<_> = admin.difference(&shown).collect();
        assert!(!hidden.is_empty(), "{role:?} sees everything an admin sees");
        for (action, body) in hidden {
            let (method, path) = action.split_once(' ').unwrap();
            let body = match body {
                Some(body) => Some(serde_json::from_str(body).unwrap()),
                None => sample_body(action),
            };
            let reply = match body {
                Some(body) => {
                    h.send(
                        method,
                        path,
                        Some(&token),
                        Some(("application/json", body.to_string().into_bytes())),
                    )
                    .await
                }
                None => h.send(method, path, Some(&token), None).await,
            };
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{role:?} {action}: {}", reply.text);
        }
    }
    // The sales desk is offered orders, not plans.
    let orders = h.page("/orders", &token_for(Role::Sales), "en").await.text;
    assert!(orders.contains(r#"data-testid="new-order""#) && orders.contains(r#"data-testid="quote-order""#));
    let plan = h.page("/plan", &token_for(Role::Sales), "en").await.text;
    assert!(!plan.contains(r#"data-action="POST /api/v1/plans""#), "{plan}");
    // And the other way: a viewer is offered nothing that changes the factory (only their own
    // tokens and password).
    let mut viewer = BTreeSet::new();
    for path in pages(machine, order, draft) {
        viewer.extend(actions(&h.page(&path, &token_for(Role::Viewer), "en").await.text));
    }
    for (action, _) in &viewer {
        assert!(
            action.contains("/api/v1/tokens") || action == "POST /api/v1/me/password",
            "a viewer is offered {action}"
        );
    }
}

#[tokio::test]
async fn a_machine_code_used_at_two_sites_is_shown_with_its_site() {
    let h = harness();
    let first = h.get("/api/v1/machines/1").await.json;
    let code = first["code"].as_str().unwrap().to_string();
    let site = json!({"code": "de", "name": "Berlin", "time_zone": "Europe/Berlin"});
    let berlin = h.post_json("/api/v1/sites", ADMIN, &site).await.json["id"].clone();
    let twin = json!({"site_id": berlin, "code": code, "name": "Twin", "kind": "other", "rated_power_kw": 3});
    assert_eq!(h.post_json("/api/v1/machines", ADMIN, &twin).await.status, StatusCode::CREATED);
    let first_site = h.get("/api/v1/sites/1").await.json["code"].as_str().unwrap().to_string();
    for path in ["/", "/station", "/alarms"] {
        let page = h.page(path, ADMIN, "en").await.text;
        assert!(
            page.contains(&format!("{code} · de")) && page.contains(&format!("{code} · {first_site}")),
            "{path}"
        );
    }
    // And in the Gantt's lanes.
    let plan_id = publish_a_plan(&h).await;
    let plan = h.page("/plan", ADMIN, "en").await.text;
    assert!(plan.contains(&format!(r#"<text class="code" x="8" y="16">{code} · de</text>"#)), "{plan}");
    // And in an order's steps.
    let gantt = h.get(&format!("/api/v1/plans/{plan_id}/gantt")).await.json;
    let lane = gantt.as_array().unwrap().iter().find(|lane| lane["machine_id"] == first["id"]).unwrap();
    let order = &lane["items"][0]["order_id"];
    let page = h.page(&format!("/orders/{order}"), ADMIN, "en").await.text;
    assert!(page.contains(&format!("{code} · {first_site}")), "{page}");
    // A code of one site only is shown as it is.
    let other = h.get("/api/v1/machines/2").await.json["code"].as_str().unwrap().to_string();
    assert!(!h.page("/", ADMIN, "en").await.text.contains(&format!("{other} · ")));
}

#[tokio::test]
async fn people_bound_to_another_site_are_offered_nothing_they_may_not_do_at_this_one() {
    let h = harness();
    let (machine, order, draft) = h.busy_factory().await;
    let site = json!({"code": "de", "name": "Berlin", "time_zone": "Europe/Berlin"});
    let berlin = h.post_json("/api/v1/sites", ADMIN, &site).await.json["id"].as_i64().unwrap();
    let lathe =
        json!({"site_id": berlin, "code": "de-1", "name": "Lathe", "kind": "other", "rated_power_kw": 3});
    assert_eq!(h.post_json("/api/v1/machines", ADMIN, &lathe).await.status, StatusCode::CREATED);
    for role in [Role::Operator, Role::Maintenance] {
        let bound = h.bound_token(&format!("{}-de", role.as_str()), role, model::SiteId(berlin));
        let (mut everywhere, mut shown) = (BTreeSet::new(), BTreeSet::new());
        for path in pages(machine, order, draft) {
            everywhere.extend(actions(&h.page(&path, &token_for(role), "en").await.text));
            let page = h.page(&path, &bound, "en").await;
            assert_eq!(page.status, StatusCode::OK, "{path} as {role:?} bound to Berlin");
            shown.extend(actions(&page.text));
        }
        let hidden: Vec<_> = everywhere.difference(&shown).collect();
        assert!(
            hidden.iter().any(|(action, _)| action.contains("/operations/") || action.contains("/alarms/")),
            "{role:?} bound to Berlin is still offered the first site's work: {hidden:?}"
        );
        for (action, body) in hidden {
            let (method, path) = action.split_once(' ').unwrap();
            let body =
                body.as_deref().map(|b| serde_json::from_str(b).unwrap()).or_else(|| sample_body(action));
            let reply = match body {
                Some(body) => h.send_json(method, path, &bound, &body).await,
                None => h.send(method, path, Some(&bound), None).await,
            };
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{role:?} {action}: {}", reply.text);
        }
        // Their pages keep Berlin's time, and the station offers Berlin's machines only.
        let overview = h.page("/", &bound, "en").await.text;
        assert!(overview.contains(r#"data-time-zone="Europe/Berlin""#), "{role:?}");
        assert!(
            overview.contains(r#" · <span data-testid="user-site">de</span>"#),
            "their site beside their name"
        );
        let station = h.page("/station", &bound, "en").await.text;
        assert!(station.contains("de-1") && !station.contains(&format!("/station?machine={machine}\"")));
    }
    // Their lists open on Berlin; asked for every site, they show every site.
    let bound = h.bound_token("op-de-lists", Role::Operator, model::SiteId(berlin));
    let chosen = format!(r#"<option value="{berlin}" selected>"#);
    for path in ["/alarms", "/orders"] {
        let page = h.page(path, &bound, "en").await.text;
        assert!(page.contains(&chosen), "{path} opens on the person's site: {page}");
        assert!(!h.page(&format!("{path}?site="), &bound, "en").await.text.contains(&chosen), "{path}?site=");
        assert!(!h.page(path, &token_for(Role::Operator), "en").await.text.contains(&chosen), "unbound");
    }
    // A rule for every machine of Berlin is said so, and is the Berlin fitter's to edit.
    let rule = json!({"name": "Berlin coolant", "metric": "coolant_c", "condition": {"kind": "above", "threshold": 40.0},
                      "severity": "warning", "site_id": berlin});
    let rule = h.post_json("/api/v1/alarm-rules", ADMIN, &rule).await.json["id"].clone();
    assert!(h.page("/alarms", ADMIN, "en").await.text.contains("All machines at Berlin"));
    let fitter =
        h.page("/alarms", &h.bound_token("fit-de-2", Role::Maintenance, model::SiteId(berlin)), "en").await;
    assert!(fitter.text.contains(&format!("PUT /api/v1/alarm-rules/{rule}")), "the site's rule is theirs");
    assert!(fitter.text.contains(r#"data-show-when="machine_id=""#), "a new rule may watch the whole site");
    // The admin binds and unbinds people on the settings page.
    let settings = h.page("/settings", ADMIN, "en").await.text;
    assert!(settings.contains(r#"data-show-when="role=maintenance,operator""#), "{settings}");
    assert!(settings.contains(r#"data-empty="null""#) && settings.contains("Every site"));
}

#[tokio::test]
async fn on_the_demo_s_fast_clock_sessions_keep_real_time_and_the_factory_its_own() {
    let store = seeded_store(NOW);
    let wall = Arc::new(ManualClock::new(NOW));
    let factory = Arc::new(model::FastClock::new(wall.clone(), NOW, 60.0));
    let state = AppState::new(store.clone(), factory, ServerConfig::default(), crate::AlarmConfig::default())
        .with_wall_clock(wall.clone(), 60.0);
    let h = Harness { app: crate::router(state.clone()), store, state };
    let password = "a-long-test-password-3";
    let hash = crate::auth::hash_password(password).unwrap();
    h.store.create_user("kim", Role::Viewer, None, &hash, NOW).unwrap();
    let (_, cookie) = h.sign_in(&format!("username=kim&password={password}")).await;
    let token = cookie.trim_start_matches("mf_session=").split(';').next().unwrap().to_string();
    // An hour of real time is 60 hours of the factory's: the twelve-hour session lives on.
    wall.advance(time::Duration::hours(1));
    let overview = h.page("/", &token, "en").await;
    assert_eq!(overview.status, StatusCode::OK);
    // The header shows the factory's clock (the site is in Hong Kong, UTC+8).
    let factory_now = NOW + time::Duration::hours(60);
    let clock = overview.text.split("data-testid=\"sim-clock\"").nth(1).unwrap_or_default();
    assert!(clock.contains(&format!("data-now=\"{}\"", crate::rfc3339(factory_now))), "{clock:.300}");
    assert!(clock.contains("2026-11-26 21:00") && clock.contains("60×"), "{clock:.300}");
    // What happens in the factory is on its clock; the session's token on the real one.
    let mut order = valid_order();
    order["due"] = json!("2026-12-20T00:00:00Z");
    let created = h.post_json("/api/v1/orders", ADMIN, &order).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let created_at = created.json["created_at"].as_str().unwrap();
    assert_eq!(
        time::OffsetDateTime::parse(created_at, &time::format_description::well_known::Rfc3339).unwrap(),
        factory_now
    );
    let tokens = h.get("/api/v1/tokens").await.json;
    let session = tokens.as_array().unwrap().iter().find(|t| t["name"] == "browser session").unwrap();
    // The names the platform gives its own tokens are said in the page's language.
    let settings = h.page("/settings", ADMIN, "zh-HK").await.text;
    assert!(settings.contains("-name\">瀏覽器登入"), "the session token's name in Chinese");
    let session_created = session["created_at"].as_str().unwrap();
    assert_eq!(
        time::OffsetDateTime::parse(session_created, &time::format_description::well_known::Rfc3339).unwrap(),
        NOW,
        "{session}"
    );
    // The session ends after twelve real hours.
    wall.advance(time::Duration::hours(12));
    assert_eq!(h.page("/", &token, "en").await.status, StatusCode::SEE_OTHER);
    // On a real-time server there is no factory clock in the header.
    let plain = harness().page("/", ADMIN, "en").await;
    assert_eq!(plain.status, StatusCode::OK);
    assert!(!plain.text.contains("sim-clock"));
}

#[tokio::test]
async fn browser_sessions_expire_after_twelve_hours() {
    let store = seeded_store(NOW);
    let clock = Arc::new(ManualClock::new(NOW));
    let state =
        AppState::new(store.clone(), clock.clone(), ServerConfig::default(), crate::AlarmConfig::default());
    let h = Harness { app: crate::router(state.clone()), store, state };
    let password = "a-long-test-password-2";
    let hash = crate::auth::hash_password(password).unwrap();
    h.store.create_user("kim", Role::Viewer, None, &hash, NOW).unwrap();
    let (_, cookie) = h.sign_in(&format!("username=kim&password={password}")).await;
    assert!(cookie.contains("Max-Age=43200"), "{cookie}");
    let token = cookie.trim_start_matches("mf_session=").split(';').next().unwrap().to_string();
    clock.advance(time::Duration::hours(11));
    assert_eq!(h.page("/", &token, "en").await.status, StatusCode::OK);
    clock.advance(time::Duration::hours(2));
    // The token was resolved a moment ago (by the clock that counts the cache's age), yet the
    // cached entry must not outlive the session.
    assert_eq!(h.page("/", &token, "en").await.status, StatusCode::SEE_OTHER, "the session has expired");
    let listed = h.get("/api/v1/tokens").await.json;
    let session = listed.as_array().unwrap().iter().find(|t| t["name"] == "browser session").unwrap();
    assert!(session["expires_at"].is_string(), "{session}");
}

#[tokio::test]
async fn a_released_order_takes_a_new_due_time_and_priority_but_keeps_its_quantity() {
    let h = harness();
    let planner = token_for(Role::Planner);
    let (order, _) = h.first_released_operation().await;
    let id = order["id"].as_i64().unwrap();
    let path = format!("/api/v1/orders/{id}");
    let mut changed = json!({
        "number": order["number"], "customer": order["customer"], "variant_id": order["variant_id"],
        "quantity": order["quantity"], "due": "2026-12-24T18:00:00+08:00", "priority": 9,
    });
    let reply = h.send_json("PUT", &path, &planner, &changed).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!((&reply.json["priority"], &reply.json["due"]), (&json!(9), &json!("2026-12-24T10:00:00Z")));
    assert_eq!(reply.json["status"], "released");
    changed["quantity"] = json!(order["quantity"].as_u64().unwrap() + 1);
    let more = h.send_json("PUT", &path, &planner, &changed).await;
    assert_eq!(
        (more.status, &more.json["field"]),
        (StatusCode::CONFLICT, &json!("quantity")),
        "{}",
        more.text
    );
    // The order page offers the change to planners, the quantity carried along unseen.
    let page = h.page(&format!("/orders/{id}"), &planner, "en").await.text;
    let form = &page[page.find("data-testid=\"change-order\"").expect("the change form")..];
    assert!(
        form.contains(&format!(
            "type=\"hidden\" name=\"quantity\" data-type=\"int\" value=\"{}\"",
            order["quantity"]
        )),
        "{form:.800}"
    );
    // It names the version it shows, as the API tags it: a change made since is refused.
    let request = Request::builder()
        .uri(&path)
        .header("authorization", format!("Bearer {planner}"))
        .body(Body::empty())
        .unwrap();
    let response = h.app.clone().oneshot(request).await.unwrap();
    let tag = response.headers()["etag"].to_str().unwrap().to_string();
    let shown = maud::html! { (tag) }.into_string();
    assert!(form.contains(&format!("data-if-match=\"{shown}\"")), "{form:.800}");
    let viewer = h.page(&format!("/orders/{id}"), &token_for(Role::Viewer), "en").await.text;
    assert!(!viewer.contains("change-order"));
    // A cancelled order is history.
    h.send("POST", &format!("/api/v1/orders/{id}/cancel"), Some(&planner), None).await;
    changed["quantity"] = order["quantity"].clone();
    let late = h.send_json("PUT", &path, &planner, &changed).await;
    assert_eq!((late.status, &late.json["field"]), (StatusCode::CONFLICT, &json!("status")), "{}", late.text);
}

/// A draft computed before the plan now active cannot be published: its page says so up front.
#[tokio::test]
async fn a_stale_draft_says_so_before_the_click() {
    let store = seeded_store(NOW);
    let clock = Arc::new(ManualClock::new(NOW));
    let state =
        AppState::new(store.clone(), clock.clone(), ServerConfig::default(), crate::AlarmConfig::default());
    let h = Harness { app: crate::router(state.clone()), store, state };
    let planner = token_for(Role::Planner);
    let h = &h;
    let draft = || async {
        let plan = h
            .post_json("/api/v1/plans", &token_for(Role::Planner), &json!({"time_limit_seconds": 0.0}))
            .await;
        assert_eq!(plan.status, StatusCode::CREATED, "{}", plan.text);
        plan.json["id"].as_i64().unwrap()
    };
    let older = draft().await;
    clock.advance(time::Duration::minutes(5));
    let newer = draft().await;
    let fresh = h.page(&format!("/plan?id={older}"), &planner, "en").await.text;
    assert!(fresh.contains("data-testid=\"publish-plan\"") && !fresh.contains("draft-stale"));
    let published = h.send("POST", &format!("/api/v1/plans/{newer}/publish"), Some(&planner), None).await;
    assert_eq!(published.status, StatusCode::OK, "{}", published.text);
    let stale = h.page(&format!("/plan?id={older}"), &planner, "en").await.text;
    assert!(stale.contains("data-testid=\"draft-stale\""), "the warning");
    assert!(!stale.contains("data-testid=\"publish-plan\""), "no button that can only fail");
}

/// The Gantt shades when a machine does not work: outside its site's shifts, and its maintenance.
#[tokio::test]
async fn the_gantt_shows_closed_time_and_maintenance() {
    let h = harness();
    let day = json!({"shifts": [{"name": "day", "days": ["mon","tue","wed","thu","fri","sat","sun"], "start": "08:00", "end": "18:00"}], "holidays": []});
    let set = h.send_json("PUT", "/api/v1/sites/1/calendar", ADMIN, &day).await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.text);
    let window = json!({"start": "2026-11-25T09:00:00+08:00", "end": "2026-11-25T11:00:00+08:00", "reason": "spindle service"});
    assert_eq!(
        h.post_json("/api/v1/machines/1/maintenance", ADMIN, &window).await.status,
        StatusCode::CREATED
    );
    let plan = publish_a_plan(&h).await;
    let lanes = h.get(&format!("/api/v1/plans/{plan}/gantt")).await.json;
    let first = &lanes[0]["closed"];
    assert!(first.as_array().unwrap().iter().any(|c| c["maintenance"] == "spindle service"), "{first}");
    assert!(
        first.as_array().unwrap().iter().any(|c| c.get("maintenance").is_none()),
        "nights are closed: {first}"
    );
    let page = h.page(&format!("/plan?id={plan}"), ADMIN, "en").await.text;
    assert!(page.contains(r#"<rect class="maint""#) && page.contains("Maintenance: spindle service"));
    assert!(page.contains(r#"<rect class="off""#) && page.contains("Outside the shifts"));
}

#[tokio::test]
async fn a_plan_s_late_orders_are_also_counted_against_the_due_dates_now() {
    let h = harness();
    let plan = publish_a_plan(&h).await;
    let before = h.get(&format!("/api/v1/plans/{plan}")).await.json;
    let late = before["late_orders"].as_u64().unwrap();
    assert_eq!(before["late_orders_now"], late, "unchanged orders: the same figures");
    assert_eq!(before["weighted_tardiness_now"], before["weighted_tardiness"]);
    // An order the plan finishes in time becomes due before its ETA.
    let etas = before["etas"].as_array().unwrap();
    let on_time = etas.iter().find(|e| e["late"] == false).expect("an order in time");
    let id = on_time["order_id"].as_i64().unwrap();
    let mut order = h.get(&format!("/api/v1/orders/{id}")).await.json;
    let eta = model::Timestamp::parse(
        on_time["eta"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let due =
        (eta - time::Duration::hours(1)).format(&time::format_description::well_known::Rfc3339).unwrap();
    let change = json!({"number": order["number"].take(), "customer": order["customer"].take(),
        "variant_id": order["variant_id"].take(), "quantity": order["quantity"].take(), "due": due,
        "priority": order["priority"].take()});
    let put = h.send_json("PUT", &format!("/api/v1/orders/{id}"), ADMIN, &change).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text);
    let after = h.get(&format!("/api/v1/plans/{plan}")).await.json;
    assert_eq!(after["late_orders"], late, "the figures it was computed with stay");
    assert_eq!(after["late_orders_now"], late + 1);
    let priority = change["priority"].as_i64().unwrap();
    let weighted = before["weighted_tardiness"].as_i64().unwrap() + priority * 3600;
    assert_eq!(after["weighted_tardiness_now"], weighted);
    // The plan page counts as its list of late orders does.
    let page = h.page("/plan", ADMIN, "en").await.text;
    let kpis = &page[page.find(r#"data-testid="plan-kpis""#).unwrap()..];
    assert!(kpis.contains(&format!(r#"<span class="value">{}</span>"#, late + 1)), "{}", &kpis[..300]);
    // Cancelled since, it is late no more.
    let cancel = h.send("POST", &format!("/api/v1/orders/{id}/cancel"), Some(ADMIN), None).await;
    assert_eq!(cancel.status, StatusCode::OK, "{}", cancel.text);
    let after = h.get(&format!("/api/v1/plans/{plan}")).await.json;
    assert_eq!(after["late_orders_now"], late);
}

#[tokio::test]
async fn the_orders_page_exports_what_its_filter_lets_through() {
    let h = harness();
    let page = h.page("/orders?status=released&due_after=2026-11-20&sort=due", ADMIN, "en").await.text;
    let at = page.find(r#"data-testid="export-orders""#).expect("an export link");
    let tag = &page[page[..at].rfind("<a ").unwrap()..at];
    let href = tag.split("href=\"").nth(1).unwrap().split('"').next().unwrap().replace("&amp;", "&");
    assert!(
        href.starts_with("/api/v1/orders/export?status=released&due_after=2026-11-19T16%3A00%3A00Z"),
        "{href}"
    );
    // The same cookie signs the download in.
    let export = h.page(&href, ADMIN, "en").await;
    assert_eq!(export.status, StatusCode::OK, "{}", export.text);
    let rows = csv::Reader::from_reader(export.text.as_bytes()).records().count();
    let total = &page[page.find(r#"data-testid="order-total""#).unwrap()..];
    let total = &total[total.find('>').unwrap() + 1..];
    assert!(total.starts_with(&format!("{rows} order")), "{rows} rows: {}", &total[..40]);
}

#[tokio::test]
async fn the_overview_shows_the_oee_of_today_or_of_the_shift() {
    let h = harness();
    let today = h.page("/", ADMIN, "en").await.text;
    // Today says which day it is, at the site: NOW is 24 November in Hong Kong.
    assert!(
        today.contains(r#"<a href="/" aria-current="true">Today <span class="muted" data-testid="today-date">24 Nov</span></a>"#),
        "{today}"
    );
    assert!(today.contains("Site OEE today · ") && today.contains("OEE today"));
    // 09:00 in Hong Kong: the demo's early shift began at 06:00.
    let shift = h.page("/?period=shift", ADMIN, "en").await.text;
    assert!(shift.contains(r#"<a href="/?period=shift" aria-current="true">This shift</a>"#), "{shift}");
    assert!(shift.contains("Site OEE this shift (early) · "), "{shift}");
    assert!(!shift.contains("OEE today"));
    let zh = h.page("/?period=shift", ADMIN, "zh-HK").await.text;
    assert!(zh.contains("廠房本更 OEE（early）"), "{zh}");
    // An unknown period is today's.
    let unknown = h.page("/?period=week", ADMIN, "en").await;
    assert_eq!(unknown.status, StatusCode::OK);
    assert!(unknown.text.contains("Site OEE today · "));
}

#[tokio::test]
async fn an_order_in_the_active_plan_has_its_eta_in_the_api_and_the_page_s_version_matches() {
    let h = harness();
    let plan = publish_a_plan(&h).await;
    let planned = h.store.plan_operations(plan, None).unwrap();
    let order = planned[0].order_id;
    let end = planned.iter().filter(|op| op.order_id == order).map(|op| op.end).max().unwrap();
    let path = format!("/api/v1/orders/{}", order.0);
    let request = Request::builder()
        .uri(&path)
        .header("authorization", format!("Bearer {ADMIN}"))
        .body(Body::empty())
        .unwrap();
    let response = h.app.clone().oneshot(request).await.unwrap();
    let tag = response.headers()["etag"].to_str().unwrap().to_string();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    let detail: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(detail["eta"], json!(crate::rfc3339(end)));
    let due = time::OffsetDateTime::parse(
        detail["due"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(detail["late"], json!(end > due || due < NOW));
    // The change form names the same version.
    let page = h.page(&format!("/orders/{}", order.0), ADMIN, "en").await.text;
    assert!(page.contains(&format!("data-if-match=\"{}\"", maud::html! { (tag) }.into_string())), "{tag}");
    // Cancelled, it has neither.
    assert_eq!(h.send("POST", &format!("{path}/cancel"), Some(ADMIN), None).await.status, StatusCode::OK);
    let cancelled = h.get(&path).await.json;
    assert!(cancelled.get("eta").is_none() && cancelled.get("late").is_none(), "{cancelled}");
}

#[tokio::test]
async fn an_order_s_history_says_who_did_what_and_how_plans_moved_it() {
    let h = harness();
    let planner = token_for(Role::Planner);
    let mut order = valid_order();
    order["number"] = json!("SO-HIST-1");
    let created = h.post_json("/api/v1/orders", &planner, &order).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let id = created.json["id"].as_i64().unwrap();
    // Sent again unchanged, nothing is recorded; then the due time and priority change.
    assert_eq!(
        h.send_json("PUT", &format!("/api/v1/orders/{id}"), &planner, &order).await.status,
        StatusCode::OK
    );
    order["due"] = json!("2026-11-28T12:00:00+08:00");
    order["priority"] = json!(4);
    assert_eq!(
        h.send_json("PUT", &format!("/api/v1/orders/{id}"), &token_for(Role::Sales), &order).await.status,
        StatusCode::OK
    );
    let release = h.send("POST", &format!("/api/v1/orders/{id}/release"), Some(&planner), None).await;
    assert_eq!(release.status, StatusCode::OK);
    let plan = publish_a_plan(&h).await;
    let history = h.get(&format!("/api/v1/orders/{id}/history")).await.json;
    let events = history["events"].as_array().unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["created", "changed", "released"], "{history}");
    assert_eq!((&events[0]["actor"], &events[1]["actor"]), (&json!("planner"), &json!("sales")));
    assert_eq!(
        events[1]["changes"],
        json!([
            {"field": "due", "before": "2026-12-01T10:00:00Z", "after": "2026-11-28T04:00:00Z"},
            {"field": "priority", "before": "2", "after": "4"}
        ])
    );
    let etas = history["etas"].as_array().unwrap();
    assert_eq!((etas.len(), &etas[0]["plan_id"]), (1, &json!(plan)), "{history}");
    // The order page lists it, newest first.
    let page = h.page(&format!("/orders/{id}"), ADMIN, "en").await.text;
    let panel = &page[page.find(r#"data-testid="order-history""#).expect("a history panel")..];
    assert!(panel.contains("Released to production") && panel.contains("Entered"), "{panel:.1500}");
    assert!(panel.contains("Due: 1 Dec 18:00 → 28 Nov 12:00; Priority: 2 → 4"), "{panel:.1500}");
    assert!(panel.contains(&format!("href=\"/plan?id={plan}\"")), "{panel:.1500}");
    assert!(panel.find("Released to production").unwrap() < panel.find("Entered").unwrap(), "newest first");
    assert_eq!(h.get("/api/v1/orders/999999/history").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_released_order_the_plan_lacks_says_when_it_joins_it() {
    let h = harness();
    let plan = publish_a_plan(&h).await;
    let published = h.store.plan(plan).unwrap().published_at.unwrap();
    let planned =
        h.get("/api/v1/orders?status=planned&limit=1").await.json["items"][0]["id"].as_i64().unwrap();
    let release = h.send("POST", &format!("/api/v1/orders/{planned}/release"), Some(ADMIN), None).await;
    assert_eq!(release.status, StatusCode::OK, "{}", release.text);
    let page = h.page(&format!("/orders/{planned}"), ADMIN, "en").await.text;
    assert!(page.contains("Not in the active plan"), "{page}");
    // Fifteen minutes (`new_order_minutes`) after the plan was published.
    let at = published + time::Duration::minutes(15);
    let at = format!(
        "{:02}:{:02}",
        model::Zone::fixed(480).local(at).hour(),
        model::Zone::fixed(480).local(at).minute()
    );
    assert!(page.contains(&format!("slots it in by about {at}")), "{at}: {page}");
    // The facts and steps are drawn again with each plan.
    assert!(page.contains(r#"id="order-facts" data-live data-refresh-on="production plan""#), "{page}");
    // Without automatic re-plans it says nothing of the kind.
    let manual = crate::replanner::PlanningConfig {
        auto_replan: false,
        ..crate::replanner::PlanningConfig::default()
    };
    let h2 = Harness { app: crate::router(h.state.clone().with_planning(manual)), ..h };
    assert!(!h2.page(&format!("/orders/{planned}"), ADMIN, "en").await.text.contains("slots it in"));
}

#[tokio::test]
async fn the_orders_page_shows_late_orders_and_orders_to_release() {
    let h = harness();
    let mut overdue = valid_order();
    overdue["number"] = json!("SO-OVERDUE");
    overdue["due"] = json!("2026-11-20T18:00:00+08:00");
    assert_eq!(h.post_json("/api/v1/orders", ADMIN, &overdue).await.status, StatusCode::CREATED);
    let rows = |page: &str| page.matches(r#"data-testid="order-row""#).count();
    let late = h.page("/orders?show=late", ADMIN, "en").await;
    assert_eq!(late.status, StatusCode::OK);
    assert!(late.text.contains("SO-OVERDUE") && late.text.contains("Overdue by"), "{}", late.text);
    assert_eq!(rows(&late.text), 1, "only the overdue order is late before any plan");
    assert!(late.text.contains(r#"<option value="late" selected>"#));
    assert!(late.text.contains("/api/v1/orders/export?late=true"));
    // The form names the zone its due time is typed in (the site's, maybe not the browser's).
    let form = &late.text[late.text.find(r#"data-testid="new-order""#).unwrap()..];
    assert!(form.contains(r#"Due <span class="muted">Asia/Hong_Kong</span>"#), "{form:.1500}");
    // To release: planned and due within a week, this one included; the overview counts them.
    let page = h.page("/orders?show=to_release&sort=due", ADMIN, "zh-HK").await.text;
    let listed = rows(&page);
    assert!(listed >= 1 && page.contains("SO-OVERDUE"), "{page}");
    let overview = h.page("/", ADMIN, "en").await.text;
    let kpi = &overview[overview.find(r#"data-testid="to-release-kpi""#).unwrap()..];
    assert!(kpi.contains(&format!(r#"<span class="value">{listed}</span>"#)), "{}", &kpi[..300]);
    assert!(overview.contains(r#"href="/orders?show=to_release&amp;sort=due""#));
    // Bad choices are named.
    let bad = h.page("/orders?show=soon", ADMIN, "en").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.text.contains("Show: not a known choice."));
    let bad = h.page("/orders?show=to_release&status=running", ADMIN, "en").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.text.contains("Orders to release are planned orders"), "{}", bad.text);
}

#[tokio::test]
async fn a_lot_started_on_another_machine_than_planned_shows_at_that_machine_s_station() {
    let h = harness();
    let workers = h.state.start_workers();
    let (_, operation) = h.first_released_operation().await;
    let id = operation["id"].as_i64().unwrap();
    let plan = h.post_json("/api/v1/plans", ADMIN, &json!({"time_limit_seconds": 0})).await.json;
    let publish = format!("/api/v1/plans/{}/publish", plan["id"]);
    assert_eq!(h.send("POST", &publish, Some(ADMIN), None).await.status, StatusCode::OK);
    let planned_on = h.store.plan_operations(plan["id"].as_i64().unwrap(), None).unwrap();
    let planned_on = planned_on.iter().find(|op| op.operation_id.0 == id).unwrap().machine_id.0;
    let eligible: Vec<i64> =
        operation["eligible_machines"].as_array().unwrap().iter().map(|m| m.as_i64().unwrap()).collect();
    let elsewhere = *eligible.iter().find(|m| **m != planned_on).expect("a second eligible machine");
    let start = h
        .post_json(
            &format!("/api/v1/operations/{id}/start"),
            &token_for(Role::Operator),
            &json!({"machine_id": elsewhere}),
        )
        .await;
    assert_eq!(start.status, StatusCode::OK, "{}", start.text);
    let page = h.page(&format!("/station?machine={elsewhere}"), ADMIN, "en").await.text;
    assert!(page.contains(r#"data-testid="running-operation""#), "the lot shows where it runs");
    assert!(page.contains(&format!(r#"data-action="POST /api/v1/operations/{id}/finish""#)));
    assert!(page.contains(&format!(r#"data-action="POST /api/v1/operations/{id}/pause""#)));
    h.state.begin_stop();
    workers.finish().await;
}

#[tokio::test]
async fn a_machine_page_warns_of_performance_above_one_hundred_per_cent() {
    let h = harness();
    let (machine, order, _) = h.busy_factory().await;
    let detail = h.get(&format!("/api/v1/orders/{order}")).await.json;
    let running = detail["operations"].as_array().unwrap().iter().find(|o| o["status"] == "running").unwrap();
    let page = h.page(&format!("/machines/{machine}"), ADMIN, "en").await.text;
    assert!(!page.contains(r#"data-testid="above-ideal""#));
    // Units whose ideal time is far more than the machine ran: impossible, so said.
    // It ran for an hour and then stood idle for one; the units came in at the end.
    for (hours, state) in [(2, model::MachineState::Running), (1, model::MachineState::Idle)] {
        let at = NOW - time::Duration::hours(hours);
        let change = model::StateChange { machine: model::MachineId(machine), at, state, reason: None };
        h.store.record_state(&change).unwrap();
    }
    let produced = store::OperationEventKind::Produced { good: 10, scrap: 0, ideal_unit_ms: Some(600_000) };
    let event = store::OperationEvent {
        operation: model::OperationId(running["id"].as_i64().unwrap()),
        machine: model::MachineId(machine),
        at: NOW - time::Duration::minutes(1),
        kind: produced,
        checked: false,
        counted_before: None,
        scrap_reason: None,
    };
    h.store.write_batch(&[], &[], &[], &[event]).unwrap();
    let oee = h.get(&format!("/api/v1/oee?machine={machine}")).await.json;
    assert!(oee["total"]["effectiveness"].as_f64().unwrap() > 1.0, "{oee}");
    for (lang, text) in [("en", "Performance is above 100 %"), ("zh-HK", "表現率高於 100%")] {
        let page = h.page(&format!("/machines/{machine}"), ADMIN, lang).await.text;
        let at = page.find(r#"data-testid="above-ideal""#).expect("a warning");
        assert!(page[at..].contains(text), "{lang}");
    }
}

#[tokio::test]
async fn a_machine_page_shows_the_shift_in_progress_by_the_site_s_calendar() {
    let h = harness();
    let page = h.page("/machines/1?range=this-shift", ADMIN, "en").await.text;
    assert!(
        page.contains(r#"href="/machines/1?range=this-shift" aria-current="true">This shift</a>"#),
        "{page}"
    );
    // The demo site's early shift began at 06:00; it is 09:00.
    assert!(page.contains("2026-11-24 06:00 – 2026-11-24 09:00"), "{page}");
    let zh = h.page("/machines/1?range=this-shift", ADMIN, "zh-HK").await.text;
    assert!(zh.contains(">本更</a>"));
}

#[tokio::test]
async fn a_machine_page_counts_breakdowns_with_their_mean_times() {
    let h = harness();
    let machine = model::MachineId(2);
    // Today: running, down 20 minutes, running, down 40 minutes, running.
    for (minutes, state) in [
        (300, model::MachineState::Running),
        (240, model::MachineState::Down),
        (220, model::MachineState::Running),
        (120, model::MachineState::Down),
        (80, model::MachineState::Running),
    ] {
        let at = NOW - time::Duration::minutes(minutes);
        h.store.record_state(&model::StateChange { machine, at, state, reason: None }).unwrap();
    }
    let oee = h.get("/api/v1/oee?machine=2").await.json;
    let total = &oee["total"];
    assert_eq!(
        (total["failures"].as_u64(), total["mttr_seconds"].as_f64()),
        (Some(2), Some(1800.0)),
        "{oee}"
    );
    assert!(total["mtbf_seconds"].as_f64().is_some_and(|s| s > 0.0), "{oee}");
    // A stop across the end of a period is the failure of the period it began in, with its whole
    // repair (an hour apart: the second stop ran from 07:00 to 07:40, split at 07:20).
    let h = &h;
    let oee = |from: &str, to: &str| {
        let path =
            format!("/api/v1/oee?machine=2&from=2026-11-24T{from}:00%2B08:00&to=2026-11-24T{to}:00%2B08:00");
        async move { h.get(&path).await.json["total"].clone() }
    };
    let (first, second) = (oee("06:30", "07:20").await, oee("07:20", "08:30").await);
    assert_eq!(
        (first["failures"].as_u64(), second["failures"].as_u64()),
        (Some(1), Some(0)),
        "{first} {second}"
    );
    assert_eq!(first["mttr_seconds"].as_f64(), Some(2400.0), "{first}");
    assert_eq!(
        (first["down_seconds"].as_f64(), second["down_seconds"].as_f64()),
        (Some(1200.0), Some(1200.0))
    );
    let page = h.page("/machines/2", ADMIN, "en").await.text;
    let at = page.find(r#"data-testid="failures""#).expect("the breakdowns");
    assert!(
        page[at..].contains("<dd>2</dd>") && page[at..].contains("MTTR</abbr></dt><dd>30 min"),
        "{}",
        &page[at..at + 400]
    );
    let zh = h.page("/machines/2", ADMIN, "zh-HK").await.text;
    assert!(zh.contains("平均修復時間"));
}

#[tokio::test]
async fn maintenance_is_planned_and_removed_on_the_machine_page_and_shown_at_the_station() {
    let h = harness();
    let planner = token_for(Role::Planner);
    let page = h.page("/machines/3", &planner, "en").await.text;
    assert!(page.contains("No maintenance planned.") && page.contains(r#"data-testid="plan-maintenance""#));
    // Operators see the windows, but plan none.
    let operator = token_for(Role::Operator);
    let seen = h.page("/machines/3", &operator, "en").await.text;
    assert!(
        !seen.contains("plan-maintenance") && !seen.contains("maintenance-heading"),
        "nothing to show them yet"
    );
    let window = json!({"start": "2026-11-24T14:00:00+08:00", "end": "2026-11-24T16:30:00+08:00", "reason": "spindle service"});
    let created = h.post_json("/api/v1/machines/3/maintenance", &planner, &window).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let id = created.json["id"].as_i64().unwrap();
    // The schedule of every machine, or one.
    let schedule = h.get("/api/v1/maintenance").await.json;
    assert_eq!(schedule.as_array().map(|w| w.len()), Some(1), "{schedule}");
    assert_eq!(schedule[0]["reason"], "spindle service");
    assert_eq!(h.get("/api/v1/maintenance?machine=2").await.json, json!([]));
    assert_eq!(h.get("/api/v1/maintenance?machine=999").await.status, StatusCode::NOT_FOUND);
    let page = h.page("/machines/3", &planner, "en").await.text;
    let at = page.find(r#"data-testid="maintenance-windows""#).expect("the window");
    assert!(
        page[at..].contains("spindle service") && page[at..].contains("2 h 30 min"),
        "{}",
        &page[at..at + 600]
    );
    assert!(page.contains(&format!(r#"data-action="DELETE /api/v1/maintenance/{id}""#)));
    let seen = h.page("/machines/3", &operator, "en").await.text;
    assert!(seen.contains("spindle service") && !seen.contains("DELETE /api/v1/maintenance"));
    // Within a day: the station says so, in either language.
    let station = h.page("/station?machine=3", &operator, "en").await.text;
    assert!(station.contains("Maintenance planned 14:00 – 16:30: spindle service"), "{station}");
    let zh = h.page("/station?machine=3", &operator, "zh-HK").await.text;
    assert!(zh.contains("已計劃保養 14:00 – 16:30：spindle service"));
    assert!(!h.page("/station?machine=2", &operator, "en").await.text.contains("maintenance-due"));
}

#[tokio::test]
async fn the_station_says_when_material_still_to_come_is_due() {
    let h = harness();
    let (machine, _, _) = h.busy_factory().await;
    let page = h.page(&format!("/station?machine={machine}"), ADMIN, "en").await.text;
    assert!(!page.contains(r#"data-testid="material-due""#));
    // The next lot's order: its material now comes tomorrow.
    let dispatch = h.get(&format!("/api/v1/machines/{machine}/dispatch")).await.json;
    let next = dispatch["queue"].as_array().unwrap().iter().find(|item| item["status"] != "running").unwrap();
    let id = next["order_id"].as_i64().unwrap();
    set_material_ready(&h.store, model::OrderId(id), NOW + time::Duration::days(1));
    for (lang, text) in [("en", "Material due"), ("zh-HK", "物料預計")] {
        let page = h.page(&format!("/station?machine={machine}"), ADMIN, lang).await.text;
        let at = page.find(r#"data-testid="material-due""#).expect("the material's time");
        assert!(page[at..].contains(text), "{lang}");
    }
}

#[tokio::test]
async fn a_start_on_a_machine_in_breakdown_asks_first() {
    let h = harness();
    h.busy_factory().await;
    // A machine whose station offers a start.
    let mut startable = None;
    for machine in 1..=20 {
        let page = h.page(&format!("/station?machine={machine}"), ADMIN, "en").await.text;
        if page.contains(r#"data-testid="start-operation""#) {
            startable = Some(machine);
            break;
        }
    }
    let machine = startable.expect("a machine with a lot to start");
    let asks = |page: &str| page.contains("reported in breakdown. Starting the lot reports it running again");
    let state = |state: &str| json!({"state": state, "reason": "breakdown"});
    let page = h.page(&format!("/station?machine={machine}"), ADMIN, "en").await.text;
    assert!(!asks(&page));
    let reported = h.post_json(&format!("/api/v1/machines/{machine}/states"), ADMIN, &state("down")).await;
    assert_eq!(reported.status, StatusCode::CREATED, "{}", reported.text);
    let page = h.page(&format!("/station?machine={machine}"), ADMIN, "en").await.text;
    let at = page.find(r#"data-testid="start-operation""#).unwrap();
    let button = &page[page[..at].rfind("<button").unwrap()..at + page[at..].find('>').unwrap()];
    assert!(asks(button), "{button}");
    // The stop says its state, reason and since when, with the work (drawn again with the state).
    assert!(
        page.contains(r#"data-testid="station-stop"><strong>Down</strong>: Breakdown · since 09:00</p>"#),
        "{page}"
    );
    // The list is drawn again when the state changes, so the question comes and goes with it.
    assert!(page.contains(r#"data-refresh-on="plan production machine_state""#));
    let zh = h.page(&format!("/station?machine={machine}"), ADMIN, "zh-HK").await.text;
    assert!(zh.contains("此機器已報告故障"));
    let running = json!({"state": "running"});
    let reported = h.post_json(&format!("/api/v1/machines/{machine}/states"), ADMIN, &running).await;
    assert_eq!(reported.status, StatusCode::CREATED, "{}", reported.text);
    assert!(!asks(&h.page(&format!("/station?machine={machine}"), ADMIN, "en").await.text));
}

#[tokio::test]
async fn a_retired_machine_is_shown_as_retired_and_offers_no_station() {
    let h = harness();
    let machine = json!({"site_id": 1, "code": "old-1", "name": "Old saw", "kind": "other"});
    let old = h.post_json("/api/v1/machines", ADMIN, &machine).await.json["id"].as_i64().unwrap();
    assert!(h.page("/station", ADMIN, "en").await.text.contains("old-1"));
    let mut retire = machine.clone();
    retire["retired"] = json!(true);
    assert_eq!(
        h.send_json("PUT", &format!("/api/v1/machines/{old}"), ADMIN, &retire).await.status,
        StatusCode::OK
    );
    for (lang, text) in [("en", "Retired on"), ("zh", "退役")] {
        let page = h.page(&format!("/machines/{old}"), ADMIN, lang).await.text;
        assert!(page.contains(r#"data-testid="retired""#) && page.contains(text), "{lang}");
        assert!(!page.contains(&format!("/station?machine={old}")), "{lang}");
        let station = h.page(&format!("/station?machine={old}"), ADMIN, lang).await.text;
        assert!(station.contains(r#"data-testid="retired""#) && station.contains(text), "{lang}");
    }
    assert!(!h.page("/station", ADMIN, "en").await.text.contains("old-1"));
    assert!(!h.page("/", ADMIN, "en").await.text.contains("old-1"), "not among the working machines");
}

#[tokio::test]
async fn the_factory_page_shows_sites_lines_and_machines_and_lets_admins_set_them_up() {
    let h = harness();
    let calendar = json!({
        "shifts": [
            {"name": "day", "days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "17:00"},
            {"name": "short", "days": ["sat", "mon"], "start": "08:00", "end": "12:00"}
        ],
        // One past (NOW is 2026-11-24), two ahead.
        "holidays": ["2026-01-01", "2027-01-01", "2026-12-25"]
    });
    let reply = h.send_json("PUT", "/api/v1/sites/1/calendar", ADMIN, &calendar).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let machine = h.get("/api/v1/machines/1").await.json;
    let mut retired = machine.clone();
    for key in ["id", "retired_at"] {
        retired.as_object_mut().unwrap().remove(key);
    }
    retired["retired"] = json!(true);
    let reply = h.send_json("PUT", "/api/v1/machines/1", ADMIN, &retired).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);

    let page = h.page("/factory", ADMIN, "en").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let text = page.text;
    assert!(text.contains("day: Mon–Fri 08:00–17:00"), "a run of days is shown as one: {text}");
    assert!(text.contains("short: Mon, Sat 08:00–12:00"), "days in the order of the week");
    assert!(text.contains("2 holidays ahead, the next on 2026-12-25"), "past holidays are not counted");
    // The retired machine is listed apart, with the rest of its fields.
    let (working, retired) = text.split_once(r#"data-testid="retired-machines""#).unwrap();
    let code = machine["code"].as_str().unwrap();
    assert!(!working.contains(&format!(">{code}</a>")) && retired.contains(&format!(">{code}</a>")));
    for form in
        ["new-site", "site-form", "calendar-form", "new-line", "line-form", "new-machine", "machine-form"]
    {
        assert!(text.contains(&format!(r#"data-testid="{form}""#)), "{form}");
    }
    // The calendar form holds the site's shifts, then blank rows for new ones.
    let calendar_form =
        text.split(r#"data-testid="calendar-form""#).nth(1).unwrap().split("</form>").next().unwrap();
    assert_eq!(calendar_form.matches(r#"data-testid="shift-row""#).count(), 4);
    assert!(
        calendar_form.contains(r#"name="shifts.1.days" data-type="set" value="sat" checked"#),
        "{calendar_form}"
    );
    assert!(
        calendar_form.contains("2026-01-01 2026-12-25 2027-01-01")
            || calendar_form.contains("2026-01-01 2027-01-01 2026-12-25")
    );
    // Time zone names are offered to pick from.
    assert!(text.contains(r#"<option value="Europe/Berlin">"#));

    // In Chinese, the days have their own names.
    let zh = h.page("/factory", ADMIN, "zh-HK").await.text;
    assert!(zh.contains("day：一–五 08:00–17:00"), "{zh}");

    // Everyone else reads the same lists and is offered nothing to change.
    for role in [Role::Viewer, Role::Operator, Role::Planner] {
        let page = h.page("/factory", &token_for(role), "en").await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.text.contains("day: Mon–Fri 08:00–17:00"), "{role:?}");
        assert!(!page.text.contains("data-action"), "{role:?} is offered a change");
        assert!(!page.text.contains(r#"<datalist id="zones""#), "{role:?}");
    }
}

#[tokio::test]
async fn the_products_page_shows_the_catalogue_and_lets_planners_change_it() {
    let h = harness();
    let routing = h.get("/api/v1/routings?limit=1").await.json["items"][0].clone();
    let step = &routing["steps"][0];
    let machine = h.get(&format!("/api/v1/machines/{}", step["eligible_machines"][0])).await.json;
    let product = h.get("/api/v1/products?limit=1").await.json["items"][0].clone();
    let material = h.get("/api/v1/materials?limit=1").await.json["items"][0].clone();
    let variant = json!({
        "product_id": product["id"], "code": "no-route", "name": "Not made yet",
        "bom": [{"material_id": material["id"], "kg_per_unit": 0.25}]
    });
    let reply = h.post_json("/api/v1/variants", ADMIN, &variant).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);

    let page = h.page("/products", &token_for(Role::Planner), "en").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let text = page.text;
    assert!(text.contains(&format!("<span class=\"code\">{}</span>", product["code"].as_str().unwrap())));
    // The new variant: its bill of materials, and that it cannot be made.
    let row = text.split(">no-route<").nth(1).unwrap().split("</tr>").next().unwrap();
    assert!(row.contains("No routing: cannot be made"), "{row}");
    assert!(row.contains(&format!("0.25 kg {}", material["code"].as_str().unwrap())), "{row}");
    // A routing's steps name their machines and the setup in minutes.
    let card = text
        .split(&format!("id=\"routing-{}\"", routing["id"]))
        .nth(1)
        .unwrap()
        .split("</article>")
        .next()
        .unwrap();
    assert!(
        card.contains(step["name"].as_str().unwrap()) && card.contains(machine["code"].as_str().unwrap())
    );
    let setup = step["setup_seconds"].as_f64().unwrap() / 60.0;
    assert!(card.contains(&format!("<td class=\"num\">{setup}</td>")), "setup {setup} min: {card}");
    // Its change form holds its steps, then blank rows for new ones.
    let form = card.split(r#"data-testid="routing-form""#).nth(1).unwrap().split("</form>").next().unwrap();
    let steps = routing["steps"].as_array().unwrap().len();
    assert_eq!(form.matches(r#"data-testid="step-row""#).count(), steps + 2);
    assert!(form.contains(&format!(
        r#"name="steps.0.eligible_machines" data-type="int-set" value="{}" checked"#,
        machine["id"]
    )));
    assert!(form.contains(r#"data-scale="60""#));
    for form in [
        "new-product",
        "product-form",
        "new-variant",
        "variant-form",
        "new-routing",
        "routing-form",
        "new-material",
        "material-form",
    ] {
        assert!(text.contains(&format!(r#"data-testid="{form}""#)), "{form}");
    }
    // Everyone else reads the catalogue and is offered nothing to change.
    for role in [Role::Viewer, Role::Sales, Role::Operator] {
        let page = h.page("/products", &token_for(role), "en").await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.text.contains("No routing: cannot be made"), "{role:?}");
        assert!(!page.text.contains("data-action"), "{role:?} is offered a change");
    }
}

#[tokio::test]
async fn an_administrator_issues_a_device_s_token_on_the_settings_page() {
    let h = harness();
    let device = json!({"username": "gw-press", "role": "device", "site_id": 1});
    let device = h.post_json("/api/v1/users", ADMIN, &device).await.json["id"].clone();
    let settings = h.page("/settings", ADMIN, "en").await.text;
    let form = settings.split(r#"data-testid="new-token""#).nth(1).unwrap().split("</form>").next().unwrap();
    assert!(form.contains(r#"<select name="user_id" data-type="int">"#), "{form}");
    assert!(form.contains(&format!(r#"<option value="{device}">gw-press (Device)</option>"#)), "{form}");
    // Anyone else issues tokens for themselves only.
    let planner = h.page("/settings", &token_for(Role::Planner), "en").await.text;
    assert!(planner.contains(r#"data-testid="new-token""#) && !planner.contains(r#"name="user_id""#));
}

#[tokio::test]
async fn scrap_reasons_are_offered_at_the_station_and_counted_on_the_machine_page() {
    let h = harness();
    let workers = h.state.start_workers();
    let (_, operation) = h.first_released_operation().await;
    let (id, machine) = (&operation["id"], operation["eligible_machines"][0].as_i64().unwrap());
    let (start, started) = (format!("/api/v1/operations/{id}/start"), json!({"machine_id": machine}));
    assert_eq!(h.post_json(&start, ADMIN, &started).await.status, StatusCode::OK);
    let pause = format!("/api/v1/operations/{id}/pause");
    // A reason needs scrapped units.
    let reply = h.post_json(&pause, ADMIN, &json!({"good": 1, "scrap": 0, "scrap_reason": "burr"})).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", reply.text);
    assert!(reply.text.contains("give a reason only with scrapped units"), "{}", reply.text);
    let reply = h.post_json(&pause, ADMIN, &json!({"good": 1, "scrap": 2, "scrap_reason": " burr "})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    // Units reported by hand, with a reason of their own.
    let units = json!({"good": 0, "scrap": 1, "scrap_reason": "crack", "ideal_unit_seconds": 30});
    let reply = h.post_json(&format!("/api/v1/machines/{machine}/production"), ADMIN, &units).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.json["scrap_reason"], "crack");
    // Started again, the station offers the reasons used on the machine, latest first.
    assert_eq!(h.post_json(&start, ADMIN, &started).await.status, StatusCode::OK);
    let station = h.page(&format!("/station?machine={machine}"), ADMIN, "en").await.text;
    assert!(station.contains(r#"name="scrap_reason""#), "{station}");
    assert!(
        station.contains(
            r#"<datalist id="scrap-reasons"><option value="crack"><option value="burr"></datalist>"#
        ),
        "{station}"
    );
    // The machine page and the OEE report count the scrap by reason.
    let page = h.page(&format!("/machines/{machine}"), ADMIN, "en").await.text;
    let panel =
        page.split(r#"data-testid="scrap-pareto""#).nth(1).unwrap().split("</section>").next().unwrap();
    let burr = panel.find("<td>burr</td><td class=\"num\">2</td>");
    let crack = panel.find("<td>crack</td><td class=\"num\">1</td>");
    assert!(burr.is_some() && crack.is_some() && burr < crack, "most first: {panel}");
    let oee = h.get(&format!("/api/v1/oee?machine={machine}")).await.json;
    assert_eq!(oee["machines"][0]["scrap_reasons"][0], json!({"reason": "burr", "units": 2}), "{oee}");
    h.state.begin_stop();
    workers.finish().await;
}
