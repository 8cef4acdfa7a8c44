//! Dockerfile words: quoting, escapes and variable substitution, as
//! dockerd's shell lexer does them for the instructions it expands (ADD,
//! COPY, ENV, EXPOSE, FROM, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR, ARG).
//! No I/O.
//!
//! Written by hand: the rules are Docker's own (not a POSIX shell's), small,
//! and need the configurable escape character of `# escape=`.

use std::collections::BTreeMap;

/// Variables visible to a substitution: `ENV` values over `ARG` values.
pub type Vars = BTreeMap<String, String>;

/// A substitution error (`${X:?message}` or a malformed `${`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WordError(pub String);

/// Splits `s` at unquoted whitespace, keeping quotes and escapes in the
/// words (dockerd's parser step before the per-word processing).
pub fn split_raw(s: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    let mut in_word = false;
    while let Some(c) = chars.next() {
        if quote.is_none() && c.is_whitespace() {
            if in_word {
                words.push(std::mem::take(&mut cur));
                in_word = false;
            }
            continue;
        }
        in_word = true;
        cur.push(c);
        if c == escape && quote != Some('\'') {
            if let Some(n) = chars.next() {
                cur.push(n);
            }
            continue;
        }
        match quote {
            None if c == '"' || c == '\'' => quote = Some(c),
            Some(q) if c == q => quote = None,
            _ => {}
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

/// One word with its quotes removed and variables expanded.
pub fn expand(word: &str, vars: &Vars, escape: char) -> Result<String, WordError> {
    Ok(lex(word, vars, escape, false)?.concat())
}

/// `s` split at unquoted whitespace into words, each with quotes removed
/// and variables expanded (an expanded value is not split again).
pub fn expand_words(s: &str, vars: &Vars, escape: char) -> Result<Vec<String>, WordError> {
    lex(s, vars, escape, true)
}

/// The words of `s` (split at unquoted whitespace when `split`), quotes
/// removed and variables expanded.
fn lex(s: &str, vars: &Vars, escape: char, split: bool) -> Result<Vec<String>, WordError> {
    let chars: Vec<char> = s.chars().collect();
    let mut lx = Lexer {
        s: &chars,
        i: 0,
        vars,
        escape,
    };
    let mut out = Vec::new();
    lx.words(&mut out, split)?;
    Ok(out)
}

struct Lexer<'a> {
    s: &'a [char],
    i: usize,
    vars: &'a Vars,
    escape: char,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.s.get(self.i).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        self.i += 1;
        c
    }

    /// Reads to the end; with `split`, whitespace outside quotes ends a word.
    fn words(&mut self, out: &mut Vec<String>, split: bool) -> Result<(), WordError> {
        let mut cur = String::new();
        let mut started = false;
        while let Some(c) = self.peek() {
            if split && c.is_whitespace() {
                self.i += 1;
                if started {
                    out.push(std::mem::take(&mut cur));
                    started = false;
                }
                continue;
            }
            started = true;
            match c {
                '\'' => {
                    self.i += 1;
                    while let Some(c) = self.next() {
                        if c == '\'' {
                            break;
                        }
                        cur.push(c);
                    }
                }
                '"' => {
                    self.i += 1;
                    self.double_quoted(&mut cur)?;
                }
                '$' => {
                    self.i += 1;
                    cur.push_str(&self.variable()?);
                }
                c if c == self.escape => {
                    self.i += 1;
                    match self.next() {
                        Some(n) => cur.push(n),
                        // A trailing escape stays as it is.
                        None => cur.push(c),
                    }
                }
                c => {
                    self.i += 1;
                    cur.push(c);
                }
            }
        }
        if started || !split {
            out.push(cur);
        }
        Ok(())
    }

    fn double_quoted(&mut self, cur: &mut String) -> Result<(), WordError> {
        while let Some(c) = self.next() {
            match c {
                '"' => return Ok(()),
                '$' => cur.push_str(&self.variable()?),
                c if c == self.escape => match self.peek() {
                    Some(n) if n == '"' || n == '$' || n == self.escape => {
                        self.i += 1;
                        cur.push(n);
                    }
                    _ => cur.push(c),
                },
                c => cur.push(c),
            }
        }
        Ok(()) // an unterminated quote ends with the word, as in dockerd
    }

    /// After a `$`: `NAME`, `{NAME}`, `{NAME:-word}`, `{NAME-word}`,
    /// `{NAME:+word}`, `{NAME+word}`, `{NAME:?msg}`, `{NAME?msg}`.
    fn variable(&mut self) -> Result<String, WordError> {
        match self.peek() {
            Some('{') => {
                self.i += 1;
                let name = self.name();
                if name.is_empty() {
                    return Err(WordError(
                        "bad substitution: ${ must be followed by a variable name".into(),
                    ));
                }
                let value = self.vars.get(&name).cloned();
                match self.next() {
                    Some('}') => Ok(value.unwrap_or_default()),
                    Some(c @ (':' | '-' | '+' | '?')) => {
                        let colon = c == ':';
                        let op = if colon { self.next() } else { Some(c) };
                        let word = self.modifier_word()?;
                        // With ':' an empty value counts as unset.
                        let set = match &value {
                            Some(v) => !(colon && v.is_empty()),
                            None => false,
                        };
                        match op {
                            Some('-') => Ok(if set { value.unwrap_or_default() } else { word }),
                            Some('+') => Ok(if set { word } else { String::new() }),
                            Some('?') => {
                                if set {
                                    Ok(value.unwrap_or_default())
                                } else if word.is_empty() {
                                    Err(WordError(format!("{name}: is not allowed to be unset")))
                                } else {
                                    Err(WordError(format!("{name}: {word}")))
                                }
                            }
                            other => Err(WordError(format!(
                                "unsupported modifier ({}) in substitution of {name}: use :-, :+ or :?",
                                other.map(String::from).unwrap_or_default()
                            ))),
                        }
                    }
                    _ => Err(WordError(format!(
                        "missing '}}' in the substitution of ${{{name}"
                    ))),
                }
            }
            Some(c) if c == '_' || c.is_ascii_alphanumeric() => {
                let name = self.name();
                Ok(self.vars.get(&name).cloned().unwrap_or_default())
            }
            // A lone `$` is literal.
            _ => Ok("$".into()),
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if c == '_' || c.is_ascii_alphanumeric() {
                name.push(c);
                self.i += 1;
            } else {
                break;
            }
        }
        name
    }

    /// The word of a `${NAME:-word}` up to the closing brace, processed.
    fn modifier_word(&mut self) -> Result<String, WordError> {
        let mut out = String::new();
        while let Some(c) = self.next() {
            match c {
                '}' => return Ok(out),
                '\'' => {
                    while let Some(c) = self.next() {
                        if c == '\'' {
                            break;
                        }
                        out.push(c);
                    }
                }
                '"' => self.double_quoted(&mut out)?,
                '$' => out.push_str(&self.variable()?),
                c if c == self.escape => {
                    if let Some(n) = self.next() {
                        out.push(n);
                    }
                }
                c => out.push(c),
            }
        }
        Err(WordError("missing '}' at the end of a substitution".into()))
    }
}

/// Parses `k=v k2="v 2"` (or, when the first word has no `=`, the legacy
/// `k the rest`) into raw key and value words (quotes kept; expand them).
pub fn key_values(rest: &str, escape: char, what: &str) -> Result<Vec<(String, String)>, String> {
    let words = split_raw(rest, escape);
    if words.is_empty() {
        return Err(format!("{what} requires at least one argument"));
    }
    if !words[0].contains('=') {
        let key = words[0].clone();
        let value = rest.trim_start()[key.len()..].trim().to_string();
        if value.is_empty() && what != "ARG" {
            return Err(format!(
                "{what} names can not be blank: write {what} key=value (or {what} key value)"
            ));
        }
        return Ok(vec![(key, value)]);
    }
    let mut out = Vec::new();
    for w in words {
        match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => out.push((k.to_string(), v.to_string())),
            _ => {
                return Err(format!(
                    "Syntax error - can't find = in {w:?}. Must be of the form: name=value"
                ))
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        [("A", "x"), ("EMPTY", ""), ("SP", "a b")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn ex(s: &str) -> String {
        expand(s, &vars(), '\\').unwrap()
    }

    #[test]
    fn substitution_forms() {
        assert_eq!(ex("$A"), "x");
        assert_eq!(ex("${A}y"), "xy");
        assert_eq!(ex("$Ay"), "");
        assert_eq!(ex("${NOPE:-def}"), "def");
        assert_eq!(ex("${EMPTY:-def}"), "def");
        assert_eq!(ex("${EMPTY-def}"), "");
        assert_eq!(ex("${A:-def}"), "x");
        assert_eq!(ex("${A:+alt}"), "alt");
        assert_eq!(ex("${NOPE:+alt}"), "");
        assert_eq!(ex("${NOPE:-$A}"), "x");
        assert_eq!(ex("a$"), "a$");
        let e = expand("${NOPE:?need it}", &vars(), '\\').unwrap_err();
        assert_eq!(e.0, "NOPE: need it");
        assert!(expand("${A", &vars(), '\\').is_err());
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(ex("'$A'"), "$A");
        assert_eq!(ex("\"$A b\""), "x b");
        assert_eq!(ex("\\$A"), "$A");
        assert_eq!(ex("\"a\\\"b\""), "a\"b");
        assert_eq!(ex("\"a\\nb\""), "a\\nb");
        assert_eq!(expand("`$A", &vars(), '`').unwrap(), "$A");
        assert_eq!(expand("c:\\dir", &vars(), '`').unwrap(), "c:\\dir");
    }

    #[test]
    fn words_split_outside_quotes() {
        let w = expand_words("a \"b c\"  $SP '$A d'", &vars(), '\\').unwrap();
        assert_eq!(w, ["a", "b c", "a b", "$A d"]);
        assert_eq!(
            split_raw("k=\"v 1\" k2=v\\ 2", '\\'),
            ["k=\"v 1\"", "k2=v\\ 2"]
        );
    }

    #[test]
    fn key_value_forms() {
        let kv = key_values("A=1 B=\"two words\"", '\\', "ENV").unwrap();
        assert_eq!(kv[1], ("B".into(), "\"two words\"".into()));
        let kv = key_values("A the rest here", '\\', "ENV").unwrap();
        assert_eq!(kv, [("A".into(), "the rest here".into())]);
        assert!(key_values("A=1 B", '\\', "ENV").is_err());
        assert!(key_values("A", '\\', "ENV").is_err());
    }
}
