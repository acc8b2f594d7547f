//! Shared minijinja setup for the renderers that use templates.
//!
//! Templates live in `templates/` and are compiled into the binary. Undefined
//! variables are errors (a typo in a template must not silently render empty), and
//! block tags do not leave blank lines behind.

use minijinja::syntax::SyntaxConfig;
use minijinja::{Environment, UndefinedBehavior, Value};
use serde::Serialize;

/// An environment with strata's settings and the given `(name, source)` templates.
pub fn environment(templates: &[(&'static str, &'static str)]) -> Environment<'static> {
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
    for (name, source) in templates {
        // A template that does not parse is a bug caught by the snapshot tests; it
        // then renders as the error text below instead of panicking.
        if let Err(e) = env.add_template(name, source) {
            let _ = env.add_template_owned(*name, failure(name, &e));
        }
    }
    env
}

/// Render template `name` with `ctx`. A rendering failure (a template bug) yields
/// text that names the bug, which every validator rejects.
pub fn render<S: Serialize>(env: &Environment<'static>, name: &str, ctx: S) -> String {
    match env
        .get_template(name)
        .and_then(|t| t.render(Value::from(minijinja::value::Serde(&ctx))))
    {
        Ok(s) => s,
        Err(e) => failure(name, &e),
    }
}

fn failure(name: &str, e: &minijinja::Error) -> String {
    crate::failed_render_text(&format!("template `{name}`"), &e.to_string())
}
