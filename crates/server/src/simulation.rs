//! The simulated factory inside the platform: builds the simulator's machines from the store,
//! feeds it the ready operations (first in, first out until planning lands), and connects it to
//! the broker over TCP like any gateway, with a device account per site.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use model::{Clock, Role};
use mqtt::{Client, ClientOptions};
use serde::{Deserialize, Serialize};
use sim::{Factory, Job, JobOffer, JobSource, MachineSpec, SimConfig};
use store::{PageRequest, Store, StoreError};
use tokio::sync::watch;

use crate::auth::{new_token, shown_prefix, token_digest};

/// Simulator settings (the `[sim]` section of the config file; `demo` only).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimSettings {
    /// Whether `demo` runs the simulated factory.
    pub enabled: bool,
    /// Simulated seconds per real second; in the demo, also the speed of the factory clock.
    pub speed: f64,
    /// Seed of every random choice.
    pub seed: u64,
    /// New customer orders per simulated day (0: none), one in six a rush order.
    pub orders_per_day: f64,
}

impl SimSettings {
    /// The speeds the simulator accepts, from the flags and the config file alike.
    pub const SPEEDS: std::ops::RangeInclusive<f64> = 0.1..=10_000.0;
    /// The order arrival rates accepted, per simulated day.
    pub const ORDERS_PER_DAY: std::ops::RangeInclusive<f64> = 0.0..=1_000.0;
}

impl Default for SimSettings {
    fn default() -> SimSettings {
        SimSettings { enabled: true, speed: 60.0, seed: 2026, orders_per_day: 10.0 }
    }
}

/// Ready operations from the store.
pub struct StoreJobs {
    store: Store,
    site: model::SiteId,
    clock: Arc<dyn Clock>,
}

impl StoreJobs {
    /// Ready operations of `site`'s machines from `store`.
    pub fn new(store: Store, site: model::SiteId, clock: Arc<dyn Clock>) -> StoreJobs {
        StoreJobs { store, site, clock }
    }
}

/// How long before its planned start a simulated operator may begin planned work: less than the
/// replanner's default deviation, so that a shop following its plan is not repaired for it.
pub const EARLY_START: time::Duration = time::Duration::minutes(10);

impl JobSource for StoreJobs {
    fn revision(&mut self) -> Option<i64> {
        self.store.active_plan().ok().flatten().map(|plan| plan.id)
    }

    fn stopped(&mut self) -> Vec<(model::MachineId, model::Timestamp)> {
        match self.store.current_states(self.clock.now()) {
            Ok(states) => states
                .into_iter()
                .filter(|s| matches!(s.state, model::MachineState::Down | model::MachineState::PlannedStop))
                .map(|s| (s.machine, s.at))
                .collect(),
            Err(error) => {
                tracing::warn!(%error, "simulator cannot read machine states");
                Vec::new()
            }
        }
    }

    fn ready(&mut self, now: model::Timestamp) -> Vec<JobOffer> {
        let ready = match self.store.ready_operations(500) {
            Ok(ready) => ready,
            Err(error) => {
                tracing::warn!(%error, "simulator cannot read ready operations");
                return Vec::new();
            }
        };
        // With an active plan, each operation goes to its planned machine, in planned order.
        let planned: std::collections::HashMap<model::OperationId, (model::MachineId, model::Timestamp)> =
            self.store
                .active_plan()
                .ok()
                .flatten()
                .and_then(|plan| self.store.plan_operations(plan.id, None).ok())
                .unwrap_or_default()
                .into_iter()
                .filter(|op| op.part == 0)
                .map(|op| (op.operation_id, (op.machine_id, op.setup_start)))
                .collect();
        let site_machines: Vec<model::MachineId> = self
            .store
            .machines(&in_service(self.site), PageRequest { after: None, limit: 10_000 })
            .map(|page| page.items.into_iter().map(|m| m.id).collect())
            .unwrap_or_default();
        // Work no plan has yet is started only while the site is open (not at night, nor on a
        // holiday); planned work keeps to its planned time, which is open time already.
        let open_now = match (self.store.calendar(self.site), self.store.site(self.site)) {
            (Ok(calendar), Ok(site)) if !calendar.always_open() => {
                let at = model::oee::unix_ms(now);
                !model::oee::shift_spans(&calendar, &site.zone(), at, at + 1).is_empty()
            }
            _ => true,
        };
        let mut offers: Vec<(Option<model::Timestamp>, JobOffer)> = ready
            .into_iter()
            .filter(|operation| operation.eligible_machines.iter().any(|m| site_machines.contains(m)))
            // The simulated operators follow their dispatch lists: planned work waits until its
            // planned time is near, rather than jumping ahead of work planned before it.
            .filter(|operation| match planned.get(&operation.id) {
                Some((_, start)) => *start <= now + EARLY_START,
                None => open_now,
            })
            .map(|operation| {
                let plan = planned.get(&operation.id).copied();
                (
                    plan.map(|(_, start)| start),
                    JobOffer {
                        operation: operation.id,
                        eligible: match plan {
                            Some((machine, _)) => vec![machine],
                            None => operation.eligible_machines.clone(),
                        },
                        job: Job {
                            operation: operation.id,
                            quantity: operation.quantity,
                            unit_seconds: operation.unit_seconds,
                            setup_seconds: f64::from(operation.setup_seconds),
                            family: operation.setup_family.clone(),
                        },
                    },
                )
            })
            .collect();
        // Planned work in planned order first; unplanned work after, first in first out.
        offers.sort_by_key(|(start, _)| (start.is_none(), *start));
        offers.into_iter().map(|(_, offer)| offer).collect()
    }
}

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No randomness for the device token.
    #[error("no randomness available: {0}")]
    Random(#[from] getrandom::Error),
}

/// Starts one simulator per site, each signed in as a fresh device account `sim-{site}` (its
/// previous simulator tokens are revoked). Returns at once; the simulators retry until the broker
/// accepts them and run until `stop`. `clock` runs `clock_speed` seconds per real second (see
/// [`site_factory`]); the accounts and tokens are dated `wall_now`, on the real-time clock of
/// credentials.
pub fn start(
    store: &Store,
    broker: SocketAddr,
    settings: &SimSettings,
    (clock, clock_speed): (Arc<dyn Clock>, f64),
    wall_now: model::Timestamp,
    stop: watch::Receiver<bool>,
) -> Result<usize, SimError> {
    let sites = store.sites(PageRequest { after: None, limit: 1000 })?.items;
    let mut started = 0;
    for site in sites {
        if !has_machines(store, site.id)? {
            continue;
        }
        let username = format!("sim-{}", site.code);
        let user = match store.users()?.into_iter().find(|u| u.username == username) {
            Some(user) => user,
            None => store.create_user(&username, Role::Device, Some(site.id), "!", wall_now)?,
        };
        for token in store.tokens(Some(user.id))? {
            if token.revoked_at.is_none() {
                store.revoke_token(token.id, Some(user.id), wall_now)?;
            }
        }
        let token = new_token()?;
        store.create_token(user.id, "simulator", &token_digest(&token), &shown_prefix(&token), wall_now)?;
        let login = SimLogin { client_id: format!("{username}-{}", std::process::id()), username, token };
        let simulated =
            SimSite { store: store.clone(), site: site.id, settings: settings.clone(), clock_speed };
        tokio::spawn(connect_and_run(broker, login, simulated, clock.clone(), stop.clone()));
        started += 1;
    }
    Ok(started)
}

/// Whether `site` has a machine to simulate.
pub fn has_machines(store: &Store, site: model::SiteId) -> Result<bool, StoreError> {
    Ok(!store.machines(&in_service(site), PageRequest { after: None, limit: 1 })?.items.is_empty())
}

/// `site`'s machines in service: the ones simulated (a retired machine makes nothing).
fn in_service(site: model::SiteId) -> store::MachineFilter {
    store::MachineFilter { site: Some(site), ..store::MachineFilter::IN_SERVICE }
}

/// The simulated factory of one site, built from its machines in the store; `None` when the site
/// has no machines. Its clock runs `clock_speed` seconds per real second: 1 for a platform on real
/// time, the simulator's speed for the demo's fast factory clock.
pub fn site_factory(
    store: &Store,
    site: &model::Site,
    settings: &SimSettings,
    clock_speed: f64,
    now: model::Timestamp,
) -> Result<Option<Factory>, StoreError> {
    let machines = store.machines(&in_service(site.id), PageRequest { after: None, limit: 10_000 })?.items;
    if machines.is_empty() {
        return Ok(None);
    }
    let specs: Vec<MachineSpec> = machines
        .into_iter()
        .map(|m| MachineSpec {
            id: m.id,
            site: site.code.clone(),
            code: m.code,
            kind: m.kind,
            rated_power_kw: m.rated_power_kw,
            sparkplug: m.kind == model::MachineKind::InjectionMoulding,
        })
        .collect();
    let defaults = SimConfig::default();
    let config = SimConfig {
        seed: settings.seed.wrapping_add(site.id.0 as u64),
        speed: settings.speed,
        clock_speed,
        // On a fast clock a sample every two real seconds would leave minutes of the clock between
        // readings, and staleness rules would fire: one every 20 s of the clock, then (the driver
        // publishes every half real second, so up to about 1,000× the demo's 600 s staleness rule
        // keeps a wide margin).
        sample_seconds: if clock_speed > 1.0 {
            (20.0 / clock_speed).clamp(0.05, defaults.sample_seconds)
        } else {
            defaults.sample_seconds
        },
        ..defaults
    };
    // What the site's machines were doing when the simulator last stopped goes on first, for
    // what is left of each lot (the setup is done once a unit is counted); else those operations
    // would stay running for good after a restart.
    let mut resumed = Vec::new();
    for operation in store.running_operations()? {
        let Some(index) = specs.iter().position(|spec| Some(spec.id) == operation.machine_id) else {
            continue;
        };
        let counted = operation.good.saturating_add(operation.scrap);
        let job = Job {
            operation: operation.id,
            // Good units are what the lot is for; the scrapped ones are being made again.
            quantity: operation.quantity.saturating_sub(operation.good),
            unit_seconds: operation.unit_seconds,
            setup_seconds: if counted > 0 { 0.0 } else { f64::from(operation.setup_seconds) },
            family: operation.setup_family,
        };
        resumed.push((index, job));
    }
    // A meter reads on from its last stored value, not from a new random one.
    let mut meters = Vec::new();
    for (index, spec) in specs.iter().enumerate() {
        if let Some(kwh) = store.last_value(spec.id, sim::ENERGY_METRIC)? {
            meters.push((index, kwh));
        }
    }
    // Each machine is set up for what the planner thinks it is: the family it last made units of.
    let ids: Vec<model::MachineId> = specs.iter().map(|spec| spec.id).collect();
    let families = store.last_setup_families(&ids)?;
    let families: Vec<(usize, String)> = ids
        .iter()
        .enumerate()
        .filter_map(|(index, id)| families.get(id).map(|family| (index, family.clone())))
        .collect();
    let mut factory = Factory::new(specs, config, now);
    for (index, family) in families {
        factory.set_setup_family(index, family);
    }
    for (index, job) in resumed {
        factory.resume(index, job);
    }
    for (index, kwh) in meters {
        factory.set_energy_meter(index, kwh);
    }
    Ok(Some(factory))
}

/// How a simulator signs in to the broker.
pub struct SimLogin {
    /// Its own per connection: a second connection with the same id takes the first one over.
    pub client_id: String,
    /// The account's name.
    pub username: String,
    /// The password: an API token, held only in memory.
    pub token: String,
}

/// The site a simulator simulates, and how: what it builds its factory from, again whenever the
/// site's machines change.
pub struct SimSite {
    /// Where the machines and work are.
    pub store: Store,
    /// The site.
    pub site: model::SiteId,
    /// Speed and seed.
    pub settings: SimSettings,
    /// Simulated seconds per second of `clock` (see [`site_factory`]).
    pub clock_speed: f64,
}

/// Connects (retrying while the broker starts) and runs one site's simulator until `stop`. When
/// its connection is lost (the broker went, or the site's code changed and with it what the
/// account may publish), or when sites or machines change (a machine renamed, added or removed),
/// it builds the factory again from the store (the lots under way resume) and reconnects.
pub async fn connect_and_run(
    broker: SocketAddr,
    SimLogin { client_id, username, token }: SimLogin,
    simulated: SimSite,
    clock: Arc<dyn Clock>,
    mut stop: watch::Receiver<bool>,
) {
    let SimSite { store, site, settings, clock_speed } = simulated;
    let pause = |stop: &mut watch::Receiver<bool>| {
        let mut stop = stop.clone();
        async move {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => false,
                _ = stop.changed() => true,
            }
        }
    };
    loop {
        let generation = store.machine_keys_generation();
        let built =
            store.site(site).and_then(|s| site_factory(&store, &s, &settings, clock_speed, clock.now()));
        let factory = match built {
            Ok(Some(factory)) => factory,
            // No machines (any more), or the store failed: look again later.
            Ok(None) | Err(_) => {
                if pause(&mut stop).await {
                    return;
                }
                continue;
            }
        };
        let mut options = ClientOptions::new(client_id.clone());
        options.username = Some(username.clone());
        options.password = Some(token.clone().into_bytes());
        // The Sparkplug edge node's death certificate: the platform marks its machines offline
        // when the simulator's connection drops.
        options.will = sim::driver::Encoder::new(&factory).will().map(|will| mqtt::LastWill {
            topic: will.topic,
            payload: will.payload,
            qos: mqtt::QoS::publish_level(will.qos),
            retain: will.retain,
        });
        let mut failures = 0u32;
        let client = loop {
            match Client::connect(broker, options.clone()).await {
                Ok(client) => break client,
                Err(error) => {
                    // A broker that is starting is waited for quietly; one that refuses the
                    // simulator's credentials, or stays out of reach, is told (then about once a
                    // minute, not at every try).
                    let refused = matches!(error, mqtt::Error::ConnectionRefused(_));
                    if (refused && failures.is_multiple_of(100)) || (!refused && failures % 100 == 10) {
                        tracing::warn!(
                            %error,
                            %broker,
                            %username,
                            "the simulated factory cannot connect to the broker (a refusal: check its token and user name); trying again"
                        );
                    } else {
                        tracing::debug!(%error, "simulator waiting for the broker");
                    }
                    failures += 1;
                    if pause(&mut stop).await {
                        return;
                    }
                }
            }
        };
        tracing::info!(%username, %broker, "simulated factory connected");
        // This run ends at the stop, or once sites or machines changed.
        let (changed, run_stop) = watch::channel(false);
        let watcher = {
            let (store, mut stop) = (store.clone(), stop.clone());
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = stop.changed() => break,
                    }
                    if store.machine_keys_generation() != generation {
                        break;
                    }
                }
                let _ = changed.send(true);
            })
        };
        let jobs = StoreJobs::new(store.clone(), site, clock.clone());
        sim::driver::run(client, factory, jobs, clock.clone(), run_stop).await;
        watcher.abort();
        if *stop.borrow() {
            return;
        }
        tracing::info!(%username, "simulated factory starts again: its connection ended or its machines changed");
        if pause(&mut stop).await {
            return;
        }
    }
}
