//! How nova's request validation words its errors (nova/api/validation/validators.py):
//! jsonschema's best error, `Invalid input for field/attribute {last path element}.
//! Value: {instance as Python's str()}. {message}` (just the message at the root of
//! the body; `Invalid input for query parameters ...` for a query string). Values are
//! printed as Python prints the decoded body, so an object's keys come in the order
//! the client sent them: each Nova request's body is also read into [`Ordered`], whose
//! key order [`py_repr`] follows while the request is handled.

use std::cell::RefCell;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// A JSON document with its objects' keys in the order they were written.
#[derive(Debug, Clone)]
pub(super) enum Ordered {
    Scalar,
    Array(Vec<Ordered>),
    Object(Vec<(String, Ordered)>),
}

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("JSON")
            }
            fn visit_bool<E>(self, _: bool) -> Result<Ordered, E> {
                Ok(Ordered::Scalar)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Ordered, E> {
                Ok(Ordered::Scalar)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Ordered, E> {
                Ok(Ordered::Scalar)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Ordered, E> {
                Ok(Ordered::Scalar)
            }
            fn visit_str<E>(self, _: &str) -> Result<Ordered, E> {
                Ok(Ordered::Scalar)
            }
            fn visit_unit<E>(self) -> Result<Ordered, E> {
                Ok(Ordered::Scalar)
            }
            fn visit_none<E>(self) -> Result<Ordered, E> {
                Ok(Ordered::Scalar)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Ordered, A::Error> {
                let mut v = Vec::new();
                while let Some(e) = a.next_element()? {
                    v.push(e);
                }
                Ok(Ordered::Array(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Ordered, A::Error> {
                let mut v: Vec<(String, Ordered)> = Vec::new();
                while let Some((k, e)) = a.next_entry::<String, Ordered>()? {
                    // A repeated key keeps its first place and its last value, as a
                    // Python dict built from the document does.
                    match v.iter_mut().find(|(x, _)| *x == k) {
                        Some(slot) => slot.1 = e,
                        None => v.push((k, e)),
                    }
                }
                Ok(Ordered::Object(v))
            }
        }
        d.deserialize_any(V)
    }
}

thread_local! {
    /// The key order of the body of the request this thread is handling.
    static ORDER: RefCell<Option<Ordered>> = const { RefCell::new(None) };
}

/// Remember the key order of `body` while `f` runs (Nova's handlers run synchronously
/// on the thread that called them).
pub(super) fn with_body_order<T>(body: &[u8], f: impl FnOnce() -> T) -> T {
    let order = serde_json::from_slice::<Ordered>(body).ok();
    ORDER.with(|o| *o.borrow_mut() = order);
    let out = f();
    ORDER.with(|o| *o.borrow_mut() = None);
    out
}

/// The keys of `m` in the order the request wrote the object with the same keys (the
/// first such object in the body), else in `m`'s order.
fn key_order(m: &serde_json::Map<String, Value>) -> Vec<String> {
    fn find(o: &Ordered, m: &serde_json::Map<String, Value>) -> Option<Vec<String>> {
        match o {
            Ordered::Object(kv) => {
                if kv.len() == m.len() && kv.iter().all(|(k, _)| m.contains_key(k)) {
                    return Some(kv.iter().map(|(k, _)| k.clone()).collect());
                }
                kv.iter().find_map(|(_, v)| find(v, m))
            }
            Ordered::Array(a) => a.iter().find_map(|v| find(v, m)),
            Ordered::Scalar => None,
        }
    }
    ORDER
        .with(|o| o.borrow().as_ref().and_then(|o| find(o, m)))
        .unwrap_or_else(|| m.keys().cloned().collect())
}

/// A string as Python's `repr()` writes it.
pub(super) fn py_str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// A JSON value as Python's `repr()` writes the decoded object.
pub(super) fn py_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => py_str_repr(s),
        Value::Array(a) => format!("[{}]", a.iter().map(py_repr).collect::<Vec<_>>().join(", ")),
        Value::Object(m) => format!(
            "{{{}}}",
            key_order(m)
                .iter()
                .map(|k| format!("{}: {}", py_str_repr(k), py_repr(&m[k])))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A JSON value as Python's `str()` writes it, what nova's validation errors quote.
pub(super) fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => py_repr(other),
    }
}

/// jsonschema's message for a value of the wrong type (`5 is not of type 'string'`;
/// several types as `'string', 'null'`).
pub(super) fn not_of_type(v: &Value, types: &[&str]) -> String {
    format!(
        "{} is not of type {}",
        py_repr(v),
        types
            .iter()
            .map(|t| format!("'{t}'"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// nova's validation error for the property `field` holding `v` (`request body`: the
/// body itself, whose errors are only their message).
pub(super) fn invalid_field(field: &str, v: &Value, message: &str) -> axum::response::Response {
    if field == "request body" {
        return super::bad(message);
    }
    super::bad(&format!(
        "Invalid input for field/attribute {field}. Value: {}. {message}",
        py_str(v)
    ))
}

/// nova's validation error for the query parameter `name` given as `v`.
pub(super) fn invalid_query(name: &str, v: &str, message: &str) -> axum::response::Response {
    super::bad(&format!(
        "Invalid input for query parameters {name}. Value: {v}. {message}"
    ))
}

/// Whether nova's `_is_printable` takes the character: not a control, format or
/// unassigned one (Unicode "C*") and no line or paragraph separator.
fn printable(c: char) -> bool {
    !(c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}' | '\u{feff}' | '\u{ad}'))
}

/// A space separator (Unicode "Zs"), which a name may not start or end with.
fn space(c: char) -> bool {
    matches!(
        c,
        ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}' | '\u{202f}' | '\u{205f}' | '\u{3000}'
    )
}

/// nova's `parameter_types.name` (a string of 1 to 255 printable characters that does
/// not start or end with whitespace; the format error is `InvalidName`'s own message).
pub(super) fn check_name<'a>(
    field: &str,
    v: &'a Value,
) -> Result<&'a str, axum::response::Response> {
    let Some(s) = v.as_str() else {
        return Err(invalid_field(field, v, &not_of_type(v, &["string"])));
    };
    let n = s.chars().count();
    let edges_ok = s.chars().next().is_none_or(|c| printable(c) && !space(c))
        && s.chars().last().is_none_or(|c| printable(c) && !space(c));
    if !s.chars().all(printable) || !edges_ok {
        return Err(super::bad(
            "An invalid 'name' value was provided. The name must be: printable characters. \
             Can not start or end with whitespace.",
        ));
    }
    if n == 0 {
        return Err(invalid_field(field, v, "'' should be non-empty"));
    }
    if n > 255 {
        return Err(invalid_field(
            field,
            v,
            &format!("{} is too long", py_repr(v)),
        ));
    }
    Ok(s)
}

/// jsonschema's `pattern` refusal: `'x' does not match '^...$'` (the pattern as Python's
/// repr prints it, backslashes doubled).
pub(super) fn no_match(v: &str, pattern: &str) -> String {
    format!("{} does not match {}", py_str_repr(v), py_str_repr(pattern))
}

/// The key pattern of nova's `parameter_types.metadata` (server metadata, flavor extra
/// specs).
pub(super) const METADATA_KEY: &str = "^[a-zA-Z0-9-_:. ]{1,255}$";

fn metadata_key_ok(k: &str) -> bool {
    let n = k.chars().count();
    (1..=255).contains(&n)
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_:. ".contains(c))
}

/// nova's `parameter_types.metadata` at property `field`: an object whose keys match
/// [`METADATA_KEY`] and whose values are of `types` (strings of at most 255
/// characters). jsonschema reports the keys first (the shallower error).
pub(super) fn check_metadata(
    field: &str,
    v: &Value,
    types: &[&str],
) -> Result<(), axum::response::Response> {
    let Some(m) = v.as_object() else {
        return Err(invalid_field(field, v, &not_of_type(v, &["object"])));
    };
    let mut extras: Vec<&String> = m.keys().filter(|k| !metadata_key_ok(k)).collect();
    if !extras.is_empty() {
        extras.sort();
        let verb = if extras.len() == 1 { "does" } else { "do" };
        return Err(invalid_field(
            field,
            v,
            &format!(
                "{} {verb} not match any of the regexes: {}",
                extras
                    .iter()
                    .map(|k| py_str_repr(k))
                    .collect::<Vec<_>>()
                    .join(", "),
                py_str_repr(METADATA_KEY)
            ),
        ));
    }
    for k in key_order(m) {
        let x = &m[&k];
        let ok = match x {
            Value::String(_) => types.contains(&"string"),
            Value::Null => types.contains(&"null"),
            Value::Bool(_) => types.contains(&"boolean"),
            Value::Number(_) => types.contains(&"number"),
            _ => false,
        };
        if !ok {
            return Err(invalid_field(&k, x, &not_of_type(x, types)));
        }
        if let Value::String(s) = x
            && s.chars().count() > 255
        {
            return Err(invalid_field(&k, x, &format!("{} is too long", py_repr(x))));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_print_in_the_order_the_client_wrote_them() {
        let body = br#"{"flavor": {"name": "f", "ram": 512, "disk": 1}}"#;
        let v: Value = serde_json::from_slice(body).expect("json");
        let s = with_body_order(body, || py_repr(&v["flavor"]));
        assert_eq!(s, "{'name': 'f', 'ram': 512, 'disk': 1}");
        // Without a body to follow, serde's order.
        assert_eq!(
            py_repr(&json!({"b": 1, "a": [true, null]})),
            "{'a': [True, None], 'b': 1}"
        );
    }

    #[test]
    fn strings_are_quoted_as_python_quotes_them() {
        assert_eq!(py_str_repr("a"), "'a'");
        assert_eq!(py_str_repr("it's"), "\"it's\"");
        assert_eq!(py_str_repr("a\nb"), "'a\\nb'");
    }
}
