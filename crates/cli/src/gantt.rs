//! A schedule as a standalone SVG Gantt chart, for `schedule solve --gantt` and `schedule check
//! --gantt`: one lane per machine, one bar per operation coloured by job, sequence-dependent setups
//! hatched before their operation, unavailable time shaded, the critical operations (those on a
//! longest path to the makespan) outlined, and a red mark where a job ends after its due date.
//! Every bar carries a tooltip. The file opens in any browser; it has no script and no external
//! reference.
//!
//! Pure: a function of the problem and the operations. The operations need not be valid; the
//! drawing skips what it cannot place (an unknown machine or operation) rather than fail, so a
//! broken plan can still be looked at next to `check`'s list of what is wrong with it.

use std::fmt::Write as _;

use scheduler::{Problem, ScheduledOperation};

/// Width of the machine label column, in px.
const LEFT: f64 = 64.0;
/// Width of the time axis, in px.
const PLOT: f64 = 1120.0;
/// Right margin, in px.
const RIGHT: f64 = 16.0;
/// Title and axis above the lanes.
const HEADER: f64 = 44.0;
/// Height of one machine lane.
const LANE: f64 = 22.0;
/// Legend below the lanes.
const FOOTER: f64 = 30.0;
/// Rough width of one label character (11 px sans-serif), to hide labels that do not fit.
const CHAR_PX: f64 = 6.5;
/// At most this many ticks on the time axis.
const MOST_TICKS: i64 = 12;

/// The chart of `operations` (a schedule of `problem`) as one SVG document.
pub fn svg(problem: &Problem, operations: &[ScheduledOperation]) -> String {
    let placed: Vec<&ScheduledOperation> = operations
        .iter()
        .filter(|it| {
            it.machine < problem.machines.len()
                && problem.jobs.get(it.job).is_some_and(|job| it.op < job.operations.len())
                && it.start <= it.end
        })
        .collect();
    let before = machine_predecessors(problem, &placed);
    let setups = setups(problem, &placed, &before);
    let makespan = placed.iter().map(|it| it.end).max().unwrap_or(0);
    let critical = critical(problem, &placed, &before, &setups, makespan);
    let first = placed.iter().zip(&setups).map(|(it, setup)| it.start - setup).min().unwrap_or(0).min(0);
    let axis = Axis { first, span: (makespan - first).max(1) };

    let height = HEADER + LANE * problem.machines.len() as f64 + FOOTER;
    let width = LEFT + PLOT + RIGHT;
    let mut out = String::with_capacity(2048 + placed.len() * 260);
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="system-ui, sans-serif" font-size="11">"#,
        w = n(width),
        h = n(height),
    );
    out.push_str(concat!(
        "<style>",
        ".lane{fill:#f3f4f6}.grid{stroke:#d1d5db;stroke-width:1}.tick{fill:#4b5563}",
        ".op{stroke:#ffffff;stroke-width:.5}.crit{stroke:#111827;stroke-width:1.5}",
        ".label{fill:#111827;pointer-events:none}.late{fill:#c53030}.m{fill:#111827;font-weight:600}",
        "</style>",
        r##"<defs><pattern id="setup" width="5" height="5" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="5" height="5" fill="#ffffff"/><rect width="2" height="5" fill="#6b7280"/></pattern>"##,
        r##"<pattern id="off" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(-45)"><rect width="6" height="6" fill="#e5e7eb"/><rect width="1.5" height="6" fill="#9ca3af"/></pattern></defs>"##,
    ));
    // Title.
    let (makespan_all, tardiness) = scheduler::objectives(problem, operations);
    out.push_str(r#"<text x="8" y="16" font-size="13" font-weight="600">"#);
    escape(&mut out, &problem.name);
    let _ = write!(out, " · makespan {makespan_all}");
    if problem.has_due_dates() {
        let _ = write!(out, " · weighted tardiness {tardiness}");
    }
    let _ = write!(
        out,
        " · {} jobs, {} machines, {} operations</text>",
        problem.jobs.len(),
        problem.machines.len(),
        problem.n_operations()
    );
    // Lane backgrounds and machine labels.
    for m in 0..problem.machines.len() {
        let y = HEADER + LANE * m as f64;
        if m % 2 == 1 {
            let _ = write!(
                out,
                r#"<rect class="lane" x="0" y="{}" width="{}" height="{LANE}"/>"#,
                n(y),
                n(width)
            );
        }
        let _ = write!(out, r#"<text class="m" x="8" y="{}">M{m}</text>"#, n(y + 15.0));
    }
    // The time axis: round ticks and their grid lines.
    let bottom = HEADER + LANE * problem.machines.len() as f64;
    let step = tick_step(axis.span);
    let mut tick = first.div_euclid(step) * step;
    if tick < first {
        tick += step;
    }
    while tick <= first + axis.span {
        let x = axis.x(tick);
        // A label that would run off the right edge ends at its line instead.
        let label = tick.to_string();
        let fits = x + 2.0 + CHAR_PX * label.len() as f64 <= width;
        let (tx, anchor) = if fits { (x + 2.0, "start") } else { (x - 2.0, "end") };
        let _ = write!(
            out,
            r#"<line class="grid" x1="{x}" x2="{x}" y1="{top}" y2="{bottom}"/><text class="tick" x="{tx}" y="{ty}" text-anchor="{anchor}">{label}</text>"#,
            x = n(x),
            top = n(HEADER - 6.0),
            bottom = n(bottom),
            tx = n(tx),
            ty = n(HEADER - 9.0),
        );
        tick += step;
    }
    // Unavailable time, clipped to the drawing.
    for (m, machine) in problem.machines.iter().enumerate() {
        let y = HEADER + LANE * m as f64 + 3.0;
        for iv in &machine.unavailable {
            let (a, b) = (iv.start.max(first), iv.end.min(first + axis.span));
            if a < b {
                let _ = write!(
                    out,
                    r#"<rect fill="url(#off)" x="{}" y="{}" width="{}" height="{}"><title>machine {m} unavailable {}–{}</title></rect>"#,
                    n(axis.x(a)),
                    n(y),
                    n(axis.width(b - a)),
                    n(LANE - 6.0),
                    iv.start,
                    iv.end,
                );
            }
        }
    }
    // Operations, their setups and their tooltips.
    for (index, it) in placed.iter().enumerate() {
        let y = HEADER + LANE * it.machine as f64 + 3.0;
        let setup = setups[index];
        if setup > 0 {
            let _ = write!(
                out,
                r#"<rect fill="url(#setup)" x="{}" y="{}" width="{}" height="{}"/>"#,
                n(axis.x(it.start - setup)),
                n(y),
                n(axis.width(setup)),
                n(LANE - 6.0),
            );
        }
        let class = if critical[index] { "op crit" } else { "op" };
        let _ = write!(
            out,
            r#"<rect class="{class}" fill="{fill}" x="{x}" y="{y}" width="{w}" height="{h}"><title>job {job}, operation {op} · machine {m} · {start}–{end} ({d})"#,
            fill = job_colour(it.job),
            x = n(axis.x(it.start)),
            y = n(y),
            w = n(axis.width(it.end - it.start)),
            h = n(LANE - 6.0),
            job = it.job,
            op = it.op,
            m = it.machine,
            start = it.start,
            end = it.end,
            d = it.end - it.start,
        );
        if setup > 0 {
            let _ = write!(out, " · setup {setup}");
        }
        if critical[index] {
            out.push_str(" · critical");
        }
        out.push_str("</title></rect>");
        let label = it.job.to_string();
        if axis.width(it.end - it.start) > CHAR_PX * label.len() as f64 + 4.0 {
            let _ = write!(
                out,
                r#"<text class="label" x="{}" y="{}">{label}</text>"#,
                n(axis.x(it.start) + 2.0),
                n(y + 12.0),
            );
        }
    }
    // Late jobs: a red mark at the end of the job's last operation.
    let mut last: Vec<Option<&ScheduledOperation>> = vec![None; problem.jobs.len()];
    for &it in &placed {
        if last[it.job].is_none_or(|other| other.end < it.end) {
            last[it.job] = Some(it);
        }
    }
    for (job, (spec, last)) in problem.jobs.iter().zip(last).enumerate() {
        let (Some(due), Some(last)) = (spec.due, last) else { continue };
        if last.end > due {
            let x = axis.x(last.end);
            let y = HEADER + LANE * last.machine as f64 + 3.0;
            let _ = write!(
                out,
                r#"<path class="late" d="M{} {}h6l-6 6z"><title>job {job} due {due}, ends {} ({} late)</title></path>"#,
                n(x - 6.0),
                n(y),
                last.end,
                last.end - due,
            );
        }
    }
    // Legend.
    let y = bottom + 20.0;
    let _ = write!(
        out,
        concat!(
            r#"<g transform="translate(8,{y})">"#,
            r##"<rect class="crit" fill="#cbd5e1" x="0" y="-10" width="18" height="12"/><text x="24" y="0">critical (on a longest path)</text>"##,
            r#"<rect fill="url(#setup)" x="200" y="-10" width="18" height="12"/><text x="224" y="0">setup</text>"#,
            r#"<rect fill="url(#off)" x="290" y="-10" width="18" height="12"/><text x="314" y="0">unavailable</text>"#,
            r#"<path class="late" d="M410 -10h8l-8 8z"/><text x="424" y="0">ends after its due date</text>"#,
            r#"<text x="600" y="0">bars are coloured and labelled by job (from 0)</text></g>"#,
        ),
        y = n(y),
    );
    out.push_str("</svg>\n");
    out
}

/// Maps times to x coordinates.
struct Axis {
    first: i64,
    span: i64,
}

impl Axis {
    fn x(&self, t: i64) -> f64 {
        LEFT + self.width(t - self.first)
    }

    fn width(&self, d: i64) -> f64 {
        d as f64 / self.span as f64 * PLOT
    }
}

/// A round step (1, 2 or 5 times a power of ten) giving at most [`MOST_TICKS`] ticks over `span`.
fn tick_step(span: i64) -> i64 {
    let mut power = 1i64;
    loop {
        for factor in [1, 2, 5] {
            let step = power.saturating_mul(factor);
            if span / step < MOST_TICKS {
                return step;
            }
        }
        power = power.saturating_mul(10);
    }
}

/// For each placed operation, the one before it on its machine (in start order).
fn machine_predecessors(problem: &Problem, placed: &[&ScheduledOperation]) -> Vec<Option<usize>> {
    let mut lanes = vec![Vec::new(); problem.machines.len()];
    for (index, it) in placed.iter().enumerate() {
        lanes[it.machine].push(index);
    }
    let mut before = vec![None; placed.len()];
    for lane in &mut lanes {
        lane.sort_by_key(|&index| (placed[index].start, placed[index].end));
        for pair in lane.windows(2) {
            before[pair[1]] = Some(pair[0]);
        }
    }
    before
}

/// The setup each operation needs after the one before it on its machine (or the machine's
/// initial setup for the first), as the checker counts it.
fn setups(problem: &Problem, placed: &[&ScheduledOperation], before: &[Option<usize>]) -> Vec<i64> {
    let family = |it: &ScheduledOperation| problem.jobs[it.job].operations[it.op].family;
    placed
        .iter()
        .zip(before)
        .map(|(it, before)| {
            let from = before.map(|index| family(placed[index]));
            problem.setup_time(it.machine, from, family(it))
        })
        .collect()
}

/// Whether each placed operation lies on a longest path: it ends at the makespan, or a critical
/// operation starts exactly when it ends (after the setup between them, on a machine).
fn critical(
    problem: &Problem,
    placed: &[&ScheduledOperation],
    before: &[Option<usize>],
    setups: &[i64],
    makespan: i64,
) -> Vec<bool> {
    let mut index_of: Vec<Vec<Option<usize>>> =
        problem.jobs.iter().map(|job| vec![None; job.operations.len()]).collect();
    for (index, it) in placed.iter().enumerate() {
        index_of[it.job][it.op] = Some(index);
    }
    let mut critical = vec![false; placed.len()];
    let mut stack: Vec<usize> = (0..placed.len()).filter(|&index| placed[index].end == makespan).collect();
    while let Some(index) = stack.pop() {
        if std::mem::replace(&mut critical[index], true) {
            continue;
        }
        let it = placed[index];
        let in_job = it.op.checked_sub(1).and_then(|op| index_of[it.job][op]);
        if let Some(p) = in_job.filter(|&p| placed[p].end == it.start) {
            stack.push(p);
        }
        if let Some(p) = before[index].filter(|&p| placed[p].end + setups[index] == it.start) {
            stack.push(p);
        }
    }
    critical
}

/// A job's fill: twelve light colours that tell neighbours apart, repeated (the label tells jobs
/// twelve apart).
fn job_colour(job: usize) -> &'static str {
    const PALETTE: [&str; 12] = [
        "#8ecae6", "#ffb703", "#95d5b2", "#f4a261", "#cdb4db", "#e5989b", "#a8dadc", "#ffd6a5", "#b8c0ff",
        "#90be6d", "#f9c74f", "#d4a373",
    ];
    PALETTE[job % PALETTE.len()]
}

/// A coordinate with at most one decimal.
fn n(value: f64) -> String {
    let tenths = (value * 10.0).round() / 10.0;
    if tenths == tenths.trunc() { format!("{}", tenths as i64) } else { format!("{tenths:.1}") }
}

/// Appends `text` with XML's special characters escaped.
fn escape(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use scheduler::{Alternative, Interval, Job, Machine, Operation, Problem, ScheduledOperation};

    use super::*;

    fn at(job: usize, op: usize, machine: usize, start: i64, end: i64) -> ScheduledOperation {
        ScheduledOperation { job, op, machine, start, end }
    }

    /// The operations drawn, as (job, operation, critical), from the bars' classes and tooltips.
    fn bars(svg: &str) -> Vec<(usize, usize, bool)> {
        svg.split(r#"<rect class="op"#)
            .skip(1)
            .map(|rest| {
                let critical = rest.starts_with(" crit");
                let title = &rest[rest.find("<title>job ").unwrap() + 11..];
                let (job, rest) = title.split_once(", operation ").unwrap();
                let op = rest.split_once(' ').unwrap().0;
                (job.parse().unwrap(), op.parse().unwrap(), critical)
            })
            .collect()
    }

    /// Every element is closed, in order: the file is well-formed as far as its tags go.
    fn assert_balanced(svg: &str) {
        let mut open = Vec::new();
        for tag in svg.split('<').skip(1) {
            let tag = &tag[..tag.find('>').expect("an unclosed tag")];
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(open.pop(), Some(name), "in {svg}");
            } else if !tag.ends_with('/') {
                open.push(tag.split(' ').next().unwrap());
            }
        }
        assert!(open.is_empty(), "{open:?} left open");
    }

    /// One machine, two one-operation jobs of families 0 and 1.
    fn one_machine(machine: Machine) -> Problem {
        let job = |family| {
            let mut op = Operation::new(vec![Alternative { machine: 0, duration: 0 }]);
            op.family = family;
            Job::new(vec![op])
        };
        let mut problem = Problem { name: "one".into(), machines: vec![machine], jobs: vec![job(0), job(1)] };
        problem.jobs[0].operations[0].alternatives[0].duration = 3;
        problem.jobs[1].operations[0].alternatives[0].duration = 2;
        problem
    }

    #[test]
    fn the_critical_operations_are_those_on_a_longest_path() {
        let problem = Problem::job_shop("two", 2, &[vec![(0, 3), (1, 2)], vec![(1, 4), (0, 1)]]);
        // Job 0 waits a unit for machine 1, which job 1 holds until 4: the path is job 1's first
        // operation, then job 0's second. Job 0's first operation and job 1's last have slack.
        let schedule = [at(0, 0, 0, 0, 3), at(0, 1, 1, 4, 6), at(1, 0, 1, 0, 4), at(1, 1, 0, 4, 5)];
        assert!(scheduler::check(&problem, &schedule).is_empty());
        let svg = svg(&problem, &schedule);
        assert_balanced(&svg);
        let mut drawn = bars(&svg);
        drawn.sort();
        assert_eq!(drawn, [(0, 0, false), (0, 1, true), (1, 0, true), (1, 1, false)]);
        assert!(svg.contains("two · makespan 6 · 2 jobs, 2 machines, 4 operations"), "{svg}");
        assert!(!svg.contains("weighted tardiness"), "no due dates, no tardiness in the title");
    }

    #[test]
    fn a_setup_is_hatched_before_its_operation_and_carries_the_path() {
        let machine = Machine { setup: vec![vec![0, 2], vec![2, 0]], ..Machine::default() };
        let problem = one_machine(machine);
        let schedule = [at(0, 0, 0, 0, 3), at(1, 0, 0, 5, 7)];
        assert!(scheduler::check(&problem, &schedule).is_empty());
        let svg = svg(&problem, &schedule);
        assert_balanced(&svg);
        // From 3 to 5 of 0..7.
        let expected = format!(r#"<rect fill="url(#setup)" x="{}" y=""#, n(LEFT + PLOT * 3.0 / 7.0));
        assert!(svg.contains(&expected), "{svg}");
        assert!(svg.contains(&format!(r#"width="{}""#, n(PLOT * 2.0 / 7.0))), "{svg}");
        assert!(svg.contains("5–7 (2) · setup 2 · critical"), "{svg}");
        assert_eq!(bars(&svg), [(0, 0, true), (1, 0, true)], "the setup joins both to the path");
    }

    #[test]
    fn unavailable_time_is_shaded_and_breaks_the_path() {
        let machine = Machine { unavailable: vec![Interval { start: 3, end: 5 }], ..Machine::default() };
        let mut problem = one_machine(machine);
        problem.jobs[1].due = Some(6);
        let schedule = [at(0, 0, 0, 0, 3), at(1, 0, 0, 5, 7)];
        assert!(scheduler::check(&problem, &schedule).is_empty());
        let svg = svg(&problem, &schedule);
        assert_balanced(&svg);
        assert!(svg.contains("<title>machine 0 unavailable 3–5</title>"), "{svg}");
        assert_eq!(bars(&svg), [(0, 0, false), (1, 0, true)], "job 1 waits for the machine, not for job 0");
        assert!(svg.contains("job 1 due 6, ends 7 (1 late)"), "{svg}");
        assert!(svg.contains("· weighted tardiness 1 ·"), "{svg}");
    }

    #[test]
    fn a_broken_schedule_is_drawn_without_what_cannot_be_placed() {
        let mut problem = one_machine(Machine::default());
        problem.name = "a<b & \"c\"".into();
        let schedule = [
            at(0, 0, 0, 0, 3),
            at(0, 0, 0, 1, 4),
            at(1, 0, 9, 0, 2),
            at(5, 0, 0, 0, 2),
            at(1, 3, 0, 0, 2),
            at(1, 0, 0, 6, 4),
        ];
        let svg = svg(&problem, &schedule);
        assert_balanced(&svg);
        assert!(svg.contains("a&lt;b &amp; &quot;c&quot;"), "{svg}");
        assert_eq!(bars(&svg), [(0, 0, false), (0, 0, true)], "the overlap is drawn, the rest skipped");
        for empty in [&[][..], &schedule[2..]] {
            let svg = super::svg(&problem, empty);
            assert_balanced(&svg);
            assert!(bars(&svg).is_empty());
        }
    }

    #[test]
    fn the_last_tick_label_stays_inside_the_drawing() {
        // A makespan of 200,000 puts the tick "200000" at the right edge of the plot.
        let problem = Problem::job_shop("wide", 1, &[vec![(0, 200_000)]]);
        let svg = svg(&problem, &[at(0, 0, 0, 0, 200_000)]);
        let edge = format!(
            r#"x="{}" y="{}" text-anchor="end">200000</text>"#,
            n(LEFT + PLOT - 2.0),
            n(HEADER - 9.0)
        );
        assert!(svg.contains(&edge), "{svg}");
        assert!(svg.contains(r#"text-anchor="start">100000</text>"#), "{svg}");
    }

    #[test]
    fn ticks_are_round_and_few() {
        assert_eq!(tick_step(1), 1);
        assert_eq!(tick_step(11), 1);
        assert_eq!(tick_step(12), 2);
        assert_eq!(tick_step(937), 100);
        assert_eq!(tick_step(262_483), 50_000);
        assert_eq!(tick_step(i64::MAX), 1_000_000_000_000_000_000);
    }
}
