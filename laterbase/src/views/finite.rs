//! Whether a value holds only finite numbers, for what a view folds and
//! stores. JSON has no NaN or infinity: `serde_json` writes them as `null`,
//! which then does not read back into a float (or reads back as `None`),
//! so a row would change meaning or stop decoding. An `f32` field can get
//! an infinity from valid JSON (`1e39` overflows it), and a custom fold
//! can compute one.
//!
//! The check walks the value with a serializer that writes nothing and
//! fails at the first non-finite float (or at the value's own error).

use serde::ser::{self, Serialize};

/// Why a value is not one a view can fold or store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotFinite {
    /// It holds a NaN or an infinity.
    #[error("it holds a number that is not finite ({0})")]
    Float(f64),
    /// Its `Serialize` failed.
    #[error("it does not serialise: {0}")]
    Serialize(String),
}

impl ser::Error for NotFinite {
    fn custom<T: std::fmt::Display>(message: T) -> NotFinite {
        NotFinite::Serialize(message.to_string())
    }
}

/// Fails if `value` holds a float that is not finite.
pub fn check<T: Serialize + ?Sized>(value: &T) -> Result<(), NotFinite> {
    value.serialize(Walk)
}

/// The serializer that only looks.
#[derive(Clone, Copy)]
struct Walk;

type Done = Result<(), NotFinite>;

fn float(value: f64) -> Done {
    if value.is_finite() {
        Ok(())
    } else {
        Err(NotFinite::Float(value))
    }
}

macro_rules! fine {
    ($($method:ident($t:ty)),* $(,)?) => {
        $(fn $method(self, _: $t) -> Done { Ok(()) })*
    };
}

impl ser::Serializer for Walk {
    type Ok = ();
    type Error = NotFinite;
    type SerializeSeq = Walk;
    type SerializeTuple = Walk;
    type SerializeTupleStruct = Walk;
    type SerializeTupleVariant = Walk;
    type SerializeMap = Walk;
    type SerializeStruct = Walk;
    type SerializeStructVariant = Walk;

    fine!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_i128(i128),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_u128(u128),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_unit_struct(&'static str),
    );

    fn serialize_f32(self, value: f32) -> Done {
        float(f64::from(value))
    }
    fn serialize_f64(self, value: f64) -> Done {
        float(value)
    }
    fn serialize_none(self) -> Done {
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Done {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Done {
        Ok(())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Done {
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Done {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        value: &T,
    ) -> Done {
        value.serialize(self)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Walk, NotFinite> {
        Ok(self)
    }
    fn serialize_tuple(self, _: usize) -> Result<Walk, NotFinite> {
        Ok(self)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Walk, NotFinite> {
        Ok(self)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Walk, NotFinite> {
        Ok(self)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Walk, NotFinite> {
        Ok(self)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Walk, NotFinite> {
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Walk, NotFinite> {
        Ok(self)
    }
}

macro_rules! compound {
    ($($trait:ident :: $method:ident),* $(,)?) => {
        $(impl ser::$trait for Walk {
            type Ok = ();
            type Error = NotFinite;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Done {
                value.serialize(*self)
            }
            fn end(self) -> Done {
                Ok(())
            }
        })*
    };
}

compound!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field,
);

impl ser::SerializeMap for Walk {
    type Ok = ();
    type Error = NotFinite;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Done {
        key.serialize(*self)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Done {
        value.serialize(*self)
    }
    fn end(self) -> Done {
        Ok(())
    }
}

impl ser::SerializeStruct for Walk {
    type Ok = ();
    type Error = NotFinite;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, _: &'static str, value: &T) -> Done {
        value.serialize(*self)
    }
    fn end(self) -> Done {
        Ok(())
    }
}

impl ser::SerializeStructVariant for Walk {
    type Ok = ();
    type Error = NotFinite;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, _: &'static str, value: &T) -> Done {
        value.serialize(*self)
    }
    fn end(self) -> Done {
        Ok(())
    }
}
