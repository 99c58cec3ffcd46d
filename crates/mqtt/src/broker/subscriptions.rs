//! The subscription table: a tree with one node per filter level, so matching a topic costs a walk
//! down its levels (plus the `+` branches) instead of a scan over every filter in the broker.
//! Matching follows `topic::matches` exactly, `$`-topics included; a test checks the two agree.

use std::collections::HashMap;

use crate::codec::QoS;

#[cfg(test)]
mod tests;

/// Who a subscription delivers to: a connection or an in-process receiver.
pub(crate) type SubscriberKey = u64;

#[derive(Debug, Default)]
pub(crate) struct Subscriptions {
    root: Node,
}

#[derive(Debug, Default)]
struct Node {
    children: HashMap<String, Node>,
    plus: Option<Box<Node>>,
    /// Subscriptions whose filter ends at this node.
    exact: Vec<(SubscriberKey, QoS)>,
    /// Subscriptions whose filter is this node's path followed by `/#` (or just `#` at the root).
    hash: Vec<(SubscriberKey, QoS)>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.plus.is_none() && self.exact.is_empty() && self.hash.is_empty()
    }
}

impl Subscriptions {
    /// Adds or replaces (same key and filter) a subscription of a valid filter.
    pub(crate) fn insert(&mut self, filter: &str, key: SubscriberKey, qos: QoS) {
        let mut node = &mut self.root;
        let mut levels = filter.split('/').peekable();
        while let Some(level) = levels.next() {
            if level == "#" {
                upsert(&mut node.hash, key, qos);
                return;
            }
            node = if level == "+" {
                node.plus.get_or_insert_with(Box::default)
            } else {
                node.children.entry(level.to_owned()).or_default()
            };
            if levels.peek().is_none() {
                upsert(&mut node.exact, key, qos);
            }
        }
    }

    /// Removes a subscription; returns whether it existed. Empty branches are pruned.
    pub(crate) fn remove(&mut self, filter: &str, key: SubscriberKey) -> bool {
        let levels: Vec<&str> = filter.split('/').collect();
        remove_in(&mut self.root, &levels, key)
    }

    /// Appends every subscription matching the topic name to `out` (a subscriber may appear more
    /// than once if several of its filters match).
    pub(crate) fn collect(&self, topic: &str, out: &mut Vec<(SubscriberKey, QoS)>) {
        let levels: Vec<&str> = topic.split('/').collect();
        let dollar = topic.starts_with('$');
        collect_in(&self.root, &levels, 0, dollar, out);
    }
}

fn upsert(entries: &mut Vec<(SubscriberKey, QoS)>, key: SubscriberKey, qos: QoS) {
    match entries.iter_mut().find(|(existing, _)| *existing == key) {
        Some(entry) => entry.1 = qos,
        None => entries.push((key, qos)),
    }
}

fn collect_in(node: &Node, levels: &[&str], depth: usize, dollar: bool, out: &mut Vec<(SubscriberKey, QoS)>) {
    let wildcards_allowed = !(dollar && depth == 0);
    if wildcards_allowed {
        out.extend_from_slice(&node.hash);
    }
    let Some(level) = levels.get(depth) else {
        out.extend_from_slice(&node.exact);
        return;
    };
    if let Some(child) = node.children.get(*level) {
        collect_in(child, levels, depth + 1, dollar, out);
    }
    if wildcards_allowed && let Some(plus) = &node.plus {
        collect_in(plus, levels, depth + 1, dollar, out);
    }
}

fn remove_in(node: &mut Node, levels: &[&str], key: SubscriberKey) -> bool {
    let Some((&level, rest)) = levels.split_first() else {
        return false;
    };
    if level == "#" {
        let before = node.hash.len();
        node.hash.retain(|(existing, _)| *existing != key);
        return node.hash.len() != before;
    }
    if level == "+" {
        let Some(child) = node.plus.as_deref_mut() else { return false };
        let removed = remove_at(child, rest, key);
        if child.is_empty() {
            node.plus = None;
        }
        removed
    } else {
        let Some(child) = node.children.get_mut(level) else { return false };
        let removed = remove_at(child, rest, key);
        if child.is_empty() {
            node.children.remove(level);
        }
        removed
    }
}

/// Removes from `child` (the node for the level just consumed) given the levels after it.
fn remove_at(child: &mut Node, rest: &[&str], key: SubscriberKey) -> bool {
    if rest.is_empty() {
        let before = child.exact.len();
        child.exact.retain(|(existing, _)| *existing != key);
        child.exact.len() != before
    } else {
        remove_in(child, rest, key)
    }
}
