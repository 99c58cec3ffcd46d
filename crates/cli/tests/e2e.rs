//! End-to-end tests of the real binary: the demo main job, restarts, crash durability under
//! concurrent writes, graceful shutdown, the CSV import command, the help texts, start-up
//! refusals (ports, flags, data directories, log filters) and the README's set-up block.

mod support;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{TOKEN, TempDir, all_order_numbers, free_port, request, signal, start};

/// Runs `command` (the binary with some arguments), checks that it fails and returns its stderr.
fn failure(command: &mut Command) -> String {
    let output = command.output().unwrap();
    assert!(!output.status.success(), "{command:?} succeeded");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn order_json(number: &str) -> String {
    format!(
        r#"{{"number":"{number}","customer":"E2E Ltd","variant_id":1,"quantity":3,"due":"2026-12-10T18:00:00+08:00"}}"#
    )
}

#[test]
fn demo_survives_a_graceful_restart_with_everything_in_place() {
    let dir = TempDir::new("restart");
    let mut server = start("demo", &dir.0);
    let machines = request(server.address, "GET", "/api/v1/machines", Some(TOKEN), None).unwrap();
    assert_eq!(machines.status, 200);
    assert_eq!(machines.json()["items"].as_array().unwrap().len(), 11);
    assert_eq!(request(server.address, "GET", "/api/v1/machines", None, None).unwrap().status, 401);
    // A new demo starts with a published plan of its orders.
    let plans = request(server.address, "GET", "/api/v1/plans", Some(TOKEN), None).unwrap().json();
    let plans = plans["items"].as_array().unwrap();
    assert_eq!(plans.len(), 1, "{plans:?}");
    assert_eq!(plans[0]["status"], "active");
    let created =
        request(server.address, "POST", "/api/v1/orders", Some(TOKEN), Some(&order_json("E2E-1"))).unwrap();
    assert_eq!(created.status, 201, "{}", created.body);
    let before = all_order_numbers(server.address);

    signal(server.child.id(), "TERM");
    let status = support::wait_for_exit(&mut server.child, Duration::from_secs(20));
    assert!(status.success(), "graceful shutdown exits 0, got {status}");

    let server = start("demo", &dir.0);
    let after = all_order_numbers(server.address);
    assert_eq!(after, before, "a restart keeps every order and does not seed twice");
    assert!(after.contains(&"E2E-1".to_string()));
    let plans = request(server.address, "GET", "/api/v1/plans", Some(TOKEN), None).unwrap().json();
    assert_eq!(plans["items"].as_array().unwrap().len(), 1, "a restart does not plan again");
    let machines = request(server.address, "GET", "/api/v1/machines", Some(TOKEN), None).unwrap();
    assert_eq!(machines.json()["items"].as_array().unwrap().len(), 11);
}

#[test]
fn every_acknowledged_order_survives_kill_9_exactly_once() {
    const ORDERS: usize = 1000;
    const CLIENTS: usize = 32;
    let dir = TempDir::new("kill9");
    let mut server = start("demo", &dir.0);
    let address = server.address;
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let next = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (acknowledged, next) = (acknowledged.clone(), next.clone());
            std::thread::spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= ORDERS {
                        return;
                    }
                    let number = format!("K9-{i:04}");
                    // After the kill, requests fail; that is the point of the test.
                    if let Ok(reply) =
                        request(address, "POST", "/api/v1/orders", Some(TOKEN), Some(&order_json(&number)))
                        && reply.status == 201
                    {
                        acknowledged.lock().unwrap().push(number);
                    }
                }
            })
        })
        .collect();
    // Kill in the middle: once a good share is acknowledged but well before the end.
    let deadline = Instant::now() + Duration::from_secs(60);
    while acknowledged.lock().unwrap().len() < ORDERS / 4 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    for client in clients {
        client.join().unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= ORDERS / 4, "only {} orders were acknowledged", acknowledged.len());
    assert!(acknowledged.len() < ORDERS, "the kill came after every order was done; the test proved nothing");

    let server = start("demo", &dir.0);
    let stored = all_order_numbers(server.address);
    for number in &acknowledged {
        let copies = stored.iter().filter(|n| *n == number).count();
        assert_eq!(copies, 1, "acknowledged order {number} is stored {copies} times");
    }
    eprintln!("acknowledged {} of {ORDERS} before kill -9; all present after restart", acknowledged.len());
}

#[test]
fn orders_import_reports_bad_lines_and_imports_good_files_whole() {
    let dir = TempDir::new("import");
    {
        let mut server = start("demo", &dir.0);
        server.child.kill().unwrap();
        server.child.wait().unwrap();
    }
    let bad = dir.0.join("bad.csv");
    std::fs::write(
        &bad,
        "number,customer,variant,quantity,due\n\
         IMP-1,Acme,phone-stand-black,10,2026-12-01T18:00:00+08:00\n\
         IMP-2,Acme,phone-stand-black,lots,2026-12-01T18:00:00+08:00\n",
    )
    .unwrap();
    let stderr = failure(
        Command::new(env!("CARGO_BIN_EXE_microfactory"))
            .args(["orders", "import"])
            .arg(&bad)
            .arg("--data-dir")
            .arg(&dir.0),
    );
    assert!(stderr.contains("line 3, quantity"), "{stderr}");
    assert!(stderr.contains("nothing was imported"), "{stderr}");
    // A mistyped data directory is an error, not a new empty factory.
    let typo = dir.0.join("no-such-dir");
    let stderr = failure(
        Command::new(env!("CARGO_BIN_EXE_microfactory"))
            .args(["orders", "import"])
            .arg(&bad)
            .arg("--data-dir")
            .arg(&typo),
    );
    assert!(stderr.contains("no microfactory data in"), "{stderr}");
    assert!(!typo.exists(), "{} was created", typo.display());

    let good = dir.0.join("good.csv");
    std::fs::write(
        &good,
        "number,customer,variant,quantity,due,priority\n\
         IMP-1,Acme,phone-stand-black,10,2026-12-01T18:00:00+08:00,2\n\
         IMP-2,Acme,drone-frame-5in,4,2026-12-02T18:00:00+08:00,5\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_microfactory"))
        .args(["orders", "import"])
        .arg(&good)
        .arg("--data-dir")
        .arg(&dir.0)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("imported 2 orders"));
    let server = start("demo", &dir.0);
    let numbers = all_order_numbers(server.address);
    assert!(numbers.contains(&"IMP-1".to_string()) && numbers.contains(&"IMP-2".to_string()));
}

#[test]
fn help_documents_every_command() {
    let help = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_microfactory")).args(args).output().unwrap();
        assert!(output.status.success(), "{args:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    let top = help(&["--help"]);
    for command in ["serve", "demo", "orders", "config", "sim", "backup", "schedule", "bench"] {
        assert!(top.contains(command), "--help does not mention {command}");
    }
    for flag in ["--listen", "--data-dir", "--config", "--mqtt-listen", "--mqtt-broker"] {
        assert!(help(&["serve", "--help"]).contains(flag), "serve --help lacks {flag}");
        assert!(help(&["demo", "--help"]).contains(flag), "demo --help lacks {flag}");
    }
    assert!(help(&["orders", "import", "--help"]).contains("all or nothing"));
    assert!(help(&["config", "example"]).contains("durability"));
    assert!(help(&["sim", "--help"]).contains("--broker"));
    assert!(help(&["bench", "ingest", "--help"]).contains("--devices"));
    assert!(help(&["schedule", "solve", "--help"]).contains("--time-limit"));
}

#[test]
fn a_bad_config_file_is_a_clear_error() {
    let dir = TempDir::new("config");
    let path = dir.0.join("bad.toml");
    std::fs::write(&path, "listen = \"127.0.0.1:0\"\ncolour = \"blue\"\n").unwrap();
    let stderr =
        failure(Command::new(env!("CARGO_BIN_EXE_microfactory")).args(["serve", "--config"]).arg(&path));
    assert!(stderr.contains("invalid config file") && stderr.contains("colour"), "{stderr}");
    // A log filter that is no level would silence the log; it is refused instead.
    std::fs::write(&path, "listen = \"127.0.0.1:0\"\nlog = \"verbose\"\n").unwrap();
    let data = dir.0.join("data");
    let stderr = failure(
        Command::new(env!("CARGO_BIN_EXE_microfactory"))
            .args(["serve", "--no-mqtt", "--config"])
            .arg(&path)
            .arg("--data-dir")
            .arg(&data)
            .env_remove("RUST_LOG"),
    );
    assert!(
        stderr.contains("invalid log filter") && stderr.contains("\"verbose\" is not a level"),
        "{stderr}"
    );
    let stderr = failure(
        Command::new(env!("CARGO_BIN_EXE_microfactory"))
            .args(["serve", "--no-mqtt", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .env("RUST_LOG", "server=debugg"),
    );
    assert!(stderr.contains("\"debugg\" is not a level"), "{stderr}");
    std::fs::write(&path, "listen = \"127.0.0.1:0\"\nlog = \"\"\n").unwrap();
    let stderr = failure(
        Command::new(env!("CARGO_BIN_EXE_microfactory"))
            .args(["serve", "--no-mqtt", "--config"])
            .arg(&path)
            .arg("--data-dir")
            .arg(&data)
            .env("RUST_LOG", ","),
    );
    assert!(stderr.contains("names no level, which would silence the log"), "{stderr}");
    assert!(!data.exists(), "a refused start leaves no data directory");
}

#[test]
fn a_bad_flag_leaves_no_data_directory_behind() {
    let dir = TempDir::new("badflag");
    let data = dir.0.join("demo-data");
    let stderr = failure(
        Command::new(env!("CARGO_BIN_EXE_microfactory"))
            .args(["demo", "--sim-speed", "0", "--data-dir"])
            .arg(&data),
    );
    assert!(stderr.contains("--sim-speed must be from"), "{stderr}");
    assert!(!data.exists(), "the demo created and seeded {} before rejecting the flag", data.display());
}

#[test]
fn a_new_store_is_not_started_in_a_directory_holding_other_things() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = TempDir::new("foreign");
    let shared = dir.0.join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
    for name in ["notes.txt", "other-service.db"] {
        std::fs::write(shared.join(name), "someone else's\n").unwrap();
    }
    let stderr = failure(
        Command::new(env!("CARGO_BIN_EXE_microfactory"))
            .args(["serve", "--no-mqtt", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&shared),
    );
    assert!(
        stderr.contains("holds other files (notes.txt, other-service.db) and no microfactory store"),
        "{stderr}"
    );
    let mode = std::fs::metadata(&shared).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o755, "the directory's permissions are left alone");
    let mut left: Vec<_> = std::fs::read_dir(&shared).unwrap().map(|e| e.unwrap().file_name()).collect();
    left.sort();
    assert_eq!(left, ["notes.txt", "other-service.db"], "nothing is added");
    // Its own configuration file in an otherwise empty directory is fine.
    let own = dir.0.join("own");
    std::fs::create_dir(&own).unwrap();
    std::fs::write(own.join("microfactory.toml"), "").unwrap();
    std::fs::write(own.join("site.toml"), "log = \"warn\"\n").unwrap();
    let server = support::start_with("serve", &own, &["--config", own.join("site.toml").to_str().unwrap()]);
    assert_eq!(request(server.address, "GET", "/healthz", None, None).unwrap().status, 200);
}

#[test]
fn the_mqtt_flags_win_over_the_config_file_and_a_broker_url_is_refused() {
    let dir = TempDir::new("mqttflags");
    let config = dir.0.join("site.toml");
    // The file points at an external broker that does not exist; --mqtt-listen runs the embedded
    // one instead, as a flag wins over the file.
    std::fs::write(
        &config,
        "[mqtt]\nexternal = \"127.0.0.1:9\"\nusername = \"platform\"\npassword = \"secret-of-the-broker\"\n",
    )
    .unwrap();
    let server = support::start_with("serve", &dir.0.join("data"), &["--config", config.to_str().unwrap()]);
    let embedded = std::net::TcpStream::connect(server.mqtt);
    assert!(embedded.is_ok(), "the embedded broker listens on --mqtt-listen");
    drop(server);
    std::fs::write(&config, "[mqtt]\nenabled = false\n").unwrap();
    let server = support::start_with("serve", &dir.0.join("data"), &["--config", config.to_str().unwrap()]);
    assert!(std::net::TcpStream::connect(server.mqtt).is_ok(), "--mqtt-listen turns MQTT back on");
    drop(server);
    for (broker, says) in [
        ("mqtt://broker.lan:1883", "without a scheme"),
        ("::1", "an IPv6 address in brackets"),
        ("broker.lan", "HOST:PORT"),
    ] {
        let data = dir.0.join("refused");
        let stderr = failure(
            Command::new(env!("CARGO_BIN_EXE_microfactory"))
                .args(["serve", "--listen", "127.0.0.1:0", "--mqtt-broker", broker, "--data-dir"])
                .arg(&data),
        );
        assert!(stderr.contains(says), "{broker}: {stderr}");
        assert!(!data.exists());
    }
}

/// Also: `sim` takes its speed and seed from the config file's `[sim]`, and logs as JSON when
/// asked.
#[test]
fn a_simulator_the_broker_refuses_says_so() {
    use std::io::BufRead as _;
    let dir = TempDir::new("simrefused");
    let data = dir.0.join("data");
    let config = dir.0.join("sim.toml");
    std::fs::write(&config, "log_format = \"text\"\n[sim]\nspeed = 300.0\nseed = 7\n").unwrap();
    let server = start("demo", &data);
    let mut sim = Command::new(env!("CARGO_BIN_EXE_microfactory"))
        .args(["sim", "--broker", &server.mqtt.to_string(), "--token", "mf_not-a-token-of-this-store"])
        .arg("--data-dir")
        .arg(&data)
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "info")
        .env("MICROFACTORY_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (told, lines) = std::sync::mpsc::channel();
    for output in [
        Box::new(sim.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(sim.stderr.take().unwrap()),
    ] {
        let told = told.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(output).lines().map_while(Result::ok) {
                let _ = told.send(line);
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while let Ok(line) = lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        let refused = serde_json::from_str::<serde_json::Value>(&line).is_ok_and(|event| {
            event["level"] == "WARN"
                && event["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("cannot connect to the broker (a refusal"))
        });
        seen.push(line);
        if refused {
            break;
        }
    }
    let _ = sim.kill();
    let _ = sim.wait();
    assert!(seen.last().is_some_and(|line| line.contains("a refusal")), "{seen:#?}");
    assert!(seen.iter().any(|line| line.ends_with("at 300x, seed 7")), "[sim] is read: {seen:#?}");
}

#[test]
fn a_port_in_use_fails_before_the_first_admin_is_created() {
    let dir = TempDir::new("portinuse");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    for extra in [
        &["--no-mqtt", "--listen", port.as_str()][..],
        &["--listen", "127.0.0.1:0", "--mqtt-listen", port.as_str()],
    ] {
        let data = dir.0.join("data");
        let stderr = failure(
            Command::new(env!("CARGO_BIN_EXE_microfactory"))
                .arg("serve")
                .args(extra)
                .arg("--data-dir")
                .arg(&data),
        );
        assert!(stderr.contains(port.as_str()) && stderr.contains("in use"), "{stderr}");
        // Nothing was created, so the next start is a first start that shows the admin's password.
        assert!(!data.exists(), "a failed start left {} behind", data.display());
    }
}

#[test]
fn the_demo_and_a_factory_keep_their_data_apart() {
    let dir = TempDir::new("apart");
    let (factory, demo) = (dir.0.join("factory"), dir.0.join("demo"));
    for (command, data) in [("serve", &factory), ("demo", &demo)] {
        let mut server = start(command, data);
        server.child.kill().unwrap();
        server.child.wait().unwrap();
    }
    let run = |command: &str, data: &std::path::Path| {
        failure(
            Command::new(env!("CARGO_BIN_EXE_microfactory"))
                .args([command, "--no-mqtt", "--listen", "127.0.0.1:0", "--data-dir"])
                .arg(data),
        )
    };
    let stderr = run("demo", &factory);
    assert!(stderr.contains("holds a factory's own data"), "{stderr}");
    let stderr = run("serve", &demo);
    assert!(stderr.contains("holds the demo's data"), "{stderr}");
    // A factory's store of an earlier version is refused before it is upgraded, so that version
    // can still open it.
    let older = dir.0.join("older");
    std::fs::create_dir_all(&older).unwrap();
    let path = older.join("microfactory.db");
    store::Store::create_at_version(&path, 18).unwrap();
    let stderr = run("demo", &older);
    assert!(stderr.contains("earlier version that is not the demo's"), "{stderr}");
    assert_eq!(store::Store::schema_versions(&path).unwrap().map(|(found, _)| found), Some(18));
}

#[test]
fn an_upgrade_keeps_a_copy_of_the_store_as_it_was() {
    let dir = TempDir::new("upgrade-copy");
    std::fs::create_dir_all(&dir.0).unwrap();
    store::Store::create_at_version(&dir.0.join("microfactory.db"), 18).unwrap();
    let mut server = start("serve", &dir.0);
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let copy = dir.0.join("microfactory-before-upgrade-18.db");
    let versions = |path: &std::path::Path| store::Store::schema_versions(path).unwrap().unwrap();
    assert_eq!(versions(&copy).0, 18, "the copy is the store as it was");
    assert_eq!(versions(&dir.0.join("microfactory.db")).0, versions(&copy).1, "the store is upgraded");
}

#[test]
fn a_weak_bootstrap_token_stops_a_first_start_only() {
    let dir = TempDir::new("weak-token");
    let data = dir.0.join("data");
    let serve = |port: u16| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_microfactory"));
        command
            .args(["serve", "--no-mqtt", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(&data)
            .env("MICROFACTORY_BOOTSTRAP_TOKEN", "changeme")
            .env("RUST_LOG", "warn");
        command
    };
    let stderr = failure(&mut serve(free_port()));
    assert!(stderr.contains("at least 16 characters"), "{stderr}");
    assert!(!data.join("microfactory.db").exists(), "nothing was made");
    // Once the store has its users, a weak value left set is not used, and not checked.
    let mut server = start("serve", &data);
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let port = free_port();
    let mut child = serve(port).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let address: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let healthy = (0..600).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        request(address, "GET", "/healthz", None, None).is_ok_and(|reply| reply.status == 200)
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(healthy, "the second start answers");
}

#[test]
fn the_readme_s_factory_set_up_runs_as_written() {
    let tools = ["bash", "curl", "mosquitto_pub", "sed"];
    let installed = |tool: &&str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if support::skip_without(tools.into_iter().find(|tool| !installed(tool)), "MF_REQUIRE_INTEROP") {
        return;
    }
    let readme = include_str!("../../../README.md");
    let section = &readme[readme.find("## Setting up a factory").expect("the README's set-up section")..];
    let start_at = section.find("```sh\n").expect("its shell block") + "```sh\n".len();
    let script = &section[start_at..start_at + section[start_at..].find("\n```").unwrap()];
    let dir = TempDir::new("readme-setup");
    let server = start("serve", &dir.0);
    // As written, but for the broker's port, which is a free one here.
    let script = script.replace("-p 1883", &format!("-p {}", server.mqtt.port()));
    let output = Command::new("bash")
        .args(["-c", &format!("set -eo pipefail\n{script}")])
        .env("API", format!("http://{}/api/v1", server.address))
        .env("NO_PROXY", "127.0.0.1")
        .env("no_proxy", "127.0.0.1")
        .env("TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let plan = request(server.address, "GET", "/api/v1/plans/1", Some(TOKEN), None).unwrap().json();
    assert_eq!(plan["status"], "active", "{plan}");
    let series = request(
        server.address,
        "GET",
        "/api/v1/machines/1/series?metric=spindle_power_kw",
        Some(TOKEN),
        None,
    )
    .unwrap()
    .json();
    assert_eq!(series["points"][0]["last"], 7.2, "{series}");
}

#[test]
fn a_backup_taken_while_serving_restores_to_a_working_store() {
    let dir = TempDir::new("backup");
    let (live, copy, restored) = (dir.0.join("live"), dir.0.join("copy.db"), dir.0.join("restored"));
    let server = start("serve", &live);
    let site = |code: &str| format!(r#"{{"code": "{code}", "name": "{code}", "utc_offset": "+08:00"}}"#);
    let created = request(server.address, "POST", "/api/v1/sites", Some(TOKEN), Some(&site("hk"))).unwrap();
    assert_eq!(created.status, 201, "{}", created.body);
    let backup = |file: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_microfactory"))
            .arg("backup")
            .arg(file)
            .arg("--data-dir")
            .arg(&live)
            .output()
            .unwrap()
    };
    let output = backup(&copy);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("backed up"));
    // Not in the copy: written after it.
    request(server.address, "POST", "/api/v1/sites", Some(TOKEN), Some(&site("sz"))).unwrap();
    let stderr = failure(
        Command::new(env!("CARGO_BIN_EXE_microfactory"))
            .arg("backup")
            .arg(&copy)
            .arg("--data-dir")
            .arg(&live),
    );
    assert!(stderr.contains("exists already"), "{stderr}");
    std::fs::create_dir_all(&restored).unwrap();
    std::fs::copy(&copy, restored.join("microfactory.db")).unwrap();
    let again = start("serve", &restored);
    let sites = request(again.address, "GET", "/api/v1/sites", Some(TOKEN), None).unwrap().json();
    let codes: Vec<&str> =
        sites["items"].as_array().unwrap().iter().map(|s| s["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["hk"]);
}

#[test]
fn generated_planning_problems_solve_to_valid_schedules() {
    let dir = TempDir::new("generate");
    let problem = dir.0.join("problem.json");
    let stderr = failure(Command::new(env!("CARGO_BIN_EXE_microfactory")).args([
        "schedule",
        "generate",
        "--machines",
        "0",
    ]));
    assert!(stderr.contains("--orders must be from 1 to 100000 and --machines from 1 to 1000"), "{stderr}");
    let output = Command::new(env!("CARGO_BIN_EXE_microfactory"))
        .args(["schedule", "generate", "--orders", "20", "--machines", "5", "--seed", "7", "--output"])
        .arg(&problem)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let output = Command::new(env!("CARGO_BIN_EXE_microfactory"))
        .args(["schedule", "solve"])
        .arg(&problem)
        .args([
            "--format",
            "json",
            "--time-limit",
            "5",
            "--iterations",
            "200",
            "--objective",
            "tardiness-then-makespan",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let result: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(result["valid"], true, "{result}");
    assert_eq!(result["jobs"], 20);
}

#[test]
fn schedule_solve_reads_any_instance_of_a_taillard_file() {
    // Two instances in Taillard's published layout, one after the other.
    let header = "Nb of jobs, Nb of Machines, Time seed, Machine seed, Upper bound, Lower bound";
    let text = format!(
        "{header}\n2 2 1 1 7 7\nTimes\n3 2\n4 1\nMachines\n1 2\n2 1\n\
         {header}\n2 3 1 1 12 12\nTimes\n5 2 3\n4 5 6\nMachines\n3 2 1\n1 2 3\n"
    );
    let dir = TempDir::new("taillard");
    let file = dir.0.join("tai2.txt");
    std::fs::write(&file, text).unwrap();
    let solve = |index: &str| {
        Command::new(env!("CARGO_BIN_EXE_microfactory"))
            .args(["schedule", "solve"])
            .arg(&file)
            .args(["--time-limit", "5", "--iterations", "100", "--index", index])
            .output()
            .unwrap()
    };
    let output = solve("1");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let result: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(result["instance"], "tai2#1");
    assert_eq!((result["jobs"].as_u64(), result["machines"].as_u64()), (Some(2), Some(3)));
    assert_eq!(result["valid"], true, "{result}");
    let output = solve("2");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("expected instance 2 (from 0), but the file holds 2"), "{stderr}");
    // An output path that cannot be written fails before the search, not after its time limit.
    let output = Command::new(env!("CARGO_BIN_EXE_microfactory"))
        .args(["schedule", "solve"])
        .arg(&file)
        .args(["--time-limit", "1000", "--output"])
        .arg(dir.0.join("missing").join("plan.json"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot write") && output.stdout.is_empty(), "{stderr}");
}

#[test]
fn schedule_check_judges_any_plan_and_both_commands_draw_it() {
    let dir = TempDir::new("schedule-check");
    let shop = dir.0.join("twin.txt");
    std::fs::write(&shop, "2 2\n0 3 1 2\n1 2 0 3\n").unwrap();
    let (plan, svg) = (dir.0.join("plan.json"), dir.0.join("plan.svg"));
    let output = Command::new(env!("CARGO_BIN_EXE_microfactory"))
        .args(["schedule", "solve"])
        .arg(&shop)
        .args(["--time-limit", "5", "--iterations", "100", "--output"])
        .arg(&plan)
        .arg("--gantt")
        .arg(&svg)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let drawing = std::fs::read_to_string(&svg).unwrap();
    assert!(drawing.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""), "{drawing}");
    assert!(
        drawing.contains("twin · makespan 6") && drawing.matches("<title>job ").count() == 4,
        "{drawing}"
    );

    let check = |plan: &std::path::Path, gantt: Option<&std::path::Path>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_microfactory"));
        command.args(["schedule", "check"]).arg(&shop).arg(plan);
        if let Some(gantt) = gantt {
            command.arg("--gantt").arg(gantt);
        }
        command.output().unwrap()
    };
    let output = check(&plan, None);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let result: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!((result["valid"].as_bool(), result["makespan"].as_i64()), (Some(true), Some(6)), "{result}");

    // Another solver's plan, one operation a unit early: judged, reported, and still drawn.
    let mut other: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plan).unwrap()).unwrap();
    let late = other["operations"].as_array_mut().unwrap().iter_mut().find(|it| it["start"] != 0).unwrap();
    late["start"] = (late["start"].as_i64().unwrap() - 1).into();
    late["end"] = (late["end"].as_i64().unwrap() - 1).into();
    let broken = dir.0.join("broken.json");
    std::fs::write(&broken, other.to_string()).unwrap();
    let broken_svg = dir.0.join("broken.svg");
    let output = check(&broken, Some(&broken_svg));
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("the schedule breaks"), "{stderr}");
    let result: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(result["valid"], false, "{result}");
    assert!(result["violations"].as_u64() >= Some(1), "{result}");
    assert!(std::fs::read_to_string(&broken_svg).unwrap().contains("twin · makespan"));

    // Files that are not plans: an error that says where and what was expected.
    for (text, expected) in [
        ("{", "expected {\"operations\": [{\"job\", \"op\", \"machine\", \"start\", \"end\"}"),
        (r#"{"operations":[{"job":0,"op":0,"machine":0,"start":0,"end":3},{"job":0}]}"#, "operations[1]"),
        (
            r#"{"operations":[{"job":0,"op":0,"machine":0,"start":0,"end":3},{"job":0}]}"#,
            "missing field `op`",
        ),
        (r#"{"operations":[{"job":0,"op":0,"machine":0,"start":-1,"end":9e18}]}"#, "operations[0]"),
        (r#"{"operations":[{"job":0,"op":0,"machine":0,"start":0,"end":2000000000000}]}"#, "beyond"),
    ] {
        std::fs::write(&broken, text).unwrap();
        let output = check(&broken, None);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success() && stderr.contains(expected), "{text}: {stderr}");
        assert!(output.stdout.is_empty(), "{text}: nothing judged");
    }
}

#[test]
fn schedule_solve_shows_its_progress_on_a_terminal_only() {
    let dir = TempDir::new("schedule-progress");
    // A square shop whose optimum lies above the simple bound, so the search runs its full time.
    let shop = dir.0.join("la.txt");
    let mut text = String::from("8 8\n");
    for job in 0..8usize {
        let route: Vec<String> =
            (0..8).map(|k| format!("{} {}", (job * 3 + k * 5) % 8, 1 + (job * 7 + k * 11) % 19)).collect();
        text.push_str(&route.join(" "));
        text.push('\n');
    }
    std::fs::write(&shop, text).unwrap();
    let solve = format!(
        "'{}' schedule solve '{}' --time-limit 1.5",
        env!("CARGO_BIN_EXE_microfactory"),
        shop.display()
    );
    // `script` runs the command on a pseudo-terminal and copies what it shows to standard output.
    let output = Command::new("script").args(["-q", "-e", "-c", &solve, "/dev/null"]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(
        shown.contains("la ") && shown.contains("of 1.5s") && shown.contains("best makespan "),
        "{shown}"
    );
    assert!(shown.contains(r#""instance":"la""#), "{shown}");
    // Without a terminal, only the result line.
    let output = Command::new("sh").args(["-c", &solve]).output().unwrap();
    assert!(
        output.status.success() && output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).lines().count(), 1);
}

#[test]
fn schedule_bench_runs_side_by_side_and_writes_every_seed() {
    let dir = TempDir::new("schedule-bench");
    // Two 2×2 shops whose optimum is 6: job 0 first on machine 0 is the only way to finish by 6.
    std::fs::write(dir.0.join("twin_a.txt"), "2 2\n0 3 1 2\n1 2 0 3\n").unwrap();
    std::fs::write(dir.0.join("twin_b.txt"), "2 2\n1 3 0 2\n0 2 1 3\n").unwrap();
    std::fs::write(
        dir.0.join("bounds.csv"),
        "instance,jobs,machines,lower_bound,upper_bound,optimal,source\n\
         twin_a,2,2,6,6,true,test\ntwin_b,2,2,6,6,true,test\n",
    )
    .unwrap();
    let csv = dir.0.join("out.csv");
    let output = Command::new(env!("CARGO_BIN_EXE_microfactory"))
        .args(["schedule", "bench"])
        .arg(&dir.0)
        .args(["--time-limit", "0.2", "--seeds", "2", "--jobs", "2", "--csv"])
        .arg(&csv)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let table = String::from_utf8(output.stdout).unwrap();
    assert!(table.contains("twin_a") && table.contains("twin_b"), "{table}");
    let written = std::fs::read_to_string(&csv).unwrap();
    let rows: Vec<&str> = written.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{written}");
    for (row, name) in rows.iter().zip(["twin_a", "twin_b"]) {
        let fields: Vec<&str> = row.split(',').collect();
        assert_eq!(fields[0], name, "{row}");
        assert_eq!(fields[4], "2", "two runs: {row}");
        assert_eq!(fields[5], "6", "optimum found: {row}");
        assert_eq!(fields[9], "true", "checker passed: {row}");
        assert_eq!(fields[12], "6 6", "one makespan per seed: {row}");
    }

    std::fs::write(dir.0.join("twin_b.txt"), "2 2\n1 3 0\n").unwrap();
    let stderr = failure(
        Command::new(env!("CARGO_BIN_EXE_microfactory"))
            .args(["schedule", "bench"])
            .arg(&dir.0)
            .args(["--time-limit", "0.2"]),
    );
    assert!(stderr.contains("twin_b.txt") && stderr.contains("line"), "{stderr}");
}

/// One platform per data directory: a second `serve` on it is refused before it touches the
/// store, and the store's files are the owner's only.
#[test]
fn a_second_platform_on_the_same_data_directory_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = TempDir::new("one-per-dir");
    let data = dir.0.join("data");
    // Made beforehand, readable by everyone (as `mkdir` or an older version left it).
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let server = start("serve", &data);
    let port = || format!("127.0.0.1:{}", free_port());
    let stderr = failure(
        Command::new(env!("CARGO_BIN_EXE_microfactory"))
            .args(["serve", "--listen", &port(), "--mqtt-listen", &port(), "--data-dir"])
            .arg(&data)
            .env("MICROFACTORY_BOOTSTRAP_TOKEN", TOKEN),
    );
    assert!(stderr.contains("another microfactory is already running on"), "{stderr}");
    assert!(stderr.contains(&format!("(process {})", server.child.id())), "{stderr}");
    let mode = |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("microfactory.db")), 0o600);
    assert_eq!(mode(&data.join("microfactory.db-wal")), 0o600);
    drop(server);
}

/// The first admin's credentials are shown once; a first start that stopped before showing them
/// (the marker file still there) shows new ones at the next start.
#[test]
fn credentials_a_first_start_never_showed_are_made_again() {
    use std::io::BufRead as _;
    let dir = TempDir::new("unshown");
    let data = dir.0.join("data");
    let server = start("serve", &data);
    let marker = data.join("first-start-credentials-not-shown");
    assert!(!marker.exists(), "a first start that showed its credentials leaves no marker");
    drop(server);
    // What a first start writes before it makes the admin (and what older versions wrote).
    std::fs::write(&marker, "the first admin's credentials have not been shown yet\n").unwrap();
    let port = || format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_microfactory"))
        .args(["serve", "--listen", &port(), "--mqtt-listen", &port(), "--data-dir"])
        .arg(&data)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut password = None;
    for line in stdout.lines() {
        let line = line.unwrap();
        if let Some(shown) = line.trim().strip_prefix("password:") {
            password = Some(shown.trim().to_string());
        }
        if line.starts_with("Stop with Ctrl-C") {
            break;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while marker.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    let password = password.filter(|p| p.len() >= 12).expect("no new password shown");
    assert!(!marker.exists(), "the marker stays once the credentials were shown");

    // A marker written before the store's admin was made (a first start killed at once, then a
    // backup restored there) does not reset it either.
    std::fs::write(&marker, "the first admin's credentials have not been shown yet\n").unwrap();
    // (Its time says when: long after this store's admin was made.)
    let later = std::fs::metadata(&marker).unwrap().modified().unwrap() + Duration::from_secs(3600);
    std::fs::File::options().write(true).open(&marker).unwrap().set_modified(later).unwrap();
    let server = start("serve", &data);
    let login = format!(r#"{{"username": "admin", "password": "{password}"}}"#);
    let signed_in = request(server.address, "POST", "/api/v1/auth/login", None, Some(&login)).unwrap();
    assert_eq!(signed_in.status, 201, "{}", signed_in.body);
    assert!(!marker.exists(), "the marker of a start before this store was removed");
    drop(server);
    // A marker another store's first start left (a backup restored into its directory) names
    // another admin: this store's admin keeps its password, and the marker goes.
    std::fs::write(&marker, "the credentials of admin (created 1 ms) have not been shown yet\n").unwrap();
    let server = start("serve", &data);
    let login = format!(r#"{{"username": "admin", "password": "{password}"}}"#);
    let signed_in = request(server.address, "POST", "/api/v1/auth/login", None, Some(&login)).unwrap();
    assert_eq!(signed_in.status, 201, "{}", signed_in.body);
    assert!(!marker.exists(), "the other store's marker was removed");
}

#[test]
fn a_lost_admin_password_is_reset_from_the_command_line() {
    let dir = TempDir::new("reset");
    let data = dir.0.join("data");
    // The first start's credentials went nowhere (stdout to /dev/null, as under some services).
    let server = start("serve", &data);
    let reset = |extra: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_microfactory"))
            .args(["users", "reset-password"])
            .args(extra)
            .arg("--data-dir")
            .arg(&data)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        (output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned(), output.stderr)
    };
    let sign_in = |address, password: &str| {
        let login = format!(r#"{{"username": "admin", "password": "{password}"}}"#);
        request(address, "POST", "/api/v1/auth/login", None, Some(&login)).unwrap()
    };
    // Beside the running platform.
    let (ok, shown, _) = reset(&["admin"]);
    assert!(ok, "{shown}");
    let password = |shown: &str| {
        let line = shown.lines().find(|l| l.starts_with("New password of admin (admin): ")).expect("shown");
        line.rsplit(' ').next().unwrap().to_string()
    };
    let first = password(&shown);
    assert!(first.len() >= 12, "{first}");
    let signed_in = sign_in(server.address, &first);
    assert_eq!(signed_in.status, 201, "{}", signed_in.body);
    let session = signed_in.json()["token"].as_str().unwrap().to_string();
    assert_eq!(request(server.address, "GET", "/api/v1/me", Some(TOKEN), None).unwrap().status, 200);
    drop(server);

    // Again, with the tokens made to last: the first password and its sign-in end, and so does
    // the first start's token.
    let (ok, shown, _) = reset(&["admin", "--revoke-tokens"]);
    assert!(ok, "{shown}");
    assert!(shown.contains("Ended 1 sign-in(s); revoked 1 token(s) made to last."), "{shown}");
    let second = password(&shown);
    assert_ne!(first, second);
    let server = start("serve", &data);
    assert_eq!(sign_in(server.address, &first).status, 401);
    assert_eq!(sign_in(server.address, &second).status, 201);
    for token in [session.as_str(), TOKEN] {
        assert_eq!(request(server.address, "GET", "/api/v1/me", Some(token), None).unwrap().status, 401);
    }
    drop(server);

    // Someone unknown, or a device: a clear refusal, and nothing changes.
    let (ok, _, stderr) = reset(&["nobody"]);
    assert!(!ok);
    let stderr = String::from_utf8_lossy(&stderr);
    assert!(stderr.contains(r#"no account is named "nobody"; the people's accounts are: admin"#), "{stderr}");
    let missing = dir.0.join("missing");
    let output = Command::new(env!("CARGO_BIN_EXE_microfactory"))
        .args(["users", "reset-password", "admin", "--data-dir"])
        .arg(&missing)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(!missing.exists(), "no data directory is made for a reset");
}
