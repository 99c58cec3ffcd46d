//! Topic validation and matching, checked against the examples of MQTT 3.1.1 section 4.7.

use super::*;

#[test]
fn spec_examples_for_multi_level_wildcard() {
    let filter = "sport/tennis/player1/#";
    assert!(matches(filter, "sport/tennis/player1"));
    assert!(matches(filter, "sport/tennis/player1/ranking"));
    assert!(matches(filter, "sport/tennis/player1/score/wimbledon"));
    assert!(!matches(filter, "sport/tennis/player2"));
    assert!(matches("sport/#", "sport"));
    assert!(matches("#", "sport/tennis"));
    assert!(matches("#", "/"));
}

#[test]
fn spec_examples_for_single_level_wildcard() {
    assert!(matches("sport/tennis/+", "sport/tennis/player1"));
    assert!(matches("sport/tennis/+", "sport/tennis/player2"));
    assert!(!matches("sport/tennis/+", "sport/tennis/player1/ranking"));
    assert!(!matches("sport/+", "sport"));
    assert!(matches("sport/+", "sport/"));
    assert!(matches("+/+", "/finance"));
    assert!(matches("/+", "/finance"));
    assert!(!matches("+", "/finance"));
    assert!(matches("+/tennis/#", "sport/tennis/player1"));
}

#[test]
fn dollar_topics_are_not_matched_by_leading_wildcards() {
    assert!(!matches("#", "$SYS/broker/load"));
    assert!(!matches("+/monitor/Clients", "$SYS/monitor/Clients"));
    assert!(matches("$SYS/#", "$SYS/monitor/Clients"));
    assert!(matches("$SYS/monitor/+", "$SYS/monitor/Clients"));
    assert!(matches("$SYS/#", "$SYS"));
}

#[test]
fn literal_filters_match_exactly() {
    assert!(matches("a/b", "a/b"));
    assert!(!matches("a/b", "a/b/c"));
    assert!(!matches("a/b/c", "a/b"));
    assert!(!matches("a/b", "a/B"));
    assert!(matches("/", "/"));
    assert!(!matches("a", "a/"));
}

#[test]
fn filter_validation_follows_the_wildcard_rules() {
    for ok in ["#", "+", "sport/#", "sport/+/player1", "+/+", "/+", "+/tennis/#", "a//b", "/"] {
        assert_eq!(validate_topic_filter(ok), Ok(()), "{ok}");
    }
    assert_eq!(validate_topic_filter("sport/tennis#"), Err(TopicError::MisplacedHash));
    assert_eq!(validate_topic_filter("sport/tennis/#/ranking"), Err(TopicError::MisplacedHash));
    assert_eq!(validate_topic_filter("sport+"), Err(TopicError::MisplacedPlus));
    assert_eq!(validate_topic_filter(""), Err(TopicError::Empty));
    assert_eq!(validate_topic_filter("a\0b"), Err(TopicError::Nul));
    assert_eq!(validate_topic_filter(&"a".repeat(65_536)), Err(TopicError::TooLong));
    // Deep filters: 200 levels are fine, 201 are not (the subscription tree recurses per level).
    let levels = |n: usize| vec!["+"; n].join("/");
    assert_eq!(validate_topic_filter(&levels(200)), Ok(()));
    assert_eq!(validate_topic_filter(&levels(201)), Err(TopicError::TooDeep));
    assert_eq!(validate_topic_filter(&levels(15_000)), Err(TopicError::TooDeep));
    assert_eq!(validate_topic_name(&vec!["a"; 201].join("/")), Err(TopicError::TooDeep));
}

#[test]
fn name_validation_rejects_wildcards() {
    assert_eq!(validate_topic_name("sport/tennis"), Ok(()));
    assert_eq!(validate_topic_name("/"), Ok(()));
    assert_eq!(validate_topic_name("$SYS/x"), Ok(()));
    assert_eq!(validate_topic_name("sport/+"), Err(TopicError::WildcardInName));
    assert_eq!(validate_topic_name("sport/#"), Err(TopicError::WildcardInName));
    assert_eq!(validate_topic_name(""), Err(TopicError::Empty));
    assert_eq!(validate_topic_name("x\0"), Err(TopicError::Nul));
}
