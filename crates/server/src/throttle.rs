//! Sign-in throttling: password guessing gets slower the more it fails. Counted per user name and
//! per client address; after a few free failures each further attempt waits twice as long as the
//! one before (up to a minute per user name, so a guesser cannot lock a person out for long, and
//! five minutes per address). A success clears both. Kept in memory: a restart forgets it, as it
//! forgets the guesser's progress nothing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures without any wait, per user name and per address.
const FREE_PER_USER: u32 = 5;
const FREE_PER_PEER: u32 = 10;
/// The longest wait, per user name and per address.
const MAX_WAIT_USER: Duration = Duration::from_secs(60);
const MAX_WAIT_PEER: Duration = Duration::from_secs(300);
/// Failures older than this are forgotten.
const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Names and addresses remembered at most; the oldest go first.
const MAX_ENTRIES: usize = 10_000;

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
enum Key {
    User(String),
    Peer(IpAddr),
}

#[derive(Clone, Copy, Debug)]
struct Failures {
    count: u32,
    last: Instant,
}

/// The failures of recent sign-ins.
#[derive(Default)]
pub(crate) struct SignInThrottle {
    failures: Mutex<HashMap<Key, Failures>>,
}

impl SignInThrottle {
    /// Starts a sign-in for `username` from `peer`: how long it must wait first (`Err`), or, when
    /// it may go now, counted as failed until [`Self::succeeded`] says otherwise. Counting it
    /// before the password is checked (which takes a while) holds back guesses sent all at once
    /// as it does guesses sent one after another.
    pub(crate) fn begin(&self, username: &str, peer: Option<IpAddr>) -> Result<(), Duration> {
        self.begin_at(username, peer, Instant::now())
    }

    fn begin_at(&self, username: &str, peer: Option<IpAddr>, now: Instant) -> Result<(), Duration> {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(wait) = wait_in(&failures, username, peer, now) {
            return Err(wait);
        }
        count_failure(&mut failures, username, peer, now);
        Ok(())
    }

    /// Records a successful sign-in: its user name and address start afresh.
    pub(crate) fn succeeded(&self, username: &str, peer: Option<IpAddr>) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        for key in keys(username, peer) {
            failures.remove(&key);
        }
    }

    #[cfg(test)]
    fn wait_at(&self, username: &str, peer: Option<IpAddr>, now: Instant) -> Option<Duration> {
        wait_in(&self.failures.lock().unwrap_or_else(|p| p.into_inner()), username, peer, now)
    }

    #[cfg(test)]
    fn failed_at(&self, username: &str, peer: Option<IpAddr>, now: Instant) {
        count_failure(&mut self.failures.lock().unwrap_or_else(|p| p.into_inner()), username, peer, now);
    }
}

/// How long the next attempt must wait, by the failures recorded so far.
fn wait_in(
    failures: &HashMap<Key, Failures>,
    username: &str,
    peer: Option<IpAddr>,
    now: Instant,
) -> Option<Duration> {
    keys(username, peer)
        .filter_map(|key| {
            let seen = failures.get(&key)?;
            let (free, max) = match key {
                Key::User(_) => (FREE_PER_USER, MAX_WAIT_USER),
                Key::Peer(_) => (FREE_PER_PEER, MAX_WAIT_PEER),
            };
            if seen.count < free || now.duration_since(seen.last) >= WINDOW {
                return None;
            }
            let doublings = (seen.count - free).min(16);
            let wait = Duration::from_secs(1u64 << doublings).min(max);
            (seen.last + wait).checked_duration_since(now).filter(|left| !left.is_zero())
        })
        .max()
}

/// Records a failure of the name and the address.
fn count_failure(failures: &mut HashMap<Key, Failures>, username: &str, peer: Option<IpAddr>, now: Instant) {
    if failures.len() >= MAX_ENTRIES {
        failures.retain(|_, seen| now.duration_since(seen.last) < WINDOW);
        if failures.len() >= MAX_ENTRIES {
            // Still full of recent ones (a scan of many names): forget the oldest half.
            let mut ages: Vec<Instant> = failures.values().map(|seen| seen.last).collect();
            ages.sort_unstable();
            let cut = ages[ages.len() / 2];
            failures.retain(|_, seen| seen.last > cut);
        }
    }
    for key in keys(username, peer) {
        let seen = failures.entry(key).or_insert(Failures { count: 0, last: now });
        if now.duration_since(seen.last) >= WINDOW {
            seen.count = 0;
        }
        seen.count = seen.count.saturating_add(1);
        seen.last = now;
    }
}

fn keys(username: &str, peer: Option<IpAddr>) -> impl Iterator<Item = Key> {
    // Names differ by case only in spelling: one person, one count.
    std::iter::once(Key::User(username.to_lowercase())).chain(peer.map(Key::Peer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guesses_wait_longer_and_longer_and_a_success_starts_afresh() {
        let throttle = SignInThrottle::default();
        let (peer, t0) = (Some("192.0.2.7".parse().unwrap()), Instant::now());
        let at = |seconds: u64| t0 + Duration::from_secs(seconds);
        for _ in 0..FREE_PER_USER {
            assert_eq!(throttle.wait_at("admin", peer, t0), None);
            throttle.failed_at("admin", peer, t0);
        }
        // The sixth failure in a row: two seconds to wait, then four, eight, ...
        throttle.failed_at("Admin", peer, t0);
        assert_eq!(throttle.wait_at("admin", peer, t0), Some(Duration::from_secs(2)));
        assert_eq!(throttle.wait_at("admin", peer, at(2)), None);
        throttle.failed_at("admin", peer, at(2));
        assert_eq!(throttle.wait_at("admin", peer, at(2)), Some(Duration::from_secs(4)));
        // Another name from another address is not held back by them.
        assert_eq!(throttle.wait_at("mei", Some("192.0.2.8".parse().unwrap()), at(2)), None);
        // A user name waits at most a minute, however long the guessing went on.
        for second in 3..40 {
            throttle.failed_at("admin", None, at(second * 100));
        }
        assert_eq!(throttle.wait_at("admin", None, at(3900)), Some(MAX_WAIT_USER));
        // Forgotten after the window, and at once after a success.
        assert_eq!(throttle.wait_at("admin", None, at(3900) + WINDOW), None);
        throttle.succeeded("admin", peer);
        assert_eq!(throttle.wait_at("admin", peer, at(3901)), None);
    }

    #[test]
    fn sign_ins_sent_at_once_count_before_their_passwords_are_checked() {
        let throttle = SignInThrottle::default();
        let (peer, t0) = (Some("192.0.2.7".parse().unwrap()), Instant::now());
        // Five go ahead before any of them is answered; the sixth waits.
        for _ in 0..FREE_PER_USER {
            assert_eq!(throttle.begin_at("admin", peer, t0), Ok(()));
        }
        assert_eq!(throttle.begin_at("admin", peer, t0), Err(Duration::from_secs(1)));
        // One of them had the password: the name and the address start afresh.
        throttle.succeeded("admin", peer);
        assert_eq!(throttle.begin_at("admin", peer, t0), Ok(()));
    }

    #[test]
    fn a_scan_of_many_names_is_held_back_by_its_address() {
        let throttle = SignInThrottle::default();
        let (peer, now) = (Some("192.0.2.9".parse().unwrap()), Instant::now());
        for i in 0..FREE_PER_PEER + 1 {
            throttle.failed_at(&format!("name{i}"), peer, now);
        }
        assert_eq!(throttle.wait_at("someone-new", peer, now), Some(Duration::from_secs(2)));
        assert_eq!(throttle.wait_at("someone-new", None, now), None);
    }
}
