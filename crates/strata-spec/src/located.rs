//! [`Located<T>`]: a spec value together with where it was written.

use std::cell::Cell;
use std::fmt;
use std::ops::Deref;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use strata_diagnostics::{FileId, Span};

thread_local! {
    /// The file being deserialised on this thread. Set by the loader around each
    /// `serde_saphyr` call so that every `Located` knows its file without threading
    /// the id through serde.
    static CURRENT_FILE: Cell<FileId> = const { Cell::new(FileId(u32::MAX)) };
    /// True while [`to_spanned_json`] / [`from_spanned_json`] run on this thread.
    static SPAN_JSON: Cell<bool> = const { Cell::new(false) };
    /// Span of the innermost `$at` wrapper being deserialised (for nested plain values).
    static ENCLOSING: Cell<Span> = const { Cell::new(Span { file: FileId(u32::MAX), line: 1, col: 1, offset: 0, len: 0 }) };
}

pub const AT: &str = "$at";
pub const VALUE: &str = "$v";

/// Serialise `value` to JSON keeping every [`Located`] span, as
/// `{"$at": [file, line, col, offset, len], "$v": value}`.
///
/// Used to edit a typed value by path (site overrides) without losing where each
/// part of it was written: replace a `$v` and its `$at`, then [`from_spanned_json`].
pub fn to_spanned_json<T: Serialize>(value: &T) -> serde_json::Value {
    let prev = SPAN_JSON.with(|c| c.replace(true));
    let out = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
    SPAN_JSON.with(|c| c.set(prev));
    out
}

/// The inverse of [`to_spanned_json`]. Plain values where a `Located` is expected
/// take the span of the nearest enclosing `$at` wrapper.
pub fn from_spanned_json<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
) -> Result<T, serde_json::Error> {
    let prev = SPAN_JSON.with(|c| c.replace(true));
    let out = serde_json::from_value(value);
    SPAN_JSON.with(|c| c.set(prev));
    out
}

/// Encode a span for a `$at` field.
pub fn span_to_json(span: Span) -> serde_json::Value {
    serde_json::json!([span.file.0, span.line, span.col, span.offset, span.len])
}

/// Wrap a plain JSON value as a located one (what an override inserts).
pub fn located_json(value: serde_json::Value, span: Span) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    m.insert(AT.into(), span_to_json(span));
    m.insert(VALUE.into(), value);
    serde_json::Value::Object(m)
}

/// If `v` is a `$at` wrapper, its inner value.
pub fn unwrap_located_json(v: &serde_json::Value) -> Option<&serde_json::Value> {
    match v {
        serde_json::Value::Object(m) if m.len() == 2 && m.contains_key(AT) => m.get(VALUE),
        _ => None,
    }
}

/// Mutable form of [`unwrap_located_json`].
pub fn unwrap_located_json_mut(v: &mut serde_json::Value) -> Option<&mut serde_json::Value> {
    match v {
        serde_json::Value::Object(m) if m.len() == 2 && m.contains_key(AT) => m.get_mut(VALUE),
        _ => None,
    }
}

fn span_from_json(v: &serde_json::Value) -> Option<Span> {
    let a = v.as_array()?;
    let n = |i: usize| a.get(i).and_then(|x| x.as_u64()).map(|x| x as u32);
    Some(Span {
        file: FileId(n(0)?),
        line: n(1)?,
        col: n(2)?,
        offset: n(3)?,
        len: n(4)?,
    })
}

/// Run `f` with `file` as the file new [`Located`] values belong to.
pub(crate) fn with_current_file<R>(file: FileId, f: impl FnOnce() -> R) -> R {
    let prev = CURRENT_FILE.with(|c| c.replace(file));
    let r = f();
    CURRENT_FILE.with(|c| c.set(prev));
    r
}

/// The file id used for values that did not come from a file (defaults).
pub const SYNTHETIC: FileId = FileId(u32::MAX);

/// A value and the span of the YAML node it came from.
#[derive(Clone)]
pub struct Located<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Located<T> {
    pub fn new(value: T, span: Span) -> Self {
        Located { value, span }
    }

    /// A value that was not written by the user (a default).
    pub fn synthetic(value: T) -> Self {
        Located {
            value,
            span: Span::file_start(SYNTHETIC),
        }
    }

    /// The span, or `None` for defaults the user never wrote.
    pub fn span_opt(&self) -> Option<Span> {
        (self.span.file != SYNTHETIC).then_some(self.span)
    }

    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Located<U> {
        Located {
            value: f(self.value),
            span: self.span,
        }
    }
}

impl<T> Deref for Located<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: fmt::Debug> fmt::Debug for Located<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value.fmt(f)
    }
}

impl<T: fmt::Display> fmt::Display for Located<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value.fmt(f)
    }
}

/// Equality ignores where a value was written.
impl<T: PartialEq> PartialEq for Located<T> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl<T: Default> Default for Located<T> {
    fn default() -> Self {
        Located::synthetic(T::default())
    }
}

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for Located<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if SPAN_JSON.with(|c| c.get()) {
            let v = serde_json::Value::deserialize(d)?;
            let (inner, span) = match v {
                serde_json::Value::Object(mut m) if m.len() == 2 && m.contains_key(AT) => {
                    let span = m
                        .get(AT)
                        .and_then(span_from_json)
                        .unwrap_or_else(|| ENCLOSING.with(|c| c.get()));
                    (m.remove(VALUE).unwrap_or(serde_json::Value::Null), span)
                }
                other => (other, ENCLOSING.with(|c| c.get())),
            };
            let prev = ENCLOSING.with(|c| c.replace(span));
            let value = serde_json::from_value::<T>(inner);
            ENCLOSING.with(|c| c.set(prev));
            return value
                .map(|value| Located { value, span })
                .map_err(serde::de::Error::custom);
        }
        let sp = serde_saphyr::Spanned::<T>::deserialize(d)?;
        let loc = sp.referenced;
        let file = CURRENT_FILE.with(|c| c.get());
        let s = loc.span();
        let offset = s.byte_offset().unwrap_or(0);
        let len = s.byte_len().unwrap_or(0);
        Ok(Located {
            value: sp.value,
            span: Span {
                file,
                line: u32::try_from(loc.line()).unwrap_or(u32::MAX),
                col: u32::try_from(loc.column()).unwrap_or(u32::MAX),
                offset: u32::try_from(offset).unwrap_or(u32::MAX),
                len: u32::try_from(len).unwrap_or(0),
            },
        })
    }
}

impl<T: Serialize> Serialize for Located<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if SPAN_JSON.with(|c| c.get()) {
            use serde::ser::SerializeMap;
            let sp = self.span;
            let mut m = s.serialize_map(Some(2))?;
            m.serialize_entry(AT, &[sp.file.0, sp.line, sp.col, sp.offset, sp.len])?;
            m.serialize_entry(VALUE, &self.value)?;
            return m.end();
        }
        self.value.serialize(s)
    }
}

impl<T: JsonSchema> JsonSchema for Located<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }

    fn schema_id() -> std::borrow::Cow<'static, str> {
        T::schema_id()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    struct Inner {
        a: Located<u32>,
        b: u32,
    }

    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    struct Outer {
        inner: Located<Inner>,
        name: Located<String>,
    }

    fn sp(line: u32) -> Span {
        Span {
            file: FileId(3),
            line,
            col: 2,
            offset: line * 10,
            len: 4,
        }
    }

    #[test]
    fn spanned_json_round_trip_keeps_spans_and_nested_plain_values_inherit() {
        let v = Outer {
            inner: Located::new(
                Inner {
                    a: Located::new(1, sp(5)),
                    b: 2,
                },
                sp(4),
            ),
            name: Located::new("x".into(), sp(7)),
        };
        let mut j = to_spanned_json(&v);
        let back: Outer = from_spanned_json(j.clone()).expect("round trip");
        assert_eq!(back.inner.a.span, sp(5));
        assert_eq!(back.name.span, sp(7));
        // Replace `inner` wholesale with a plain value at a new span: nested
        // Located fields take the wrapper's span.
        *j.get_mut("inner").expect("inner") =
            located_json(serde_json::json!({"a": 9, "b": 8}), sp(20));
        let edited: Outer = from_spanned_json(j).expect("edited");
        assert_eq!(*edited.inner.a, 9);
        assert_eq!(edited.inner.a.span, sp(20));
        assert_eq!(edited.name.span, sp(7));
    }
}
