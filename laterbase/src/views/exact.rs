//! The exact sum behind `#[sum]`: a fixed-point integer wide enough for
//! every finite `f64` and every `i64` or `u64` (and 2^64 of them), so that
//! adding is exact, and therefore independent of order, batching and
//! restarts. The total is rounded once to the field's own type (or, for
//! integers, saturated to it) only when a row is shown.
//!
//! Every finite `f64` is an integer multiple of 2^-1074 (the smallest
//! subnormal) below 2^1024, so the sum is kept as that integer, in two's
//! complement over [`LIMBS`] 64-bit limbs. No crate fitted: `xsum` keeps its
//! accumulator private (it cannot be stored in a row), and `accurate`'s
//! exact sums keep theirs private too.
//!
//! The stored form is a short string: `"0"`, `"-0"` (every term was `-0.0`,
//! as IEEE addition gives), or a signed hexadecimal integer and a binary
//! exponent, `"-1ap-3"` for -26 × 2^-3. It is canonical: one total, one
//! string.

use std::fmt;

/// Limbs of the accumulator: 2098 bits of value for every finite `f64`,
/// 64 bits of headroom for 2^64 terms, and the sign.
const LIMBS: usize = 34;
/// The value of bit 0 is 2^UNIT_EXPONENT.
const UNIT_EXPONENT: i32 = -1074;
/// The highest bit a stored total may set: 2^1024 times 2^64 terms.
const POSITION_MAX: u32 = 2098 + 64;
/// Hex digits a stored total may have.
const DIGITS_MAX: usize = (POSITION_MAX as usize).div_ceil(4) + 1;

const _: () = assert!(POSITION_MAX < (LIMBS as u32) * 64 - 1, "room for the sign");

/// An exact sum of finite floating-point numbers.
#[derive(Clone, PartialEq, Eq)]
pub struct ExactSum {
    /// The total in units of 2^-1074, two's complement, least significant
    /// limb first.
    limbs: [u64; LIMBS],
    /// Whether a term other than `-0.0` was added: an exact zero shows as
    /// `-0.0` until one is, since `-0.0` is IEEE addition's identity.
    other_than_minus_zero: bool,
}

/// Why a stored total does not read back.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExactSumError {
    /// It is not of the form `[-]HEXpEXP`.
    #[error("an exact sum is written as `0`, `-0` or `[-]HEXpEXP`, not {0:?}")]
    Syntax(String),
    /// Its value lies outside what a sum of `f64`s can reach.
    #[error("an exact sum out of range: {0:?}")]
    Range(String),
}

impl Default for ExactSum {
    fn default() -> ExactSum {
        ExactSum {
            limbs: [0; LIMBS],
            other_than_minus_zero: false,
        }
    }
}

impl ExactSum {
    /// Adds `value`, exactly. It must be finite: callers reject the rest.
    pub fn add(&mut self, value: f64) {
        assert!(value.is_finite(), "an exact sum adds finite numbers only");
        let bits = value.to_bits();
        let negative = bits >> 63 == 1;
        let exponent = ((bits >> 52) & 0x7ff) as u32;
        let fraction = bits & ((1 << 52) - 1);
        if !(negative && exponent == 0 && fraction == 0) {
            self.other_than_minus_zero = true;
        }
        // A subnormal is `fraction` units; a normal one carries its hidden
        // bit and sits `exponent - 1` bits up.
        let (mantissa, position) = match exponent {
            0 => (fraction, 0),
            _ => (fraction | 1 << 52, exponent - 1),
        };
        if mantissa != 0 {
            self.add_bits(mantissa, position, negative);
        }
    }

    /// Adds an integer, exactly (for `#[sum]` over integer fields, which
    /// keep the same exact total).
    pub fn add_integer(&mut self, value: i128) {
        self.other_than_minus_zero = true;
        let magnitude = value.unsigned_abs();
        let one = (-UNIT_EXPONENT) as u32;
        for (part, position) in [
            (magnitude as u64, one),
            ((magnitude >> 64) as u64, one + 64),
        ] {
            if part != 0 {
                self.add_bits(part, position, value < 0);
            }
        }
    }

    /// The whole part of the total, saturated to `i128`'s range.
    pub fn to_i128(&self) -> i128 {
        let one = (-UNIT_EXPONENT) as u32;
        let negative = self.is_negative();
        let magnitude = self.magnitude();
        if highest_bit(&magnitude).is_some_and(|top| top >= one + 127) {
            return if negative { i128::MIN } else { i128::MAX };
        }
        let whole = i128::from(bits_at(&magnitude, one + 64, 63)) << 64
            | i128::from(bits_at(&magnitude, one, 64));
        if negative { -whole } else { whole }
    }

    /// Adds another sum, exactly.
    pub fn merge(&mut self, other: &ExactSum) {
        let mut carry = false;
        for (limb, theirs) in self.limbs.iter_mut().zip(other.limbs) {
            let (sum, first) = limb.overflowing_add(theirs);
            let (sum, second) = sum.overflowing_add(u64::from(carry));
            *limb = sum;
            carry = first || second;
        }
        self.other_than_minus_zero |= other.other_than_minus_zero;
    }

    /// The total, correctly rounded to an `f64` (half to even); beyond
    /// `f64`'s range, its largest finite value with the total's sign.
    pub fn to_f64(&self) -> f64 {
        let value = self.rounded(53, 0);
        if value.is_finite() {
            value
        } else {
            f64::MAX.copysign(value)
        }
    }

    /// The total, correctly rounded to an `f32` (once, not through `f64`);
    /// beyond `f32`'s range, its largest finite value with the total's sign.
    pub fn to_f32(&self) -> f32 {
        // f32's smallest subnormal is 2^-149: the rounding stops there.
        let value = self.rounded(24, (-149 - UNIT_EXPONENT) as u32);
        if value.abs() > f64::from(f32::MAX) {
            f32::MAX.copysign(value as f32)
        } else {
            // Exact: `value` has at most 24 significant bits in f32's range.
            value as f32
        }
    }

    /// Adds `bits` × 2^`position` units, or subtracts it if `negative`.
    fn add_bits(&mut self, bits: u64, position: u32, negative: bool) {
        assert!(position <= POSITION_MAX, "a term beyond the accumulator");
        let wide = u128::from(bits) << (position % 64);
        let parts = [wide as u64, (wide >> 64) as u64];
        let mut index = (position / 64) as usize;
        let mut carry = false;
        for part in parts {
            let Some(limb) = self.limbs.get_mut(index) else {
                assert_eq!(part, 0, "a term beyond the accumulator");
                break;
            };
            (*limb, carry) = step(*limb, part, carry, negative);
            index += 1;
        }
        for limb in self.limbs.iter_mut().skip(index) {
            if !carry {
                break;
            }
            (*limb, carry) = step(*limb, 0, carry, negative);
        }
    }

    fn is_negative(&self) -> bool {
        self.limbs[LIMBS - 1] >> 63 == 1
    }

    /// The magnitude of the total, in units.
    fn magnitude(&self) -> [u64; LIMBS] {
        if !self.is_negative() {
            return self.limbs;
        }
        let mut magnitude = self.limbs.map(|limb| !limb);
        for limb in &mut magnitude {
            let (sum, carry) = limb.overflowing_add(1);
            *limb = sum;
            if !carry {
                break;
            }
        }
        magnitude
    }

    /// The total rounded to `precision` significant bits, no bit below
    /// `lowest` units kept, as an `f64` (infinite past its range).
    fn rounded(&self, precision: u32, lowest: u32) -> f64 {
        let negative = self.is_negative();
        let magnitude = self.magnitude();
        let sign = if negative { -1.0 } else { 1.0 };
        let Some(top) = highest_bit(&magnitude) else {
            return if self.other_than_minus_zero {
                0.0
            } else {
                -0.0
            };
        };
        let length = top + 1;
        let low = length.saturating_sub(precision).max(lowest);
        let mut kept = bits_at(&magnitude, low, length.saturating_sub(low).min(64));
        if low > 0 {
            let half = bit(&magnitude, low - 1);
            let sticky = (0..low - 1).any(|at| bit(&magnitude, at));
            if half && (sticky || kept & 1 == 1) {
                kept += 1;
            }
        }
        // `kept` has at most `precision` + 1 bits (a carry into a power of
        // two), so it is exact as an f64; scaling by a power of two is
        // exact in two halves that stay normal.
        let exponent = low as i32 + UNIT_EXPONENT;
        let first = exponent / 2;
        sign * (kept as f64) * pow2(first) * pow2(exponent - first)
    }

    /// The canonical stored form.
    fn encode(&self) -> String {
        let magnitude = self.magnitude();
        let (Some(top), Some(bottom)) = (highest_bit(&magnitude), lowest_bit(&magnitude)) else {
            return if self.other_than_minus_zero {
                "0"
            } else {
                "-0"
            }
            .to_owned();
        };
        let mut text = String::with_capacity(8 + (top - bottom) as usize / 4);
        if self.is_negative() {
            text.push('-');
        }
        let (first, last) = (bottom / 4, top / 4);
        for nibble in (first..=last).rev() {
            let digit = bits_at(&magnitude, nibble * 4, 4);
            text.push(char::from_digit(digit as u32, 16).unwrap_or('0'));
        }
        text.push('p');
        text.push_str(&(first as i32 * 4 + UNIT_EXPONENT).to_string());
        text
    }

    /// Reads a stored form back.
    fn decode(text: &str) -> Result<ExactSum, ExactSumError> {
        let syntax = || ExactSumError::Syntax(text.to_owned());
        match text {
            "0" => {
                return Ok(ExactSum {
                    other_than_minus_zero: true,
                    ..ExactSum::default()
                });
            }
            "-0" => return Ok(ExactSum::default()),
            _ => {}
        }
        let (negative, unsigned) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (digits, exponent) = unsigned.split_once('p').ok_or_else(syntax)?;
        let exponent: i32 = exponent.parse().map_err(|_| syntax())?;
        let canonical = !digits.is_empty()
            && !digits.starts_with('0')
            && digits.len() <= DIGITS_MAX
            && digits
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !canonical {
            return Err(syntax());
        }
        let start = exponent
            .checked_sub(UNIT_EXPONENT)
            .and_then(|start| u32::try_from(start).ok())
            .filter(|start| start + 4 * digits.len() as u32 <= POSITION_MAX + 1)
            .ok_or_else(|| ExactSumError::Range(text.to_owned()))?;
        let mut sum = ExactSum {
            other_than_minus_zero: true,
            ..ExactSum::default()
        };
        for (index, digit) in digits.bytes().rev().enumerate() {
            let value = u64::from(char::from(digit).to_digit(16).ok_or_else(syntax)?);
            if value != 0 {
                sum.add_bits(value, start + 4 * index as u32, negative);
            }
        }
        Ok(sum)
    }
}

impl fmt::Debug for ExactSum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ExactSum({})", self.encode())
    }
}

impl serde::Serialize for ExactSum {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.encode())
    }
}

impl<'de> serde::Deserialize<'de> for ExactSum {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<ExactSum, D::Error> {
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = ExactSum;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an exact sum as a string")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<ExactSum, E> {
                ExactSum::decode(text).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Text)
    }
}

/// `limb` plus (or minus, if `negative`) `part` and a carry (or borrow).
fn step(limb: u64, part: u64, carry: bool, negative: bool) -> (u64, bool) {
    if negative {
        let (difference, first) = limb.overflowing_sub(part);
        let (difference, second) = difference.overflowing_sub(u64::from(carry));
        (difference, first || second)
    } else {
        let (sum, first) = limb.overflowing_add(part);
        let (sum, second) = sum.overflowing_add(u64::from(carry));
        (sum, first || second)
    }
}

fn bit(limbs: &[u64; LIMBS], at: u32) -> bool {
    limbs
        .get((at / 64) as usize)
        .is_some_and(|limb| limb >> (at % 64) & 1 == 1)
}

/// `count` (at most 64) bits of `limbs` from bit `from` up.
fn bits_at(limbs: &[u64; LIMBS], from: u32, count: u32) -> u64 {
    assert!(count <= 64, "at most one limb of bits at a time");
    let index = (from / 64) as usize;
    let shift = from % 64;
    let low = limbs.get(index).copied().unwrap_or(0);
    let high = limbs.get(index + 1).copied().unwrap_or(0);
    let wide = (u128::from(high) << 64 | u128::from(low)) >> shift;
    match count {
        64 => wide as u64,
        _ => wide as u64 & ((1 << count) - 1),
    }
}

fn highest_bit(limbs: &[u64; LIMBS]) -> Option<u32> {
    let (index, limb) = limbs.iter().enumerate().rfind(|(_, limb)| **limb != 0)?;
    Some(index as u32 * 64 + 63 - limb.leading_zeros())
}

fn lowest_bit(limbs: &[u64; LIMBS]) -> Option<u32> {
    let (index, limb) = limbs.iter().enumerate().find(|(_, limb)| **limb != 0)?;
    Some(index as u32 * 64 + limb.trailing_zeros())
}

/// 2^`exponent`, for exponents of a normal `f64`.
fn pow2(exponent: i32) -> f64 {
    assert!((-1022..=1023).contains(&exponent), "a normal power of two");
    f64::from_bits(((exponent + 1023) as u64) << 52)
}

#[cfg(test)]
mod tests {
    use super::ExactSum;
    use proptest::prelude::*;

    fn sum(values: &[f64]) -> ExactSum {
        let mut total = ExactSum::default();
        for value in values {
            total.add(*value);
        }
        total
    }

    #[test]
    fn sums_are_exact_and_rounded_once() {
        // Arrival order would give 0.6000000000000001 one way and 0.6 the other.
        assert_eq!(sum(&[0.1, 0.2, 0.3]).to_f64(), 0.6);
        assert_eq!(sum(&[0.3, 0.2, 0.1]).to_f64(), 0.6);
        assert_eq!(sum(&[1e100, 1.0, -1e100]).to_f64(), 1.0);
        assert_eq!(
            sum(&[f64::MIN_POSITIVE / 4.0; 3]).to_f64(),
            f64::MIN_POSITIVE * 0.75
        );
        assert_eq!(sum(&[f64::MAX, f64::MAX]).to_f64(), f64::MAX);
        assert_eq!(sum(&[-f64::MAX, -f64::MAX]).to_f64(), -f64::MAX);
        assert_eq!(sum(&[f64::MAX, f64::MAX, -f64::MAX]).to_f64(), f64::MAX);
        // Half to even at the last place: 2^53 + 1 ties down, 2^53 + 3 up.
        let big = 9_007_199_254_740_992.0;
        assert_eq!(sum(&[big, 1.0]).to_f64(), big);
        assert_eq!(sum(&[big, 1.0, 1.0, 1.0]).to_f64(), big + 4.0);
        assert_eq!(sum(&[big, 1.0, 1e-300]).to_f64(), big + 2.0);
    }

    #[test]
    fn zeros_keep_the_sign_ieee_gives_them() {
        assert!(sum(&[-0.0, -0.0]).to_f64().is_sign_negative());
        assert!(sum(&[-0.0, 0.0]).to_f64().is_sign_positive());
        assert!(sum(&[1.5, -1.5]).to_f64().is_sign_positive());
        assert!(sum(&[-0.0]).to_f32().is_sign_negative());
    }

    #[test]
    fn f32_totals_round_once_to_f32() {
        // 1 + 2^-24 + 2^-60 is just above the half-way point between two
        // f32s: rounding through f64 would lose the 2^-60 and tie to even.
        let parts = [1.0, 2f64.powi(-24), 2f64.powi(-60)];
        assert_eq!(sum(&parts).to_f32(), 1.0 + f32::EPSILON);
        assert_eq!(sum(&[f64::from(f32::MAX); 2]).to_f32(), f32::MAX);
        assert_eq!(sum(&[-f64::from(f32::MAX); 2]).to_f32(), -f32::MAX);
        let tiny = f64::from(f32::from_bits(1));
        assert_eq!(sum(&[tiny, tiny * 0.25]).to_f32(), f32::from_bits(1));
    }

    #[test]
    fn stored_forms_are_canonical_and_read_back() {
        for values in [
            &[][..],
            &[0.0],
            &[-0.0],
            &[20.5],
            &[-3.25, 1.0],
            &[f64::MAX, f64::MAX],
            &[f64::from_bits(1)],
        ] {
            let total = sum(values);
            let text = serde_json::to_string(&total).expect("serialises");
            let back: ExactSum = serde_json::from_str(&text).expect("reads back");
            assert_eq!(back, total, "{text}");
        }
        assert_eq!(
            serde_json::to_string(&sum(&[20.5])).expect("json"),
            "\"52p-2\""
        );
        let mut integers = ExactSum::default();
        for value in [i128::from(i64::MAX), 1, -1, i128::from(u64::MAX)] {
            integers.add_integer(value);
        }
        let expected = i128::from(i64::MAX) + i128::from(u64::MAX);
        assert_eq!(integers.to_i128(), expected);
        integers.add_integer(-2 * expected);
        assert_eq!(integers.to_i128(), -expected);
        integers.add_integer(i128::MIN);
        assert_eq!(integers.to_i128(), i128::MIN);
        assert_eq!(
            serde_json::to_string(&sum(&[-0.0])).expect("json"),
            "\"-0\""
        );
        for bad in ["", "p1", "1p", "01p0", "1Ap0", "1p-1075", "1p99999", "x"] {
            let text = serde_json::to_string(bad).expect("json");
            assert!(serde_json::from_str::<ExactSum>(&text).is_err(), "{bad}");
        }
    }

    /// Numbers that are multiples of 2^-40, so that an i128 sums them
    /// exactly and Rust's correctly rounded i128 → f64 conversion is the
    /// reference.
    fn scaled() -> impl Strategy<Value = i64> {
        prop_oneof![-(1_i64 << 53)..(1 << 53), -1000..1000_i64]
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x5eed_ec5a),
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn sums_equal_the_correctly_rounded_exact_sum(units in prop::collection::vec(scaled(), 0..40)) {
            let scale = 2f64.powi(-40);
            let values: Vec<f64> = units.iter().map(|unit| *unit as f64 * scale).collect();
            let exact: i128 = units.iter().map(|unit| i128::from(*unit)).sum();
            let total = sum(&values);
            if exact != 0 {
                prop_assert_eq!(total.to_f64(), exact as f64 * scale);
            }
            let mut reversed = values.clone();
            reversed.reverse();
            prop_assert_eq!(sum(&reversed), total.clone());
            let (left, right) = values.split_at(values.len() / 2);
            let mut merged = sum(left);
            merged.merge(&sum(right));
            prop_assert_eq!(merged, total);
        }
    }
}
