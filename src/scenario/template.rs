//! `{{ var }}` templates (minijinja). Text without template syntax stays `Text::Static`, so a step with a fixed
//! path and body never touches the template engine on the hot path.

use std::borrow::Cow;
use std::collections::HashSet;

use minijinja::{Environment, ErrorKind, UndefinedBehavior, Value};

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

/// Candidates for "available" in messages, each listed only if this build of minijinja has it (the engine
/// has no public list of its filters and tests).
const FILTERS: &[&str] = &[
    "abs",
    "attr",
    "batch",
    "bool",
    "capitalize",
    "chain",
    "count",
    "default",
    "dictsort",
    "escape",
    "first",
    "float",
    "format",
    "groupby",
    "indent",
    "int",
    "items",
    "join",
    "last",
    "length",
    "lines",
    "list",
    "lower",
    "map",
    "max",
    "min",
    "pprint",
    "reject",
    "rejectattr",
    "replace",
    "reverse",
    "round",
    "safe",
    "select",
    "selectattr",
    "slice",
    "sort",
    "split",
    "strict_json",
    "string",
    "sum",
    "title",
    "tojson",
    "trim",
    "unique",
    "upper",
    "urlencode",
    "zip",
];
const TESTS: &[&str] = &[
    "boolean",
    "defined",
    "divisibleby",
    "endingwith",
    "eq",
    "escaped",
    "even",
    "false",
    "filter",
    "float",
    "ge",
    "gt",
    "in",
    "integer",
    "iterable",
    "le",
    "lower",
    "lt",
    "mapping",
    "ne",
    "none",
    "number",
    "odd",
    "safe",
    "sameas",
    "sequence",
    "startingwith",
    "string",
    "test",
    "true",
    "undefined",
    "upper",
];
/// Callable names the engine provides inside templates without a global.
const MAGIC_CALLABLES: &[&str] = &["loop", "caller", "super", "self", "varargs", "kwargs"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Callable {
    Filter,
    Test,
    Function,
}

/// A filter, test or function a template names that does not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unknown {
    pub kind: Callable,
    pub name: String,
    pub available: Vec<String>,
}

impl std::fmt::Display for Unknown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            Callable::Filter => "filter",
            Callable::Test => "test",
            Callable::Function => "function",
        };
        write!(f, "unknown {kind} `{}`; available: {}", self.name, self.available.join(", "))
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
    /// Variables fixed for the whole run (`[vars]` no capture shadows): a template that reads only these is
    /// rendered once when compiled, so `"{{ model }}"` costs nothing per request.
    constants: Option<(Ctx, HashSet<String>)>,
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
        TemplateSet { env, next: 0, constants: None }
    }

    /// Templates compiled from now on that read only these variables become static text.
    pub fn set_constants<'a>(&mut self, vars: impl IntoIterator<Item = (&'a str, &'a str)>) {
        let pairs: Vec<(&str, &str)> = vars.into_iter().collect();
        let names = pairs.iter().map(|(k, _)| k.to_string()).collect();
        self.constants = Some((Ctx::new(pairs.into_iter().map(|(k, v)| (k, Value::from(v)))), names));
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
        let text = Text::Template(name);
        if let Some((ctx, names)) = &self.constants {
            let vars = self.variables(&text);
            if !vars.is_empty() && vars.is_subset(names) {
                // A failure here is left to the request, which reports it as every render failure is.
                if let Ok(out) = self.render(&text, ctx) {
                    return Ok(Text::Static(out.into_owned()));
                }
            }
        }
        Ok(text)
    }

    /// Top-level variable names a text reads from its context (global functions such as `range` excluded).
    pub fn variables(&self, text: &Text) -> HashSet<String> {
        match text {
            Text::Static(_) => HashSet::new(),
            Text::Template(name) => {
                let mut vars = self.env.get_template(name).map(|t| t.undeclared_variables(false)).unwrap_or_default();
                // Global functions (`range`) come from the environment, never from the context.
                vars.retain(|v| !self.is_global(v));
                vars
            }
        }
    }

    /// The first filter, test or function a template calls that does not exist, checked when the scenario
    /// loads: minijinja looks them up only while rendering, so a typo would otherwise fail every request.
    /// Functions the template defines itself (macros) or that name one of `known`'s variables are left to
    /// the variable check.
    pub fn unknown_callable(&self, text: &Text, known: &HashSet<String>) -> Option<Unknown> {
        use minijinja::machinery::{Instruction, get_compiled_template};
        let Text::Template(name) = text else { return None };
        let tmpl = self.env.get_template(name).ok()?;
        let compiled = get_compiled_template(&tmpl);
        let mut calls = Vec::new();
        let mut defined = HashSet::new();
        for instrs in std::iter::once(&compiled.instructions).chain(compiled.blocks.values()) {
            for instr in (0..).map_while(|i| instrs.get(i)) {
                match instr {
                    Instruction::ApplyFilter(n, ..) => calls.push((Callable::Filter, *n)),
                    Instruction::PerformTest(n, ..) => calls.push((Callable::Test, *n)),
                    Instruction::CallFunction(n, _) => calls.push((Callable::Function, *n)),
                    Instruction::StoreLocal(n) => {
                        defined.insert(*n);
                    }
                    _ => {}
                }
            }
        }
        calls.into_iter().find_map(|(kind, n)| {
            let exists = match kind {
                Callable::Function => {
                    self.is_global(n) || defined.contains(n) || known.contains(n) || MAGIC_CALLABLES.contains(&n)
                }
                _ => self.has(kind, n),
            };
            (!exists).then(|| Unknown { kind, name: n.to_string(), available: self.available(kind) })
        })
    }

    /// Whether this environment has the filter or test `name`: minijinja has no lookup, so it is called with
    /// no arguments and only "unknown" counts as absent.
    fn has(&self, kind: Callable, name: &str) -> bool {
        let mut state = self.env.empty_state();
        match kind {
            Callable::Filter => {
                !matches!(state.apply_filter(name, &[]), Err(e) if e.kind() == ErrorKind::UnknownFilter)
            }
            Callable::Test => !matches!(state.perform_test(name, &[]), Err(e) if e.kind() == ErrorKind::UnknownTest),
            Callable::Function => self.is_global(name),
        }
    }

    /// Names of global functions (`range`, `dict`, ...): callable in a template, never variables to capture.
    pub fn is_global(&self, name: &str) -> bool {
        self.env.globals().any(|(g, _)| g == name)
    }

    /// What this environment offers of a kind, for the error message.
    fn available(&self, kind: Callable) -> Vec<String> {
        let mut names: Vec<String> = match kind {
            Callable::Filter => FILTERS.iter().filter(|n| self.has(kind, n)).map(|n| n.to_string()).collect(),
            Callable::Test => TESTS.iter().filter(|n| self.has(kind, n)).map(|n| n.to_string()).collect(),
            Callable::Function => self.env.globals().map(|(g, _)| g.to_string()).collect(),
        };
        names.sort();
        names
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
    fn unknown_filters_tests_and_functions_are_found_without_rendering() {
        let mut set = TemplateSet::new();
        let none = HashSet::new();
        let unknown = |set: &mut TemplateSet, src: &str| {
            let t = set.compile(src).unwrap();
            set.unknown_callable(&t, &none).map(|u| (u.kind, u.name))
        };
        assert_eq!(unknown(&mut set, "{{ x | nosuch }}"), Some((Callable::Filter, "nosuch".into())));
        // A branch that would not run with the values at hand is checked too.
        assert_eq!(
            unknown(&mut set, "{% if a %}{{ x | upper | nope(1) }}{% endif %}"),
            Some((Callable::Filter, "nope".into()))
        );
        assert_eq!(unknown(&mut set, "{% filter shout %}x{% endfilter %}"), Some((Callable::Filter, "shout".into())));
        assert_eq!(
            unknown(&mut set, "{% if x is nosuchtest %}1{% endif %}"),
            Some((Callable::Test, "nosuchtest".into()))
        );
        assert_eq!(unknown(&mut set, "{{ nosuchfn() }}"), Some((Callable::Function, "nosuchfn".into())));
        for fine in [
            "{{ x | upper | default('a') | strict_json }}",
            "{% if x is defined and x is even %}{{ range(3) | join(',') }}{% endif %}",
            "{% macro m(v) %}{{ v }}{% endmacro %}{{ m(1) }}",
            "{% for i in range(2) %}{{ loop.index }}{% endfor %}",
            "plain {{ x }}",
        ] {
            assert_eq!(unknown(&mut set, fine), None, "{fine}");
        }
        let t = set.compile("{{ x | nosuch }}").unwrap();
        let message = set.unknown_callable(&t, &none).unwrap().to_string();
        assert!(message.starts_with("unknown filter `nosuch`; available: abs, attr,"), "{message}");
        assert!(message.contains("strict_json") && message.contains("upper"), "{message}");
        assert!(set.is_global("range") && !set.is_global("user_id"));
    }

    #[test]
    fn syntax_error_is_reported_at_compile() {
        let mut set = TemplateSet::new();
        assert!(set.compile("{{ unclosed").is_err());
    }
}
