//! The Dockerfile parser: parser directives (`# escape=`), comments, line
//! continuations, instructions with their `--flags`, JSON (exec) forms and
//! stages. Words are expanded later, per instruction, by [`super::words`]
//! (they need the variables of the moment). No I/O.

/// One instruction of a Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// Upper case: `RUN`, `COPY`, ...
    pub keyword: String,
    /// `--name=value` (or `--name` alone: value `None`) before the arguments.
    pub flags: Vec<(String, Option<String>)>,
    /// The arguments after the flags, as written (continuations joined).
    pub rest: String,
    /// The arguments as a JSON string list, when written so (exec form).
    pub json: Option<Vec<String>>,
    /// The whole logical line as written (for `Step N/M : …`).
    pub original: String,
    /// 1-based line of its first physical line.
    pub line: usize,
}

impl Instruction {
    /// The value of `--name`, if given.
    pub fn flag(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_deref().unwrap_or(""))
    }
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    pub escape: char,
    /// Every instruction, in order (the `ARG`s before the first `FROM` too).
    pub instructions: Vec<Instruction>,
}

/// Instructions the parser knows.
const KNOWN: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// The flags each instruction accepts (dockerd refuses others).
fn allowed_flags(keyword: &str) -> &'static [&'static str] {
    match keyword {
        "FROM" => &["platform"],
        "COPY" => &["from", "chown", "chmod", "link", "parents", "exclude"],
        "ADD" => &[
            "chown",
            "chmod",
            "link",
            "checksum",
            "keep-git-dir",
            "exclude",
        ],
        "RUN" => &["mount", "network", "security"],
        "HEALTHCHECK" => &[
            "interval",
            "timeout",
            "start-period",
            "start-interval",
            "retries",
        ],
        _ => &[],
    }
}

/// Instructions whose arguments may be a JSON list.
fn takes_json(keyword: &str) -> bool {
    matches!(
        keyword,
        "RUN" | "CMD" | "ENTRYPOINT" | "SHELL" | "COPY" | "ADD" | "VOLUME"
    )
}

/// A parse error, with the line it is on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dockerfile parse error on line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

/// Parses a Dockerfile.
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.lines().collect();
    let mut escape = '\\';
    let mut i = 0;
    // Parser directives: only at the very top, before anything else.
    while i < lines.len() {
        match directive(lines[i]) {
            Some((name, value)) => {
                if name == "escape" {
                    escape = match value.as_str() {
                        "\\" => '\\',
                        "`" => '`',
                        other => {
                            return Err(ParseError {
                                line: i + 1,
                                message: format!(
                                    "invalid escape token '{other}' does not match ` or \\"
                                ),
                            })
                        }
                    };
                }
                i += 1;
            }
            None => break,
        }
    }
    let mut instructions = Vec::new();
    while i < lines.len() {
        let raw = lines[i];
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            i += 1;
            continue;
        }
        let start = i;
        let mut logical = String::new();
        let mut line = raw.trim_start().to_string();
        loop {
            let t = line.trim_end();
            if let Some(body) = t.strip_suffix(escape) {
                logical.push_str(body);
                i += 1;
                // Comment and empty lines inside a continuation are skipped.
                let mut next = None;
                while i < lines.len() {
                    let l = lines[i];
                    let lt = l.trim_start();
                    if lt.starts_with('#') || lt.is_empty() {
                        i += 1;
                        continue;
                    }
                    next = Some(l.to_string());
                    break;
                }
                match next {
                    Some(n) => line = n,
                    None => break,
                }
            } else {
                logical.push_str(t);
                i += 1;
                break;
            }
        }
        instructions.push(instruction(&logical, start + 1)?);
    }
    Ok(Dockerfile {
        escape,
        instructions,
    })
}

/// `# name=value` at the top of the file.
fn directive(line: &str) -> Option<(String, String)> {
    let rest = line.trim().strip_prefix('#')?;
    let (name, value) = rest.split_once('=')?;
    let name = name.trim();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    Some((name.to_ascii_lowercase(), value.trim().to_string()))
}

/// Parses one logical line into an instruction.
pub fn instruction(logical: &str, line: usize) -> Result<Instruction, ParseError> {
    let err = |message: String| ParseError { line, message };
    let logical = logical.trim();
    let (word, rest) = logical
        .split_once(char::is_whitespace)
        .map(|(w, r)| (w, r.trim_start()))
        .unwrap_or((logical, ""));
    let keyword = word.to_ascii_uppercase();
    if !KNOWN.contains(&keyword.as_str()) {
        return Err(err(format!("unknown instruction: {word}")));
    }
    let mut rest = rest.to_string();
    let mut flags = Vec::new();
    let allowed = allowed_flags(&keyword);
    loop {
        let t = rest.trim_start();
        let Some(flag) = t.strip_prefix("--") else {
            break;
        };
        let end = flag.find(char::is_whitespace).unwrap_or(flag.len());
        let (token, after) = flag.split_at(end);
        if token.is_empty() {
            break; // `--` alone ends the flags
        }
        let (name, value) = match token.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (token.to_string(), None),
        };
        if !allowed.contains(&name.as_str()) {
            return Err(err(format!(
                "unknown flag: --{name} for {keyword}{}",
                if allowed.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (it takes {})",
                        allowed
                            .iter()
                            .map(|f| format!("--{f}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            )));
        }
        flags.push((name, value));
        rest = after.trim_start().to_string();
    }
    let rest = rest.trim().to_string();
    let json = if takes_json(&keyword) && rest.starts_with('[') {
        serde_json::from_str::<Vec<String>>(&rest).ok()
    } else {
        None
    };
    let needs_args = !matches!(keyword.as_str(), "CMD" | "ENTRYPOINT" | "RUN" | "SHELL");
    if rest.is_empty() && needs_args {
        return Err(err(format!("{keyword} requires at least one argument")));
    }
    Ok(Instruction {
        keyword,
        flags,
        rest,
        json,
        original: logical.to_string(),
        line,
    })
}

/// The build stages of a Dockerfile: the `ARG`s before the first `FROM`
/// (the meta args), then one entry per `FROM` with its instructions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stages {
    pub meta_args: Vec<Instruction>,
    pub stages: Vec<Stage>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// The `FROM` itself.
    pub from: Instruction,
    /// `AS name`, lower-cased (as dockerd compares them).
    pub name: Option<String>,
    pub instructions: Vec<Instruction>,
}

/// Groups instructions into stages; checks that the file starts with
/// `FROM` (after meta `ARG`s) and that stage names are unique.
pub fn stages(df: &Dockerfile) -> Result<Stages, ParseError> {
    let mut meta_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for ins in &df.instructions {
        if ins.keyword == "FROM" {
            let words = super::words::split_raw(&ins.rest, df.escape);
            let name = match words.as_slice() {
                [_] => None,
                [_, as_kw, name] if as_kw.eq_ignore_ascii_case("as") => {
                    let n = name.to_ascii_lowercase();
                    let ok = n.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                        && n.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
                    if !ok {
                        return Err(ParseError {
                            line: ins.line,
                            message: format!(
                                "invalid name for build stage: {name:?}, name can't start with a number or contain symbols"
                            ),
                        });
                    }
                    if stages.iter().any(|s| s.name.as_deref() == Some(&n)) {
                        return Err(ParseError {
                            line: ins.line,
                            message: format!("duplicate name {n:?} for build stages"),
                        });
                    }
                    Some(n)
                }
                _ => {
                    return Err(ParseError {
                        line: ins.line,
                        message:
                            "FROM requires either one or three arguments: FROM <image> [AS <name>]"
                                .into(),
                    })
                }
            };
            stages.push(Stage {
                from: ins.clone(),
                name,
                instructions: Vec::new(),
            });
        } else if let Some(stage) = stages.last_mut() {
            stage.instructions.push(ins.clone());
        } else if ins.keyword == "ARG" {
            meta_args.push(ins.clone());
        } else {
            return Err(ParseError {
                line: ins.line,
                message: format!(
                    "no build stage in current context: a Dockerfile must begin with FROM (only ARG may come before it), not {}",
                    ins.keyword
                ),
            });
        }
    }
    if stages.is_empty() {
        return Err(ParseError {
            line: 1,
            message: "the Dockerfile (Dockerfile) cannot be empty".into(),
        });
    }
    Ok(Stages { meta_args, stages })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuations_comments_and_forms() {
        let df = parse(
            "# escape=\\\n\
             FROM busybox AS base\n\
             # a comment\n\
             RUN echo a \\\n\
             # inside\n\
             \n\
             \x20 b\n\
             COPY --chown=1:2 --from=base [\"a b\", \"/c\"]\n\
             cmd [\"sh\", \"-c\", \"x\"]\n\
             ENV A=1\n",
        )
        .unwrap();
        let k: Vec<&str> = df.instructions.iter().map(|i| i.keyword.as_str()).collect();
        assert_eq!(k, ["FROM", "RUN", "COPY", "CMD", "ENV"]);
        assert_eq!(df.instructions[1].rest, "echo a   b");
        assert_eq!(df.instructions[1].line, 4);
        let copy = &df.instructions[2];
        assert_eq!(copy.flag("chown"), Some("1:2"));
        assert_eq!(copy.flag("from"), Some("base"));
        assert_eq!(copy.json.as_deref().unwrap(), ["a b", "/c"]);
        assert_eq!(
            df.instructions[3].json.as_deref().unwrap(),
            ["sh", "-c", "x"]
        );
        assert_eq!(df.instructions[3].original, "cmd [\"sh\", \"-c\", \"x\"]");
    }

    #[test]
    fn escape_directive_and_shell_form_json_lookalike() {
        let df = parse("# escape=`\nFROM x\nRUN dir c:\\ `\n  && echo\nRUN [not json\n").unwrap();
        assert_eq!(df.escape, '`');
        assert_eq!(df.instructions[1].rest, "dir c:\\   && echo");
        assert_eq!(df.instructions[2].json, None);
        // A directive after an instruction is a comment.
        let df = parse("FROM x\n# escape=`\nRUN a \\\n b").unwrap();
        assert_eq!(df.escape, '\\');
        assert_eq!(df.instructions[1].rest, "a  b");
    }

    #[test]
    fn bad_lines_name_the_problem() {
        let e = parse("FROM x\nFOO bar\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("unknown instruction: FOO"), "{e}");
        let e = parse("FROM x\nCOPY --nope=1 a b\n").unwrap_err();
        assert!(e.message.contains("unknown flag: --nope"), "{e}");
        assert!(parse("FROM x\nENV\n").is_err());
        assert!(parse("# escape=x\nFROM x").is_err());
    }

    #[test]
    fn stages_and_meta_args() {
        let df =
            parse("ARG V=1\nFROM a:$V AS One\nRUN x\nFROM one\nCOPY --from=one / /\n").unwrap();
        let s = stages(&df).unwrap();
        assert_eq!(s.meta_args.len(), 1);
        assert_eq!(s.stages.len(), 2);
        assert_eq!(s.stages[0].name.as_deref(), Some("one"));
        assert_eq!(s.stages[1].instructions.len(), 1);
        assert!(stages(&parse("RUN x\nFROM a").unwrap()).is_err());
        assert!(stages(&parse("FROM a AS x\nFROM b AS X").unwrap()).is_err());
        assert!(stages(&parse("FROM a AS 1x").unwrap()).is_err());
        assert!(stages(&parse("# only a comment\n").unwrap()).is_err());
    }
}
