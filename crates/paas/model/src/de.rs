//! Lenient field decoders for Stratos 4.1 JSON.
//!
//! Stratos's REST API bound JSON to JAXB beans through CXF's Jettison provider,
//! which reads every scalar as text: its own samples write `"port": "80"` and
//! `"multiTenant": "false"`, and a list of one element may arrive as a bare
//! object. These decoders accept both forms so those documents parse unchanged;
//! serialization always writes the natural JSON type.
//!
//! serde has no "number or numeric string" mode, so this small visitor set is
//! written here (serde_with's `PickFirst` would pull a large dependency for
//! four functions).

use serde::de::{self, Deserialize, Deserializer, IntoDeserializer, Visitor};
use std::fmt;
use std::marker::PhantomData;

/// An integer written as a JSON number or as a string holding one.
pub fn int<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    d.deserialize_any(IntVisitor)
}

/// A number written as a JSON number or as a string holding one.
pub fn float<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    d.deserialize_any(FloatVisitor)
}

/// A boolean written as `true`/`false` or as the strings `"true"`/`"false"`.
pub fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    d.deserialize_any(BoolVisitor)
}

/// Text that may have been written as a JSON string, number or boolean
/// (`"version": 7` and `"version": "7"` both give `"7"`).
pub fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    d.deserialize_any(TextVisitor)
}

/// Like [`text`], for an optional field.
pub fn opt_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    d.deserialize_any(OptVisitor(TextVisitor))
}

/// A list written as a JSON array, a single element, or `null` (empty).
/// Elements are decoded in place, so error paths reach inside them.
pub fn list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    d.deserialize_any(ListVisitor(PhantomData))
}

struct ListVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ListVisitor<T> {
    type Value = Vec<T>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array")
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element()? {
            out.push(item);
        }
        Ok(out)
    }
    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Vec<T>, A::Error> {
        T::deserialize(de::value::MapAccessDeserializer::new(map)).map(|one| vec![one])
    }
    fn visit_unit<E: de::Error>(self) -> Result<Vec<T>, E> {
        Ok(Vec::new())
    }
    fn visit_none<E: de::Error>(self) -> Result<Vec<T>, E> {
        Ok(Vec::new())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<T>, E> {
        T::deserialize(de::value::StrDeserializer::<E>::new(v)).map(|one| vec![one])
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Vec<T>, E> {
        T::deserialize(v.into_deserializer()).map(|one| vec![one])
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Vec<T>, E> {
        T::deserialize(v.into_deserializer()).map(|one| vec![one])
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Vec<T>, E> {
        T::deserialize(v.into_deserializer()).map(|one| vec![one])
    }
}

struct IntVisitor;

impl Visitor<'_> for IntVisitor {
    type Value = i64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an integer or a string holding one")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(|_| E::custom(format_args!("integer {v} is too large")))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
        if v.fract() == 0.0 && v.abs() < 9.0e15 {
            // Exact: |v| < 2^53 and no fractional part.
            #[allow(clippy::cast_possible_truncation)]
            Ok(v as i64)
        } else {
            Err(E::custom(format_args!("expected an integer, found {v}")))
        }
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
        v.trim()
            .parse()
            .map_err(|_| E::custom(format_args!("expected an integer, found the string {v:?}")))
    }
}

struct FloatVisitor;

impl Visitor<'_> for FloatVisitor {
    type Value = f64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number or a string holding one")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        #[allow(clippy::cast_precision_loss)]
        Ok(v as f64)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        #[allow(clippy::cast_precision_loss)]
        Ok(v as f64)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        Ok(v)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
        match v.trim().parse::<f64>() {
            Ok(x) if x.is_finite() => Ok(x),
            _ => Err(E::custom(format_args!(
                "expected a number, found the string {v:?}"
            ))),
        }
    }
}

struct BoolVisitor;

impl Visitor<'_> for BoolVisitor {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("true, false, or the string \"true\" or \"false\"")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
        Ok(v)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        match v.trim() {
            "true" | "TRUE" | "True" => Ok(true),
            "false" | "FALSE" | "False" => Ok(false),
            _ => Err(E::custom(format_args!(
                "expected true or false, found the string {v:?}"
            ))),
        }
    }
}

struct TextVisitor;

impl Visitor<'_> for TextVisitor {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }
}

/// Wraps a scalar visitor so `null` (and, through `#[serde(default)]`, an
/// absent field) gives `None`.
struct OptVisitor<V>(V);

impl<'de, V: Visitor<'de>> Visitor<'de> for OptVisitor<V> {
    type Value = Option<V::Value>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.0.expecting(f)?;
        f.write_str(" or null")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        self.0.visit_bool(v).map(Some)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        self.0.visit_i64(v).map(Some)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        self.0.visit_u64(v).map(Some)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        self.0.visit_f64(v).map(Some)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        self.0.visit_str(v).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    struct T {
        #[serde(deserialize_with = "super::int")]
        i: i64,
        #[serde(deserialize_with = "super::boolean")]
        b: bool,
        #[serde(default, deserialize_with = "super::opt_text")]
        o: Option<String>,
        #[serde(default, deserialize_with = "super::list")]
        l: Vec<u8>,
        #[serde(deserialize_with = "super::float")]
        f: f64,
        #[serde(deserialize_with = "super::text")]
        t: String,
    }

    #[test]
    fn numbers_and_booleans_as_strings_are_accepted() {
        let t: T =
            serde_json::from_str(r#"{"i":"80","b":"false","o":"3","l":[1,2],"f":"0.5","t":7}"#)
                .unwrap();
        assert_eq!(
            (t.i, t.b, t.o, t.l, t.f, t.t.as_str()),
            (80, false, Some("3".to_owned()), vec![1, 2], 0.5, "7")
        );
        let t: T = serde_json::from_str(r#"{"i":80,"b":true,"l":5,"f":2,"t":"x"}"#).unwrap();
        assert_eq!((t.o, t.l), (None, vec![5]));
        let t: T =
            serde_json::from_str(r#"{"i":1,"b":true,"l":null,"o":null,"f":1,"t":""}"#).unwrap();
        assert!(t.l.is_empty());
    }

    #[test]
    fn bad_scalars_say_what_was_found() {
        let e = serde_json::from_str::<T>(r#"{"i":"eighty","b":true,"f":1,"t":""}"#).unwrap_err();
        assert!(
            e.to_string()
                .contains("expected an integer, found the string \"eighty\""),
            "{e}"
        );
        let e = serde_json::from_str::<T>(r#"{"i":1,"b":"yes","f":1,"t":""}"#).unwrap_err();
        assert!(e.to_string().contains("expected true or false"), "{e}");
        let e = serde_json::from_str::<T>(r#"{"i":1.5,"b":true,"f":1,"t":""}"#).unwrap_err();
        assert!(
            e.to_string().contains("expected an integer, found 1.5"),
            "{e}"
        );
        let e = serde_json::from_str::<T>(r#"{"i":1,"b":true,"f":"NaN","t":""}"#).unwrap_err();
        assert!(e.to_string().contains("expected a number"), "{e}");
        let e =
            serde_json::from_str::<T>(r#"{"i":1,"b":true,"f":1,"t":"","l":["x"]}"#).unwrap_err();
        assert!(e.to_string().contains("invalid type: string"), "{e}");
    }
}
