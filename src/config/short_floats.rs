//! TOML with every `f32` in its shortest form: `lr = 0.05`, not
//! `lr = 0.05000000074505806`.
//!
//! The `toml` crate widens an `f32` to `f64` before writing it, so each
//! configuration value a run folder recorded read as float noise
//! (toml-rs/toml issue 494, open). No crate adapts a serializer this way,
//! hence this one: [`Short`] passes every call through to the serializer it
//! wraps, nested values included, and writes an `f32` as the `f64` nearest
//! its shortest decimal form. That reads back as the very same `f32`, so a
//! configuration still round-trips exactly.

use serde::ser::{self, Serialize, Serializer};

/// `value` as TOML, each `f32` in its shortest form.
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> Result<String, toml::ser::Error> {
    let mut out = String::new();
    value.serialize(Short(toml::Serializer::new(&mut out)))?;
    Ok(out)
}

/// The `f64` to write for `v`: its shortest decimal form, unless that would
/// not read back as `v` (never seen; checked rather than assumed).
fn shortest(v: f32) -> f64 {
    let widened = f64::from(v);
    if !v.is_finite() {
        return widened;
    }
    match v.to_string().parse::<f64>() {
        Ok(short) if short as f32 == v => short,
        _ => widened,
    }
}

/// A serializer, or one of its compound parts, whose `f32`s are shortened.
struct Short<S>(S);

/// A value whose serialization goes through [`Short`].
struct Wrap<'a, T: ?Sized>(&'a T);

impl<T: Serialize + ?Sized> Serialize for Wrap<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(Short(serializer))
    }
}

/// Serializer methods that take nothing to rewrite: passed through.
macro_rules! pass {
    ($($method:ident($($arg:ident: $ty:ty),*) -> $out:ty;)*) => {
        $(fn $method(self, $($arg: $ty),*) -> Result<$out, S::Error> {
            self.0.$method($($arg),*)
        })*
    };
}

impl<S: Serializer> Serializer for Short<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Short<S::SerializeSeq>;
    type SerializeTuple = Short<S::SerializeTuple>;
    type SerializeTupleStruct = Short<S::SerializeTupleStruct>;
    type SerializeTupleVariant = Short<S::SerializeTupleVariant>;
    type SerializeMap = Short<S::SerializeMap>;
    type SerializeStruct = Short<S::SerializeStruct>;
    type SerializeStructVariant = Short<S::SerializeStructVariant>;

    fn serialize_f32(self, v: f32) -> Result<S::Ok, S::Error> {
        self.0.serialize_f64(shortest(v))
    }

    pass! {
        serialize_bool(v: bool) -> S::Ok;
        serialize_i8(v: i8) -> S::Ok;
        serialize_i16(v: i16) -> S::Ok;
        serialize_i32(v: i32) -> S::Ok;
        serialize_i64(v: i64) -> S::Ok;
        serialize_i128(v: i128) -> S::Ok;
        serialize_u8(v: u8) -> S::Ok;
        serialize_u16(v: u16) -> S::Ok;
        serialize_u32(v: u32) -> S::Ok;
        serialize_u64(v: u64) -> S::Ok;
        serialize_u128(v: u128) -> S::Ok;
        serialize_f64(v: f64) -> S::Ok;
        serialize_char(v: char) -> S::Ok;
        serialize_str(v: &str) -> S::Ok;
        serialize_bytes(v: &[u8]) -> S::Ok;
        serialize_none() -> S::Ok;
        serialize_unit() -> S::Ok;
        serialize_unit_struct(name: &'static str) -> S::Ok;
        serialize_unit_variant(name: &'static str, index: u32, variant: &'static str) -> S::Ok;
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        self.0.serialize_some(&Wrap(value))
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, name: &'static str, value: &T) -> Result<S::Ok, S::Error> {
        self.0.serialize_newtype_struct(name, &Wrap(value))
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        self.0.serialize_newtype_variant(name, index, variant, &Wrap(value))
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        self.0.serialize_seq(len).map(Short)
    }

    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, S::Error> {
        self.0.serialize_tuple(len).map(Short)
    }

    fn serialize_tuple_struct(self, name: &'static str, len: usize) -> Result<Self::SerializeTupleStruct, S::Error> {
        self.0.serialize_tuple_struct(name, len).map(Short)
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        self.0.serialize_tuple_variant(name, index, variant, len).map(Short)
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        self.0.serialize_map(len).map(Short)
    }

    fn serialize_struct(self, name: &'static str, len: usize) -> Result<Self::SerializeStruct, S::Error> {
        self.0.serialize_struct(name, len).map(Short)
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        self.0.serialize_struct_variant(name, index, variant, len).map(Short)
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

/// The compound parts: each element, key or field goes through [`Wrap`].
macro_rules! compound {
    ($($trait:ident::$method:ident($($name:ident: $ty:ty),*);)*) => {
        $(impl<S: ser::$trait> ser::$trait for Short<S> {
            type Ok = S::Ok;
            type Error = S::Error;

            fn $method<T: Serialize + ?Sized>(&mut self, $($name: $ty,)* value: &T) -> Result<(), S::Error> {
                self.0.$method($($name,)* &Wrap(value))
            }

            fn end(self) -> Result<S::Ok, S::Error> {
                self.0.end()
            }
        })*
    };
}

compound! {
    SerializeSeq::serialize_element();
    SerializeTuple::serialize_element();
    SerializeTupleStruct::serialize_field();
    SerializeTupleVariant::serialize_field();
}

impl<S: ser::SerializeMap> ser::SerializeMap for Short<S> {
    type Ok = S::Ok;
    type Error = S::Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), S::Error> {
        self.0.serialize_key(&Wrap(key))
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
        self.0.serialize_value(&Wrap(value))
    }

    fn serialize_entry<K: Serialize + ?Sized, V: Serialize + ?Sized>(
        &mut self,
        key: &K,
        value: &V,
    ) -> Result<(), S::Error> {
        self.0.serialize_entry(&Wrap(key), &Wrap(value))
    }

    fn end(self) -> Result<S::Ok, S::Error> {
        self.0.end()
    }
}

/// Structs and struct variants: fields through [`Wrap`], skips passed on.
macro_rules! structs {
    ($($trait:ident;)*) => {
        $(impl<S: ser::$trait> ser::$trait for Short<S> {
            type Ok = S::Ok;
            type Error = S::Error;

            fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), S::Error> {
                self.0.serialize_field(key, &Wrap(value))
            }

            fn skip_field(&mut self, key: &'static str) -> Result<(), S::Error> {
                self.0.skip_field(key)
            }

            fn end(self) -> Result<S::Ok, S::Error> {
                self.0.end()
            }
        })*
    };
}

structs! {
    SerializeStruct;
    SerializeStructVariant;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Sample {
        lr: f32,
        exact: f64,
        nested: Vec<Inner>,
        maybe: Option<f32>,
        absent: Option<f32>,
        list: Vec<f32>,
    }

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    #[serde(tag = "kind")]
    enum Inner {
        Step { eps: f32 },
    }

    #[test]
    fn f32s_are_written_shortest_and_read_back_exactly() {
        let sample = Sample {
            lr: 0.05,
            exact: 0.1,
            nested: vec![Inner::Step { eps: 0.3 }],
            maybe: Some(0.9),
            absent: None,
            list: vec![1e-3, 8.0 / 255.0, -0.0, f32::MIN_POSITIVE, f32::MAX],
        };
        let text = to_string(&sample).unwrap();
        assert!(text.contains("lr = 0.05\n"), "{text}");
        assert!(text.contains("exact = 0.1\n"), "{text}");
        assert!(text.contains("eps = 0.3\n"), "{text}");
        assert!(text.contains("maybe = 0.9\n"), "{text}");
        assert!(!text.contains("absent"), "{text}");
        assert!(text.contains("[[nested]]\nkind = \"Step\""), "{text}");
        let back: Sample = toml::from_str(&text).unwrap();
        assert_eq!(back, sample);
        assert!(back.list[2].is_sign_negative());
    }

    #[test]
    fn values_exact_in_f32_are_written_as_toml_writes_them() {
        let sample = Sample {
            lr: 0.5,
            exact: 2.0,
            nested: vec![],
            maybe: None,
            absent: None,
            list: vec![0.25, 3.0],
        };
        // Values exact in f32 write the same either way.
        assert_eq!(to_string(&sample).unwrap(), toml::to_string(&sample).unwrap());
    }

    #[test]
    fn every_f32_bit_pattern_sampled_round_trips() {
        // About a million bit patterns spread over all of them (a prime
        // step): normals, subnormals, both signs.
        for bits in (0..=u32::MAX).step_by(4093) {
            let v = f32::from_bits(bits);
            if v.is_finite() {
                assert_eq!(shortest(v) as f32, v, "{bits:#x}");
            }
        }
    }
}
