//! Small validated value types of the spec.
//!
//! Their deserialisers put a diagnostic code at the start of their error message
//! (`"S0112: ..."`); the loader turns that into the diagnostic's code.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Is `s` a valid DNS label as strata uses them (lower case, digits, hyphens)?
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A name that is a valid DNS label: `[a-z0-9-]{1,63}`, not starting or ending with `-`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Name(pub String);

impl Name {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::borrow::Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if is_dns_label(&s) {
            Ok(Name(s))
        } else {
            Err(de::Error::custom(format!(
                "S0112: `{}` is not a valid name; names are DNS labels: 1-63 characters of a-z, 0-9 and `-`, not starting or ending with `-`",
                s.escape_debug()
            )))
        }
    }
}

impl Serialize for Name {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl JsonSchema for Name {
    fn schema_name() -> Cow<'static, str> {
        "Name".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$",
            "description": "A DNS label: lower-case letters, digits and hyphens."
        })
    }
}

/// An inclusive range of integers written `FIRST-LAST`, e.g. `1000-1999`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct NumRange {
    pub first: u32,
    pub last: u32,
}

impl NumRange {
    pub fn len(&self) -> u64 {
        u64::from(self.last) - u64::from(self.first) + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn contains(&self, v: u32) -> bool {
        self.first <= v && v <= self.last
    }
}

impl fmt::Display for NumRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

impl FromStr for NumRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, b) = s
            .split_once('-')
            .ok_or_else(|| format!("`{s}` is not a range; write FIRST-LAST, e.g. 1000-1999"))?;
        let first: u32 = a
            .trim()
            .parse()
            .map_err(|_| format!("`{a}` is not a number between 0 and 4294967295"))?;
        let last: u32 = b
            .trim()
            .parse()
            .map_err(|_| format!("`{b}` is not a number between 0 and 4294967295"))?;
        if first > last {
            return Err(format!(
                "range {first}-{last} is empty: FIRST must be <= LAST"
            ));
        }
        Ok(NumRange { first, last })
    }
}

impl<'de> Deserialize<'de> for NumRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|e| de::Error::custom(format!("S0104: {e}")))
    }
}

impl Serialize for NumRange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl JsonSchema for NumRange {
    fn schema_name() -> Cow<'static, str> {
        "NumRange".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^[0-9]+-[0-9]+$",
            "description": "An inclusive range FIRST-LAST, e.g. 1000-1999."
        })
    }
}

/// An 802.1Q VLAN id, 1-4094.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct VlanId(pub u16);

impl fmt::Display for VlanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de> Deserialize<'de> for VlanId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = u64::deserialize(d)?;
        if (1..=4094).contains(&v) {
            Ok(VlanId(v as u16))
        } else {
            Err(de::Error::custom(format!(
                "S0104: VLAN id {v} is out of range; 802.1Q VLAN ids are 1-4094"
            )))
        }
    }
}

impl Serialize for VlanId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u16(self.0)
    }
}

impl JsonSchema for VlanId {
    fn schema_name() -> Cow<'static, str> {
        "VlanId".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "integer", "minimum": 1, "maximum": 4094 })
    }
}

/// A MAC address written `aa:bb:cc:dd:ee:ff`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl FromStr for MacAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split([':', '-']).collect();
        if parts.len() != 6 {
            return Err(format!(
                "`{s}` is not a MAC address; write six hex octets, e.g. 52:54:00:12:34:56"
            ));
        }
        let mut out = [0u8; 6];
        for (i, p) in parts.iter().enumerate() {
            if p.len() != 2 {
                return Err(format!(
                    "`{s}` is not a MAC address: octet `{p}` is not two hex digits"
                ));
            }
            out[i] = u8::from_str_radix(p, 16)
                .map_err(|_| format!("`{s}` is not a MAC address: `{p}` is not hex"))?;
        }
        Ok(MacAddr(out))
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|e| de::Error::custom(format!("S0104: {e}")))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl JsonSchema for MacAddr {
    fn schema_name() -> Cow<'static, str> {
        "MacAddr".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^([0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}$"
        })
    }
}

/// Where a secret comes from. Secrets are never written in the spec itself.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum SecretRef {
    /// An environment variable of the process that needs it.
    Env(String),
    /// A file (path relative to the spec directory, or absolute).
    File(String),
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(v) => write!(f, "env:{v}"),
            SecretRef::File(p) => write!(f, "file:{p}"),
        }
    }
}

const INLINE_SECRET: &str = "S0108: secrets must be referenced, not written inline: use `{env: VARIABLE}` or `{file: PATH}` (the value was not echoed)";

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SecretRef;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a secret reference `{env: VARIABLE}` or `{file: PATH}`")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<SecretRef, E> {
                Err(E::custom(INLINE_SECRET))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<SecretRef, E> {
                Err(E::custom(INLINE_SECRET))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<SecretRef, E> {
                Err(E::custom(INLINE_SECRET))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<SecretRef, E> {
                Err(E::custom(INLINE_SECRET))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<SecretRef, E> {
                Err(E::custom(INLINE_SECRET))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SecretRef, A::Error> {
                let mut out: Option<SecretRef> = None;
                while let Some(key) = map.next_key::<String>()? {
                    let value: String = map.next_value()?;
                    if out.is_some() {
                        return Err(de::Error::custom(
                            "S0104: a secret reference has exactly one of `env` or `file`",
                        ));
                    }
                    out = Some(match key.as_str() {
                        "env" => {
                            if value.is_empty()
                                || !value
                                    .bytes()
                                    .all(|b| b.is_ascii_alphanumeric() || b == b'_')
                            {
                                return Err(de::Error::custom(
                                    "S0104: `env` must name an environment variable ([A-Za-z0-9_]+)",
                                ));
                            }
                            SecretRef::Env(value)
                        }
                        "file" => SecretRef::File(value),
                        other => {
                            return Err(de::Error::custom(format!(
                                "S0108: `{}` is not a secret reference; use `{{env: VARIABLE}}` or `{{file: PATH}}` (inline secrets are refused)",
                                other.escape_debug()
                            )));
                        }
                    });
                }
                out.ok_or_else(|| {
                    de::Error::custom(
                        "S0104: empty secret reference; use `{env: VARIABLE}` or `{file: PATH}`",
                    )
                })
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for SecretRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(1))?;
        match self {
            SecretRef::Env(v) => m.serialize_entry("env", v)?,
            SecretRef::File(p) => m.serialize_entry("file", p)?,
        }
        m.end()
    }
}

impl JsonSchema for SecretRef {
    fn schema_name() -> Cow<'static, str> {
        "SecretRef".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A reference to a secret; never the secret itself.",
            "oneOf": [
                { "type": "object", "properties": { "env": { "type": "string" } }, "required": ["env"], "additionalProperties": false },
                { "type": "object", "properties": { "file": { "type": "string" } }, "required": ["file"], "additionalProperties": false }
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        assert!(is_dns_label("fra1"));
        assert!(is_dns_label("a-b-9"));
        assert!(!is_dns_label("-a"));
        assert!(!is_dns_label("Fra1"));
        assert!(!is_dns_label(""));
        assert!(!is_dns_label(&"a".repeat(64)));
    }

    #[test]
    fn ranges_and_macs() {
        assert_eq!("10-20".parse::<NumRange>().map(|r| r.len()), Ok(11));
        assert!("20-10".parse::<NumRange>().is_err());
        assert!("x".parse::<NumRange>().is_err());
        let m: MacAddr = "52:54:00:AB:cd:01".parse().expect("mac");
        assert_eq!(m.to_string(), "52:54:00:ab:cd:01");
        assert!("52:54:00".parse::<MacAddr>().is_err());
    }
}

/// A time of day in UTC, written `HH:MM` (24-hour clock), as minutes after midnight.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct TimeOfDay(pub u16);

impl TimeOfDay {
    pub fn parse(s: &str) -> Option<TimeOfDay> {
        let (h, m) = s.split_once(':')?;
        if h.len() != 2 || m.len() != 2 {
            return None;
        }
        let h: u16 = h.parse().ok()?;
        let m: u16 = m.parse().ok()?;
        // 24:00 ends a window at midnight.
        (h < 24 && m < 60 || h == 24 && m == 0).then_some(TimeOfDay(h * 60 + m))
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

impl<'de> Deserialize<'de> for TimeOfDay {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        TimeOfDay::parse(&s).ok_or_else(|| {
            de::Error::custom(format!(
                "`{s}` is not a time of day; write HH:MM on the 24-hour clock, in UTC (e.g. \"09:00\", \"17:30\", \"24:00\" for midnight at the end of a day)"
            ))
        })
    }
}

impl Serialize for TimeOfDay {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl JsonSchema for TimeOfDay {
    fn schema_name() -> Cow<'static, str> {
        "TimeOfDay".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$" })
    }
}
