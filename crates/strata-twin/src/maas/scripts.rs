//! Scripts (`/scripts/`, `/scripts/{name}`): MAAS's stored commissioning, testing,
//! release and deployment scripts, the builtin ones and those users upload, and
//! which of them a commissioning or testing run takes.
//!
//! As canonical/maas src/maasserver/api/scripts.py (`NodeScriptsHandler`,
//! `NodeScriptHandler`) serves them: list (filters `type`, `hardware_type`,
//! `filters` by name or tag, `include_script` adds each revision's base64 text),
//! create, read (by name or id), update, delete (not a builtin), `download` (a
//! revision's text), `revert`, `add_tag`, `remove_tag`. Uploads go through MAAS's
//! `ScriptForm` rules (src/maasserver/forms/script.py, src/maasserver/models/script.py):
//! `type` aliases `script_type`; the script must start with a shebang; an embedded
//! `--- Start MAAS 1.0 script metadata ---` block is YAML on `#` lines whose keys fill
//! the form's fields, and the form may not contradict it; names may not be `none`, a
//! number, or need shell quoting; type, hardware type and parallel take MAAS's names
//! and numbers; `for_hardware` takes `pci:VVVV:PPPP`, `usb:...`, `modalias:...` and
//! DMI `key:value` descriptors; `timeout` is a duration. A refused form is a 400 whose
//! JSON body maps each field to its messages; other refusals are plain text.
//!
//! What the twin leaves out: a single file uploaded under another part name than
//! `script` (MAAS takes the part's name as the script's), script parameters (stored,
//! not validated), packages (stored, never installed) and the builtins' own text
//! (their download is a placeholder: the twin renders their results from the
//! machine's hardware instead of running them). Builtins cannot be changed.

use std::collections::BTreeMap;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};

use super::Maas;
use super::http::{self, Params, Req, bad_request, invalid, not_found, ok};
use super::model::*;

/// A script MAAS ships (canonical/maas src/metadataserver/builtin_scripts/__init__.py
/// `BUILTIN_SCRIPTS`, metadata from each script's embedded YAML): those the twin's
/// commissioning and testing run.
pub struct Builtin {
    pub name: &'static str,
    pub title: &'static str,
    pub script_type: u8,
    pub hardware_type: u8,
    pub parallel: u8,
    pub timeout_s: u64,
    pub tags: &'static [&'static str],
}

const fn commissioning(
    name: &'static str,
    title: &'static str,
    parallel: u8,
    timeout_s: u64,
) -> Builtin {
    Builtin {
        name,
        title,
        script_type: 0,
        hardware_type: 0,
        parallel,
        timeout_s,
        tags: &[],
    }
}

/// The builtins, ids 1.. in this order (user scripts take the ids after them).
pub const BUILTIN: &[Builtin] = &[
    commissioning(
        "maas-support-info",
        "Gather support information for the machine",
        2,
        300,
    ),
    commissioning("maas-lshw", "Capture lshw -xml output", 2, 300),
    commissioning("maas-list-modaliases", "Output all loaded modalises", 2, 10),
    commissioning(
        "20-maas-01-install-lldpd",
        "Install and configure lldpd for passive capture.",
        0,
        30,
    ),
    commissioning(
        "20-maas-02-dhcp-unconfigured-ifaces",
        "Bring up and run DHCP on all interfaces",
        0,
        10,
    ),
    commissioning(
        "20-maas-03-machine-resources",
        "Download and run binary to collect machine details",
        0,
        60,
    ),
    commissioning(
        "maas-get-fruid-api-data",
        "Return discovered fruid API data",
        2,
        60,
    ),
    commissioning("maas-serial-ports", "Discover all serial ports", 2, 10),
    Builtin {
        tags: &["bmc-config"],
        ..commissioning(
            "30-maas-01-bmc-config",
            "Detect and configure BMC's for MAAS use.",
            0,
            300,
        )
    },
    commissioning(
        "50-maas-01-commissioning",
        "Gather all commissioning data",
        0,
        60,
    ),
    commissioning("maas-capture-lldpd", "Capture lldpd output", 2, 60),
    commissioning(
        "maas-kernel-cmdline",
        "Capture the kernel command line",
        2,
        10,
    ),
    Builtin {
        name: "smartctl-validate",
        title: "Storage status",
        script_type: 2,
        hardware_type: 3,
        parallel: 1,
        timeout_s: 300,
        tags: &["commissioning"],
    },
];

/// The first id a user script gets.
pub const FIRST_USER_ID: u64 = BUILTIN.len() as u64 + 1;

/// Hardware type labels, also the tags MAAS gives a script of that type.
const HARDWARE_TYPES: &[&str] = &["Node", "CPU", "Memory", "Storage", "Network", "GPU"];

fn script_type_name(t: u8) -> &'static str {
    match t {
        0 => "Commissioning script",
        2 => "Testing script",
        3 => "Release script",
        4 => "Deployment script",
        _ => "unknown",
    }
}

fn parallel_name(p: u8) -> &'static str {
    match p {
        1 => "Run along other instances of this script",
        2 => "Run along any other script.",
        _ => "Disabled",
    }
}

/// `translate_script_type` (models/script.py).
pub fn translate_script_type(v: &str) -> Result<u8, String> {
    if !v.is_empty() && v.chars().all(|c| c.is_ascii_digit()) {
        return match v.parse::<u8>() {
            Ok(n @ (0 | 2 | 3 | 4)) => Ok(n),
            _ => Err("Invalid script type numeric value.".into()),
        };
    }
    match v {
        "test" | "testing" => Ok(2),
        "commission" | "commissioning" => Ok(0),
        "release" => Ok(3),
        "deployment" => Ok(4),
        _ => Err("Script type must be commissioning, testing, release or deployment".into()),
    }
}

/// `translate_hardware_type` (models/script.py).
pub fn translate_hardware_type(v: &str) -> Result<u8, String> {
    if !v.is_empty() && v.chars().all(|c| c.is_ascii_digit()) {
        return match v.parse::<u8>() {
            Ok(n) if n <= 5 => Ok(n),
            _ => Err("Invalid hardware type numeric value.".into()),
        };
    }
    match v.to_lowercase().as_str() {
        "node" | "machine" | "controller" | "other" | "generic" => Ok(0),
        "cpu" | "processor" => Ok(1),
        "memory" | "ram" => Ok(2),
        "storage" | "disk" | "ssd" => Ok(3),
        "network" | "net" | "interface" => Ok(4),
        "gpu" | "graphics" => Ok(5),
        _ => Err("Hardware type must be node, cpu, memory, storage, or gpu".into()),
    }
}

/// `translate_script_parallel` (models/script.py).
pub fn translate_parallel(v: &str) -> Result<u8, String> {
    if !v.is_empty() && v.chars().all(|c| c.is_ascii_digit()) {
        return match v.parse::<u8>() {
            Ok(n) if n <= 2 => Ok(n),
            _ => Err("Invalid script parallel numeric value.".into()),
        };
    }
    match v {
        "disabled" | "none" => Ok(0),
        "instance" | "name" => Ok(1),
        "any" | "enabled" => Ok(2),
        _ => Err("Script parallel must be disabled, instance, or any.".into()),
    }
}

/// Seconds from a duration as Django's `DurationField` parses it (`parse_duration`'s
/// standard format: `[D day[s], ][[H:]M:]S[.f]`, or `D H:M:S`).
pub fn parse_duration(v: &str) -> Option<u64> {
    let v = v.trim();
    let (days, rest) = match v.split_once(' ') {
        Some((d, rest)) => {
            let d: u64 = d.parse().ok()?;
            let rest = rest
                .strip_prefix("days, ")
                .or_else(|| rest.strip_prefix("day, "))
                .unwrap_or(rest);
            (d, rest)
        }
        None => (0, v),
    };
    let rest = match rest.split_once(['.', ',']) {
        Some((whole, frac))
            if !frac.is_empty() && frac.len() <= 12 && frac.chars().all(|c| c.is_ascii_digit()) =>
        {
            whole
        }
        Some(_) => return None,
        None => rest,
    };
    let parts: Vec<&str> = rest.split(':').collect();
    if parts.is_empty()
        || parts.len() > 3
        || parts
            .iter()
            .any(|p| p.is_empty() || !p.chars().all(|c| c.is_ascii_digit()))
    {
        return None;
    }
    let mut secs: u64 = 0;
    for p in &parts {
        secs = secs.checked_mul(60)?.checked_add(p.parse::<u64>().ok()?)?;
    }
    days.checked_mul(86_400)?.checked_add(secs)
}

/// A duration as Python's `str(timedelta)` writes it (`0:05:00`, `1 day, 2:00:00`).
pub fn format_duration(secs: u64) -> String {
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let hms = format!("{}:{:02}:{:02}", rest / 3600, rest % 3600 / 60, rest % 60);
    match days {
        0 => hms,
        1 => format!("1 day, {hms}"),
        d => format!("{d} days, {hms}"),
    }
}

/// A value as Python's `str()` writes it, as Django's fields see YAML values.
fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        other => other.to_string(),
    }
}

/// The builtin as a script object.
fn builtin_script(i: usize, b: &Builtin) -> Script {
    let id = i as u64 + 1;
    let mut tags: Vec<String> = b.tags.iter().map(|t| t.to_string()).collect();
    tags.push(HARDWARE_TYPES[usize::from(b.hardware_type).min(5)].to_lowercase());
    Script {
        id,
        name: b.name.into(),
        title: b.title.into(),
        description: b.title.into(),
        tags,
        script_type: b.script_type,
        hardware_type: b.hardware_type,
        parallel: b.parallel,
        results: json!({}),
        parameters: json!({}),
        packages: json!({}),
        timeout_s: b.timeout_s,
        history: vec![ScriptRevision {
            id,
            comment: Some(format!("Created by maas-{}", super::MAAS_VERSION)),
            created_ms: 0,
            data: format!(
                "#!/bin/sh\n# {}: a MAAS builtin script. The twin does not run it: it\n# reports its results from the machine's hardware.\n",
                b.name
            ),
        }],
        default: true,
        ..Script::default()
    }
}

/// Every script, builtins first, in id order.
pub fn all(st: &State) -> Vec<Script> {
    BUILTIN
        .iter()
        .enumerate()
        .map(|(i, b)| builtin_script(i, b))
        .chain(st.scripts.values().cloned())
        .collect()
}

/// A script by id (digits) or name, as `_get_script_or_404` finds it.
fn find(st: &State, key: &str) -> Option<Script> {
    let by_id = !key.is_empty() && key.chars().all(|c| c.is_ascii_digit());
    all(st).into_iter().find(|s| {
        if by_id {
            key.parse::<u64>().ok() == Some(s.id)
        } else {
            s.name == key
        }
    })
}

/// `email.utils.format_datetime` of a naive datetime (`Thu, 06 Dec 2018 21:26:18 -0000`).
fn rfc2822(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    httpdate::fmt_http_date(t).replace(" GMT", " -0000")
}

/// A script as `NodeScriptHandler` renders it.
pub fn render(api: &str, s: &Script, include_script: bool) -> Value {
    let b64 = |x: &str| base64::engine::general_purpose::STANDARD.encode(x.as_bytes());
    let history: Vec<Value> = s
        .history
        .iter()
        .map(|r| {
            let mut v = json!({"id": r.id, "comment": r.comment, "created": rfc2822(r.created_ms)});
            if include_script && let Some(o) = v.as_object_mut() {
                o.insert("data".into(), json!(b64(&r.data)));
            }
            v
        })
        .collect();
    json!({
        "id": s.id,
        "name": s.name,
        "title": s.title,
        "description": s.description,
        "tags": s.tags,
        "type": s.script_type,
        "type_name": script_type_name(s.script_type),
        "hardware_type": s.hardware_type,
        "hardware_type_name": HARDWARE_TYPES[usize::from(s.hardware_type).min(5)],
        "parallel": s.parallel,
        "parallel_name": parallel_name(s.parallel),
        "results": s.results,
        "parameters": s.parameters,
        "packages": s.packages,
        "timeout": format_duration(s.timeout_s),
        "destructive": s.destructive,
        "for_hardware": s.for_hardware,
        "may_reboot": s.may_reboot,
        "recommission": s.recommission,
        "history": history,
        "default": s.default,
        "apply_configured_networking": s.apply_configured_networking,
        "resource_uri": format!("{api}scripts/{}", s.name),
    })
}

// ---------------------------------------------------------------------------------
// The form

/// The form's fields (ScriptForm `Meta.fields`): what embedded YAML may fill.
const FORM_FIELDS: &[&str] = &[
    "name",
    "title",
    "description",
    "tags",
    "script_type",
    "hardware_type",
    "parallel",
    "packages",
    "timeout",
    "destructive",
    "script",
    "for_hardware",
    "may_reboot",
    "recommission",
    "apply_configured_networking",
];

#[derive(Default)]
struct Errors(Vec<(String, String)>);

impl Errors {
    fn add(&mut self, field: &str, msg: impl Into<String>) {
        self.0.push((field.to_string(), msg.into()));
    }
    fn has(&self, field: &str) -> bool {
        self.0.iter().any(|(f, _)| f == field)
    }
    fn response(&self) -> Response {
        let list: Vec<(&str, String)> = self
            .0
            .iter()
            .map(|(f, m)| (f.as_str(), m.clone()))
            .collect();
        invalid(&list)
    }
}

/// The version of an embedded-metadata delimiter line (`# --- Start MAAS 1.0 script
/// metadata ---`, start or end alike, any case), as the form's regular expression
/// finds it anywhere in a line.
fn delimiter_version(line: &str) -> Option<String> {
    let lower = line.to_ascii_lowercase();
    let b = lower.as_bytes();
    for (at, _) in lower.match_indices('#') {
        let mut i = at + 1;
        let skip_ws = |i: &mut usize| {
            while *i < b.len() && b[*i].is_ascii_whitespace() {
                *i += 1;
            }
        };
        skip_ws(&mut i);
        let dashes = i;
        while i < b.len() && b[i] == b'-' {
            i += 1;
        }
        if i == dashes {
            continue;
        }
        skip_ws(&mut i);
        let rest = &lower[i..];
        let Some(rest) = rest
            .strip_prefix("start maas ")
            .or_else(|| rest.strip_prefix("end maas "))
        else {
            continue;
        };
        let digits = |s: &str| s.chars().take_while(char::is_ascii_digit).count();
        let major = digits(rest);
        if major == 0 || !rest[major..].starts_with('.') {
            continue;
        }
        let minor = digits(&rest[major + 1..]);
        if minor == 0 {
            continue;
        }
        let version = &rest[..major + 1 + minor];
        let Some(tail) = rest[major + 1 + minor..].strip_prefix(" script metadata") else {
            continue;
        };
        let ws = tail.chars().take_while(|c| c.is_whitespace()).count();
        if ws > 0 && tail[ws..].starts_with('-') {
            return Some(version.to_string());
        }
    }
    None
}

/// The form's data: request parameters (last value of each key) and values the
/// embedded YAML filled in.
type Data = BTreeMap<String, Value>;

struct Embedded {
    results: Value,
    parameters: Value,
}

/// `_read_script`: check the shebang, find the embedded YAML and merge it into
/// `data`. `None` when the script has no (valid) metadata block.
fn read_script(
    text: &str,
    creating: bool,
    data: &mut Data,
    errors: &mut Errors,
) -> Option<Embedded> {
    let lines: Vec<&str> = text.lines().collect();
    if lines.first().is_some_and(|l| !l.starts_with("#!/")) {
        errors.add("script", "Must start with shebang.");
    }
    let mut found: Option<String> = None;
    let mut yaml = String::new();
    for line in lines.iter().skip(1) {
        if let Some(version) = delimiter_version(line) {
            if found.is_none() && version == "1.0" {
                found = Some(version);
                continue;
            } else if found.as_deref() == Some(version.as_str()) {
                break;
            }
        } else if found.is_some() && !line.trim().is_empty() {
            match line.split_once('#') {
                Some((_, after)) => {
                    yaml.push_str(after);
                    yaml.push('\n');
                }
                None => {
                    errors.add("script", "Missing \"#\" on YAML line.");
                    return None;
                }
            }
        }
    }
    if yaml.trim().is_empty() {
        return None;
    }
    let parsed: Value = match serde_saphyr::from_str(&yaml) {
        Ok(v) => v,
        Err(e) => {
            errors.add("script", format!("Invalid YAML: {e}"));
            return None;
        }
    };
    let Value::Object(mut meta) = parsed else {
        return None;
    };
    let embedded = Embedded {
        results: meta.remove("results").unwrap_or_else(|| json!({})),
        parameters: meta.remove("parameters").unwrap_or_else(|| json!({})),
    };
    // `_clean_script`: tags and timeout come from the YAML only for a new script
    // the form does not set them for.
    if let Some(tags) = meta.remove("tags").filter(|t| !t.is_null())
        && creating
        && !data.contains_key("tags")
    {
        match tags {
            Value::String(s) => {
                data.insert("tags".into(), Value::String(s));
            }
            Value::Array(a) if a.iter().all(Value::is_string) => {
                let joined: Vec<String> = a.iter().map(py_str).collect();
                data.insert("tags".into(), Value::String(joined.join(",")));
            }
            _ => errors.add(
                "tags",
                "Embedded tags must be a string of comma seperated values, or a list of strings.",
            ),
        }
    }
    if let Some(t) = meta.remove("timeout").filter(|t| !t.is_null())
        && creating
        && !data.contains_key("timeout")
    {
        data.insert("timeout".into(), Value::String(py_str(&t)));
    }
    for key in ["packages", "for_hardware"] {
        if let Some(v) = meta.remove(key).filter(|v| !v.is_null())
            && !data.contains_key(key)
        {
            data.insert(key.into(), Value::String(v.to_string()));
        }
    }
    for (key, value) in meta {
        if !FORM_FIELDS.contains(&key.as_str()) {
            continue;
        }
        let clash = match data.get(&key) {
            None => {
                data.insert(key, value);
                continue;
            }
            Some(given) if key == "script_type" => {
                match (
                    translate_script_type(&py_str(&value)),
                    translate_script_type(&py_str(given)),
                ) {
                    (Ok(a), Ok(b)) => a != b,
                    _ => true,
                }
            }
            Some(given) => *given != value,
        };
        if clash {
            errors.add(&key, "May not override values defined in embedded YAML.");
        }
    }
    Some(embedded)
}

/// `_validate_results`: a list of strings, or a dictionary of dictionaries with a
/// string `title` (and `description`).
fn validate_results(results: &Value, errors: &mut Errors) {
    match results {
        Value::Array(a) => {
            if a.iter().any(|r| !r.is_string()) {
                errors.add("results", "Each result in a result list must be a string.");
            }
        }
        Value::Object(o) => {
            for r in o.values() {
                match r {
                    Value::Object(d) if !d.contains_key("title") => {
                        errors.add("results", "title must be included in a result dictionary.");
                    }
                    Value::Object(d) => {
                        for key in ["title", "description"] {
                            if d.get(key).is_some_and(|v| !v.is_string()) {
                                errors.add("results", format!("{key} must be a string."));
                            }
                        }
                    }
                    _ => errors.add(
                        "results",
                        "Each result in a result dictionary must be a dictionary.",
                    ),
                }
            }
        }
        _ => errors.add(
            "results",
            "results must be a list of strings or a dictionary of dictionaries.",
        ),
    }
}

/// Does a `for_hardware` descriptor have MAAS's accepted form (`clean_for_hardware`'s
/// regular expression, searched case-insensitively)?
fn valid_hardware_id(id: &str) -> bool {
    let l = id.to_ascii_lowercase();
    let ids_at = |prefix: &str| {
        l.match_indices(prefix).any(|(i, _)| {
            let rest = &l.as_bytes()[i + prefix.len()..];
            rest.len() >= 9
                && rest[..4].iter().all(u8::is_ascii_hexdigit)
                && rest[4] == b':'
                && rest[5..9].iter().all(u8::is_ascii_hexdigit)
        })
    };
    (l.starts_with("modalias:") && l.len() > "modalias:".len())
        || ids_at("pci:")
        || ids_at("usb:")
        || [
            "system_vendor:",
            "system_product:",
            "system_version:",
            "mainboard_vendor:",
            "mainboard_product:",
        ]
        .iter()
        .any(|k| l.contains(k))
}

/// Django's `BooleanField` reading of a value.
fn form_bool(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::String(s) => !matches!(s.to_ascii_lowercase().as_str(), "false" | "0" | ""),
        Value::Number(n) => n.as_f64().is_some_and(|x| x != 0.0),
        Value::Null => false,
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Python's `shlex.quote(name) == name`: only `[A-Za-z0-9_@%+=:,./-]`, not empty.
fn shell_safe(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c))
}

/// A script's new text and the comment of its revision.
type NewText = (String, Option<String>);

/// Validate a create (`instance` None) or update and build the script it saves;
/// the form's errors otherwise. `new_text` is the script's new text and its
/// revision comment, when the form changes it.
fn clean(
    st: &State,
    instance: Option<&Script>,
    params: &Params,
) -> Result<(Script, Option<NewText>), Errors> {
    let creating = instance.is_none();
    let base = instance.cloned().unwrap_or_else(|| Script {
        script_type: 2,
        results: json!({}),
        parameters: json!({}),
        packages: json!({}),
        ..Script::default()
    });
    let mut errors = Errors::default();
    let mut data: Data = BTreeMap::new();
    for (k, _) in &params.0 {
        if let Some(v) = params.get(k) {
            data.insert(k.clone(), Value::String(v.to_string()));
        }
    }
    // `comment` travels with the script text; alone it is an error (below).
    let mut comment: Option<String> = None;
    if data.contains_key("comment") && data.contains_key("script") {
        comment = data.remove("comment").map(|v| py_str(&v));
    }
    if !data.contains_key("script_type")
        && let Some(t) = data.remove("type")
    {
        data.insert("script_type".into(), t);
    }
    let text: Option<String> = data.get("script").map(|v| py_str(v).replace("\r\n", "\n"));
    let mut results = base.results.clone();
    let mut parameters = base.parameters.clone();
    if let Some(text) = &text {
        match read_script(text, creating, &mut data, &mut errors) {
            Some(e) => {
                results = e.results;
                parameters = e.parameters;
            }
            None if errors.has("script") => {}
            // A script without metadata resets what earlier metadata declared.
            None => {
                results = json!({});
                parameters = json!({});
            }
        }
    }
    let mut s = base.clone();
    s.results = results;
    s.parameters = parameters;
    let text_of = |key: &str| data.get(key).map(|v| py_str(v).trim().to_string());

    // Model fields.
    match text_of("name") {
        Some(n) if !n.is_empty() => {
            if n.chars().count() > 255 {
                errors.add(
                    "name",
                    format!(
                        "Ensure this value has at most 255 characters (it has {}).",
                        n.chars().count()
                    ),
                );
            }
            s.name = n;
        }
        _ if creating => errors.add("name", "This field is required."),
        _ => {}
    }
    if let Some(t) = text_of("title") {
        if t.chars().count() > 255 {
            errors.add(
                "title",
                format!(
                    "Ensure this value has at most 255 characters (it has {}).",
                    t.chars().count()
                ),
            );
        }
        s.title = t;
    }
    if let Some(d) = text_of("description") {
        s.description = d;
    }
    if let Some(t) = text_of("tags") {
        s.tags = Vec::new();
        if !t.is_empty() {
            for (i, item) in t.split(',').enumerate() {
                let item = item.trim();
                if item.is_empty() {
                    errors.add(
                        "tags",
                        format!(
                            "Item {} in the array did not validate: This field is required.",
                            i + 1
                        ),
                    );
                } else {
                    s.tags.push(item.to_string());
                }
            }
        }
    }
    if let Some(t) = text_of("timeout") {
        match t.as_str() {
            "" => s.timeout_s = 0,
            t => match parse_duration(t) {
                Some(secs) => s.timeout_s = secs,
                None => errors.add("timeout", "Enter a valid duration."),
            },
        }
    }
    for (key, slot) in [
        ("destructive", &mut s.destructive),
        ("may_reboot", &mut s.may_reboot),
        ("recommission", &mut s.recommission),
        (
            "apply_configured_networking",
            &mut s.apply_configured_networking,
        ),
    ] {
        match data.get(key) {
            Some(v) => *slot = form_bool(v),
            // An unchecked box reads false on a new script; an update keeps it.
            None if creating => *slot = false,
            None => {}
        }
    }
    match &text {
        Some(t) if !t.is_empty() => {}
        _ if creating => errors.add("script", "This field is required."),
        _ => {}
    }
    if let Some(p) = text_of("packages").filter(|p| !p.is_empty()) {
        match serde_json::from_str::<Value>(&p) {
            Ok(Value::Object(mut o)) => {
                for key in ["apt", "snap", "url"] {
                    if let Some(v) = o.get_mut(key)
                        && !v.is_array()
                    {
                        *v = Value::Array(vec![v.take()]);
                    }
                }
                for key in ["apt", "url"] {
                    if o.get(key)
                        .and_then(Value::as_array)
                        .is_some_and(|a| a.iter().any(|x| !x.is_string()))
                    {
                        errors.add("packages", format!("Each {key} package must be a string."));
                    }
                }
                s.packages = Value::Object(o);
            }
            _ => errors.add("packages", "Packages must be a JSON object."),
        }
    }
    if let Some(h) = text_of("for_hardware").filter(|h| !h.is_empty()) {
        let list: Vec<String> = match serde_json::from_str::<Value>(&h) {
            Ok(Value::Array(a)) => a.iter().map(py_str).collect(),
            Ok(Value::String(one)) => one.split(',').map(str::to_string).collect(),
            Ok(_) => {
                errors.add("for_hardware", "Must be a list or string");
                Vec::new()
            }
            Err(_) => h.split(',').map(str::to_string).collect(),
        };
        for id in &list {
            if !valid_hardware_id(id) {
                errors.add(
                    "for_hardware",
                    format!("Hardware identifier '{id}' must be a modalias, PCI ID, USB ID, system vendor, system product, system version, mainboard vendor, or mainboard product."),
                );
            }
        }
        s.for_hardware = list;
    }
    // `clean`: the choices.
    if let Some(t) = text_of("script_type").filter(|t| !t.is_empty()) {
        match translate_script_type(&t) {
            Ok(v) => s.script_type = v,
            Err(e) => errors.add("script_type", e),
        }
    }
    if let Some(t) = text_of("hardware_type").filter(|t| !t.is_empty()) {
        match translate_hardware_type(&t) {
            Ok(v) => s.hardware_type = v,
            Err(e) => errors.add("hardware_type", e),
        }
    }
    if let Some(t) = text_of("parallel").filter(|t| !t.is_empty()) {
        match translate_parallel(&t) {
            Ok(v) => s.parallel = v,
            Err(e) => errors.add("parallel", e),
        }
    }
    // Unique name (checked when the name itself is valid).
    if !errors.has("name")
        && !s.name.is_empty()
        && all(st)
            .iter()
            .any(|o| o.name == s.name && Some(o.id) != instance.map(|i| i.id))
    {
        errors.add("name", "Script with this Name already exists.");
    }
    // `is_valid`.
    if errors.0.is_empty() && base.default {
        for f in FORM_FIELDS {
            if !["tags", "timeout"].contains(f) && data.contains_key(*f) {
                errors.add(f, "Not allowed to change on default scripts.");
            }
        }
    }
    if let Some(name) = data.get("name").map(py_str) {
        if name.to_lowercase() == "none" {
            errors.add("name", "\"none\" is a reserved name.");
        }
        if !name.is_empty() && name.chars().all(char::is_numeric) {
            errors.add("name", "Cannot be a number.");
        }
        if !shell_safe(&name) {
            errors.add(
                "name",
                format!("Name '{name}' contains disallowed characters, e.g. space or quotes."),
            );
        }
    }
    if data.contains_key("comment") {
        errors.add(
            "comment",
            "\"comment\" may only be used when specifying a \"script\" as well.",
        );
    }
    if text.is_some() {
        validate_results(&s.results, &mut errors);
    }
    if !errors.0.is_empty() {
        return Err(errors);
    }
    // `Script.save`: the destructive and hardware-type tags.
    retag(&mut s);
    let new_text = text
        .filter(|t| s.history.first().is_none_or(|r| r.data != *t))
        .map(|t| (t, comment));
    Ok((s, new_text))
}

/// `Script.save`: `destructive` tags a destructive script; the hardware type's label
/// tags it, the other labels are removed.
fn retag(s: &mut Script) {
    let mut set = |tag: &str, on: bool| {
        let has = s.tags.iter().any(|t| t == tag);
        if on && !has {
            s.tags.push(tag.to_string());
        } else if !on && has {
            s.tags.retain(|t| t != tag);
        }
    };
    set("destructive", s.destructive);
    for (i, label) in HARDWARE_TYPES.iter().enumerate() {
        set(&label.to_lowercase(), usize::from(s.hardware_type) == i);
    }
}

/// Store a cleaned script (a new revision first when its text changed).
fn save(st: &mut State, mut s: Script, new_text: Option<NewText>, now: u64) -> Script {
    if s.id == 0 {
        s.id = st.next_id("script", FIRST_USER_ID);
    }
    if let Some((data, comment)) = new_text {
        let id = st.next_id("textfile", FIRST_USER_ID);
        s.history.insert(
            0,
            ScriptRevision {
                id,
                comment,
                created_ms: now,
                data,
            },
        );
    }
    st.scripts.insert(s.id, s.clone());
    s
}

// ---------------------------------------------------------------------------------
// Handlers

/// formencode's `Bool` as MAAS reads `include_script`: any non-empty value.
fn flag(p: &Params, key: &str) -> bool {
    p.get(key).is_some_and(|v| !v.is_empty())
}

pub fn list(s: &Maas, r: &Req) -> Response {
    let g = s.inner.lock();
    let p = &r.params;
    let script_type = match p.get("type") {
        None => None,
        Some(t) => match translate_script_type(t) {
            Ok(t) => Some(t),
            Err(e) => return bad_request(&e),
        },
    };
    let hardware_type = match p.get("hardware_type") {
        None => None,
        Some(t) => match translate_hardware_type(t) {
            Ok(t) => Some(t),
            Err(e) => return bad_request(&e),
        },
    };
    let filters: Option<Vec<&str>> = p.get("filters").map(|f| f.split(',').collect());
    let include = flag(p, "include_script");
    let out: Vec<Value> = all(&g.st)
        .iter()
        .filter(|sc| script_type.is_none_or(|t| sc.script_type == t))
        .filter(|sc| hardware_type.is_none_or(|t| sc.hardware_type == t))
        .filter(|sc| {
            filters.as_ref().is_none_or(|f| {
                f.contains(&sc.name.as_str()) || sc.tags.iter().any(|t| f.contains(&t.as_str()))
            })
        })
        .map(|sc| render(&s.api, sc, include))
        .collect();
    ok(Value::Array(out))
}

pub fn create(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    match clean(&g.st, None, &r.params) {
        Ok((script, text)) => {
            let now = s.now_ms();
            let saved = save(&mut g.st, script, text, now);
            ok(render(&s.api, &saved, false))
        }
        Err(e) => e.response(),
    }
}

pub fn read(s: &Maas, r: &Req) -> Response {
    let g = s.inner.lock();
    match find(&g.st, r.path("name")) {
        Some(sc) => ok(render(&s.api, &sc, flag(&r.params, "include_script"))),
        None => not_found("Script"),
    }
}

fn builtin_unchangeable() -> Response {
    bad_request("The twin does not change MAAS's builtin scripts.")
}

pub fn update(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    let Some(cur) = find(&g.st, r.path("name")) else {
        return not_found("Script");
    };
    match clean(&g.st, Some(&cur), &r.params) {
        Ok(_) if cur.default => builtin_unchangeable(),
        Ok((script, text)) => {
            let now = s.now_ms();
            let saved = save(&mut g.st, script, text, now);
            ok(render(&s.api, &saved, false))
        }
        Err(e) => e.response(),
    }
}

pub fn delete(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    let Some(cur) = find(&g.st, r.path("name")) else {
        return not_found("Script");
    };
    if cur.default {
        return bad_request("Unable to delete default script");
    }
    g.st.scripts.remove(&cur.id);
    http::deleted()
}

/// An optional integer parameter read with formencode's `Int`.
fn int_param(p: &Params, key: &str) -> Result<Option<i64>, Response> {
    match p.get(key) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|_| bad_request(&format!("Invalid {key}: Please enter an integer value"))),
    }
}

pub fn download(s: &Maas, r: &Req) -> Response {
    let g = s.inner.lock();
    let Some(cur) = find(&g.st, r.path("name")) else {
        return not_found("Script");
    };
    let revision = match int_param(&r.params, "revision") {
        Ok(Some(v)) => Some(v),
        Ok(None) => match int_param(&r.params, "rev") {
            Ok(v) => v,
            Err(e) => return e,
        },
        Err(e) => return e,
    };
    let text = match revision {
        None => cur
            .history
            .first()
            .map(|h| h.data.clone())
            .unwrap_or_default(),
        Some(rev) => match cur
            .history
            .iter()
            .find(|h| i64::try_from(h.id).ok() == Some(rev))
        {
            Some(h) => h.data.clone(),
            None => return bad_request(&format!("{rev} not found in history")),
        },
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/binary")],
        text,
    )
        .into_response()
}

pub fn revert(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    let to = match int_param(&r.params, "to") {
        Ok(Some(v)) => v,
        Ok(None) => return bad_request("No provided to!"),
        Err(e) => return e,
    };
    let Some(mut cur) = find(&g.st, r.path("name")) else {
        return not_found("Script");
    };
    if cur.default {
        return bad_request("Unable to revert default script");
    }
    // `VersionedTextFile.revert`: back `-to` revisions, or to the revision with id
    // `to`, dropping the newer ones.
    let keep_from = if to == 0 {
        0
    } else if to < 0 {
        let back = usize::try_from(to.unsigned_abs()).unwrap_or(usize::MAX);
        if back >= cur.history.len() {
            return bad_request("Goes too far back.");
        }
        back
    } else {
        match cur
            .history
            .iter()
            .position(|h| i64::try_from(h.id).ok() == Some(to))
        {
            Some(i) => i,
            None => return bad_request(&format!("{to} not found in history")),
        }
    };
    cur.history.drain(..keep_from);
    g.st.scripts.insert(cur.id, cur.clone());
    ok(render(&s.api, &cur, false))
}

fn change_tag(s: &Maas, r: &Req, add: bool) -> Response {
    let mut g = s.inner.lock();
    let Some(tag) = r.params.get("tag").map(str::to_string) else {
        return bad_request("No provided tag!");
    };
    if add && tag.contains(',') {
        return bad_request("Tag may not contain a \",\".");
    }
    let Some(mut cur) = find(&g.st, r.path("name")) else {
        return not_found("Script");
    };
    if cur.default {
        return builtin_unchangeable();
    }
    if add && !cur.tags.contains(&tag) {
        cur.tags.push(tag);
    } else if !add {
        cur.tags.retain(|t| *t != tag);
    }
    retag(&mut cur);
    g.st.scripts.insert(cur.id, cur.clone());
    ok(render(&s.api, &cur, false))
}

pub fn add_tag(s: &Maas, r: &Req) -> Response {
    change_tag(s, r, true)
}

pub fn remove_tag(s: &Maas, r: &Req) -> Response {
    change_tag(s, r, false)
}

// ---------------------------------------------------------------------------------
// Selection for a run

/// A script picked for a commissioning or testing run.
pub struct Selected {
    pub name: String,
    pub hardware_type: u8,
    pub script_id: u64,
    pub revision_id: u64,
    /// A user script's text and timeout (seconds); `None` for a builtin.
    pub run: Option<(String, u64)>,
}

fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(sp) = star {
            pi = sp + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Does a `for_hardware` script apply to this hardware? MAAS matches PCI ids and
/// modalias patterns against the devices commissioning found and `key:value` pairs
/// against the DMI facts (src/maasserver/models/scriptset.py `_find_scripts`,
/// src/metadataserver/builtin_scripts/hooks.py `filter_modaliases`).
fn applies(s: &Script, hw: Option<&Hardware>) -> bool {
    if s.for_hardware.is_empty() {
        return true;
    }
    let Some(hw) = hw else { return false };
    let devices: Vec<(String, String, &str)> = hw
        .gpus
        .iter()
        .map(|g| (g.vendor_id.clone(), g.product_id.clone(), "03"))
        .chain(
            hw.nics
                .iter()
                .map(|n| (n.vendor_id.clone(), n.product_id.clone(), "02")),
        )
        .collect();
    let pairs: Vec<String> = super::render::dmi(hw)
        .into_iter()
        .map(|(k, v)| format!("{k}:{v}"))
        .collect();
    s.for_hardware.iter().any(|d| {
        if let Some(ids) = d.strip_prefix("pci:") {
            devices
                .iter()
                .any(|(v, p, _)| ids.eq_ignore_ascii_case(&format!("{v}:{p}")))
        } else if let Some(pattern) = d.strip_prefix("modalias:") {
            devices.iter().any(|(v, p, class)| {
                let alias = format!(
                    "pci:v0000{}d0000{}sv00000000sd00000000bc{class}sc00i00",
                    v.to_ascii_uppercase(),
                    p.to_ascii_uppercase()
                );
                glob(pattern, &alias)
            })
        } else {
            pairs.iter().any(|p| p == d)
        }
    })
}

fn selected(s: &Script) -> Selected {
    let rev = s.history.first();
    Selected {
        name: s.name.clone(),
        hardware_type: s.hardware_type,
        script_id: s.id,
        revision_id: rev.map(|r| r.id).unwrap_or(s.id),
        run: (!s.default).then(|| (rev.map(|r| r.data.clone()).unwrap_or_default(), s.timeout_s)),
    }
}

/// The scripts a run of `script_type` (0 commissioning, 2 testing) takes, given the
/// `commissioning_scripts`/`testing_scripts` the request named (src/maasserver/forms/
/// ephemeral.py `ScriptForm` choices: names and tags of that type's scripts, `none`
/// for testing; src/maasserver/models/scriptset.py `create_commissioning_script_set`,
/// `create_testing_script_set`):
/// - commissioning: every builtin, then the user scripts named (by name, tag or id),
///   or, when none is named, every user commissioning script without `for_hardware`
///   and not tagged `noauto`;
/// - testing: the scripts named, `none` for none, by default those tagged
///   `commissioning`;
///
/// a `for_hardware` script only where the hardware matches. `Err` is the form's
/// error for the field.
pub fn select(
    st: &State,
    script_type: u8,
    requested: &[String],
    hw: Option<&Hardware>,
) -> Result<Vec<Selected>, String> {
    let of_type: Vec<Script> = all(st)
        .into_iter()
        .filter(|s| s.script_type == script_type)
        .collect();
    let testing = script_type == 2;
    for want in requested {
        let known = (testing && want == "none")
            || of_type
                .iter()
                .any(|s| s.name == *want || s.tags.contains(want));
        if !known {
            return Err(format!(
                "Select a valid choice. {want} is not one of the available choices."
            ));
        }
    }
    let requested: Vec<String> = if testing && requested.is_empty() {
        vec!["commissioning".into()]
    } else {
        requested.to_vec()
    };
    if testing && requested.iter().any(|r| r == "none") {
        return Ok(Vec::new());
    }
    let named = |s: &Script| {
        requested
            .iter()
            .any(|r| *r == s.name || s.tags.contains(r) || r.parse::<u64>().ok() == Some(s.id))
    };
    Ok(of_type
        .iter()
        .filter(|s| {
            if !testing && s.default {
                return true;
            }
            if !testing && requested.is_empty() {
                return s.for_hardware.is_empty() && !s.tags.iter().any(|t| t == "noauto");
            }
            named(s)
        })
        .filter(|s| applies(s, hw))
        .map(selected)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_and_print_like_django_and_python() {
        assert_eq!(parse_duration("60"), Some(60));
        assert_eq!(parse_duration("00:05:00"), Some(300));
        assert_eq!(parse_duration("5:00"), Some(300));
        assert_eq!(parse_duration("1 day, 0:00:01"), Some(86_401));
        assert_eq!(parse_duration("1.5"), Some(1));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(format_duration(0), "0:00:00");
        assert_eq!(format_duration(300), "0:05:00");
        assert_eq!(format_duration(86_400 * 2 + 3600), "2 days, 1:00:00");
    }

    #[test]
    fn metadata_delimiters() {
        assert_eq!(
            delimiter_version("# --- Start MAAS 1.0 script metadata ---").as_deref(),
            Some("1.0")
        );
        assert_eq!(
            delimiter_version("#---end maas 1.0 script metadata -").as_deref(),
            Some("1.0")
        );
        assert_eq!(
            delimiter_version("# Start MAAS 1.0 script metadata ---"),
            None
        );
        assert_eq!(
            delimiter_version("# --- Start MAAS 1.0 script metadata"),
            None
        );
    }

    #[test]
    fn hardware_ids_and_globs() {
        assert!(valid_hardware_id("pci:10de:2330"));
        assert!(valid_hardware_id("system_vendor:Dell Inc."));
        assert!(valid_hardware_id("modalias:pci:v000010DE*"));
        assert!(!valid_hardware_id("pci:10de"));
        assert!(!valid_hardware_id("gpu:h100"));
        assert!(glob("pci:v000010DE*", "pci:v000010DEd00002330sv0"));
        assert!(!glob("pci:v00008086*", "pci:v000010DEd00002330"));
    }
}
