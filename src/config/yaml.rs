//! The one place argus turns YAML text into its structs, with the null
//! semantics of Go's YAML decoders (which Prometheus and Alertmanager use)
//! and error messages in their words.
//!
//! Go decodes an explicit `null`, `~` or empty value into the field's zero
//! value: an empty list, an empty map, an empty string, `false`, `0`, an
//! unset pointer. Files in the wild rely on it (`rules:` with nothing
//! after it, `exp_alerts:` to assert that nothing fires, a whole file that
//! is only `null`). serde instead refuses a null wherever it does not
//! expect an `Option`. [`from_str`] wraps the YAML deserializer so that
//! every value is first asked whether it is null; a null one is read from
//! [`Zero`], which answers each request with that zero value. Keys still
//! reach the structs, so unknown and duplicate keys are refused as before.

use serde::Deserialize;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};
use std::fmt;

/// Deserializes one YAML document as Go's decoder fills a struct: null
/// and empty values (and an empty or null document) become zero values.
pub fn from_str<T: DeserializeOwned>(src: &str) -> Result<T, serde_saphyr::Error> {
    if is_empty_document(src) {
        return T::deserialize(Zero::<serde_saphyr::Error>::new());
    }
    // Nulls reach a string only through `as_written`, which keeps their
    // text.
    let mut options = serde_saphyr::Options::default();
    options.null_as_string = true;
    serde_saphyr::with_deserializer_from_str_with_options(src, options, |d| {
        T::deserialize(GoYaml(d))
    })
}

/// For an optional string whose null Go reads as "" rather than as
/// unset (the key is there, so its default does not apply).
/// For `#[serde(deserialize_with = "…")]`.
pub fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    String::deserialize(d).map(Some)
}

/// The newtype name by which [`as_written`] asks for a scalar's text.
const AS_WRITTEN: &str = "argus::yaml::as_written";

/// A scalar's text as written, for the fields Prometheus reads as YAML
/// nodes rather than decodes (a rule's `record`, `alert` and `expr`): a
/// null value is the text `null` or `~` there, not an empty string.
/// For `#[serde(deserialize_with = "…")]`.
pub fn as_written<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct Text;
    impl<'de> Visitor<'de> for Text {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
            String::deserialize(d)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_string())
        }
    }
    d.deserialize_newtype_struct(AS_WRITTEN, Text)
}

/// [`as_written`] for a name that is unset when empty (Prometheus tests a
/// node's text against "").
pub fn as_written_name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    as_written(d).map(|s| Some(s).filter(|s| !s.is_empty()))
}

/// Whether a document holds nothing but comments, directives and markers.
fn is_empty_document(src: &str) -> bool {
    src.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "---" || t == "..." || t.starts_with('%')
    })
}

/// The message of a YAML error, without its position and the source
/// snippet the library appends, in Prometheus's terms.
pub fn message(e: &serde_saphyr::Error) -> String {
    let raw = e.to_string();
    let first = raw.lines().next().unwrap_or(&raw);
    let body = first.strip_prefix("error: ").unwrap_or(first);
    let msg = body
        .strip_prefix("line ")
        .and_then(|r| r.split_once(": "))
        .map(|(_, m)| m)
        .unwrap_or(body);
    human_message(msg)
}

/// Turns a serde or parser message into one in Prometheus's terms: no
/// Rust type names, no parser event names.
pub fn human_message(msg: &str) -> String {
    let msg = msg.trim();
    if let Some(rest) = msg.strip_prefix("unknown field `")
        && let Some((field, tail)) = rest.split_once('`')
    {
        let known = tail.strip_prefix(", expected one of ").unwrap_or_default();
        return match nearest(field, known.split(", ")) {
            Some(near) => format!("field {field:?} is not allowed here (did you mean {near:?}?)"),
            None => format!("field {field:?} is not allowed here"),
        };
    }
    if let Some(rest) = msg.strip_prefix("missing field `")
        && let Some((field, _)) = rest.split_once('`')
    {
        return format!("field {field:?} must be set");
    }
    if let Some(rest) = msg.strip_prefix("duplicate field `")
        && let Some((field, _)) = rest.split_once('`')
    {
        return format!("field {field:?} is set twice");
    }
    if let Some(rest) = msg.strip_prefix("duplicate mapping key: ") {
        let key = rest.split(", set ").next().unwrap_or(rest);
        return format!("key {key:?} is set twice");
    }
    if let Some(rest) = msg.strip_prefix("unknown variant `")
        && let Some((v, tail)) = rest.split_once('`')
    {
        let known: Vec<&str> = tail.split('`').skip(1).step_by(2).collect();
        return format!("unknown value {v:?} (expected one of {})", known.join(", "));
    }
    if let Some(rest) = msg.strip_prefix("invalid type: ")
        && let Some((got, want)) = rest.split_once(", expected ")
    {
        return format!("expected {}, got {}", expected(want), got_phrase(got));
    }
    if let Some(rest) = msg.strip_prefix("invalid value: ")
        && let Some((got, want)) = rest.split_once(", expected ")
    {
        return format!(
            "invalid value {}: expected {}",
            got_phrase(got),
            expected(want)
        );
    }
    if let Some(rest) = msg.strip_prefix("invalid length ")
        && let Some((n, want)) = rest.split_once(", expected ")
    {
        return format!("{n} items where {} were expected", expected(want));
    }
    // A scalar that does not parse as the type asked for.
    if let Some(ty) = msg.strip_prefix("invalid ")
        && !ty.contains(' ')
    {
        return format!("expected {}", expected(ty));
    }
    // The parser's own wording names its events.
    for (event, what) in [
        ("sequence start", "a list"),
        ("sequence", "a list"),
        ("mapping start", "a mapping of keys to values"),
        ("mapping", "a mapping of keys to values"),
        ("a string scalar", "a string"),
        ("scalar", "a single value"),
    ] {
        if msg == format!("expected {event}") || msg == format!("unexpected {event}") {
            return if msg.starts_with("expected") {
                format!("expected {what}")
            } else {
                format!("{what} is not allowed here")
            };
        }
    }
    msg.to_string()
}

/// The candidate closest to a misspelt `word`, if one is close enough to
/// be what was meant (at most a third of its letters differ).
pub fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .filter(|c| !c.is_empty())
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diag + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diag = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// What serde's `expected …` names, said for a YAML author.
fn expected(want: &str) -> String {
    let w = want.trim().trim_end_matches('.');
    let plain = match w {
        "a sequence" | "sequence" => "a list",
        "a map" | "map" => "a mapping of keys to values",
        "a string" | "a borrowed string" | "string" | "a character" | "char" => "a string",
        "a boolean" | "bool" => "true or false",
        "unit" | "null" => "nothing",
        "f32" | "f64" | "a float" => "a number",
        _ if w.starts_with("struct ") => "a mapping of keys to values",
        _ if w.starts_with("tuple") || w.starts_with("a tuple") => "a list",
        _ if w.starts_with("enum ") || w == "variant identifier" => "one of the allowed values",
        _ if is_int_type(w) => "an integer",
        _ if w.starts_with("Option<") => "a value",
        _ => return w.to_string(),
    };
    plain.to_string()
}

fn is_int_type(w: &str) -> bool {
    matches!(
        w,
        "u8" | "u16"
            | "u32"
            | "u64"
            | "u128"
            | "usize"
            | "i8"
            | "i16"
            | "i32"
            | "i64"
            | "i128"
            | "isize"
            | "an integer"
    )
}

/// serde's `Unexpected` phrase (`string "x"`, `integer `5``, `sequence`).
fn got_phrase(got: &str) -> String {
    let g = got.trim();
    let unquote = |s: &str| s.trim_matches('`').to_string();
    if let Some(v) = g.strip_prefix("integer ") {
        return unquote(v);
    }
    if let Some(v) = g.strip_prefix("floating point ") {
        return unquote(v);
    }
    if let Some(v) = g.strip_prefix("boolean ") {
        return unquote(v);
    }
    match g {
        "sequence" => "a list".into(),
        "map" => "a mapping".into(),
        "unit value" | "null" => "nothing".into(),
        _ => g.to_string(),
    }
}

/// A YAML deserializer (or a part of one) that reads null values as zero
/// values, all the way down.
struct GoYaml<D>(D);

/// Seeds and visitors pass the wrapping on to nested values.
struct Wrap<T>(T);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Wrap<S> {
    type Value = S::Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        self.0.deserialize(GoYaml(d))
    }
}

/// Asks the YAML whether the value is null: if so, the request goes to
/// [`Zero`]; if not, to the YAML deserializer with the visitor wrapped.
struct NullOr<V, F> {
    visitor: V,
    request: F,
}

impl<'de, V, F> Visitor<'de> for NullOr<V, F>
where
    V: Visitor<'de>,
    F: Request<'de, V>,
{
    type Value = V::Value;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.visitor.expecting(f)
    }
    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.request.call(Zero::<E>::new(), self.visitor)
    }
    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.request.call(Zero::<E>::new(), self.visitor)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        self.request.call(d, Wrap(self.visitor))
    }
}

/// One `deserialize_*` request, replayable on whichever deserializer the
/// null check chose.
trait Request<'de, V: Visitor<'de>> {
    fn call<D: Deserializer<'de>, W: Visitor<'de, Value = V::Value>>(
        self,
        d: D,
        visitor: W,
    ) -> Result<V::Value, D::Error>;
}

/// `deserialize_newtype_struct`, which [`GoYaml`] writes out itself.
struct NewtypeStruct {
    name: &'static str,
}

impl<'de, V: Visitor<'de>> Request<'de, V> for NewtypeStruct {
    fn call<D: Deserializer<'de>, W: Visitor<'de, Value = V::Value>>(
        self,
        d: D,
        visitor: W,
    ) -> Result<V::Value, D::Error> {
        d.deserialize_newtype_struct(self.name, visitor)
    }
}

macro_rules! requests {
    ($($method:ident $name:ident ($($arg:ident : $ty:ty),*);)*) => {
        $(
            #[allow(non_camel_case_types)]
            struct $name { $($arg: $ty),* }
            impl<'de, V: Visitor<'de>> Request<'de, V> for $name {
                fn call<D: Deserializer<'de>, W: Visitor<'de, Value = V::Value>>(
                    self,
                    d: D,
                    visitor: W,
                ) -> Result<V::Value, D::Error> {
                    d.$method($(self.$arg,)* visitor)
                }
            }
        )*
        impl<'de, D: Deserializer<'de>> Deserializer<'de> for GoYaml<D> {
            type Error = D::Error;
            $(
                fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
                    self.0.deserialize_option(NullOr { visitor, request: $name { $($arg),* } })
                }
            )*
            fn deserialize_newtype_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value, D::Error> {
                if name == AS_WRITTEN {
                    return self.0.deserialize_newtype_struct(name, visitor);
                }
                self.0.deserialize_option(NullOr { visitor, request: NewtypeStruct { name } })
            }
            fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
                self.0.deserialize_option(Wrap(visitor))
            }
            fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
                self.0.deserialize_identifier(visitor)
            }
            fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
                self.0.deserialize_ignored_any(visitor)
            }
            fn is_human_readable(&self) -> bool {
                self.0.is_human_readable()
            }
        }
    };
}

requests! {
    deserialize_any Any();
    deserialize_bool Bool();
    deserialize_i8 I8();
    deserialize_i16 I16();
    deserialize_i32 I32();
    deserialize_i64 I64();
    deserialize_i128 I128();
    deserialize_u8 U8();
    deserialize_u16 U16();
    deserialize_u32 U32();
    deserialize_u64 U64();
    deserialize_u128 U128();
    deserialize_f32 F32();
    deserialize_f64 F64();
    deserialize_char Char();
    deserialize_str Str();
    deserialize_string String_();
    deserialize_bytes Bytes();
    deserialize_byte_buf ByteBuf();
    deserialize_unit Unit();
    deserialize_unit_struct UnitStruct(name: &'static str);
    deserialize_seq Seq();
    deserialize_tuple Tuple(len: usize);
    deserialize_tuple_struct TupleStruct(name: &'static str, len: usize);
    deserialize_map Map();
    deserialize_struct Struct(name: &'static str, fields: &'static [&'static str]);
    deserialize_enum Enum(name: &'static str, variants: &'static [&'static str]);
}

macro_rules! forward_visits {
    ($($method:ident($ty:ty);)*) => {
        $(
            fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
                self.0.$method(v)
            }
        )*
    };
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<V> {
    type Value = V::Value;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.0.expecting(f)
    }
    forward_visits! {
        visit_bool(bool);
        visit_i8(i8);
        visit_i16(i16);
        visit_i32(i32);
        visit_i64(i64);
        visit_i128(i128);
        visit_u8(u8);
        visit_u16(u16);
        visit_u32(u32);
        visit_u64(u64);
        visit_u128(u128);
        visit_f32(f32);
        visit_f64(f64);
        visit_char(char);
        visit_str(&str);
        visit_borrowed_str(&'de str);
        visit_string(String);
        visit_bytes(&[u8]);
        visit_borrowed_bytes(&'de [u8]);
        visit_byte_buf(Vec<u8>);
    }
    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.0.visit_none()
    }
    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.0.visit_unit()
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        self.0.visit_some(GoYaml(d))
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        self.0.visit_newtype_struct(GoYaml(d))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.0.visit_seq(Wrap(seq))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.0.visit_map(Wrap(map))
    }
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        self.0.visit_enum(Wrap(data))
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Wrap<A> {
    type Error = A::Error;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        self.0.next_element_seed(Wrap(seed))
    }
    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Wrap<A> {
    type Error = A::Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        // Keys are read as written: a null key is not a field name.
        self.0.next_key_seed(seed)
    }
    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.0.next_value_seed(Wrap(seed))
    }
    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: EnumAccess<'de>> EnumAccess<'de> for Wrap<A> {
    type Error = A::Error;
    type Variant = Wrap<A::Variant>;
    fn variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<(T::Value, Wrap<A::Variant>), A::Error> {
        self.0.variant_seed(seed).map(|(v, a)| (v, Wrap(a)))
    }
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Wrap<A> {
    type Error = A::Error;
    fn unit_variant(self) -> Result<(), A::Error> {
        self.0.unit_variant()
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.0.newtype_variant_seed(Wrap(seed))
    }
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.0.tuple_variant(len, Wrap(visitor))
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.0.struct_variant(fields, Wrap(visitor))
    }
}

/// Go's zero value for whatever is asked of it: the value a null decodes
/// to. A struct gets an empty mapping, so its own defaults apply (and a
/// field it cannot do without is reported missing, as Prometheus's
/// validation reports an empty one).
struct Zero<E>(std::marker::PhantomData<E>);

impl<E> Zero<E> {
    fn new() -> Self {
        Zero(std::marker::PhantomData)
    }
}

/// An empty list or mapping.
struct Empty<E>(std::marker::PhantomData<E>);

impl<'de, E: de::Error> SeqAccess<'de> for Empty<E> {
    type Error = E;
    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, _: T) -> Result<Option<T::Value>, E> {
        Ok(None)
    }
    fn size_hint(&self) -> Option<usize> {
        Some(0)
    }
}

impl<'de, E: de::Error> MapAccess<'de> for Empty<E> {
    type Error = E;
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, _: K) -> Result<Option<K::Value>, E> {
        Ok(None)
    }
    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, _: T) -> Result<T::Value, E> {
        Err(E::custom("a value without a key"))
    }
    fn size_hint(&self) -> Option<usize> {
        Some(0)
    }
}

impl<'de, E: de::Error> Deserializer<'de> for Zero<E> {
    type Error = E;
    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
        v.visit_unit()
    }
    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
        v.visit_bool(false)
    }
    fn deserialize_i8<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
        v.visit_i8(0)
    }
    fn deserialize_i16<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
        v.visit_i16(0)
    }
    fn deserialize_i32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
        v.visit_i32(0)
    }
    fn deserialize_i64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
        v.visit_i64(0)
    }
    fn deserialize_u8<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
        v.visit_u8(0)
    }
    fn deserialize_u16<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
        v.visit_u16(0)
    }
    fn deserialize_u32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
        v.visit_u32(0)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
        v.visit_u64(0)
    }
    fn deserialize_f32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
        v.visit_f32(0.0)
    }
    fn deserialize_f64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
        v.visit_f64(0.0)
    }
    fn deserialize_char<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
        Err(E::custom(format_args!(
            "expected {}, got nothing",
            Expecting(&v)
        )))
    }
    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
        v.visit_str("")
    }
    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
        v.visit_string(String::new())
    }
    fn deserialize_bytes<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
        v.visit_bytes(&[])
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
        v.visit_byte_buf(Vec::new())
    }
    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
        v.visit_none()
    }
    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
        v.visit_unit()
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, E> {
        v.visit_unit()
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, E> {
        v.visit_newtype_struct(self)
    }
    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
        v.visit_seq(Empty(std::marker::PhantomData))
    }
    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, v: V) -> Result<V::Value, E> {
        v.visit_seq(Empty(std::marker::PhantomData))
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        v: V,
    ) -> Result<V::Value, E> {
        v.visit_seq(Empty(std::marker::PhantomData))
    }
    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
        v.visit_map(Empty(std::marker::PhantomData))
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, E> {
        v.visit_map(Empty(std::marker::PhantomData))
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, E> {
        Err(E::custom(format_args!(
            "expected {}, got nothing",
            Expecting(&v)
        )))
    }
    fn deserialize_identifier<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
        v.visit_str("")
    }
    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, E> {
        v.visit_unit()
    }
    serde::forward_to_deserialize_any! { i128 u128 }
}

/// A visitor's `expecting` text, in YAML author's words.
struct Expecting<'a, V>(&'a V);

impl<'de, V: Visitor<'de>> fmt::Display for Expecting<'_, V> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        struct Raw<'a, V>(&'a V);
        impl<'de, V: Visitor<'de>> fmt::Display for Raw<'_, V> {
            fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
                self.0.expecting(f)
            }
        }
        f.write_str(&expected(&Raw(self.0).to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Inner {
        name: String,
        list: Vec<String>,
        labels: BTreeMap<String, String>,
        flag: bool,
        n: u32,
        opt: Option<String>,
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        #[serde(default)]
        items: Vec<Inner>,
        #[serde(default)]
        one: Inner,
        needed: Option<u32>,
    }

    #[test]
    fn nulls_are_zero_values_everywhere() {
        for src in [
            "items:\none:\n",
            "items: ~\none: null\n",
            "items: []\none: {name: , list: ~, labels: , flag: ~, n: ~, opt: ~}\n",
            "one:\n  name:\n  list:\n  labels:\n",
            "null\n",
            "~",
            "",
            "# only a comment\n---\n",
        ] {
            let o: Outer = from_str(src).unwrap_or_else(|e| panic!("{src:?}: {e}"));
            assert_eq!(o, Outer::default(), "{src:?}");
        }
        let o: Outer = from_str("items:\n  - name: a\n    labels: {x: }\n  -\n").unwrap();
        assert_eq!(o.items.len(), 2);
        assert_eq!(o.items[0].labels.get("x").map(String::as_str), Some(""));
        assert_eq!(o.items[1], Inner::default());
    }

    #[test]
    fn unknown_duplicate_and_wrong_keys_are_still_refused_in_plain_words() {
        let cases = [
            ("one:\n  bogus:\n", 2, "field \"bogus\" is not allowed here"),
            ("one:\n  lables: {}\n", 2, "(did you mean \"labels\"?)"),
            ("one:\n  name: a\n  name: b\n", 3, "set twice"),
            ("items: 5\n", 1, "expected a list"),
            ("one: [a]\n", 1, "expected a mapping of keys to values"),
            ("one:\n  n: x\n", 2, "expected an integer"),
            ("one:\n  list: {a: b}\n", 2, "expected a list"),
        ];
        for (src, line, want) in cases {
            let e = from_str::<Outer>(src).expect_err(src);
            let msg = message(&e);
            assert!(msg.contains(want), "{src:?}: {msg:?} lacks {want:?}");
            for rust in ["Option<", "sequence", "struct ", "u32", "`"] {
                assert!(!msg.contains(rust), "{src:?}: {msg:?} has {rust:?}");
            }
            assert_eq!(e.location().map(|l| l.line()), Some(line), "{src:?}: {e}");
        }
    }
}
