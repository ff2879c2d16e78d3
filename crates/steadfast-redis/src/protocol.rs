//! What replicas say to each other on the channel, the keys they keep, and the Lua scripts that
//! change those keys atomically. Pure: no I/O here but the scripts' text.
//!
//! Times on the wire are durations ("open for 4,200 ms more"), never wall-clock instants, so
//! replicas need no synchronised clocks: a receiver adds the duration to its own clock, and is
//! late by the channel's latency only. The key that holds the open-until instant is written and
//! read by scripts against the Redis server's clock (`TIME`), for the same reason.

use std::time::Duration;

/// A message on the fleet's channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Message {
    /// `agent` is down: open for `remaining` more.
    Open {
        agent: String,
        remaining: Duration,
        replica: String,
    },
    /// `agent`'s probes succeeded: close.
    Close { agent: String, replica: String },
}

impl Message {
    /// `open <ms> <replica> <agent>` / `close <replica> <agent>`: the agent last, so that a name
    /// with spaces needs no quoting (replica names have none: the config refuses them).
    pub(crate) fn encode(&self) -> String {
        match self {
            Message::Open {
                agent,
                remaining,
                replica,
            } => format!("open {} {replica} {agent}", remaining.as_millis()),
            Message::Close { agent, replica } => format!("close {replica} {agent}"),
        }
    }

    /// `None` for anything this version does not understand (a newer replica's message is
    /// ignored, never misread).
    pub(crate) fn decode(text: &str) -> Option<Message> {
        let (kind, rest) = text.split_once(' ')?;
        match kind {
            "open" => {
                let (millis, rest) = rest.split_once(' ')?;
                let (replica, agent) = rest.split_once(' ')?;
                let millis: u64 = millis.parse().ok()?;
                (!replica.is_empty() && !agent.is_empty()).then(|| Message::Open {
                    agent: agent.to_owned(),
                    remaining: Duration::from_millis(millis),
                    replica: replica.to_owned(),
                })
            }
            "close" => {
                let (replica, agent) = rest.split_once(' ')?;
                (!replica.is_empty() && !agent.is_empty()).then(|| Message::Close {
                    agent: agent.to_owned(),
                    replica: replica.to_owned(),
                })
            }
            _ => None,
        }
    }
}

/// The keys of one agent in one fleet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Keys {
    /// `PREFIX:breaker:AGENT`: the open-until instant (Redis server time, ms), while open.
    pub(crate) state: String,
    /// `PREFIX:probe:AGENT`: the replica holding the half-open lease.
    pub(crate) lease: String,
    /// `PREFIX:streak:AGENT`: a hash of each replica's current run of failures.
    pub(crate) streak: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str, agent: &str) -> Self {
        Keys {
            state: format!("{prefix}:breaker:{agent}"),
            lease: format!("{prefix}:probe:{agent}"),
            streak: format!("{prefix}:streak:{agent}"),
        }
    }
}

/// The channel of one fleet.
pub(crate) fn channel(prefix: &str) -> String {
    format!("{prefix}:fleet")
}

/// Records an open period and tells the fleet, in one step.
/// KEYS: state, streak, lease. ARGV: open ms, margin ms (how long the key outlives the open
/// time: a half-open period in progress), channel, message, replica.
/// The lease is given up if this replica holds it (its half-open period is over).
pub(crate) const OPEN: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local open_ms = tonumber(ARGV[1])
redis.call('SET', KEYS[1], now + open_ms, 'PX', open_ms + tonumber(ARGV[2]))
redis.call('DEL', KEYS[2])
if redis.call('GET', KEYS[3]) == ARGV[5] then redis.call('DEL', KEYS[3]) end
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
";

/// The fleet closed: forget the open period, the streaks and the lease, and tell the fleet.
/// KEYS: state, streak, lease. ARGV: channel, message.
pub(crate) const CLOSE: &str = r"
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1
";

/// How long the fleet stays open: the ms left (0 when the open time is over but the key lives:
/// a half-open period in progress), or -1 when the fleet is not open. KEYS: state.
pub(crate) const READ: &str = r"
local open_until = redis.call('GET', KEYS[1])
if not open_until then return -1 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local left = tonumber(open_until) - now
if left < 0 then return 0 end
return left
";

/// Asks for the fleet's half-open lease: -1 when granted (or renewed: this replica held it),
/// otherwise the ms left of the holder's lease. KEYS: lease, state. ARGV: replica, lease ms, ms
/// left of the asker's open time. A grant also refreshes the open-until key (to the asker's
/// open time, living a lease longer), so a replica that starts while the holder probes or
/// keeps checking learns that the fleet is open, however long the outage.
pub(crate) const LEASE: &str = r"
local holder = redis.call('GET', KEYS[1])
if (not holder) or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local left = tonumber(ARGV[3])
  redis.call('SET', KEYS[2], now + left, 'PX', left + tonumber(ARGV[2]))
  return -1
end
local left = redis.call('PTTL', KEYS[1])
if left < 1 then return 1 end
return left
";

/// Records this replica's run of failures and, when the fleet's runs add up to the trip
/// threshold, opens the fleet at once (only one replica can cross it: the runs are cleared in
/// the same step). Returns 1 when this call opened the fleet, 0 otherwise.
/// KEYS: streak, state. ARGV: replica, run, window ms, threshold, open ms, margin ms, channel,
/// message.
pub(crate) const STREAK: &str = r"
local run = tonumber(ARGV[2])
if run > 0 then
  redis.call('HSET', KEYS[1], ARGV[1], run)
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
else
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 0
end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local total = 0
for _, value in ipairs(redis.call('HVALS', KEYS[1])) do total = total + tonumber(value) end
if total < tonumber(ARGV[4]) then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local open_ms = tonumber(ARGV[5])
redis.call('SET', KEYS[2], now + open_ms, 'PX', open_ms + tonumber(ARGV[6]))
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[7], ARGV[8])
return 1
";

/// Takes up to ARGV[2] tokens from the fleet's budget of the current period (ARGV[1] tokens
/// per period of ARGV[3] ms; periods follow the Redis server's clock, one key per period).
/// Returns the tokens granted (maybe 0). KEYS: the budget's key (the period is appended).
pub(crate) const BUDGET: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local period = tonumber(ARGV[3])
local key = KEYS[1] .. ':' .. math.floor(now / period)
local used = tonumber(redis.call('GET', key) or '0')
local grant = math.min(tonumber(ARGV[2]), tonumber(ARGV[1]) - used)
if grant <= 0 then return 0 end
redis.call('INCRBY', key, grant)
redis.call('PEXPIRE', key, period * 2)
return grant
";

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn messages_round_trip_with_spaces_in_agent_names() {
        let open = Message::Open {
            agent: "gpt 4o mini".into(),
            remaining: Duration::from_millis(4200),
            replica: "r-1".into(),
        };
        assert_eq!(open.encode(), "open 4200 r-1 gpt 4o mini");
        assert_eq!(Message::decode(&open.encode()), Some(open));
        let close = Message::Close {
            agent: "claude".into(),
            replica: "r-2".into(),
        };
        assert_eq!(Message::decode(&close.encode()), Some(close));
    }

    #[test]
    fn unknown_or_broken_messages_are_ignored() {
        for text in [
            "",
            "open",
            "open x r a",
            "open 10 r",
            "close r",
            "halfopen 1 r a",
            "open -5 r a",
            "open 10  a",
        ] {
            assert_eq!(Message::decode(text), None, "{text:?}");
        }
    }

    /// Every script compiles on the real Redis (a Lua syntax error shows only at run time).
    #[tokio::test]
    async fn every_script_loads_on_redis() {
        let url = crate::config::url_from_env();
        let mut connection = redis::Client::open(url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|error| panic!("Redis at {url} is unreachable ({error}): start it"));
        for script in [OPEN, CLOSE, READ, LEASE, STREAK, BUDGET] {
            let loaded: redis::RedisResult<String> = redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(script)
                .query_async(&mut connection)
                .await;
            assert!(loaded.is_ok(), "{loaded:?}\n{script}");
        }
    }

    proptest! {
        #[test]
        fn any_message_round_trips(
            agent in "[^\\x00]{1,40}",
            replica in "[A-Za-z0-9_.:-]{1,20}",
            millis in 0u64..10_000_000,
            open in any::<bool>(),
        ) {
            let message = if open {
                Message::Open { agent, remaining: Duration::from_millis(millis), replica }
            } else {
                Message::Close { agent, replica }
            };
            prop_assert_eq!(Message::decode(&message.encode()), Some(message));
        }

        #[test]
        fn decoding_never_panics(text in ".{0,80}") {
            let _ = Message::decode(&text);
        }
    }
}
