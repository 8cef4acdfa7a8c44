//! A small subset of Go's text/template for `--format`/`-f`, applied to the
//! JSON the daemon answered: `{{.A.B}}` (field path; `{{.}}` the whole value),
//! `{{json .A}}`, `{{upper .A}}`, `{{lower .A}}`, `{{len .A}}`,
//! `{{index .A "key"}}` and `{{join .A ","}}`. Scalars print as Go prints
//! them; maps and lists print as JSON (Go would print `map[…]`). Anything
//! else is an error naming the action, not a silent empty string.

use anyhow::{bail, Result};
use serde_json::Value;

/// A parsed template.
#[derive(Debug)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug)]
enum Part {
    Text(String),
    Action {
        func: Option<String>,
        args: Vec<Arg>,
    },
}

#[derive(Debug)]
enum Arg {
    Path(Vec<String>),
    Str(String),
}

impl Template {
    pub fn parse(src: &str) -> Result<Template> {
        let mut parts = Vec::new();
        let mut rest = src;
        while let Some(i) = rest.find("{{") {
            if i > 0 {
                parts.push(Part::Text(rest[..i].to_string()));
            }
            let after = &rest[i + 2..];
            let Some(j) = after.find("}}") else {
                bail!("template {src:?}: unclosed action {{{{ (add }}}})");
            };
            let action = after[..j]
                .trim()
                .trim_start_matches('-')
                .trim_end_matches('-')
                .trim();
            parts.push(parse_action(src, action)?);
            rest = &after[j + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template { parts })
    }

    /// Renders with `data` as `.`; `\n` is not added.
    pub fn render(&self, data: &Value) -> Result<String> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Action { func, args } => out.push_str(&apply(func.as_deref(), args, data)?),
            }
        }
        Ok(out)
    }
}

fn tokens(s: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut t = String::from("\"");
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            t.push(match n {
                                'n' => '\n',
                                't' => '\t',
                                other => other,
                            });
                        }
                    }
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => t.push(c),
                }
            }
            if !closed {
                bail!("unterminated string in {s:?}");
            }
            out.push(t);
        } else {
            let mut t = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                t.push(c);
                chars.next();
            }
            out.push(t);
        }
    }
    Ok(out)
}

fn parse_action(src: &str, action: &str) -> Result<Part> {
    let toks = tokens(action)?;
    let arg = |t: &str| -> Result<Arg> {
        if let Some(s) = t.strip_prefix('"') {
            Ok(Arg::Str(s.to_string()))
        } else if t == "." {
            Ok(Arg::Path(Vec::new()))
        } else if let Some(p) = t.strip_prefix('.') {
            Ok(Arg::Path(p.split('.').map(String::from).collect()))
        } else {
            bail!("template {src:?}: {t:?} is not supported; use .Field, json, upper, lower, len, index or join")
        }
    };
    match toks.first().map(String::as_str) {
        None => bail!("template {src:?}: empty action {{{{}}}}"),
        Some(f @ ("json" | "upper" | "lower" | "len" | "index" | "join" | "title")) => {
            let args = toks[1..].iter().map(|t| arg(t)).collect::<Result<Vec<_>>>()?;
            let want = match f {
                "index" | "join" => 2,
                _ => 1,
            };
            if args.len() != want {
                bail!("template {src:?}: {f} takes {want} argument(s)");
            }
            Ok(Part::Action {
                func: Some(f.to_string()),
                args,
            })
        }
        Some(_) if toks.len() == 1 => Ok(Part::Action {
            func: None,
            args: vec![arg(&toks[0])?],
        }),
        Some(_) => bail!("template {src:?}: {action:?} is not supported; use .Field, json, upper, lower, len, index or join"),
    }
}

fn resolve<'a>(data: &'a Value, arg: &'a Arg) -> Result<std::borrow::Cow<'a, Value>> {
    match arg {
        Arg::Str(s) => Ok(std::borrow::Cow::Owned(Value::String(s.clone()))),
        Arg::Path(p) => {
            let mut v = data;
            for k in p {
                v = match v {
                    Value::Object(m) => match m.get(k) {
                        Some(x) => x,
                        None => bail!(
                            "template: can't evaluate field {k}: no such field in {}",
                            describe(v)
                        ),
                    },
                    Value::Null => &Value::Null,
                    other => bail!("template: can't evaluate field {k} in {}", describe(other)),
                };
            }
            Ok(std::borrow::Cow::Borrowed(v))
        }
    }
}

fn describe(v: &Value) -> &'static str {
    match v {
        Value::Object(_) => "an object",
        Value::Array(_) => "a list",
        Value::String(_) => "a string",
        Value::Number(_) => "a number",
        Value::Bool(_) => "a boolean",
        Value::Null => "null",
    }
}

/// How Go's template prints a value (maps/lists: JSON).
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "<no value>".into(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => other.to_string(),
    }
}

fn apply(func: Option<&str>, args: &[Arg], data: &Value) -> Result<String> {
    let a0 = resolve(data, &args[0])?;
    Ok(match func {
        None => plain(&a0),
        Some("json") => serde_json::to_string(&*a0)?,
        Some("upper") => plain(&a0).to_uppercase(),
        Some("lower") => plain(&a0).to_lowercase(),
        Some("title") => {
            let s = plain(&a0);
            let mut c = s.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect())
                .unwrap_or_default()
        }
        Some("len") => match &*a0 {
            Value::Array(a) => a.len().to_string(),
            Value::Object(m) => m.len().to_string(),
            Value::String(s) => s.len().to_string(),
            Value::Null => "0".into(),
            other => bail!("template: len of {}", describe(other)),
        },
        Some("index") => {
            let key = resolve(data, &args[1])?;
            match (&*a0, &*key) {
                (Value::Object(m), Value::String(k)) => {
                    m.get(k).map(plain).unwrap_or_else(|| "<no value>".into())
                }
                (Value::Array(a), k) => {
                    let i = plain(k)
                        .parse::<usize>()
                        .map_err(|_| anyhow::anyhow!("template: index of a list needs a number"))?;
                    match a.get(i) {
                        Some(v) => plain(v),
                        None => bail!("template: index {i} out of range (length {})", a.len()),
                    }
                }
                (other, _) => bail!("template: cannot index {}", describe(other)),
            }
        }
        Some("join") => {
            let sep = plain(&*resolve(data, &args[1])?);
            match &*a0 {
                Value::Array(a) => a.iter().map(plain).collect::<Vec<_>>().join(&sep),
                Value::Null => String::new(),
                other => bail!("template: join of {}", describe(other)),
            }
        }
        Some(f) => bail!("template: unknown function {f}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn r(t: &str, v: &Value) -> String {
        Template::parse(t).unwrap().render(v).unwrap()
    }

    #[test]
    fn fields_json_and_functions() {
        let v = json!({"State": {"Status": "running", "Pid": 42, "Running": true},
            "Name": "/web", "Config": {"Labels": {"a.b": "c"}, "Env": ["A=1", "B=2"]},
            "Mounts": [], "Gone": null});
        assert_eq!(r("{{.State.Status}}", &v), "running");
        assert_eq!(r("{{ .State.Pid }} {{.State.Running}}", &v), "42 true");
        assert_eq!(r("pid={{.State.Pid}}\n", &v), "pid=42\n");
        assert_eq!(r("{{json .Config.Env}}", &v), r#"["A=1","B=2"]"#);
        assert_eq!(r("{{json .Mounts}}", &v), "[]");
        assert_eq!(r("{{index .Config.Labels \"a.b\"}}", &v), "c");
        assert_eq!(r("{{len .Config.Env}}", &v), "2");
        assert_eq!(r("{{join .Config.Env \",\"}}", &v), "A=1,B=2");
        assert_eq!(r("{{upper .State.Status}}", &v), "RUNNING");
        assert_eq!(r("{{.Gone}}", &v), "<no value>");
        assert_eq!(r("{{.Gone.Deeper}}", &v), "<no value>");
        assert_eq!(r("{{json .}}", &json!({"a": 1})), r#"{"a":1}"#);
    }

    #[test]
    fn errors_name_the_problem() {
        let v = json!({"State": {"Status": "running"}});
        let e = Template::parse("{{.State.Nope}}")
            .unwrap()
            .render(&v)
            .unwrap_err();
        assert!(e.to_string().contains("can't evaluate field Nope"), "{e}");
        assert!(Template::parse("{{.State").is_err());
        assert!(Template::parse("{{range .X}}").is_err());
        assert!(Template::parse("{{index .X}}").is_err());
    }
}
