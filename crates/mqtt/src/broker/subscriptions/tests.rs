//! The subscription tree against the reference matcher in `topic`.

use proptest::prelude::*;

use super::*;
use crate::topic;

fn filter() -> impl Strategy<Value = String> {
    (proptest::collection::vec(prop_oneof!["[ab$]{0,1}", Just("+".to_owned())], 1..4), any::<bool>())
        .prop_map(|(levels, hash)| {
            let filter = levels.join("/");
            match (hash, filter.is_empty()) {
                (true, true) => "#".to_owned(),
                (true, false) => format!("{filter}/#"),
                (false, true) => "+".to_owned(),
                (false, false) => filter,
            }
        })
}

fn name() -> impl Strategy<Value = String> {
    proptest::collection::vec("[ab$]{0,1}", 1..5).prop_map(|levels| levels.join("/"))
}

proptest! {
    #[test]
    fn tree_agrees_with_the_reference_matcher(
        filters in proptest::collection::vec(filter(), 1..12),
        removed in proptest::collection::vec(any::<bool>(), 12),
        names in proptest::collection::vec(name(), 1..10),
    ) {
        let mut table = Subscriptions::default();
        let mut live = Vec::new();
        for (key, filter) in filters.iter().enumerate() {
            prop_assert_eq!(topic::validate_topic_filter(filter), Ok(()));
            table.insert(filter, key as u64, QoS::AtMostOnce);
            live.push((key as u64, filter.clone()));
        }
        for (key, filter) in filters.iter().enumerate() {
            if removed[key] {
                prop_assert!(table.remove(filter, key as u64));
                live.retain(|(k, _)| *k != key as u64);
            }
        }
        for name in &names {
            if name.is_empty() {
                continue;
            }
            let mut got = Vec::new();
            table.collect(name, &mut got);
            let mut got: Vec<u64> = got.into_iter().map(|(key, _)| key).collect();
            got.sort_unstable();
            let want: Vec<u64> =
                live.iter().filter(|(_, f)| topic::matches(f, name)).map(|(key, _)| *key).collect();
            prop_assert_eq!(got, want, "topic {}", name);
        }
        if live.is_empty() {
            prop_assert!(table.root.is_empty());
        }
    }
}

#[test]
fn resubscribing_replaces_the_qos() {
    let mut table = Subscriptions::default();
    table.insert("a/+", 1, QoS::AtMostOnce);
    table.insert("a/+", 1, QoS::AtLeastOnce);
    let mut got = Vec::new();
    table.collect("a/b", &mut got);
    assert_eq!(got, [(1, QoS::AtLeastOnce)]);
    assert!(!table.remove("a/b", 1));
    assert!(table.remove("a/+", 1));
    assert!(table.root.is_empty());
}
