//! Hostname templates such as `{site}-{rack}-{role}{slot:02}`.

use std::fmt::Write;

/// A placeholder a template may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Var {
    Site,
    Rack,
    Role,
    Index,
    Slot,
    Name,
}

impl Var {
    fn parse(s: &str) -> Option<Var> {
        Some(match s {
            "site" => Var::Site,
            "rack" => Var::Rack,
            "role" => Var::Role,
            "index" => Var::Index,
            "slot" => Var::Slot,
            "name" => Var::Name,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Var::Site => "site",
            Var::Rack => "rack",
            Var::Role => "role",
            Var::Index => "index",
            Var::Slot => "slot",
            Var::Name => "name",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Lit(String),
    Var { var: Var, width: usize },
}

/// A parsed hostname template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// Values for a template's placeholders.
#[derive(Clone, Copy, Debug, Default)]
pub struct Vars<'a> {
    pub site: &'a str,
    pub rack: &'a str,
    pub role: &'a str,
    pub name: &'a str,
    pub index: u32,
    pub slot: u32,
}

impl Template {
    /// Parse `text`, allowing only the placeholders in `allowed`.
    pub fn parse(text: &str, allowed: &[Var]) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            lit.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| format!("unclosed `{{` in `{text}`"))?;
            let inner = &after[..close];
            let (name, width) = match inner.split_once(':') {
                Some((n, w)) => {
                    let w: usize = w.trim_start_matches('0').parse().map_err(|_| {
                        format!("bad width `{w}` in `{{{inner}}}`; write e.g. `{{index:02}}`")
                    })?;
                    (n, w.min(10))
                }
                None => (inner, 0),
            };
            let var = Var::parse(name).ok_or_else(|| {
                format!(
                    "unknown placeholder `{{{name}}}`; this template may use {}",
                    allowed
                        .iter()
                        .map(|v| format!("`{{{}}}`", v.as_str()))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
            if !allowed.contains(&var) {
                return Err(format!(
                    "placeholder `{{{name}}}` cannot be used here; this template may use {}",
                    allowed
                        .iter()
                        .map(|v| format!("`{{{}}}`", v.as_str()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            if !lit.is_empty() {
                parts.push(Part::Lit(std::mem::take(&mut lit)));
            }
            parts.push(Part::Var { var, width });
            rest = &after[close + 1..];
        }
        if rest.contains('}') {
            return Err(format!("stray `}}` in `{text}`"));
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Ok(Template { parts })
    }

    pub fn expand(&self, v: &Vars<'_>) -> String {
        let mut out = String::with_capacity(24);
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Var { var, width } => {
                    let _ = match var {
                        Var::Site => write!(out, "{:>1$}", v.site, 0),
                        Var::Rack => write!(out, "{}", v.rack),
                        Var::Role => write!(out, "{}", v.role),
                        Var::Name => write!(out, "{}", v.name),
                        Var::Index => write!(out, "{:0width$}", v.index, width = *width),
                        Var::Slot => write!(out, "{:0width$}", v.slot, width = *width),
                    };
                }
            }
        }
        out
    }

    /// Does the template contain `var`?
    pub fn uses(&self, var: Var) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Var { var: v, .. } if *v == var))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_with_padding() {
        let t = Template::parse(
            "{site}-{rack}-{role}{slot:02}",
            &[Var::Site, Var::Rack, Var::Role, Var::Slot],
        )
        .expect("valid");
        let v = Vars {
            site: "fra1",
            rack: "r01",
            role: "cmp",
            slot: 7,
            ..Vars::default()
        };
        assert_eq!(t.expand(&v), "fra1-r01-cmp07");
    }

    #[test]
    fn rejects_unknown_and_disallowed_placeholders() {
        assert!(Template::parse("{site}-{rak}", &[Var::Site, Var::Rack]).is_err());
        assert!(Template::parse("{site}-{slot}", &[Var::Site]).is_err());
        assert!(Template::parse("{site", &[Var::Site]).is_err());
        assert!(Template::parse("site}", &[Var::Site]).is_err());
    }
}
