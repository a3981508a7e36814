//! What the code `#[view]` generates calls: the aggregators, the key
//! helpers and the crates it names, all under `::laterbase::__private`, so
//! that a user's crate needs no dependency but `laterbase`. Not a stable
//! interface.

pub use inventory;
pub use serde;
pub use serde_json;

pub use super::exact::ExactSum;
pub use super::registry::Registration;
pub use super::view::{FoldError, Key, KeyKind, View};
pub use crate::event::EventId;

/// A field `#[sum]` can add up into an exact total, so that the sum does
/// not depend on the order events arrive in: integers of up to 64 bits and
/// floats all add up in an [`ExactSum`], and are saturated (integers) or
/// rounded once to the field's type (floats) only when shown. 128-bit
/// integers are not summable: their total could only saturate, which
/// depends on order.
#[diagnostic::on_unimplemented(
    message = "`#[sum]` cannot add up values of type `{Self}`",
    label = "this field is not a number `#[sum]` takes",
    note = "`#[sum]` takes integers of up to 64 bits and floating-point fields"
)]
pub trait Summable: Copy {
    /// Adds `value` to `total`, exactly.
    fn add(total: &mut ExactSum, value: Self);
    /// The total as this type shows it: saturated for integers, correctly
    /// rounded (and at most the largest finite value) for floats.
    fn shown(total: &ExactSum) -> Self;
}

macro_rules! summable_integer {
    ($($t:ty),*) => { $(impl Summable for $t {
        fn add(total: &mut ExactSum, value: Self) {
            total.add_integer(value as i128);
        }
        fn shown(total: &ExactSum) -> Self {
            let whole = total.to_i128();
            <$t>::try_from(whole).unwrap_or(if whole < 0 { <$t>::MIN } else { <$t>::MAX })
        }
    })* };
}
summable_integer!(i8, i16, i32, i64, isize, u8, u16, u32, u64, usize);

impl Summable for f32 {
    fn add(total: &mut ExactSum, value: Self) {
        total.add(f64::from(value));
    }
    fn shown(total: &ExactSum) -> Self {
        total.to_f32()
    }
}

impl Summable for f64 {
    fn add(total: &mut ExactSum, value: Self) {
        total.add(value);
    }
    fn shown(total: &ExactSum) -> Self {
        total.to_f64()
    }
}

/// A field `#[min]` and `#[max]` can compare: a total order, so that the
/// extreme does not depend on arrival order (floats by `total_cmp`, where
/// `-0.0` is below `0.0`).
#[diagnostic::on_unimplemented(
    message = "`#[min]` and `#[max]` cannot order values of type `{Self}`",
    label = "this field has no total order `#[min]` and `#[max]` know",
    note = "`#[min]` and `#[max]` take integers, floats, strings, chars and booleans"
)]
pub trait Extreme: Clone {
    /// Whether `self` comes before `other`.
    fn below(&self, other: &Self) -> bool;
}

macro_rules! extreme_ord {
    ($($t:ty),*) => { $(impl Extreme for $t {
        fn below(&self, other: &Self) -> bool { self < other }
    })* };
}
extreme_ord!(
    i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize, bool, char, String
);

impl Extreme for f32 {
    fn below(&self, other: &Self) -> bool {
        self.total_cmp(other).is_lt()
    }
}

impl Extreme for f64 {
    fn below(&self, other: &Self) -> bool {
        self.total_cmp(other).is_lt()
    }
}

/// A field `#[count]` can count in.
#[diagnostic::on_unimplemented(
    message = "`#[count]` counts in an integer field, not `{Self}`",
    label = "this field is not an integer"
)]
pub trait Countable: Copy {
    /// One more.
    fn increment(&mut self);
}

macro_rules! countable {
    ($($t:ty),*) => { $(impl Countable for $t {
        fn increment(&mut self) { *self = self.saturating_add(1); }
    })* };
}
countable!(i32, i64, i128, isize, u32, u64, u128, usize);

/// A field a view can group by.
#[diagnostic::on_unimplemented(
    message = "a view cannot be keyed by `{Self}`",
    label = "the key field must be a string, an integer or a boolean"
)]
pub trait IntoKey {
    /// The kind of every key of this type.
    const KIND: KeyKind;
    /// This value as a key.
    fn to_key(&self) -> Key;
}

impl IntoKey for String {
    const KIND: KeyKind = KeyKind::Str;
    fn to_key(&self) -> Key {
        Key::Str(self.clone())
    }
}

impl IntoKey for str {
    const KIND: KeyKind = KeyKind::Str;
    fn to_key(&self) -> Key {
        Key::Str(self.to_owned())
    }
}

impl IntoKey for bool {
    const KIND: KeyKind = KeyKind::Bool;
    fn to_key(&self) -> Key {
        Key::Bool(*self)
    }
}

macro_rules! signed_key {
    ($($t:ty),*) => { $(impl IntoKey for $t {
        const KIND: KeyKind = KeyKind::Int;
        fn to_key(&self) -> Key { Key::Int(i64::from(*self)) }
    })* };
}
signed_key!(i8, i16, i32, i64);

macro_rules! unsigned_key {
    ($($t:ty),*) => { $(impl IntoKey for $t {
        const KIND: KeyKind = KeyKind::UInt;
        fn to_key(&self) -> Key { Key::UInt(u64::from(*self)) }
    })* };
}
unsigned_key!(u8, u16, u32, u64);

/// The key of a field's value.
pub fn key_of<T: IntoKey + ?Sized>(value: &T) -> Key {
    value.to_key()
}

/// The key kind of the field that `field` reads from an event.
pub fn key_kind_of<E, T: IntoKey + ?Sized>(_field: fn(&E) -> &T) -> KeyKind {
    T::KIND
}

/// `#[count]`.
pub fn count<T: Countable>(total: &mut T) {
    total.increment();
}

/// `#[sum(field)]`.
pub fn sum<T: Summable>(total: &mut ExactSum, value: &T) {
    T::add(total, *value);
}

/// The value a `#[sum]` slot shows.
pub fn sum_value<T: Summable + serde::Serialize>(total: &ExactSum) -> serde_json::Value {
    json(&T::shown(total))
}

/// `#[min(field)]`.
pub fn min<T: Extreme>(slot: &mut Option<T>, value: &T) {
    if slot.as_ref().is_none_or(|current| value.below(current)) {
        *slot = Some(value.clone());
    }
}

/// `#[max(field)]`.
pub fn max<T: Extreme>(slot: &mut Option<T>, value: &T) {
    if slot.as_ref().is_none_or(|current| current.below(value)) {
        *slot = Some(value.clone());
    }
}

/// Fails, before anything is folded, if a field an aggregator reads holds
/// a float that is not finite: the event is skipped and counted.
pub fn finite<T: serde::Serialize + ?Sized>(value: &T) -> Result<(), FoldError> {
    super::finite::check(value).map_err(FoldError::Input)
}

/// `#[first(field)]`: the value of the event with the smallest id, whatever
/// the order events arrive in.
pub fn first<T: Clone>(slot: &mut Option<(EventId, T)>, id: EventId, value: &T) {
    if slot.as_ref().is_none_or(|(current, _)| id < *current) {
        *slot = Some((id, value.clone()));
    }
}

/// `#[last(field)]`: the value of the event with the greatest id.
pub fn last<T: Clone>(slot: &mut Option<(EventId, T)>, id: EventId, value: &T) {
    if slot.as_ref().is_none_or(|(current, _)| id > *current) {
        *slot = Some((id, value.clone()));
    }
}

/// A value as JSON (`null` if it does not serialise).
pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

/// The value a `first`/`last` slot shows.
pub fn slot_value<T: serde::Serialize>(slot: &Option<(EventId, T)>) -> serde_json::Value {
    json(&slot.as_ref().map(|(_, value)| value))
}
