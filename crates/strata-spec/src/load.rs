//! Loading: `(path, text)` pairs in, one merged [`Spec`] and diagnostics out.
//!
//! Parsing is strict (unknown keys, duplicate keys, YAML 1.1 booleans such as `no`
//! and inline secrets are refused) and bounded (file size, alias expansion, nesting
//! depth and node count are capped so a hostile file is refused quickly in bounded
//! memory). Files are parsed in parallel; the result does not depend on file order
//! except for the order of list items, which the compiler sorts away.

use rayon::prelude::*;
use serde_saphyr::budget::BudgetBreach;
use strata_diagnostics::{Code, Diagnostic, FileId, SourceMap, Span, codes, did_you_mean};

use crate::located::{Located, with_current_file};
use crate::model::Spec;

/// Resource limits for one spec file.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Files larger than this are refused before parsing.
    pub max_file_bytes: usize,
    /// Alias (`*name`) uses per file.
    pub max_aliases: usize,
    /// Nesting depth of mappings and sequences.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_bytes: 64 * 1024 * 1024,
            max_aliases: 10_000,
            max_depth: 48,
        }
    }
}

/// The result of loading: the merged spec and everything wrong with it so far.
#[derive(Debug, Default)]
pub struct Loaded {
    pub spec: Spec,
    pub diagnostics: Vec<Diagnostic>,
}

/// Add one spec file's bytes to `sources` as `shown`. `size` is the file's size (the
/// bytes of a file over the limit need not have been read). A file over the size limit
/// or not UTF-8 is added empty, with the diagnostic that says so. The CLI (files on
/// disk) and the server (blobs of a Git commit) both read files through this.
pub fn add_source(
    sources: &mut SourceMap,
    shown: String,
    size: u64,
    bytes: Vec<u8>,
    limits: &Limits,
) -> Option<Diagnostic> {
    if size > limits.max_file_bytes as u64 {
        let id = sources.add(shown, String::new());
        return Some(
            Diagnostic::new(
                codes::S0106,
                format!(
                    "file is {size} bytes, more than the limit of {} bytes",
                    limits.max_file_bytes
                ),
            )
            .at(Span::file_start(id))
            .expected(format!("at most {} bytes", limits.max_file_bytes))
            .help("split the data over several files (e.g. one inventory file per site)"),
        );
    }
    match String::from_utf8(bytes) {
        Ok(text) => {
            sources.add(shown, text);
            None
        }
        Err(e) => {
            let id = sources.add(shown, String::new());
            Some(
                Diagnostic::new(
                    codes::S0111,
                    format!(
                        "file is not UTF-8 (invalid byte at offset {})",
                        e.utf8_error().valid_up_to()
                    ),
                )
                .at(Span::file_start(id))
                .expected("UTF-8 text")
                .help("re-save the file as UTF-8"),
            )
        }
    }
}

/// Parse every file of `sources` and merge them into one [`Spec`].
pub fn load(sources: &SourceMap, limits: &Limits) -> Loaded {
    let files: Vec<(FileId, &str)> = sources
        .files()
        .map(|(id, f)| (id, f.text.as_str()))
        .collect();
    let parsed: Vec<Result<Spec, Box<Diagnostic>>> = files
        .par_iter()
        .map(|(id, text)| parse_file(*id, text, limits))
        .collect();

    let mut out = Loaded::default();
    for r in parsed {
        match r {
            Ok(part) => merge(&mut out, part),
            Err(d) => out.diagnostics.push(*d),
        }
    }
    let parse_failed = out.diagnostics.iter().any(|d| d.is_error());
    if !parse_failed {
        let s = &out.spec;
        for (present, name, example) in [
            (
                s.organisation.is_some(),
                "organisation",
                "organisation:\n  name: example\n  fleet_id: example-prod\n  domain: dc.example.net",
            ),
            (
                s.pools.is_some(),
                "pools",
                "pools:\n  site_supernets: {pool: 10.0.0.0/8, prefix_len: 16}\n  ...",
            ),
            (
                s.mtu.is_some(),
                "mtu",
                "mtu:\n  underlay: 9216\n  overlay: 9000",
            ),
            (
                s.blueprint.is_some(),
                "blueprint",
                "blueprint:\n  fabric: {spines: 2, leaves_per_rack: 2}\n  ...",
            ),
        ] {
            if !present {
                out.diagnostics.push(
                    Diagnostic::new(
                        codes::S0110,
                        format!("the spec has no `{name}` section"),
                    )
                    .expected(format!("a top-level `{name}:` section in one of the spec files"))
                    .help(format!(
                        "add it to any file of the spec directory, e.g.\n{example}\n(`strata init` writes a complete starter fleet)"
                    )),
                );
            }
        }
    }
    out
}

fn merge(out: &mut Loaded, part: Spec) {
    fn single<T>(
        diags: &mut Vec<Diagnostic>,
        slot: &mut Option<Located<T>>,
        new: Option<Located<T>>,
        name: &str,
    ) {
        let Some(new) = new else { return };
        match slot {
            Some(first) => diags.push(
                Diagnostic::new(codes::S0109, format!("`{name}` is defined more than once"))
                    .at(new.span)
                    .expected(format!("a single `{name}` section in the whole spec"))
                    .related(first.span, "first defined here")
                    .help(format!(
                        "keep one `{name}` section; singleton sections are not merged"
                    )),
            ),
            None => *slot = Some(new),
        }
    }
    let s = &mut out.spec;
    let d = &mut out.diagnostics;
    single(d, &mut s.organisation, part.organisation, "organisation");
    single(d, &mut s.pools, part.pools, "pools");
    single(d, &mut s.mtu, part.mtu, "mtu");
    single(d, &mut s.blueprint, part.blueprint, "blueprint");
    single(d, &mut s.policy, part.policy, "policy");
    s.sites.extend(part.sites);
    s.profiles.extend(part.profiles);
    s.machines.extend(part.machines);
    s.vms.extend(part.vms);
    s.tenants.extend(part.tenants);
    s.interconnects.extend(part.interconnects);
    s.teams.extend(part.teams);
    s.slos.extend(part.slos);
}

/// Parse one file. An empty file (or one holding only comments) is an empty spec part.
pub fn parse_file(file: FileId, text: &str, limits: &Limits) -> Result<Spec, Box<Diagnostic>> {
    if text.len() > limits.max_file_bytes {
        return Err(Box::new(
            Diagnostic::new(
                codes::S0106,
                format!(
                    "file is {} bytes, more than the limit of {} bytes",
                    text.len(),
                    limits.max_file_bytes
                ),
            )
            .at(Span::file_start(file))
            .expected(format!("at most {} bytes", limits.max_file_bytes))
            .help("split the data over several files (e.g. one inventory file per site)"),
        ));
    }
    if text.trim().is_empty()
        || text.lines().all(|l| {
            let t = l.trim_start();
            t.is_empty() || t.starts_with('#')
        })
    {
        return Ok(Spec::default());
    }
    let mut opts = serde_saphyr::options! {
        strict_booleans: true,
        with_snippet: false,
    };
    let mut budget = serde_saphyr::budget::Budget::default();
    // Any real spec has fewer events and nodes than bytes; anything more is expansion.
    let scaled = text.len().saturating_mul(2).saturating_add(10_000);
    budget.max_events = scaled;
    budget.max_nodes = scaled;
    budget.max_aliases = limits.max_aliases;
    budget.max_anchors = limits.max_aliases;
    budget.max_depth = limits.max_depth;
    budget.max_documents = 1;
    budget.max_total_scalar_bytes = text.len().saturating_add(1024);
    budget.max_recorded_anchor_bytes = 4 * 1024 * 1024;
    budget.max_recorded_anchor_events = 200_000;
    opts.budget = Some(budget);
    let mut alias = serde_saphyr::options::AliasLimits::default();
    alias.max_total_replayed_events = scaled.min(2_000_000);
    alias.max_replay_stack_depth = 16;
    opts.alias_limits = alias;

    with_current_file(file, || {
        serde_saphyr::from_str_with_options::<Spec>(text, opts)
    })
    .map_err(|e| Box::new(to_diagnostic(file, text, &e)))
}

fn span_of(file: FileId, text: &str, loc: Option<serde_saphyr::Location>) -> Span {
    let Some(loc) = loc else {
        return Span::file_start(file);
    };
    let line = u32::try_from(loc.line()).unwrap_or(u32::MAX).max(1);
    let col = u32::try_from(loc.column()).unwrap_or(u32::MAX).max(1);
    let sp = loc.span();
    let offset = sp
        .byte_offset()
        .map(|o| o as usize)
        .unwrap_or_else(|| offset_of(text, line, col));
    let len = sp.byte_len().map(|l| l as usize).unwrap_or(0);
    // Point at the whole token when the parser gave a zero-width location.
    let len = if len == 0 {
        text.get(offset..)
            .map(|rest| rest.find([':', '\n', ',', '}', ']']).unwrap_or(rest.len()))
            .unwrap_or(0)
    } else {
        len
    };
    Span {
        file,
        line,
        col,
        offset: u32::try_from(offset).unwrap_or(u32::MAX),
        len: u32::try_from(len).unwrap_or(0),
    }
}

/// Byte offset of a 1-based line/column (columns count characters).
fn offset_of(text: &str, line: u32, col: u32) -> usize {
    let mut off = 0usize;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line as usize {
            let chars = l.char_indices().nth(col.saturating_sub(1) as usize);
            return off + chars.map(|(b, _)| b).unwrap_or(l.len());
        }
        off += l.len();
    }
    text.len()
}

fn backticked(list: &[&str]) -> String {
    let mut v: Vec<String> = list.iter().map(|s| format!("`{s}`")).collect();
    if v.len() > 12 {
        v.truncate(12);
        v.push("...".into());
    }
    v.join(", ")
}

/// How to migrate a field the spec language no longer has.
fn retired_field(field: &str) -> Option<&'static str> {
    match field {
        "ha_groups" => Some(
            "Proxmox VE 9 replaced HA groups with HA rules: write `ha_rules:` (e.g. `- { name: ctl-apart, type: resource-affinity, affinity: negative, roles: [openstack-control] }`); a group over every node, as strata's were, needs no rule",
        ),
        "ha_group" => Some(
            "Proxmox VE 9 has no HA groups: write `ha: true` to make the VM HA-managed, and select it from an `ha_rules` entry of its cluster to keep it apart from (or with) other VMs",
        ),
        _ => None,
    }
}

/// Turn a parser error into a diagnostic with a stable code and a help line.
fn to_diagnostic(file: FileId, text: &str, err: &serde_saphyr::Error) -> Diagnostic {
    use serde_saphyr::Error as E;
    let span = span_of(file, text, err.location());
    match err {
        E::WithSnippet { error, .. } => to_diagnostic(file, text, error),
        E::AliasError { error, .. } => {
            // Report at the use of the alias; the inner error knows what went wrong.
            let mut d = to_diagnostic(file, text, error);
            d.span = Some(span);
            d
        }
        E::SerdeUnknownField { field, expected, .. } => {
            let mut d = Diagnostic::new(
                codes::S0102,
                format!("unknown field `{}`", field.escape_debug()),
            )
            .at(span)
            .expected(if expected.is_empty() {
                "no fields here".to_string()
            } else {
                format!("one of {}", backticked(expected))
            });
            d = match (retired_field(field), did_you_mean(field, expected.iter().copied())) {
                (Some(why), _) => d.help(why),
                (None, Some(s)) => d.help(format!("did you mean `{s}`?")),
                (None, None) => d.help(
                    "remove it or fix its spelling; `strata schema` prints every field the spec accepts",
                ),
            };
            d
        }
        E::SerdeUnknownVariant {
            variant, expected, ..
        } => {
            let d = Diagnostic::new(
                codes::S0113,
                format!("unknown value `{}`", variant.escape_debug()),
            )
            .at(span)
            .expected(format!("one of {}", backticked(expected)));
            match did_you_mean(variant, expected.iter().copied()) {
                Some(s) => d.help(format!("did you mean `{s}`?")),
                None => d.help(format!("use one of {}", backticked(expected))),
            }
        }
        E::DuplicateMappingKey { key, .. } => {
            let k = key.as_deref().unwrap_or("?");
            Diagnostic::new(codes::S0103, format!("duplicate key `{}`", k.escape_debug()))
                .at(span)
                .expected("each key at most once per mapping")
                .help("remove one of the two entries; YAML does not say which would win, so strata refuses both")
        }
        E::SerdeMissingField { field, .. } => {
            Diagnostic::new(codes::S0105, format!("missing field `{field}`"))
                .at(span)
                .expected(format!("a `{field}:` key in this mapping"))
                .help(format!("add `{field}: ...`; `strata schema` shows its type"))
        }
        E::SerdeInvalidType {
            unexpected,
            expected,
            ..
        } => Diagnostic::new(
            codes::S0104,
            format!("invalid type: found {unexpected}, expected {expected}"),
        )
        .at(span)
        .expected(expected.clone())
        .help("quote strings that look like numbers or booleans; `strata schema` shows each field's type"),
        E::SerdeInvalidValue {
            unexpected,
            expected,
            ..
        } => Diagnostic::new(
            codes::S0104,
            format!("invalid value: found {unexpected}, expected {expected}"),
        )
        .at(span)
        .expected(expected.clone())
        .help("fix the value; `strata schema` shows what each field accepts"),
        E::InvalidBooleanStrict { .. } => Diagnostic::new(
            codes::S0104,
            "ambiguous boolean (YAML 1.1 spellings such as yes/no/on/off are refused)".to_string(),
        )
        .at(span)
        .expected("`true` or `false`")
        .help("write `true` or `false`; a bare `no` is how Norway's country code became a boolean"),
        E::Message { msg, .. } => custom(msg, span),
        E::Budget { breach, .. } => {
            let what = match breach {
                BudgetBreach::Aliases { aliases } => format!("{aliases} alias uses"),
                BudgetBreach::Anchors { anchors } => format!("{anchors} anchors"),
                BudgetBreach::Depth { depth } => format!("nesting depth {depth}"),
                BudgetBreach::Events { events } => format!("{events} parser events"),
                BudgetBreach::Nodes { nodes } => format!("{nodes} nodes"),
                BudgetBreach::Documents { documents } => format!("{documents} documents"),
                BudgetBreach::ScalarBytes { total_scalar_bytes } => format!(
                    "{total_scalar_bytes} bytes of scalars from a {}-byte file",
                    text.len()
                ),
                BudgetBreach::RecordedAnchorBytes { .. } | BudgetBreach::RecordedAnchorEvents { .. } => {
                    "anchor size".to_string()
                }
                other => format!("{other:?}"),
            };
            budget(span, &what)
        }
        E::AliasReplayLimitExceeded { .. }
        | E::AliasExpansionLimitExceeded { .. }
        | E::AliasReplayStackDepthExceeded { .. }
        | E::AliasReplayCounterOverflow { .. } => budget(span, "alias expansion"),
        E::Unexpected { expected, .. } => Diagnostic::new(
            codes::S0104,
            format!("wrong structure here: expected {expected}"),
        )
        .at(span)
        .expected((*expected).to_string())
        .help("check the indentation and whether this should be a mapping (`key: value`) or a list (`- item`); `strata schema` shows the shape"),
        E::MultipleDocuments { .. } => Diagnostic::new(
            codes::S0101,
            "more than one YAML document in one file",
        )
        .at(span)
        .expected("a single document per file")
        .help("remove the `---` separator and put the second document in its own file"),
        other => {
            let msg = other.without_snippet().to_string();
            let msg = strip_location(&msg);
            if let Some(d) = coded(msg, span) {
                return d;
            }
            Diagnostic::new(codes::S0101, format!("invalid YAML: {msg}"))
                .at(span)
                .expected("well-formed YAML")
                .help("check indentation, quoting and that every `key:` is followed by a value")
        }
    }
}

fn budget(span: Span, what: &str) -> Diagnostic {
    Diagnostic::new(
        codes::S0107,
        format!("document exceeds strata's parsing budget ({what})"),
    )
    .at(span)
    .expected("a spec without deep nesting or large alias expansion")
    .help("write the data out instead of expanding aliases; alias-expansion bombs are refused on purpose")
}

/// Drop a trailing " at line X, column Y" that the parser adds to messages.
fn strip_location(msg: &str) -> &str {
    if let Some(i) = msg.rfind(" at line ") {
        let tail = &msg[i + " at line ".len()..];
        if tail
            .chars()
            .all(|c| c.is_ascii_digit() || c == ',' || c == ' ' || "column".contains(c))
        {
            return &msg[..i];
        }
    }
    msg
}

/// A message from one of our own value deserialisers carries its code as a prefix.
fn coded(msg: &str, span: Span) -> Option<Diagnostic> {
    let (code, rest) = msg.split_once(": ")?;
    let code: Code = codes::ALL.iter().find(|c| c.code.as_str() == code)?.code;
    let help = match code.as_str() {
        "S0108" => "put the secret in an environment variable or a file and reference it",
        "S0112" => "rename it: lower-case letters, digits and `-`",
        _ => "fix the value; `strata schema` shows what each field accepts",
    };
    Some(
        Diagnostic::new(code, rest.to_string())
            .at(span)
            .expected(code.info().name.replace('-', " "))
            .help(help),
    )
}

fn custom(msg: &str, span: Span) -> Diagnostic {
    let msg = strip_location(msg);
    coded(msg, span).unwrap_or_else(|| {
        Diagnostic::new(codes::S0104, msg.to_string())
            .at(span)
            .expected("a valid value")
            .help("fix the value; `strata schema` shows what each field accepts")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Result<Spec, Box<Diagnostic>> {
        parse_file(FileId(0), text, &Limits::default())
    }

    #[test]
    fn empty_and_comment_only_files_are_empty_specs() {
        assert!(one("").is_ok());
        assert!(one("# just a comment\n\n").is_ok());
    }

    #[test]
    fn unknown_top_level_section_suggests_the_right_one() {
        let e = one("machine: []\n").expect_err("must fail");
        assert_eq!(e.code, codes::S0102);
        assert_eq!(e.help.as_deref(), Some("did you mean `machines`?"));
        assert_eq!(e.span.map(|s| (s.line, s.col)), Some((1, 1)));
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let e = one("teams:\n  - name: a\n    name: b\n").expect_err("must fail");
        assert_eq!(e.code, codes::S0103);
        assert_eq!(e.span.map(|s| s.line), Some(3));
    }

    #[test]
    fn inline_secrets_are_refused_without_echo() {
        let text = "machines:\n  - serial: X1\n    site: fra1\n    rack: r01\n    slot: 1\n    profile: p\n    role: proxmox\n    bmc:\n      credential: hunter2\n";
        let e = one(text).expect_err("must fail");
        assert_eq!(e.code, codes::S0108);
        assert!(!e.message.contains("hunter2"));
        assert_eq!(e.span.map(|s| s.line), Some(9));
    }

    #[test]
    fn alias_bomb_is_refused_quickly() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let start = std::time::Instant::now();
        let e = one(&text).expect_err("must fail");
        // Either the budget trips or the unknown key does; both are refusals. The
        // point is that it returns at all (the full expansion is 10^12 nodes).
        assert!(matches!(e.code.as_str(), "S0107" | "S0102"), "{e:?}");
        let _ = start;
    }

    #[test]
    fn alias_bomb_inside_a_valid_field_hits_the_budget() {
        // Override values take any YAML, so the expansion type-checks all the way.
        let mut text = String::from(
            "sites:\n  - name: s\n    region: r\n    racks: []\n    overrides:\n      - path: p0\n        value: &a0 [x, x, x, x, x, x, x, x, x, x]\n",
        );
        let mut prev = "a0".to_string();
        for i in 1..10 {
            let refs = vec![format!("*{prev}"); 10].join(", ");
            text.push_str(&format!(
                "      - path: p{i}\n        value: &a{i} [{refs}]\n"
            ));
            prev = format!("a{i}");
        }
        let e = one(&text).expect_err("must fail");
        assert_eq!(e.code, codes::S0107, "{e:?}");
    }

    #[test]
    fn oversized_files_are_refused_before_parsing() {
        let limits = Limits {
            max_file_bytes: 10,
            ..Limits::default()
        };
        let e = parse_file(FileId(0), "teams: []\n# padding", &limits).expect_err("must fail");
        assert_eq!(e.code, codes::S0106);
    }

    #[test]
    fn norway_is_not_a_boolean() {
        let text = "tenants:\n  - name: t\n    networks:\n      - name: n\n        routed: no\n";
        let e = one(text).expect_err("must fail");
        assert_eq!(e.code, codes::S0104);
    }

    #[test]
    fn duplicate_singleton_sections_are_reported_with_both_places() {
        let mut sources = SourceMap::new();
        let org = "organisation:\n  name: x\n  fleet_id: x\n  domain: x.net\n";
        sources.add("a.yaml", org);
        sources.add("b.yaml", org);
        let loaded = load(&sources, &Limits::default());
        let dup: Vec<_> = loaded
            .diagnostics
            .iter()
            .filter(|d| d.code == codes::S0109)
            .collect();
        assert_eq!(dup.len(), 1);
        assert_eq!(dup[0].span.map(|s| s.file), Some(FileId(1)));
        assert_eq!(dup[0].related[0].span.file, FileId(0));
    }
}
