//! Fault injection: which calls of the backend API the simulator refuses (429, 5xx), answers
//! late or leaves without an answer, switched on and off at run time through `/_sim/faults`.
//!
//! Every fault says which calls it hits with a [`When`]: all of them, the next N, every Nth
//! (counted from when the fault was switched on) or at random with a seeded generator, so a
//! test sees the same sequence on every run. Only calls of the backend API count, never `/_sim`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The faults switched on; `{}` switches every fault off.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Faults {
    /// A rate limit: beyond `limit` calls in a sliding window, 429 with `Retry-After`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Answer with a 5xx instead of handling the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_error: Option<ServerError>,
    /// Handle the call, then wait before answering (longer than the client's timeout: a timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow: Option<Slow>,
    /// Close the connection without an answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_connection: Option<DropConnection>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimit {
    /// Calls allowed in any window; 0 refuses every call.
    pub limit: u32,
    /// The window's length in seconds (60: calls per minute).
    #[serde(default = "a_minute")]
    pub window_seconds: u64,
}

fn a_minute() -> u64 {
    60
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServerError {
    /// 500 to 599.
    #[serde(default = "internal_server_error")]
    pub status: u16,
    #[serde(default)]
    pub when: When,
}

fn internal_server_error() -> u16 {
    500
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Slow {
    /// How long the answer waits, in milliseconds.
    pub delay_ms: u64,
    #[serde(default)]
    pub when: When,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DropConnection {
    /// `false`: the call is dropped before it is handled, so it changes nothing. `true`: it is
    /// handled (and its change kept), and only the answer is lost.
    #[serde(default)]
    pub after_applying: bool,
    #[serde(default)]
    pub when: When,
}

/// Which calls a fault hits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum When {
    /// Every call: `"always"`.
    #[default]
    Always,
    /// The next N calls, then no more: `{"next": 2}` (reads back with what is left).
    Next(u32),
    /// The Nth, 2Nth, ... call since the fault was switched on: `{"everyNth": 3}`.
    EveryNth(u32),
    /// Each call with this probability, drawn from a generator seeded with `seed`:
    /// `{"random": {"probability": 0.2, "seed": 7}}`.
    Random { probability: f64, seed: u64 },
}

/// Why a fault configuration is refused.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidFaults(String);

impl Faults {
    pub fn validate(&self) -> Result<(), InvalidFaults> {
        let invalid = |reason: &str| Err(InvalidFaults(reason.to_string()));
        if let Some(rate_limit) = &self.rate_limit
            && rate_limit.window_seconds == 0
        {
            return invalid("rateLimit.windowSeconds must be at least 1");
        }
        if let Some(server_error) = &self.server_error {
            if !(500..=599).contains(&server_error.status) {
                return invalid("serverError.status must be 500 to 599");
            }
            server_error.when.validate()?;
        }
        if let Some(slow) = &self.slow {
            slow.when.validate()?;
        }
        if let Some(drop) = &self.drop_connection {
            drop.when.validate()?;
        }
        Ok(())
    }
}

impl When {
    fn validate(&self) -> Result<(), InvalidFaults> {
        match *self {
            When::EveryNth(0) => Err(InvalidFaults("everyNth must be at least 1".to_string())),
            When::Random { probability, .. } if !(0.0..=1.0).contains(&probability) => Err(
                InvalidFaults("random.probability must be from 0 to 1".to_string()),
            ),
            _ => Ok(()),
        }
    }
}

/// A [`When`] with what it has seen so far.
#[derive(Debug, Clone)]
struct Trigger {
    when: When,
    calls: u64,
    random: u64,
}

impl Trigger {
    fn new(when: When) -> Self {
        let random = match when {
            When::Random { seed, .. } => seed,
            _ => 0,
        };
        Trigger {
            when,
            calls: 0,
            random,
        }
    }

    /// Whether this call is hit.
    fn fires(&mut self) -> bool {
        self.calls += 1;
        match &mut self.when {
            When::Always => true,
            When::Next(0) => false,
            When::Next(left) => {
                *left -= 1;
                true
            }
            When::EveryNth(n) => self.calls.is_multiple_of(u64::from(*n)),
            When::Random { probability, .. } => {
                let draw = splitmix64(&mut self.random);
                // The top 53 bits as a fraction in [0, 1).
                ((draw >> 11) as f64 / (1u64 << 53) as f64) < *probability
            }
        }
    }
}

/// A small, good-enough generator: deterministic for a seed, no dependency.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What the faults make of one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Decision {
    /// Close the connection without handling the call.
    pub drop_before: bool,
    /// Answer this instead of handling the call.
    pub refusal: Option<Refusal>,
    /// Handle the call, then close the connection without an answer.
    pub drop_after: bool,
    /// Handle the call, then wait this long before answering.
    pub delay: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    RateLimited { retry_after_seconds: u64 },
    ServerError { status: u16 },
}

/// The faults switched on, with their counters and the rate limit's window.
#[derive(Debug, Default)]
pub(crate) struct FaultState {
    rate_limit: Option<(RateLimit, VecDeque<Instant>)>,
    server_error: Option<(ServerError, Trigger)>,
    slow: Option<(Slow, Trigger)>,
    drop_connection: Option<(DropConnection, Trigger)>,
}

impl FaultState {
    pub fn new(faults: Faults) -> Self {
        FaultState {
            rate_limit: faults.rate_limit.map(|r| (r, VecDeque::new())),
            server_error: faults.server_error.map(|f| {
                let trigger = Trigger::new(f.when);
                (f, trigger)
            }),
            slow: faults.slow.map(|f| {
                let trigger = Trigger::new(f.when);
                (f, trigger)
            }),
            drop_connection: faults.drop_connection.map(|f| {
                let trigger = Trigger::new(f.when);
                (f, trigger)
            }),
        }
    }

    /// The faults as they stand: a `next` counts down as it fires.
    pub fn faults(&self) -> Faults {
        Faults {
            rate_limit: self.rate_limit.as_ref().map(|(r, _)| r.clone()),
            server_error: self.server_error.as_ref().map(|(f, t)| ServerError {
                when: t.when,
                ..f.clone()
            }),
            slow: self.slow.as_ref().map(|(f, t)| Slow {
                when: t.when,
                ..f.clone()
            }),
            drop_connection: self.drop_connection.as_ref().map(|(f, t)| DropConnection {
                when: t.when,
                ..f.clone()
            }),
        }
    }

    /// Decides the fate of one call, in this order: dropped before handling, rate limited,
    /// server error, then (once handled) dropped after handling or answered late.
    pub fn decide(&mut self, now: Instant) -> Decision {
        let mut decision = Decision::default();
        if let Some((drop, trigger)) = &mut self.drop_connection
            && !drop.after_applying
            && trigger.fires()
        {
            decision.drop_before = true;
            return decision;
        }
        if let Some((limit, window)) = &mut self.rate_limit {
            let length = Duration::from_secs(limit.window_seconds);
            while window
                .front()
                .is_some_and(|&at| now.duration_since(at) >= length)
            {
                window.pop_front();
            }
            if window.len() >= limit.limit as usize {
                let wait = match window.front() {
                    Some(&oldest) => length.saturating_sub(now.duration_since(oldest)),
                    None => length,
                };
                let retry_after_seconds = wait.as_millis().div_ceil(1000).max(1) as u64;
                decision.refusal = Some(Refusal::RateLimited {
                    retry_after_seconds,
                });
                return decision;
            }
            window.push_back(now);
        }
        if let Some((error, trigger)) = &mut self.server_error
            && trigger.fires()
        {
            decision.refusal = Some(Refusal::ServerError {
                status: error.status,
            });
            return decision;
        }
        if let Some((drop, trigger)) = &mut self.drop_connection
            && drop.after_applying
            && trigger.fires()
        {
            decision.drop_after = true;
        }
        if let Some((slow, trigger)) = &mut self.slow
            && trigger.fires()
        {
            decision.delay = Some(Duration::from_millis(slow.delay_ms));
        }
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fires(when: When, calls: usize) -> Vec<bool> {
        let mut trigger = Trigger::new(when);
        (0..calls).map(|_| trigger.fires()).collect()
    }

    #[test]
    fn next_hits_that_many_calls_then_none() {
        assert_eq!(fires(When::Next(2), 4), [true, true, false, false]);
    }

    #[test]
    fn every_nth_hits_the_nth_calls() {
        assert_eq!(
            fires(When::EveryNth(3), 6),
            [false, false, true, false, false, true]
        );
    }

    #[test]
    fn random_is_the_same_for_the_same_seed_and_near_its_probability() {
        let when = When::Random {
            probability: 0.25,
            seed: 42,
        };
        let first = fires(when, 4000);
        assert_eq!(first, fires(when, 4000));
        let hits = first.iter().filter(|hit| **hit).count();
        assert!((800..1200).contains(&hits), "{hits}");
    }

    #[test]
    fn the_rate_limit_refuses_beyond_its_limit_and_says_when_to_come_back() {
        let mut faults = FaultState::new(Faults {
            rate_limit: Some(RateLimit {
                limit: 2,
                window_seconds: 10,
            }),
            ..Faults::default()
        });
        let start = Instant::now();
        assert_eq!(faults.decide(start).refusal, None);
        assert_eq!(faults.decide(start + Duration::from_secs(4)).refusal, None);
        assert_eq!(
            faults.decide(start + Duration::from_secs(5)).refusal,
            Some(Refusal::RateLimited {
                retry_after_seconds: 5
            })
        );
        assert_eq!(faults.decide(start + Duration::from_secs(10)).refusal, None);
    }

    #[test]
    fn a_dropped_call_is_not_counted_by_the_other_faults() {
        let mut faults = FaultState::new(Faults {
            server_error: Some(ServerError {
                status: 503,
                when: When::Next(1),
            }),
            drop_connection: Some(DropConnection {
                after_applying: false,
                when: When::Next(1),
            }),
            ..Faults::default()
        });
        let now = Instant::now();
        assert!(faults.decide(now).drop_before);
        assert_eq!(
            faults.decide(now).refusal,
            Some(Refusal::ServerError { status: 503 })
        );
        assert_eq!(faults.decide(now), Decision::default());
    }

    #[test]
    fn faults_read_back_in_the_json_they_were_given() {
        let json = serde_json::json!({
            "rateLimit": {"limit": 100, "windowSeconds": 60},
            "serverError": {"status": 503, "when": {"everyNth": 3}},
            "slow": {"delayMs": 1500, "when": "always"},
            "dropConnection": {"afterApplying": true, "when": {"random": {"probability": 0.5, "seed": 1}}}
        });
        let faults: Faults = serde_json::from_value(json.clone()).unwrap();
        faults.validate().unwrap();
        assert_eq!(serde_json::to_value(&faults).unwrap(), json);
    }
}
