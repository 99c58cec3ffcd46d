//! `microfactory schedule`: solve one job-shop / flexible job-shop file (`solve`) or run the solver over a
//! benchmark folder against its `bounds.csv` (`bench`). File IO, progress display and reporting live here;
//! the solving itself is `scheduler::solve`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand, ValueEnum};
use scheduler::formats::{self, Format};
use scheduler::{Config, Objective, Problem, Solution};

use crate::bench::GeneratedFactory;

/// Job-shop scheduling: solve instance files and benchmark the solver.
#[derive(Debug, Args)]
pub struct ScheduleCommand {
    #[command(subcommand)]
    action: ScheduleAction,
}

#[derive(Debug, Subcommand)]
enum ScheduleAction {
    /// Solve one instance file and print one JSON line with the result.
    Solve(SolveArgs),
    /// Check a schedule (the JSON `solve --output` writes, from any solver) against its instance
    /// with the independent checker, print one JSON line with its objectives and what it breaks,
    /// and optionally draw it.
    Check(CheckArgs),
    /// Solve every instance of a folder listed in its bounds.csv and report gaps to the best known.
    Bench(BenchArgs),
    /// Write a realistic high-mix planning problem (product families, setups, due dates, shift
    /// calendars, lots split to fit shifts) in the JSON format, built the way the platform plans.
    Generate(GenerateArgs),
}

#[derive(Debug, Args)]
struct GenerateArgs {
    #[command(flatten)]
    factory: GeneratedFactory,
    /// Write to this file instead of standard output.
    #[arg(long, value_name = "PROBLEM.json")]
    output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FormatArg {
    Auto,
    Jssp,
    Taillard,
    Fjs,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ObjectiveArg {
    Makespan,
    Tardiness,
    TardinessThenMakespan,
}

#[derive(Debug, Args)]
struct SolveArgs {
    /// Instance file (standard JSSP, Taillard, Brandimarte .fjs or the scheduler's JSON).
    file: PathBuf,
    /// Input format; `auto` looks at the extension and the text.
    #[arg(long, value_enum, default_value = "auto")]
    format: FormatArg,
    /// Which instance of a file that holds several, from 0: Taillard's published files hold ten
    /// (named `<file>#<index>`), the OR-Library's `jobshop1.txt` one per `instance NAME` line
    /// (named by that line).
    #[arg(long, default_value_t = 0)]
    index: usize,
    /// Time limit in seconds, 0 to 1e9.
    #[arg(long, value_name = "SECONDS")]
    time_limit: f64,
    /// Independent parallel searches (the best wins), 1 to 64.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Stop after this many iterations per thread (reproducible runs).
    #[arg(long)]
    iterations: Option<u64>,
    /// Objective to minimise.
    #[arg(long, value_enum, default_value = "makespan")]
    objective: ObjectiveArg,
    /// Write the schedule as JSON to this file.
    #[arg(long, value_name = "PLAN.json")]
    output: Option<PathBuf>,
    /// Draw the schedule as an SVG Gantt chart in this file (opens in any browser).
    #[arg(long, value_name = "PLAN.svg")]
    gantt: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// Instance file (standard JSSP, Taillard, Brandimarte .fjs or the scheduler's JSON).
    file: PathBuf,
    /// The schedule: `{"operations":[{"job":j,"op":k,"machine":m,"start":s,"end":e},...]}` with
    /// 0-based `job`, `op` (position within the job) and `machine`, as `solve --output` writes it.
    plan: PathBuf,
    /// Input format of the instance file; `auto` looks at the extension and the text.
    #[arg(long, value_enum, default_value = "auto")]
    format: FormatArg,
    /// Which instance of a file that holds several, from 0 (as for `solve`).
    #[arg(long, default_value_t = 0)]
    index: usize,
    /// Draw the schedule as an SVG Gantt chart in this file, also when it breaks rules.
    #[arg(long, value_name = "PLAN.svg")]
    gantt: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct BenchArgs {
    /// Folder with `bounds.csv` and `<instance>.txt` / `<instance>.fjs` files. bounds.csv has a
    /// header naming `instance` and `lower_bound` and/or `upper_bound` (other columns ignored);
    /// gaps are to the upper bound, or to the lower bound where the upper one is left empty.
    dir: PathBuf,
    /// Time limit per run in seconds, 0 to 1e9.
    #[arg(long, value_name = "SECONDS")]
    time_limit: f64,
    /// Runs per instance, with seeds 0..N (1 or more).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    seeds: u64,
    /// Only instances whose name matches this glob (`*` and `?`; several globs separated by commas).
    #[arg(long)]
    filter: Option<String>,
    /// Threads per run, 1 to 64.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Runs side by side (each with `--threads` threads), 1 to 64. Runs then share memory bandwidth and caches,
    /// so keep `jobs × threads` at or below the number of cores and say so when quoting the figures.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Write the per-instance table as CSV to this file.
    #[arg(long, value_name = "OUT.csv")]
    csv: Option<PathBuf>,
}

/// Runs a `schedule` subcommand.
pub fn run(command: ScheduleCommand) -> anyhow::Result<()> {
    match command.action {
        ScheduleAction::Solve(args) => solve_file(&args),
        ScheduleAction::Check(args) => check_file(&args),
        ScheduleAction::Bench(args) => bench(&args),
        ScheduleAction::Generate(args) => generate(&args),
    }
}

/// Builds the generated factory in a throw-away store and writes its planning problem.
fn generate(args: &GenerateArgs) -> anyhow::Result<()> {
    let factory = &args.factory;
    let store = factory.store()?;
    let built =
        server::planning::build(&store, GeneratedFactory::NOW, &server::planning::Options::default())?;
    let mut problem = built.problem;
    problem.name = format!("generated-{}x{}-seed{}", factory.orders, factory.machines, factory.seed);
    let json = formats::to_json(&problem);
    match &args.output {
        Some(path) => std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?,
        None => println!("{json}"),
    }
    Ok(())
}

/// Reads the instance at `index` of the file (0 for files that hold one).
fn load(path: &Path, format: FormatArg, index: usize) -> anyhow::Result<Problem> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("instance");
    let format = match format {
        FormatArg::Auto => formats::detect(path.file_name().and_then(|s| s.to_str()), &text)?,
        FormatArg::Jssp => Format::Jssp,
        FormatArg::Taillard => Format::Taillard,
        FormatArg::Fjs => Format::Fjs,
        FormatArg::Json => Format::Json,
    };
    let name = if formats::count(&text, format) > 1 { format!("{stem}#{index}") } else { stem.to_string() };
    formats::parse_instance(&text, format, &name, index)
        .with_context(|| format!("parsing {}", path.display()))
}

/// Longest `--time-limit` in seconds (about 31 years): longer limits mean "no limit" in practice,
/// and this keeps clock readings plus the limit far from overflowing.
const MAX_TIME_LIMIT_S: f64 = 1e9;

fn config(
    time_limit: f64,
    threads: usize,
    seed: u64,
    iterations: Option<u64>,
    objective: Objective,
) -> anyhow::Result<Config> {
    // A range never contains NaN or infinity.
    if !(0.0..=MAX_TIME_LIMIT_S).contains(&time_limit) {
        bail!("--time-limit must be a number of seconds from 0 to {MAX_TIME_LIMIT_S:e}, found {time_limit}");
    }
    if !(1..=scheduler::MAX_THREADS).contains(&threads) {
        bail!("--threads must be from 1 to {}, found {threads}", scheduler::MAX_THREADS);
    }
    Ok(Config {
        objective,
        seed,
        threads,
        time_limit: Some(Duration::from_secs_f64(time_limit)),
        iteration_limit: iterations,
        clock: None,
        initial: None,
        on_improvement: None,
    })
}

fn solve_file(args: &SolveArgs) -> anyhow::Result<()> {
    let problem = load(&args.file, args.format, args.index)?;
    let objective = match args.objective {
        ObjectiveArg::Makespan => Objective::Makespan,
        ObjectiveArg::Tardiness => Objective::WeightedTardiness,
        ObjectiveArg::TardinessThenMakespan => Objective::TardinessThenMakespan,
    };
    let mut config = config(args.time_limit, args.threads, args.seed, args.iterations, objective)?;
    // Opened before the search, so a bad path fails at once, not after the time limit.
    let output = args.output.as_deref().map(create).transpose()?;
    let gantt = args.gantt.as_deref().map(create).transpose()?;
    let watch = Watch::start(&problem.name, args.time_limit, objective);
    if let Some(watch) = &watch {
        config.on_improvement = Some(watch.hook());
    }
    let started = Instant::now();
    let solution = scheduler::solve(&problem, &config);
    let wall = started.elapsed();
    if let Some(watch) = watch {
        watch.finish();
    }
    let violations = scheduler::check(&problem, &solution.operations);
    let line = serde_json::json!({
        "instance": problem.name,
        "makespan": solution.makespan,
        "weighted_tardiness": solution.weighted_tardiness,
        "valid": violations.is_empty() && solution.feasible,
        "time_to_best_s": round3(solution.time_to_best.as_secs_f64()),
        "wall_s": round3(wall.as_secs_f64()),
        "seed": args.seed,
        "threads": config.threads,
        "iterations": solution.iterations,
        "jobs": problem.jobs.len(),
        "machines": problem.machines.len(),
        "operations": problem.n_operations(),
    });
    println!("{line}");
    if let Some(output) = output {
        fill(output, plan_json(&problem, &solution).to_string().as_bytes())?;
    }
    if let Some(gantt) = gantt {
        fill(gantt, crate::gantt::svg(&problem, &solution.operations).as_bytes())?;
    }
    if !violations.is_empty() {
        bail!("the schedule breaks {}", breaks(&violations));
    }
    Ok(())
}

/// A progress bar on standard error while `solve` searches, when that is a terminal: the time
/// used of the limit and the best schedule so far (over all threads).
struct Watch {
    shared: Arc<WatchShared>,
    ticker: std::thread::JoinHandle<()>,
}

struct WatchShared {
    bar: indicatif::ProgressBar,
    objective: Objective,
    best: Mutex<Option<scheduler::Improvement>>,
    done: AtomicBool,
}

impl Watch {
    /// Redraws this often.
    const TICK: Duration = Duration::from_millis(100);

    /// A started display, or `None` when standard error is not a terminal or the search is
    /// short.
    fn start(name: &str, time_limit: f64, objective: Objective) -> Option<Watch> {
        let limit_ms = (time_limit * 1000.0) as u64;
        if limit_ms < 1000 {
            return None;
        }
        let bar =
            indicatif::ProgressBar::with_draw_target(Some(limit_ms), indicatif::ProgressDrawTarget::stderr());
        if bar.is_hidden() {
            return None;
        }
        bar.set_style(
            indicatif::ProgressStyle::with_template("{prefix} {bar:30} {elapsed} of {len_s}  {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .with_key("len_s", |state: &indicatif::ProgressState, out: &mut dyn std::fmt::Write| {
                    let seconds = state.len().unwrap_or(0) as f64 / 1000.0;
                    let _ = if seconds.fract() == 0.0 {
                        write!(out, "{seconds}s")
                    } else {
                        write!(out, "{seconds:.1}s")
                    };
                }),
        );
        bar.set_prefix(name.to_owned());
        let shared =
            Arc::new(WatchShared { bar, objective, best: Mutex::new(None), done: AtomicBool::new(false) });
        let ticking = Arc::clone(&shared);
        let started = Instant::now();
        let ticker = std::thread::spawn(move || {
            while !ticking.done.load(Ordering::Relaxed) {
                ticking.bar.set_position(started.elapsed().as_millis() as u64);
                let best = *ticking.best.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(best) = best {
                    ticking.bar.set_message(describe(&best, ticking.objective));
                }
                std::thread::sleep(Self::TICK);
            }
        });
        Some(Watch { shared, ticker })
    }

    /// The solver's hook: keeps the best report of any thread.
    fn hook(&self) -> Arc<dyn Fn(scheduler::Improvement) + Send + Sync> {
        let shared = Arc::clone(&self.shared);
        Arc::new(move |found: scheduler::Improvement| {
            let key = |it: &scheduler::Improvement| match shared.objective {
                Objective::Makespan => (!it.feasible, it.makespan, 0),
                _ => (!it.feasible, it.weighted_tardiness, it.makespan),
            };
            let mut best = shared.best.lock().unwrap_or_else(PoisonError::into_inner);
            if best.as_ref().is_none_or(|best| key(&found) < key(best)) {
                *best = Some(found);
            }
        })
    }

    /// Stops the display and clears it, so only the result line remains.
    fn finish(self) {
        self.shared.done.store(true, Ordering::Relaxed);
        let _ = self.ticker.join();
        self.shared.bar.finish_and_clear();
    }
}

/// The best schedule so far, in the objective's terms.
fn describe(best: &scheduler::Improvement, objective: Objective) -> String {
    let found = format!("found after {:.1} s", best.elapsed.as_secs_f64());
    let unfixed = if best.feasible { "" } else { " (a fixed start still broken)" };
    match objective {
        Objective::Makespan => format!("best makespan {} {found}{unfixed}", best.makespan),
        _ => format!(
            "best weighted tardiness {}, makespan {} {found}{unfixed}",
            best.weighted_tardiness, best.makespan
        ),
    }
}

/// How many rules a schedule breaks, with the first few.
fn breaks(violations: &[scheduler::Violation]) -> String {
    let listed: Vec<String> = violations.iter().take(5).map(ToString::to_string).collect();
    format!("{} rule(s), e.g. {}", violations.len(), listed.join("; "))
}

/// Checks a schedule written by any solver against its instance.
fn check_file(args: &CheckArgs) -> anyhow::Result<()> {
    let problem = load(&args.file, args.format, args.index)?;
    let text =
        std::fs::read_to_string(&args.plan).with_context(|| format!("reading {}", args.plan.display()))?;
    let (name, operations) =
        read_plan(&text).with_context(|| format!("reading the schedule {}", args.plan.display()))?;
    if let Some(name) = name.filter(|name| *name != problem.name) {
        eprintln!("note: the schedule names instance {name:?}, the file holds {:?}", problem.name);
    }
    let violations = scheduler::check(&problem, &operations);
    let (makespan, tardiness) = scheduler::objectives(&problem, &operations);
    let line = serde_json::json!({
        "instance": problem.name,
        "makespan": makespan,
        "weighted_tardiness": tardiness,
        "valid": violations.is_empty(),
        "violations": violations.len(),
        "operations": operations.len(),
    });
    println!("{line}");
    if let Some(path) = &args.gantt {
        std::fs::write(path, crate::gantt::svg(&problem, &operations))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if !violations.is_empty() {
        bail!("the schedule breaks {}", breaks(&violations));
    }
    Ok(())
}

/// One entry of a schedule file: what `solve --output` writes and `check` reads.
#[derive(serde::Serialize, serde::Deserialize)]
struct PlanEntry {
    job: usize,
    op: usize,
    machine: usize,
    start: i64,
    end: i64,
}

impl From<&scheduler::ScheduledOperation> for PlanEntry {
    fn from(it: &scheduler::ScheduledOperation) -> PlanEntry {
        PlanEntry { job: it.job, op: it.op, machine: it.machine, start: it.start, end: it.end }
    }
}

impl From<PlanEntry> for scheduler::ScheduledOperation {
    fn from(it: PlanEntry) -> scheduler::ScheduledOperation {
        scheduler::ScheduledOperation {
            job: it.job,
            op: it.op,
            machine: it.machine,
            start: it.start,
            end: it.end,
        }
    }
}

#[derive(serde::Deserialize)]
struct PlanFile {
    instance: Option<String>,
    operations: Vec<serde_json::Value>,
}

/// Reads a schedule file: the instance it names, if any, and its operations. Each entry must have
/// the five fields with times within the scheduler's range; an entry that does not is reported by
/// its position. Entries naming jobs, operations or machines the instance lacks are left to the
/// checker, which reports them as broken rules.
fn read_plan(text: &str) -> anyhow::Result<(Option<String>, Vec<scheduler::ScheduledOperation>)> {
    let file: PlanFile = serde_json::from_str(text).map_err(|err| {
        anyhow::anyhow!(
            "expected {{\"operations\": [{{\"job\", \"op\", \"machine\", \"start\", \"end\"}}, ...]}}: {err}"
        )
    })?;
    let mut operations = Vec::with_capacity(file.operations.len());
    for (index, value) in file.operations.into_iter().enumerate() {
        let entry: PlanEntry =
            serde_json::from_value(value).with_context(|| format!("operations[{index}]"))?;
        for (what, time) in [("start", entry.start), ("end", entry.end)] {
            if time.abs() > scheduler::MAX_TIME {
                bail!("operations[{index}]: {what} {time} is beyond ±{}", scheduler::MAX_TIME);
            }
        }
        operations.push(entry.into());
    }
    Ok((file.instance, operations))
}

fn plan_json(problem: &Problem, solution: &Solution) -> serde_json::Value {
    let operations: Vec<PlanEntry> = solution.operations.iter().map(PlanEntry::from).collect();
    serde_json::json!({"instance": problem.name, "makespan": solution.makespan, "operations": operations})
}

/// Opens (or creates) the file at `path` for writing later, keeping the path for errors. What it
/// holds stays until [`fill`] replaces it: an interrupted run leaves an earlier result whole.
fn create(path: &Path) -> anyhow::Result<(&Path, std::fs::File)> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok((path, file))
}

/// Replaces what the file [`create`] opened holds with `contents`.
fn fill((path, mut file): (&Path, std::fs::File), contents: &[u8]) -> anyhow::Result<()> {
    file.set_len(0)
        .and_then(|()| file.write_all(contents))
        .with_context(|| format!("writing {}", path.display()))
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// One row of bounds.csv. Either bound may be unknown (an empty field), not both.
#[derive(Debug)]
struct Bound {
    instance: String,
    lower: Option<i64>,
    upper: Option<i64>,
}

impl Bound {
    /// What gaps are measured against: the best known makespan, or the lower bound where none is
    /// known (the gap is then an upper limit of the true one).
    fn reference(&self) -> i64 {
        self.upper.or(self.lower).unwrap_or(0)
    }
}

/// A bound for the table and the CSV: the number, or `-` / empty when unknown.
fn show(bound: Option<i64>, missing: &str) -> String {
    bound.map_or_else(|| missing.to_owned(), |value| value.to_string())
}

/// One solver run of a bench.
struct Run {
    seed: u64,
    makespan: i64,
    time_to_best: f64,
    iterations: u64,
    /// Feasible and passed the independent checker.
    valid: bool,
}

/// Results of all runs on one instance, in seed order once complete.
struct InstanceResult {
    bound: Bound,
    runs: Vec<Run>,
}

impl InstanceResult {
    fn new(bound: Bound) -> Self {
        Self { bound, runs: Vec::new() }
    }

    fn best(&self) -> i64 {
        self.runs.iter().map(|run| run.makespan).min().unwrap_or(0)
    }

    fn mean(&self) -> f64 {
        self.runs.iter().map(|run| run.makespan).sum::<i64>() as f64 / self.runs.len().max(1) as f64
    }

    fn valid(&self) -> bool {
        self.runs.iter().all(|run| run.valid)
    }

    fn mean_time_to_best(&self) -> f64 {
        self.runs.iter().map(|run| run.time_to_best).sum::<f64>() / self.runs.len().max(1) as f64
    }

    fn mean_gap_pct(&self) -> f64 {
        let reference = self.bound.reference().max(1) as f64;
        100.0 * (self.mean() - reference) / reference
    }

    fn hits(&self) -> usize {
        self.runs.iter().filter(|run| run.makespan <= self.bound.reference()).count()
    }
}

fn read_bounds(dir: &Path) -> anyhow::Result<Vec<Bound>> {
    let path = dir.join("bounds.csv");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    parse_bounds(&text).with_context(|| format!("{} is not a valid bounds file", path.display()))
}

/// The rows of a bounds.csv: a header naming at least `instance` and one of `lower_bound` and
/// `upper_bound` (other columns, in any order, are ignored), then one row per instance.
fn parse_bounds(text: &str) -> anyhow::Result<Vec<Bound>> {
    let mut lines = text.lines().enumerate().filter(|(_, line)| !line.trim().is_empty());
    let Some((header_idx, header)) = lines.next() else { bail!("empty file: expected a header line") };
    let columns: Vec<&str> = header.split(',').map(str::trim).collect();
    let column = |name: &str| columns.iter().position(|&c| c == name);
    let (Some(instance_col), lower_col, upper_col) =
        (column("instance"), column("lower_bound"), column("upper_bound"))
    else {
        bail!("line {}: expected a header with an `instance` column, found `{header}`", header_idx + 1);
    };
    if lower_col.is_none() && upper_col.is_none() {
        bail!(
            "line {}: expected a `lower_bound` or an `upper_bound` column, found `{header}`",
            header_idx + 1
        );
    }
    let mut bounds = Vec::new();
    for (idx, line) in lines {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let number = |col: Option<usize>, name: &str| -> anyhow::Result<Option<i64>> {
            match col.and_then(|c| fields.get(c)).copied().unwrap_or("") {
                "" => Ok(None),
                value => match value.parse::<i64>() {
                    Ok(v) if v >= 0 => Ok(Some(v)),
                    _ => bail!("line {}: {name}: expected a whole number ≥ 0, found `{value}`", idx + 1),
                },
            }
        };
        let instance = fields.get(instance_col).copied().unwrap_or("");
        if instance.is_empty() {
            bail!("line {}: the instance name is empty", idx + 1);
        }
        let lower = number(lower_col, "lower_bound")?;
        let upper = number(upper_col, "upper_bound")?;
        if lower.is_none() && upper.is_none() {
            bail!("line {}: {instance} has neither a lower_bound nor an upper_bound", idx + 1);
        }
        if let (Some(lower), Some(upper)) = (lower, upper)
            && lower > upper
        {
            bail!("line {}: {instance}: lower_bound {lower} is above upper_bound {upper}", idx + 1);
        }
        bounds.push(Bound { instance: instance.to_owned(), lower, upper });
    }
    Ok(bounds)
}

/// Glob with `*` (any run) and `?` (one character).
fn glob_match(pattern: &str, name: &str) -> bool {
    fn rec(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => rec(&p[1..], n) || (!n.is_empty() && rec(p, &n[1..])),
            (Some(b'?'), Some(_)) => rec(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => rec(&p[1..], &n[1..]),
            _ => false,
        }
    }
    rec(pattern.as_bytes(), name.as_bytes())
}

/// Benchmark family of an instance: Hurink `_edata`/`_rdata` suffixes, Taillard by tens (`ta01-10`),
/// otherwise the leading letters (`la`, `mk`, `behnke`, `swv`, ...).
fn family(name: &str) -> String {
    for suffix in ["edata", "rdata", "vdata"] {
        if name.ends_with(&format!("_{suffix}")) {
            return suffix.to_owned();
        }
    }
    let letters: String = name.chars().take_while(char::is_ascii_alphabetic).collect();
    if letters == "ta"
        && let Ok(number) = name[2..].parse::<u32>()
    {
        let low = (number.saturating_sub(1)) / 10 * 10 + 1;
        return format!("ta{low:02}-{:02}", low + 9);
    }
    letters
}

fn bench(args: &BenchArgs) -> anyhow::Result<()> {
    let mut bounds = read_bounds(&args.dir)?;
    if let Some(pattern) = &args.filter {
        bounds.retain(|b| pattern.split(',').any(|glob| glob_match(glob.trim(), &b.instance)));
    }
    if bounds.is_empty() {
        bail!("no instance of {} matches", args.dir.display());
    }
    if !(1..=scheduler::MAX_THREADS).contains(&args.jobs) {
        bail!("--jobs must be from 1 to {}, found {}", scheduler::MAX_THREADS, args.jobs);
    }
    let seeds = args.seeds;
    // Read every file first, so a missing or malformed one stops the bench before any run.
    let mut problems = Vec::with_capacity(bounds.len());
    for bound in &bounds {
        let file = ["txt", "fjs", "json"]
            .iter()
            .map(|ext| args.dir.join(format!("{}.{ext}", bound.instance)))
            .find(|p| p.exists())
            .with_context(|| format!("no file for instance {} in {}", bound.instance, args.dir.display()))?;
        problems.push(load(&file, FormatArg::Auto, 0)?);
    }
    let configs = (0..seeds)
        .map(|seed| config(args.time_limit, args.threads, seed, None, Objective::Makespan))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // Opened before the runs, so a bad path fails at once, not after them.
    let csv_file = args.csv.as_deref().map(create).transpose()?;
    let mut results: Vec<InstanceResult> = bounds.into_iter().map(InstanceResult::new).collect();
    let progress = indicatif::ProgressBar::with_draw_target(
        Some(results.len() as u64 * seeds),
        indicatif::ProgressDrawTarget::stderr(),
    );
    // Run k is instance k / seeds with seed k % seeds: handed out in instance order, seeds of one
    // instance next to each other. Each finished run comes back over a channel and an instance's
    // line is printed when its last seed is in.
    let total = problems.len() as u64 * seeds;
    let next = std::sync::atomic::AtomicU64::new(0);
    let (sender, receiver) = std::sync::mpsc::channel::<(usize, Run)>();
    std::thread::scope(|scope| {
        for _ in 0..(args.jobs as u64).min(total) {
            let sender = sender.clone();
            let (next, problems, configs) = (&next, &problems, &configs);
            scope.spawn(move || {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= total {
                        break;
                    }
                    let (instance, seed) = ((k / seeds) as usize, k % seeds);
                    let problem = &problems[instance];
                    let solution = scheduler::solve(problem, &configs[seed as usize]);
                    let run = Run {
                        seed,
                        makespan: solution.makespan,
                        time_to_best: solution.time_to_best.as_secs_f64(),
                        iterations: solution.iterations,
                        valid: solution.feasible
                            && scheduler::check(problem, &solution.operations).is_empty(),
                    };
                    if sender.send((instance, run)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(sender);
        for (instance, run) in receiver {
            let result = &mut results[instance];
            result.runs.push(run);
            progress.set_message(result.bound.instance.clone());
            progress.inc(1);
            if result.runs.len() as u64 == seeds {
                result.runs.sort_by_key(|run| run.seed);
                let line = format!(
                    "{:<16} best {:>6} mean {:>9.1} ub {:>6} gap {:>6.2}%",
                    result.bound.instance,
                    result.best(),
                    result.mean(),
                    show(result.bound.upper, "-"),
                    result.mean_gap_pct()
                );
                // Without a terminal the bar is hidden and swallows lines; a log still wants them.
                if progress.is_hidden() {
                    eprintln!("{line}");
                } else {
                    progress.println(line);
                }
            }
        }
    });
    progress.finish_and_clear();
    print!("{}", table(&results, seeds));
    if let Some(csv_file) = csv_file {
        fill(csv_file, csv(&results).as_bytes())?;
    }
    if results.iter().any(|r| !r.valid()) {
        bail!("some schedules failed the feasibility check (valid = no)");
    }
    Ok(())
}

fn table(results: &[InstanceResult], seeds: u64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<16} {:>6} {:>9} {:>6} {:>6} {:>8} {:>5} {:>5} {:>7}",
        "instance", "best", "mean", "lb", "ub", "gap%", "hits", "valid", "ttb_s"
    );
    for r in results {
        let _ = writeln!(
            out,
            "{:<16} {:>6} {:>9.1} {:>6} {:>6} {:>8.2} {:>2}/{:<2} {:>5} {:>7.2}",
            r.bound.instance,
            r.best(),
            r.mean(),
            show(r.bound.lower, "-"),
            show(r.bound.upper, "-"),
            r.mean_gap_pct(),
            r.hits(),
            seeds,
            if r.valid() { "yes" } else { "NO" },
            r.mean_time_to_best(),
        );
    }
    let mut families: BTreeMap<String, Vec<&InstanceResult>> = BTreeMap::new();
    for r in results {
        families.entry(family(&r.bound.instance)).or_default().push(r);
    }
    let _ = writeln!(out, "\n{:<16} {:>9} {:>10} {:>8}", "family", "instances", "mean gap%", "valid");
    for (name, members) in &families {
        let gap = members.iter().map(|r| r.mean_gap_pct()).sum::<f64>() / members.len() as f64;
        let valid = members.iter().all(|r| r.valid());
        let _ = writeln!(
            out,
            "{name:<16} {:>9} {gap:>10.2} {:>8}",
            members.len(),
            if valid { "yes" } else { "NO" }
        );
    }
    let all = results.iter().map(InstanceResult::mean_gap_pct).sum::<f64>() / results.len().max(1) as f64;
    let _ = writeln!(out, "{:<16} {:>9} {all:>10.2}", "all", results.len());
    out
}

fn csv(results: &[InstanceResult]) -> String {
    let mut out = String::from(
        "instance,family,lower_bound,upper_bound,runs,best,mean,mean_gap_pct,hits,valid,mean_time_to_best_s,mean_iterations,makespans\n",
    );
    for r in results {
        let runs = r.runs.len().max(1) as u64;
        let makespans: Vec<String> = r.runs.iter().map(|run| run.makespan.to_string()).collect();
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{:.2},{:.3},{},{},{:.3},{},{}",
            r.bound.instance,
            family(&r.bound.instance),
            show(r.bound.lower, ""),
            show(r.bound.upper, ""),
            r.runs.len(),
            r.best(),
            r.mean(),
            r.mean_gap_pct(),
            r.hits(),
            r.valid(),
            r.mean_time_to_best(),
            r.runs.iter().map(|run| run.iterations).sum::<u64>() / runs,
            makespans.join(" "),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_read_by_column_name_and_may_be_unknown() {
        let text = "instance,jobs,machines,lower_bound,upper_bound,optimal,source\n\
                    ft06,6,6,55,55,true,a (lb: x; ub: y)\n\
                    \n\
                    open1,10,5,90,,false,b\n";
        let bounds = parse_bounds(text).unwrap();
        assert_eq!(bounds.len(), 2);
        assert_eq!(
            (bounds[0].instance.as_str(), bounds[0].lower, bounds[0].upper),
            ("ft06", Some(55), Some(55))
        );
        assert_eq!((bounds[1].lower, bounds[1].upper, bounds[1].reference()), (Some(90), None, 90));
        // Columns in another order, and only one of the bounds.
        let bounds = parse_bounds("upper_bound,instance\n412,behnke16\n").unwrap();
        assert_eq!(
            (bounds[0].instance.as_str(), bounds[0].lower, bounds[0].reference()),
            ("behnke16", None, 412)
        );
        // Gaps and hits go to the reference.
        let mut result = InstanceResult::new(Bound { instance: "x".into(), lower: Some(100), upper: None });
        for (seed, makespan) in [(0, 100), (1, 110)] {
            result.runs.push(Run { seed, makespan, time_to_best: 0.0, iterations: 1, valid: true });
        }
        assert!((result.mean_gap_pct() - 5.0).abs() < 1e-9);
        assert_eq!(result.hits(), 1);
        assert!(csv(&[result]).contains("\nx,x,100,,2,100,105.00,5.000,1,true,"));
    }

    #[test]
    fn malformed_bounds_name_the_line_and_the_problem() {
        let error = |text: &str| format!("{:#}", parse_bounds(text).unwrap_err());
        assert!(error("").contains("header"));
        assert!(
            error("\nname,upper_bound\nft06,55\n")
                .contains("line 2: expected a header with an `instance` column")
        );
        assert!(error("instance,jobs\nft06,6\n").contains("`lower_bound` or an `upper_bound`"));
        assert!(
            error("instance,upper_bound\nft06,55\nft10,abc\n")
                .contains("line 3: upper_bound: expected a whole number")
        );
        assert!(error("instance,lower_bound,upper_bound\nft06,,\n").contains("line 2: ft06 has neither"));
        assert!(
            error("instance,lower_bound,upper_bound\nft06,60,55\n")
                .contains("lower_bound 60 is above upper_bound 55")
        );
        assert!(error("instance,upper_bound\n,55\n").contains("line 2: the instance name is empty"));
    }

    #[test]
    fn solver_settings_out_of_range_are_clear_errors() {
        let error = |time_limit: f64, threads: usize| {
            config(time_limit, threads, 0, None, Objective::Makespan).unwrap_err().to_string()
        };
        assert!(error(1e30, 1).contains("--time-limit must be a number of seconds from 0 to 1e9, found"));
        assert!(error(f64::NAN, 1).contains("--time-limit"));
        assert!(error(-1.0, 1).contains("--time-limit"));
        assert_eq!(error(1.0, 0), "--threads must be from 1 to 64, found 0");
        assert_eq!(error(1.0, 100_000), "--threads must be from 1 to 64, found 100000");
        let fine = config(1e9, 64, 0, None, Objective::Makespan).unwrap();
        assert_eq!((fine.threads, fine.time_limit), (64, Some(Duration::from_secs(1_000_000_000))));
    }

    #[test]
    fn families_group_benchmarks() {
        assert_eq!(family("ta07"), "ta01-10");
        assert_eq!(family("ta10"), "ta01-10");
        assert_eq!(family("ta41"), "ta41-50");
        assert_eq!(family("la21_rdata"), "rdata");
        assert_eq!(family("mk10"), "mk");
        assert_eq!(family("behnke12"), "behnke");
        assert_eq!(family("setb4c9"), "setb");
    }

    #[test]
    fn globs_match() {
        assert!(glob_match("ta*", "ta01"));
        assert!(glob_match("mk0?", "mk07"));
        assert!(!glob_match("mk0?", "mk10"));
        assert!(glob_match("*_edata", "la01_edata"));
    }
}
