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

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Located<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
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
