//! The event model: ids, times, events, and the pages reads return.
//!
//! An [`EventId`] is a ULID: 48 bits of milliseconds (the event's valid time)
//! and 80 more bits. It is stored as 16 bytes big-endian, so key order, id
//! order and valid-time order are one order. This module does no I/O.

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;

/// An event's id: a ULID whose time is the event's valid time.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EventId(u128);

/// Why a text is not an event id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// Not 26 characters long.
    #[error("an id has 26 characters, this one has {0}")]
    Length(usize),
    /// A character outside Crockford's base32 alphabet.
    #[error("character {0:?} is not in Crockford's base32 alphabet")]
    Character(char),
    /// The first character is above 7, so the value overflows 128 bits.
    #[error("the first character must be 0 to 7, or the id overflows 128 bits")]
    Overflow,
}

impl EventId {
    /// The id made of a millisecond time and 80 further bits.
    pub fn from_parts(time_ms: u64, rest: u128) -> EventId {
        EventId(ulid::Ulid::from_parts(time_ms, rest).0)
    }

    /// The id from its 16-byte big-endian form.
    pub fn from_bytes(bytes: [u8; 16]) -> EventId {
        EventId(u128::from_be_bytes(bytes))
    }

    /// The 16-byte big-endian form: the stored key.
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }

    /// The valid time: milliseconds since the Unix epoch.
    pub fn time_ms(self) -> u64 {
        ulid::Ulid(self.0).timestamp_ms()
    }

    /// The 80 bits after the time.
    pub fn rest(self) -> u128 {
        ulid::Ulid(self.0).random()
    }

    /// The id as one number.
    pub fn to_u128(self) -> u128 {
        self.0
    }

    /// The id of a number.
    pub fn from_u128(value: u128) -> EventId {
        EventId(value)
    }
}

impl FromStr for EventId {
    type Err = IdError;

    fn from_str(text: &str) -> Result<EventId, IdError> {
        let length = text.chars().count();
        if length != ulid::ULID_LEN {
            return Err(IdError::Length(length));
        }
        if let Some(bad) = text.chars().find(|c| !is_crockford(*c)) {
            return Err(IdError::Character(bad));
        }
        // The ulid crate shifts an overflowing first character out silently.
        if !matches!(text.as_bytes().first(), Some(b'0'..=b'7')) {
            return Err(IdError::Overflow);
        }
        let ulid = ulid::Ulid::from_string(text).map_err(|_| IdError::Length(length))?;
        Ok(EventId(ulid.0))
    }
}

fn is_crockford(c: char) -> bool {
    let upper = c.to_ascii_uppercase();
    upper.is_ascii_digit()
        || (upper.is_ascii_uppercase() && !matches!(upper, 'I' | 'L' | 'O' | 'U'))
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buffer = [0; ulid::ULID_LEN];
        f.write_str(ulid::Ulid(self.0).array_to_str(&mut buffer))
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for EventId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buffer = [0; ulid::ULID_LEN];
        serializer.serialize_str(ulid::Ulid(self.0).array_to_str(&mut buffer))
    }
}

impl<'de> serde::Deserialize<'de> for EventId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A moment in transaction time: milliseconds since the Unix epoch, shown as
/// RFC 3339 UTC with milliseconds (`2026-11-29T13:10:07.123Z`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// Whether RFC 3339 can write it: up to 9999-12-31T23:59:59.999Z
    /// ([`RECORDED_AT_MS_MAX`](crate::limits::RECORDED_AT_MS_MAX)). Showing
    /// a later one fails.
    pub fn is_writable(self) -> bool {
        self.0 <= crate::limits::RECORDED_AT_MS_MAX
    }
}

/// Fails (`fmt::Error`) for a time RFC 3339 cannot write: see
/// [`Timestamp::is_writable`].
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.is_writable() {
            return Err(fmt::Error);
        }
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(self.0);
        write!(f, "{}", humantime::format_rfc3339_millis(time))
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// An event to append: its bytes, and its id when the writer chooses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    /// The writer's id, or `None` for one the node assigns.
    pub id: Option<EventId>,
    /// The value, stored byte for byte.
    pub data: Bytes,
}

impl NewEvent {
    /// An event whose id the node assigns.
    pub fn new(data: impl Into<Bytes>) -> NewEvent {
        NewEvent {
            id: None,
            data: data.into(),
        }
    }

    /// An event with the writer's own id: retrying it is always safe.
    pub fn with_id(id: EventId, data: impl Into<Bytes>) -> NewEvent {
        NewEvent {
            id: Some(id),
            data: data.into(),
        }
    }

    /// An event whose value is `value` as JSON, with an id the node assigns.
    pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> serde_json::Result<NewEvent> {
        Ok(NewEvent::new(serde_json::to_vec(value)?))
    }
}

/// An event as stored on this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Its id; the id's time is the valid time.
    pub id: EventId,
    /// Its value, as written.
    pub data: Bytes,
    /// When the first node to store it stored it.
    pub recorded_at: Timestamp,
    /// This node's logical clock for it: the n-th event this node stored.
    pub lc: u64,
}

/// The answer to an append, sent once the batch is durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The ids of the batch, in request order.
    pub ids: Vec<EventId>,
    /// The database's logical clock right after this batch.
    pub lc: u64,
}

/// A page of the changes feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangesPage {
    /// Events in `lc` order.
    pub events: Vec<Event>,
    /// The `lc` of the last event returned, or the one asked from: read on from here.
    pub lc: u64,
    /// Whether further events follow.
    pub more: bool,
}

/// The answer to a read by ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeysPage {
    /// The events found, in the order asked.
    pub events: Vec<Event>,
    /// The ids not stored.
    pub missing: Vec<EventId>,
    /// Whether the page was cut at its byte bound: it answers only the
    /// first `events.len() + missing.len()` ids asked, and the others are
    /// asked again.
    pub more: bool,
}

/// A page of a read by id range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangePage {
    /// Events in id order.
    pub events: Vec<Event>,
    /// Whether further events lie in the range.
    pub more: bool,
}

/// Why no read could serve a value a peer sent, so that a merge refuses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unservable {
    /// A `recorded_at` that RFC 3339 cannot write.
    #[error(
        "its recorded_at, {0} ms after the Unix epoch, is past 9999-12-31T23:59:59.999Z, the last time RFC 3339 writes"
    )]
    RecordedAt(u64),
    /// More data than one event may hold.
    #[error("it holds {0} bytes of data, more than the {limit} one event may", limit = crate::limits::EVENT_BYTES_MAX)]
    DataBytes(usize),
}

impl Unservable {
    /// What a metric's `reason` label calls it.
    pub fn label(self) -> &'static str {
        match self {
            Unservable::RecordedAt(_) => "recorded_at",
            Unservable::DataBytes(_) => "data_bytes",
        }
    }
}

impl Event {
    /// Why no read could serve this event, if so: a `recorded_at` past what
    /// RFC 3339 writes, or more data than an event may hold. (Any 128 bits
    /// are an id every read prints; an id's own time is never written out.)
    pub fn unservable(&self) -> Option<Unservable> {
        if !self.recorded_at.is_writable() {
            return Some(Unservable::RecordedAt(self.recorded_at.0));
        }
        data_unservable(&self.data)
    }
}

/// Why no read could serve `data` as a value (an event's, or a losing one's).
pub fn data_unservable(data: &[u8]) -> Option<Unservable> {
    (data.len() > crate::limits::EVENT_BYTES_MAX).then_some(Unservable::DataBytes(data.len()))
}

/// A name that breaks the rule of names
/// ([`Error::InvalidName`](crate::Error::InvalidName) says it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidName {
    /// The name as given.
    pub name: String,
    /// Which part of the rule it breaks.
    pub reason: &'static str,
}

/// The database names a new database may not take, because paths of the
/// API begin with them: `db` always was, `status` and `ui` came with
/// `GET /status` and the dashboard. A data directory written before may hold
/// a database named `status` or `ui`: the node keeps serving it through
/// `/db/{db}/...` (and warns at start), but no node creates one again.
pub const RESERVED_NAMES: [&str; 3] = ["db", "status", "ui"];

/// Checks the name of a database to create: the rule of
/// [`validate_name`], and none of the [`RESERVED_NAMES`].
pub fn validate_new_name(name: &str) -> Result<(), InvalidName> {
    validate_name(name)?;
    let reason = match name {
        "status" => "the name 'status' is reserved",
        "ui" => "the name 'ui' is reserved",
        _ => return Ok(()),
    };
    Err(InvalidName {
        name: name.to_owned(),
        reason,
    })
}

/// Checks a database or view name a path or a call carries against
/// `^[a-z][a-z0-9_-]{0,63}$` and the name `db`, which no node ever held.
/// The names reserved since (`status`, `ui`) pass, so that a database of
/// either name from an older data directory stays readable;
/// [`validate_new_name`] refuses them to a new database.
pub fn validate_name(name: &str) -> Result<(), InvalidName> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > crate::limits::NAME_LENGTH_MAX {
        Some("it is longer than 64 characters")
    } else if !name.as_bytes().first().is_some_and(u8::is_ascii_lowercase) {
        Some("it must start with a lower-case letter")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        Some("only a-z, 0-9, '_' and '-' are allowed")
    } else if name == "db" {
        Some("the name 'db' is reserved")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(InvalidName {
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Whether `name` matches `glob`, where `*` stands for any run of
/// characters (none included) and every other character for itself.
pub fn glob_matches(glob: &str, name: &str) -> bool {
    let mut parts = glob.split('*');
    let Some(first) = parts.next() else {
        return false;
    };
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        // No `*`: the name is the glob.
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = rest.get(at + part.len()..).unwrap_or_default(),
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_names_and_runs() {
        for (glob, name, matches) in [
            ("*", "anything", true),
            ("*", "", true),
            ("truck-*", "truck-17", true),
            ("truck-*", "truck-", true),
            ("truck-*", "trucks", false),
            ("truck-*", "routes", false),
            ("routes", "routes", true),
            ("routes", "routes2", false),
            ("*-north", "hub-north", true),
            ("*-north", "hub-south", false),
            ("a*b*c", "abc", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxcyyb", false),
            ("a*a", "a", false),
            ("a*a", "aa", true),
        ] {
            assert_eq!(glob_matches(glob, name), matches, "{glob} against {name}");
        }
    }

    #[test]
    fn ids_parse_case_insensitively_and_print_upper_case() {
        let id: EventId = "01jdq8z4y4m5v6t4q2w3e8r9ta".parse().expect("valid id");
        assert_eq!(id.to_string(), "01JDQ8Z4Y4M5V6T4Q2W3E8R9TA");
        assert_eq!(EventId::from_bytes(id.to_bytes()), id);
    }

    #[test]
    fn ids_that_overflow_or_use_foreign_characters_are_refused() {
        assert_eq!(
            "81JDQ8Z4Y4M5V6T4Q2W3E8R9TA".parse::<EventId>(),
            Err(IdError::Overflow)
        );
        assert_eq!(
            "7ZZZZZZZZZZZZZZZZZZZZZZZZZ"
                .parse::<EventId>()
                .map(|id| id.to_u128()),
            Ok(u128::MAX)
        );
        assert_eq!(
            "01JDQ8Z4Y4M5V6T4Q2W3E8R9TU".parse::<EventId>(),
            Err(IdError::Character('U'))
        );
        assert_eq!(
            "01JDQ8Z4Y4M5V6T4Q2W3E8R9Tl".parse::<EventId>(),
            Err(IdError::Character('l'))
        );
        assert_eq!(
            "01JDQ8Z4Y4M5V6T4Q2W3E8R9T".parse::<EventId>(),
            Err(IdError::Length(25))
        );
        assert_eq!(
            "01JDQ8Z4Y4M5V6T4Q2W3E8R9Té".parse::<EventId>(),
            Err(IdError::Character('é'))
        );
    }

    #[test]
    fn byte_order_is_id_order_is_time_order() {
        let early = EventId::from_parts(1_000, u128::MAX >> 48);
        let late = EventId::from_parts(1_001, 0);
        assert!(early < late);
        assert!(early.to_bytes() < late.to_bytes());
        assert_eq!(late.time_ms(), 1_001);
    }

    #[test]
    fn timestamps_print_as_rfc3339_with_milliseconds() {
        assert_eq!(
            Timestamp(1_795_957_807_123).to_string(),
            "2026-11-29T13:10:07.123Z"
        );
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn times_past_year_9999_are_not_writable_and_fail_to_show() {
        let last = Timestamp(crate::limits::RECORDED_AT_MS_MAX);
        assert!(last.is_writable());
        assert_eq!(last.to_string(), "9999-12-31T23:59:59.999Z");
        for later in [crate::limits::RECORDED_AT_MS_MAX + 1, 1 << 63, u64::MAX] {
            let later = Timestamp(later);
            assert!(!later.is_writable());
            let mut out = String::new();
            assert!(fmt::Write::write_fmt(&mut out, format_args!("{later}")).is_err());
            let event = Event {
                id: EventId::from_u128(u128::MAX),
                data: Bytes::from_static(b"{}"),
                recorded_at: later,
                lc: 1,
            };
            assert_eq!(event.unservable(), Some(Unservable::RecordedAt(later.0)));
        }
    }

    #[test]
    fn events_past_the_size_of_any_write_are_unservable() {
        let mut event = Event {
            id: EventId::from_u128(u128::MAX),
            data: Bytes::from(vec![b'x'; crate::limits::EVENT_BYTES_MAX]),
            recorded_at: Timestamp(crate::limits::RECORDED_AT_MS_MAX),
            lc: 1,
        };
        assert_eq!(event.unservable(), None, "the largest event, latest time");
        event.data = Bytes::from(vec![b'x'; crate::limits::EVENT_BYTES_MAX + 1]);
        assert_eq!(
            event.unservable(),
            Some(Unservable::DataBytes(crate::limits::EVENT_BYTES_MAX + 1))
        );
    }

    #[test]
    fn names_follow_the_contract() {
        for good in ["a", "shipments", "farm-gate_2", &"a".repeat(64)] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "db",
            "Shipments",
            "1a",
            "_a",
            "a.b",
            "a/b",
            &"a".repeat(65),
            "é",
        ] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reserved_names_are_refused_to_new_databases_alone() {
        for reserved in RESERVED_NAMES {
            let refused = validate_new_name(reserved).expect_err(reserved);
            assert_eq!(refused.name, reserved);
            assert!(refused.reason.contains("reserved"), "{}", refused.reason);
            assert!(refused.reason.contains(reserved), "{}", refused.reason);
        }
        // A database of a name reserved since the first release may be held
        // already: it can still be named.
        for held in ["status", "ui"] {
            assert!(validate_name(held).is_ok(), "{held}");
        }
        assert!(validate_name("db").is_err());
        for good in ["a", "uis", "statuses", "ui-2"] {
            assert!(validate_new_name(good).is_ok(), "{good}");
        }
        assert!(validate_new_name("Bad").is_err());
    }
}
