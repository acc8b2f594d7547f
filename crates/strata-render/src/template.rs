//! Shared minijinja setup for the renderers that use templates.
//!
//! Templates live in `templates/` and are compiled into the binary. Undefined
//! variables are errors (a typo in a template must not silently render empty), and
//! block tags do not leave blank lines behind. A template that does not parse, or
//! fails while rendering, is an error the caller returns; it never becomes text.

use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};

use minijinja::syntax::SyntaxConfig;
use minijinja::{Environment, UndefinedBehavior, Value};
use serde::Serialize;

/// A renderer's templates: the environment, plus the templates that did not parse
/// (a bug the snapshot tests catch) with the parser's message.
pub struct Templates {
    env: Environment<'static>,
    unparsed: BTreeMap<&'static str, String>,
}

impl Deref for Templates {
    type Target = Environment<'static>;
    fn deref(&self) -> &Environment<'static> {
        &self.env
    }
}

impl DerefMut for Templates {
    fn deref_mut(&mut self) -> &mut Environment<'static> {
        &mut self.env
    }
}

/// An environment with strata's settings and the given `(name, source)` templates.
pub fn environment(templates: &[(&'static str, &'static str)]) -> Templates {
    let mut env = Environment::new();
    if let Ok(syntax) = SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .keep_trailing_newline(true)
        .build()
    {
        env.set_syntax(syntax);
    }
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    let mut unparsed = BTreeMap::new();
    for (name, source) in templates {
        if let Err(e) = env.add_template(name, source) {
            unparsed.insert(*name, e.to_string());
        }
    }
    Templates { env, unparsed }
}

/// Render template `name` with `ctx`; the error says which template failed and why.
pub fn render<S: Serialize>(t: &Templates, name: &str, ctx: S) -> Result<String, String> {
    if let Some(why) = t.unparsed.get(name) {
        return Err(format!("template `{name}` does not parse: {why}"));
    }
    t.env
        .get_template(name)
        .and_then(|tpl| tpl.render(Value::from(minijinja::value::Serde(&ctx))))
        .map_err(|e| format!("template `{name}` failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_bug_is_an_error_not_text() {
        let t = environment(&[
            ("undefined", "a {{ nosuch }} b\n"),
            ("unparsed", "{% if %}"),
        ]);
        let e = render(&t, "undefined", serde_json::json!({})).expect_err("undefined value");
        assert!(e.contains("template `undefined` failed"), "{e}");
        let e = render(&t, "unparsed", serde_json::json!({})).expect_err("does not parse");
        assert!(e.contains("template `unparsed` does not parse"), "{e}");
        let e = render(&t, "absent", serde_json::json!({})).expect_err("no such template");
        assert!(e.contains("template `absent`"), "{e}");
    }
}
