//! Reader tests: each format on a tiny instance, detection, error lines, and garbage never panicking.

use proptest::prelude::*;

use super::*;

const STANDARD: &str = "# comment\n2 2\n0 3 1 2\n1 4\t0 1\n";
const TAILLARD: &str = "Nb of jobs, Nb of Machines, Time seed, Machine seed, Upper bound, Lower bound\n\
    2 2 1 1 7 7\nTimes\n3 2\n4 1\nMachines\n1 2\n2 1\n";
const FJS: &str = "2 3 1.5\n2 2 1 3 2 5 1 3 2\n1 1 2 4\n";

#[test]
fn reads_standard_and_taillard_alike() {
    let a = parse(STANDARD, Format::Jssp, "a").unwrap();
    let b = parse(TAILLARD, Format::Taillard, "a").unwrap();
    assert_eq!(a, b);
    assert_eq!(a.jobs[1].operations[0].alternatives[0], crate::Alternative { machine: 1, duration: 4 });
}

#[test]
fn reads_any_instance_of_a_multi_instance_taillard_file() {
    let second = "Nb of jobs, Nb of Machines, Time seed, Machine seed, Upper bound, Lower bound\n\
        2 3 1 1 9 9\nTimes\n1 2 3\n4 5 6\nMachines\n3 2 1\n1 2 3\n";
    let both = format!("{TAILLARD}{second}");
    assert_eq!(count(&both, Format::Taillard), 2);
    assert_eq!(count(STANDARD, Format::Jssp), 1);
    assert_eq!(parse(&both, Format::Taillard, "t").unwrap(), parse(TAILLARD, Format::Taillard, "t").unwrap());
    let p = parse_instance(&both, Format::Taillard, "t", 1).unwrap();
    assert_eq!(p.machines.len(), 3);
    assert_eq!(p.jobs[0].operations[0].alternatives[0], crate::Alternative { machine: 2, duration: 1 });
    let err = parse_instance(&both, Format::Taillard, "t", 2).unwrap_err();
    assert_eq!(err.to_string(), "line 16: expected instance 2 (from 0), but the file holds 2");
    let err = parse_instance(STANDARD, Format::Jssp, "s", 1).unwrap_err();
    assert_eq!(err.to_string(), "line 4: expected instance 1 (from 0), but the file holds 1");
    let err = parse_instance(FJS, Format::Fjs, "f", 1).unwrap_err();
    assert_eq!(err.to_string(), "line 1: expected instance 1 (from 0), but fjs files hold one");
}

#[test]
fn reads_any_instance_of_the_or_library_collection() {
    // The layout of `jobshop1.txt`: a preamble, then per instance separators, an `instance NAME`
    // line, a description and the numbers.
    let text = " This file contains a set of job shop instances.\n\
        +++++++++++++++++++++++++++++\n\n instance tiny\n\n +++++++++++++++++++++++++++++\n\
        A 2x2 instance (made up, 2 machines)\n 2 2\n 0 3 1 2\n 1 4 0 1\n\
        +++++++++++++++++++++++++++++\n\n instance next\n\n +++++++++++++++++++++++++++++\n\
        Another 1x2 one\n 1 2\n 1 5 0 6\n +++++++++++++++++++++++++++++\n";
    assert_eq!(detect(None, text).unwrap(), Format::Jssp);
    assert_eq!(count(text, Format::Jssp), 2);
    assert_eq!(count(STANDARD, Format::Jssp), 1);
    let tiny = parse(text, Format::Jssp, "file").unwrap();
    assert_eq!(tiny.name, "tiny");
    assert_eq!(tiny.jobs, parse(STANDARD, Format::Jssp, "a").unwrap().jobs);
    let next = parse_instance(text, Format::Jssp, "file", 1).unwrap();
    assert_eq!(next.name, "next");
    assert_eq!(next.jobs[0].operations[1].alternatives[0], crate::Alternative { machine: 0, duration: 6 });
    let err = parse_instance(text, Format::Jssp, "file", 2).unwrap_err();
    assert_eq!(err.to_string(), "line 19: expected instance 2 (from 0), but the file holds 2");
    let err = parse("instance empty\n+++\n", Format::Jssp, "file").unwrap_err();
    assert_eq!(err.to_string(), "line 1: expected a `jobs machines` line for instance empty");
}

#[test]
fn reads_fjs_with_zero_based_machines() {
    let p = parse(FJS, Format::Fjs, "f").unwrap();
    assert_eq!(p.machines.len(), 3);
    assert_eq!(p.jobs.len(), 2);
    let alts = &p.jobs[0].operations[0].alternatives;
    assert_eq!((alts[0].machine, alts[0].duration, alts[1].machine, alts[1].duration), (0, 3, 1, 5));
    assert_eq!(p.jobs[1].operations[0].alternatives[0].machine, 1);
}

#[test]
fn json_example_round_trips() {
    let p = parse(JSON_EXAMPLE, Format::Json, "x").unwrap();
    assert_eq!(p.name, "demo");
    assert_eq!(p.jobs[0].operations[1].fixed, Some(crate::FixedStart { machine: 1, start: 30 }));
    assert_eq!(p.machines[0].unavailable[0], crate::Interval { start: 100, end: 120 });
    let again = parse(&to_json(&p), Format::Json, "x").unwrap();
    assert_eq!(p, again);
}

#[test]
fn detects_formats() {
    assert_eq!(detect(None, STANDARD).unwrap(), Format::Jssp);
    assert_eq!(detect(None, TAILLARD).unwrap(), Format::Taillard);
    assert_eq!(detect(None, FJS).unwrap(), Format::Fjs);
    assert_eq!(detect(Some("x.fjs"), STANDARD).unwrap(), Format::Fjs);
    assert_eq!(detect(None, JSON_EXAMPLE).unwrap(), Format::Json);
    assert!(detect(None, "hello").is_err());
}

#[test]
fn errors_name_the_line() {
    let err = parse("2 2\n0 3 1 2\n1 x 0 1\n", Format::Jssp, "e").unwrap_err();
    assert_eq!(err.to_string(), "line 3: expected duration of job 1 op 0 (an integer), found \"x\"");
    let err = parse("2 2\n0 3 1 2\n1 4 0\n", Format::Jssp, "e").unwrap_err();
    assert_eq!(err.to_string(), "line 3: expected duration of job 1 op 1, found end of input");
    let err = parse("2 2\n0 3 5 2\n1 4 0 1\n", Format::Jssp, "e").unwrap_err();
    assert_eq!(err.to_string(), "line 2: expected machine of job 0 op 1 in 0..=1, found 5");
    let err = parse("2 3\n2 2 1 3 0 5 1 3 2\n1 1 2 4\n", Format::Fjs, "e").unwrap_err();
    assert_eq!(err.to_string(), "line 2: expected a 1-based machine number, found 0");
    let err = parse("{\n \"machines\": [],\n \"jobs\": 3\n}", Format::Json, "e").unwrap_err();
    assert!(err.to_string().starts_with("line 3: expected a JSON problem"), "{err}");
    let err = parse("2 2 1 1\nTimes\n3 2\n4 1\nMachines\n1 2\n2\n", Format::Taillard, "e").unwrap_err();
    assert_eq!(err.to_string(), "line 7: expected machine of job 1 op 1 (1-based), found end of input");
}

#[test]
fn invalid_problems_are_rejected_after_parsing() {
    let err = parse("1 2\n2 0 1 1 4\n", Format::Fjs, "e").unwrap_err();
    assert_eq!(err.to_string(), "invalid problem: job 0 op 0: no eligible machine");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn garbage_never_panics(text in "[0-9 \\n\\t.#a-zA-Z{}\\[\\]\":,-]{0,200}") {
        for format in [Format::Jssp, Format::Taillard, Format::Fjs, Format::Json] {
            let _ = parse(&text, format, "g");
        }
        let _ = detect(None, &text);
    }

    #[test]
    fn garbage_in_collected_files_never_panics(
        lines in proptest::collection::vec(
            prop_oneof![
                Just("instance a".to_string()),
                Just("Times".to_string()),
                Just("Machines".to_string()),
                Just("+++++".to_string()),
                proptest::collection::vec(0u32..6, 0..7)
                    .prop_map(|v| v.iter().map(u32::to_string).collect::<Vec<_>>().join(" ")),
            ],
            0..30,
        ),
        index in 0usize..4,
    ) {
        let text = lines.join("\n");
        for format in [Format::Jssp, Format::Taillard] {
            if let Ok(problem) = parse_instance(&text, format, "g", index) {
                prop_assert!(problem.validate().is_ok());
                prop_assert!(index < count(&text, format));
            }
        }
        let _ = detect(None, &text);
    }

    #[test]
    fn numeric_garbage_never_panics(numbers in proptest::collection::vec(0u32..12, 0..60)) {
        let text: String = numbers.iter().map(|n| format!("{n} ")).collect();
        for format in [Format::Jssp, Format::Fjs] {
            if let Ok(problem) = parse(&text, format, "g") {
                prop_assert!(problem.validate().is_ok());
            }
        }
    }
}
