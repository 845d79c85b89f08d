//! `{{ var }}` templates (minijinja). Text without template syntax stays `Text::Static`, so a step with a fixed
//! path and body never touches the template engine on the hot path.

use std::borrow::Cow;
use std::collections::HashSet;

use minijinja::{Environment, UndefinedBehavior, Value};

/// A piece of scenario text: fixed, or the name of a compiled template in a `TemplateSet`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Text {
    Static(String),
    Template(String),
}

impl Text {
    pub fn is_static(&self) -> bool {
        matches!(self, Text::Static(_))
    }
}

/// The variables one request renders with.
#[derive(Debug, Clone)]
pub struct Ctx(Value);

impl Ctx {
    pub fn new<K: Into<String>, I: IntoIterator<Item = (K, Value)>>(pairs: I) -> Self {
        let map: std::collections::BTreeMap<String, Value> = pairs.into_iter().map(|(k, v)| (k.into(), v)).collect();
        Ctx(Value::from(map))
    }
}

/// `tojson` that refuses undefined values: a whole-leaf `{{ row.typo }}` must fail, not send `null`.
fn strict_json(v: Value) -> Result<String, minijinja::Error> {
    use minijinja::{Error, ErrorKind};
    if v.is_undefined() {
        return Err(Error::new(ErrorKind::UndefinedError, "the expression is undefined"));
    }
    serde_json::to_string(&v).map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))
}

pub struct TemplateSet {
    env: Environment<'static>,
    next: usize,
}

impl Default for TemplateSet {
    fn default() -> Self {
        Self::new()
    }
}

impl TemplateSet {
    pub fn new() -> Self {
        let mut env = Environment::new();
        // A typo in a variable name must fail loudly, not send an empty string to the target.
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // A raw body must go out byte for byte, final newline included.
        if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder().keep_trailing_newline(true).build() {
            env.set_syntax(syntax);
        }
        env.add_filter("strict_json", strict_json);
        TemplateSet { env, next: 0 }
    }

    pub fn is_template(source: &str) -> bool {
        source.contains("{{") || source.contains("{%")
    }

    pub fn compile(&mut self, source: &str) -> Result<Text, minijinja::Error> {
        if !Self::is_template(source) {
            return Ok(Text::Static(source.to_string()));
        }
        let name = format!("t{}", self.next);
        self.next += 1;
        self.env.add_template_owned(name.clone(), source.to_string())?;
        Ok(Text::Template(name))
    }

    /// Top-level variable names a text reads.
    pub fn variables(&self, text: &Text) -> HashSet<String> {
        match text {
            Text::Static(_) => HashSet::new(),
            Text::Template(name) => {
                self.env.get_template(name).map(|t| t.undeclared_variables(false)).unwrap_or_default()
            }
        }
    }

    pub fn render<'a>(&self, text: &'a Text, ctx: &Ctx) -> Result<Cow<'a, str>, minijinja::Error> {
        match text {
            Text::Static(s) => Ok(Cow::Borrowed(s)),
            Text::Template(name) => self.env.get_template(name)?.render(ctx.0.clone()).map(Cow::Owned),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_text_skips_the_engine() {
        let mut set = TemplateSet::new();
        assert_eq!(set.compile("/v1/chat").unwrap(), Text::Static("/v1/chat".into()));
    }

    #[test]
    fn renders_and_reports_variables() {
        let mut set = TemplateSet::new();
        let t = set.compile("Bearer {{ token }}-{{ user_id }}").unwrap();
        let vars = set.variables(&t);
        assert!(vars.contains("token") && vars.contains("user_id"));
        let ctx = Ctx::new([("token", Value::from("abc")), ("user_id", Value::from(7))]);
        assert_eq!(set.render(&t, &ctx).unwrap(), "Bearer abc-7");
    }

    #[test]
    fn undefined_variable_is_an_error() {
        let mut set = TemplateSet::new();
        let t = set.compile("{{ missing }}").unwrap();
        assert!(set.render(&t, &Ctx::new(Vec::<(String, Value)>::new())).is_err());
    }

    #[test]
    fn strict_json_refuses_undefined() {
        let mut set = TemplateSet::new();
        let t = set.compile("{{ (m.nope) | strict_json }}").unwrap();
        let ctx = Ctx::new([("m", Value::from(std::collections::BTreeMap::from([("a", 1)])))]);
        assert!(set.render(&t, &ctx).is_err());
        let t = set.compile("{{ m | strict_json }}").unwrap();
        assert_eq!(set.render(&t, &ctx).unwrap(), r#"{"a":1}"#);
    }

    #[test]
    fn syntax_error_is_reported_at_compile() {
        let mut set = TemplateSet::new();
        assert!(set.compile("{{ unclosed").is_err());
    }
}
